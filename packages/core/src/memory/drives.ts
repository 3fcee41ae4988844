import type { AgentDescriptor } from "@bosun/contracts";
import { type Database, repo, type Tx, withTenant } from "@bosun/db";
import { type Jobs, wakeKey } from "@bosun/jobs";
import { type Actor, requireScope } from "../actor";
import { durationMs } from "../agents/descriptor";
import { audit } from "../audit";
import { conflict, forbidden, notFound } from "../errors";

/** How often a drive without `every` is consulted. */
export const DEFAULT_DRIVE_EVERY = "1d";

export function autonomyOf(d: AgentDescriptor) {
  return { level: d.spec.autonomy?.level ?? "propose", tasksPerDay: d.spec.autonomy?.tasks_per_day ?? 3 };
}

/**
 * The next due drive of an agent that has nothing else to do, claimed for the run `runId`
 * (its next consultation moves `every` ahead), with the run's opening text; null when none
 * is due or the agent's autonomy is `none` (drives are then never consulted: zero tokens).
 */
export async function takeDueDrive(tx: Tx, p: { tenantId: string; agentId: string; descriptor: AgentDescriptor; runId: string }) {
  const a = autonomyOf(p.descriptor);
  if (a.level === "none" || !p.descriptor.spec.drives.length) return null;
  const notDue = await repo.memory.drivesNotDue(tx, { tenantId: p.tenantId, agentId: p.agentId });
  for (const d of p.descriptor.spec.drives) {
    if (notDue.has(d.name)) continue;
    const everySeconds = durationMs(d.every ?? DEFAULT_DRIVE_EVERY) / 1000;
    if (!(await repo.memory.claimDrive(tx, { tenantId: p.tenantId, agentId: p.agentId, name: d.name, everySeconds, runId: p.runId }))) continue;
    const may =
      a.level === "act"
        ? "tasks you create are queued for work at once"
        : "tasks you create wait in a backlog until a person promotes them";
    const text = [
      `Drive "${d.name}": ${d.question}`,
      `You have no other work right now. Look into this question with your tools and memory. If something needs doing, create tasks (${may}; at most ${a.tasksPerDay} a day), send messages or make a proposal. If nothing does, say so in one line.`,
    ].join("\n\n");
    return { name: d.name, text };
  }
  return null;
}

/**
 * `create_task` inside a drive consultation: allowed by the agent's autonomy and its daily
 * cap (counted in SQL, safe under concurrency). Returns whether the task goes to the backlog.
 */
export async function driveTaskAllowance(tx: Tx, p: { tenantId: string; agentId: string; descriptor: AgentDescriptor }) {
  const a = autonomyOf(p.descriptor);
  if (a.level === "none") return { ok: false as const, message: "your autonomy level is none: you may not create tasks on your own" };
  const n = await repo.memory.takeTaskAllowance(tx, { tenantId: p.tenantId, agentId: p.agentId, cap: a.tasksPerDay });
  if (n === null) return { ok: false as const, message: `daily cap reached: at most ${a.tasksPerDay} tasks a day on your own initiative` };
  return { ok: true as const, backlog: a.level === "propose" };
}

/**
 * Is a run's work the agent's own initiative? A drive consultation is, and so is the run of
 * a task the agent created for itself: otherwise one self-assigned task could spawn the next
 * without limit (this second rule only when the descriptor declares `autonomy`, so agents
 * without one keep creating follow-up tasks as before). Work a person (or another agent)
 * gave it is not.
 */
export async function ownInitiative(tx: Tx, p: { tenantId: string; agentId: string; kind: string; taskId: string | undefined; descriptor: AgentDescriptor }) {
  if (p.kind === "drive") return true;
  if (!p.taskId || !p.descriptor.spec.autonomy) return false;
  const { rows } = await tx.$client.query<{ own: boolean }>(
    `SELECT created_by_type = 'agent' AND created_by_id = $3 AS own FROM tasks WHERE tenant_id = $1 AND id = $2`,
    [p.tenantId, p.taskId, p.agentId],
  );
  return rows[0]?.own === true;
}

export async function moveToBacklog(tx: Tx, p: { tenantId: string; taskId: string }) {
  await tx.$client.query(`UPDATE tasks SET status = 'backlog', updated_at = now() WHERE tenant_id = $1 AND id = $2 AND status = 'queued'`, [p.tenantId, p.taskId]);
}

export const driveService = (deps: { database: Database; jobs: Pick<Jobs, "enqueue"> }) => ({
  /** POST /v1/tasks/{id}/promote: a person moves a backlog task (an agent's proposal) to the queue. */
  async promote(actor: Actor, taskId: string, requestId?: string) {
    requireScope(actor, "write");
    if (actor.agentId) throw forbidden("a person promotes backlog tasks, not an agent");
    return withTenant(deps.database, actor.tenantId, async (tx) => {
      const { rows } = await tx.$client.query<{ status: string; assignee: string | null }>(
        `SELECT status, assignee_agent_id AS assignee FROM tasks WHERE tenant_id = $1 AND id = $2 FOR UPDATE`,
        [actor.tenantId, taskId],
      );
      const t = rows[0];
      if (!t) throw notFound(`task ${taskId}`);
      if (t.status !== "backlog") throw conflict(`task ${taskId} is ${t.status}, not in the backlog`);
      await tx.$client.query(`UPDATE tasks SET status = 'queued', updated_at = now() WHERE tenant_id = $1 AND id = $2`, [actor.tenantId, taskId]);
      if (t.assignee) {
        await deps.jobs.enqueue(tx, "agent.wake", { tenantId: actor.tenantId, agentId: t.assignee, reason: "task" }, { singletonKey: wakeKey(actor.tenantId, t.assignee) });
      }
      await audit(tx, actor, { action: "task.promote", targetType: "task", targetId: taskId, before: { status: "backlog" }, after: { status: "queued" } }, requestId);
      return { id: taskId, status: "queued" as const };
    });
  },
});
