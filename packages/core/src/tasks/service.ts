import {
  type CreateTaskBody,
  createTaskBodySchema,
  type FieldIssue,
  isEmptyJson,
  type TaskStatus,
  type UpdateTaskBody,
} from "@bosun/contracts";
import { type Database, queryBatch, repo, type Tx, withSystem, withTenant } from "@bosun/db";
import { type Jobs, wakeKey } from "@bosun/jobs";
import { type Actor, agentActor, requireScope, systemActor } from "../actor";
import { fieldIssues, missingIsRequired } from "../agents/descriptor";
import { atCommitClient, audit, deferWrite } from "../audit";
import { AppError, conflict, forbidden, notFound, validation } from "../errors";
import { type IdempotencyRequest, runCreate } from "../idempotency";
import { newId } from "../ids";
import { decodeCursor, isString, page } from "../pagination";
import { assertOwnsDomain } from "../proposals/ownership";

export function taskView(t: repo.TaskRow) {
  return {
    id: t.id,
    title: t.title,
    body: t.body,
    priority: t.priority,
    status: t.status,
    assigneeAgentId: t.assigneeAgentId,
    domain: t.domain,
    requiresReview: t.requiresReview,
    reviewerAgentId: t.reviewerAgentId,
    maxAttempts: t.maxAttempts,
    attempts: t.attempts,
    claimedByAgentId: t.claimedByAgentId,
    leaseEpoch: t.leaseEpoch,
    leaseExpiresAt: t.leaseExpiresAt?.toISOString() ?? null,
    runId: t.runId,
    result: t.result ?? null,
    failure: t.failure ?? null,
    reviewComment: t.reviewComment,
    createdBy: { type: t.createdByType as Actor["type"], id: t.createdById },
    createdAt: t.createdAt.toISOString(),
    updatedAt: t.updatedAt.toISOString(),
    completedAt: t.completedAt?.toISOString() ?? null,
  };
}

export type TaskView = ReturnType<typeof taskView>;

type Dependency = { id: string; title: string; status: TaskStatus };

const detailView = (t: repo.TaskRow, dependencies: Dependency[]) => ({ ...taskView(t), dependencies });

interface Ctx {
  requestId?: string | undefined;
}

/**
 * Who holds (or asks for) a task's lease. Over REST that is an agent's own API key, and
 * the lease belongs to that key; the runtime names its own owner (worker and run).
 */
interface Holder {
  actor: Actor;
  agentId: string;
  leaseOwner: string;
}

/** A write by the lease holder, as the agent runtime makes it. */
export interface TaskLeaseWrite {
  tenantId: string;
  taskId: string;
  agentId: string;
  leaseOwner: string;
  epoch: number;
}

/**
 * Agents the wake backstop wakes per tick at most, and how long an unassigned task may sit
 * queued (unchanged) before it looks: longer than a create → wake → claim normally takes.
 */
const BACKSTOP_BATCH = 100;
const BACKSTOP_GRACE_SECONDS = 5;
/** Expired leases handled per transaction by the sweep. */
const SWEEP_BATCH = 100;
const MAX_TTL_SECONDS = 86_400;

const FINISHED = new Set<TaskStatus>(repo.FINISHED_STATUSES);
const LEASED = new Set<TaskStatus>(repo.LEASED_STATUSES);

const cycleError = (cycle: string[], path: string) =>
  validation(`dependency cycle: ${cycle.join(" → ")}`, [{ path, message: `would close the cycle ${cycle.join(" → ")}` }]);

/** Wakes agents: pg-boss jobs in the caller's transaction, so a wake exists iff the write commits. */
function waker(jobs: Pick<Jobs, "enqueue">) {
  async function wake(tx: Tx, tenantId: string, agentIds: Iterable<string>) {
    // In id order: two transactions waking the same agents meet pg-boss's singleton index
    // (one queued wake per agent) in the same order, so they cannot deadlock on it.
    for (const agentId of [...new Set(agentIds)].sort()) {
      // With the COMMIT when the transaction defers its audit events (creates, the runtime).
      await jobs.enqueue(atCommitClient(tx), "agent.wake", { tenantId, agentId, reason: "task" }, { singletonKey: wakeKey(tenantId, agentId) });
    }
  }

  /**
   * Wakes whoever may do these (queued, claimable) tasks: the active assignee, or ONE active
   * agent covering the domain per task, idle ones first (`repo.agentsToWake`). One task needs
   * one agent; waking every covering agent cost a pg-boss insert each and woke agents to
   * find nothing. No wake-up is lost by it: a busy agent runs up to 20 runs under its lease
   * and re-checks for work when it releases, and a wake sent to a busy agent marks its
   * session so it re-checks even if it looked already. What remains (the chosen agent is
   * busy with a long run while another that would be idle had re-checked before this
   * commit) only delays the task; `wakeIdleForStaleTasks` in the worker's tick closes it.
   */
  async function wakeFor(tx: Tx, tenantId: string, tasks: repo.TaskRow[], chosen?: string[]) {
    const assignees = tasks.flatMap((t) => (t.assigneeAgentId ? [t.assigneeAgentId] : []));
    const ids = await repo.activeAgentIds(tx, { tenantId, ids: [...new Set(assignees)] });
    const open = openTasks(tasks);
    // `chosen`: agentsToWake's answer for these tasks, read already (with the create's insert).
    if (open.length > 0) ids.push(...(chosen ?? (await repo.agentsToWake(tx, { tenantId, tasks: open, seed: spreadSeed(open[0]!.id) }))));
    await wake(tx, tenantId, ids);
  }

  /** Wakes the reviewing agent of a task that just went to review. */
  async function wakeReviewer(tx: Tx, t: repo.TaskRow) {
    if (!t.reviewerAgentId) return;
    await wake(tx, t.tenantId, await repo.activeAgentIds(tx, { tenantId: t.tenantId, ids: [t.reviewerAgentId] }));
  }

  /** A task is done: wake the agents of the queued tasks that no longer wait for anything. */
  async function wakeDependents(tx: Tx, t: repo.TaskRow) {
    const unblocked = await repo.unblockedDependents(tx, { tenantId: t.tenantId, taskId: t.id });
    if (unblocked.length > 0) await wakeFor(tx, t.tenantId, unblocked);
  }

  return { wakeFor, wakeReviewer, wakeDependents };
}

/** The tasks agentsToWake chooses for: unassigned ones with a domain. */
const openTasks = (tasks: Pick<repo.TaskRow, "id" | "assigneeAgentId" | "domain" | "reviewerAgentId">[]) =>
  tasks.flatMap((t) => (!t.assigneeAgentId && t.domain ? [{ id: t.id, domain: t.domain, reviewerAgentId: t.reviewerAgentId }] : []));

/** A task id's offset into the rotation of candidate agents (any stable spread will do). */
function spreadSeed(id: string) {
  let h = 0;
  for (let i = 0; i < id.length; i++) h = (Math.imul(h, 31) + id.charCodeAt(i)) >>> 0;
  return h;
}

/**
 * The wake backstop, across tenants (the worker runs it on its timer): one statement finds
 * queued, claimable, unassigned tasks unchanged for a few seconds while an idle covering
 * agent with no wake queued could take them, and wakes such agents (one per task, at most
 * BACKSTOP_BATCH). `wakeFor` wakes one agent per task, so a task can wait behind a busy
 * agent's long run when the idle one re-checked just before the task committed; this wakes
 * the idle one instead. Safe to run anywhere at once: waking is idempotent (the singleton
 * key coalesces, a woken agent with nothing to do only counts an idle cycle), and it locks
 * no task, so claims never skip a task because of it. Worst case, such a task starts
 * BACKSTOP_GRACE_SECONDS plus one tick interval (BOSUN_TICK_MS, 5 s by default) late.
 */
export async function wakeIdleForStaleTasks(deps: { database: Database; jobs: Pick<Jobs, "enqueue"> }) {
  return withSystem(deps.database, async (tx) => {
    const wakes = await repo.idleAgentsForStaleTasks(tx, { graceSeconds: BACKSTOP_GRACE_SECONDS, limit: BACKSTOP_BATCH });
    // In key order, sorted here like `wake` sorts (not by the database's collation): see its
    // note on the singleton index.
    for (const w of wakes.sort((a, b) => (wakeKey(a.tenantId, a.agentId) < wakeKey(b.tenantId, b.agentId) ? -1 : 1))) {
      await deps.jobs.enqueue(tx, "agent.wake", { tenantId: w.tenantId, agentId: w.agentId, reason: "task" }, { singletonKey: wakeKey(w.tenantId, w.agentId) });
    }
    return { woken: wakes.length };
  });
}

/**
 * The lease sweep, across tenants (the worker runs it on a timer): every claimed or
 * running task whose lease ran out before `now` goes back to the queue with one more
 * attempt counted, or, once `max_attempts` attempts are spent, to `escalated` for a
 * person to look at. Each tenant's batch runs in its own tenant transaction and skips
 * rows another transaction holds (a heartbeat or completion in flight wins).
 */
export async function recoverExpiredLeases(deps: { database: Database; jobs: Pick<Jobs, "enqueue"> }, now = new Date()) {
  const { wakeFor } = waker(deps.jobs);
  const tenants = await withSystem(deps.database, (tx) => repo.tenantsWithExpiredLeases(tx, { now, limit: 1000 }));
  const counts = { requeued: 0, escalated: 0 };
  for (const tenantId of tenants) {
    for (;;) {
      const batch = await withTenant(deps.database, tenantId, async (tx) => {
        const expired = await repo.lockExpiredLeases(tx, { tenantId, now, limit: SWEEP_BATCH });
        const changes: { before: repo.TaskRow; after: repo.TaskRow }[] = [];
        for (const t of expired) {
          const attempts = t.attempts + 1;
          const escalate = attempts >= t.maxAttempts;
          const after = await repo.updateTask(tx, {
            tenantId,
            taskId: t.id,
            patch: {
              status: escalate ? "escalated" : "queued",
              attempts,
              claimedByAgentId: escalate ? t.claimedByAgentId : null,
              leaseOwner: null,
              leaseExpiresAt: null,
              failure: { error: "lease expired", epoch: t.leaseEpoch, agentId: t.claimedByAgentId },
            },
          });
          if (after) changes.push({ before: t, after });
        }
        await wakeFor(
          tx,
          tenantId,
          changes.filter((c) => c.after.status === "queued").map((c) => c.after),
        );
        const actor = systemActor(tenantId, "task-lease-sweeper");
        for (const { before, after } of changes) {
          await audit(tx, actor, {
            action: after.status === "escalated" ? "task.escalate" : "task.lease_expired",
            targetType: "task",
            targetId: after.id,
            before: { status: before.status, attempts: before.attempts, leaseEpoch: before.leaseEpoch, leaseExpiresAt: before.leaseExpiresAt?.toISOString() },
            after: { status: after.status, attempts: after.attempts },
          });
        }
        const escalated = changes.filter((c) => c.after.status === "escalated").length;
        return { locked: expired.length, escalated, requeued: changes.length - escalated };
      });
      counts.requeued += batch.requeued;
      counts.escalated += batch.escalated;
      if (batch.locked < SWEEP_BATCH) break;
    }
  }
  return counts;
}

export const taskService = (deps: { database: Database; jobs: Pick<Jobs, "enqueue"> }) => {
  const { database, jobs } = deps;
  const { wakeFor, wakeReviewer, wakeDependents } = waker(jobs);

  async function loadTask(tx: Tx, tenantId: string, taskId: string, forUpdate = false) {
    const t = await repo.getTask(tx, { tenantId, taskId, forUpdate });
    if (!t) throw notFound(`task ${taskId}`);
    return t;
  }

  /** An agent's key may change or cancel only the tasks that agent created, in domains it still covers. */
  async function assertMayManage(tx: Tx, actor: Actor, t: repo.TaskRow, what: string) {
    if (actor.agentId && !(t.createdByType === "agent" && t.createdById === actor.agentId)) {
      throw forbidden("an agent may change or cancel only the tasks it created");
    }
    if (t.domain !== null) await assertOwnsDomain(tx, actor, t.domain, what);
  }

  function holderOf(actor: Actor): Holder {
    if (!actor.agentId || !actor.keyId) {
      throw forbidden("only an agent works on tasks: use an API key bound to the agent (POST /v1/api-keys with `agent`)");
    }
    return { actor, agentId: actor.agentId, leaseOwner: `key:${actor.keyId}` };
  }

  const runtimeHolder = (p: { tenantId: string; agentId: string; leaseOwner: string }): Holder => ({
    actor: agentActor(p.tenantId, p.agentId),
    agentId: p.agentId,
    leaseOwner: p.leaseOwner,
  });

  function checkTtl(ttlSeconds: number) {
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > MAX_TTL_SECONDS) {
      throw validation(`ttlSeconds must be a whole number from 1 to ${MAX_TTL_SECONDS}`, [{ path: "ttlSeconds", message: "out of range" }]);
    }
  }

  async function agentFor(tx: Tx, tenantId: string, name: string, path: string) {
    const a = await repo.getAgentByName(tx, { tenantId, name });
    if (!a) throw validation(`agent '${name}' does not exist`, [{ path, message: "no such agent" }]);
    if (a.status === "retired") throw validation(`agent '${name}' is retired and cannot take part in tasks`, [{ path, message: "agent is retired" }]);
    return a;
  }

  /** The listed tasks exist in this tenant and can still finish (a task waiting on a cancelled one never could). */
  async function checkDependencies(tx: Tx, tenantId: string, ids: string[], path: string) {
    const found = new Map((await repo.getTasksByIds(tx, { tenantId, ids: [...new Set(ids)] })).map((d) => [d.id, d]));
    const errors: FieldIssue[] = [];
    ids.forEach((id, i) => {
      const d = found.get(id);
      if (!d) errors.push({ path: `${path}.${i}`, message: "no such task" });
      else if (d.status === "cancelled" || d.status === "failed") errors.push({ path: `${path}.${i}`, message: `task is ${d.status}, so a task waiting for it could never run` });
    });
    if (errors.length > 0) throw validation(`${path}: ${errors.map((e) => `${e.path}: ${e.message}`).join("; ")}`, errors);
  }

  async function createIn(tx: Tx, actor: Actor, b: CreateTaskBody, ctx: Ctx) {
    const tenantId = actor.tenantId;
    const assignee = b.assignee !== undefined ? await agentFor(tx, tenantId, b.assignee, "assignee") : null;
    const reviewer = b.reviewer ? await agentFor(tx, tenantId, b.reviewer, "reviewer") : null;
    if (assignee && reviewer && assignee.id === reviewer.id) {
      throw validation("an agent cannot review its own task", [{ path: "reviewer", message: "must not be the assignee" }]);
    }
    // Ownership: an agent creates tasks only in domains it covers. A task for a named
    // agent has no domain and is a request to that agent, like a message: allowed.
    if (b.domain !== undefined) await assertOwnsDomain(tx, actor, b.domain, "create a task in");
    await checkDependencies(tx, tenantId, b.depends_on, "depends_on");
    const dependsOn = [...new Set(b.depends_on)];
    const row: repo.NewTask = {
      tenantId,
      id: newId("tsk"),
      title: b.title,
      body: b.body,
      priority: b.priority,
      assigneeAgentId: assignee?.id ?? null,
      domain: b.domain ?? null,
      requiresReview: b.requires_review,
      reviewerAgentId: reviewer?.id ?? null,
      maxAttempts: b.max_attempts,
      createdByType: actor.type,
      createdById: actor.id,
    };
    let t: repo.TaskRow;
    let dependencies: Awaited<ReturnType<typeof repo.listDependencies>> = [];
    if (dependsOn.length === 0) {
      // Nothing to wait for: the insert and the choice of the agent to wake go in one
      // round trip (with the transaction's BEGIN when they open it), the wake with the COMMIT.
      const open = openTasks([row]);
      const [inserted, chosen] = await queryBatch(tx.$client, [
        repo.insertTaskStatement(row),
        ...(open.length > 0 ? [repo.agentsToWakeStatement({ tenantId, tasks: open, seed: spreadSeed(row.id) })] : []),
      ]);
      t = inserted!.rows[0] as repo.TaskRow;
      await wakeFor(tx, tenantId, [t], chosen ? repo.agentsToWakeFrom(chosen.rows as { agent_id: string }[]) : undefined);
    } else {
      t = await repo.insertTask(tx, row);
      await repo.insertDependencies(tx, { tenantId, taskId: t.id, dependsOn });
      // A new task has no dependents yet, so no cycle can run through it today; the check
      // is cheap and keeps the rule in one place should tasks ever be created with edges in.
      const cycle = await repo.findDependencyCycle(tx, { tenantId, taskId: t.id, dependsOn });
      if (cycle) throw cycleError(cycle, "depends_on");
      dependencies = await repo.listDependencies(tx, { tenantId, taskId: t.id });
      if (dependencies.every((d) => d.status === "done")) await wakeFor(tx, tenantId, [t]);
    }
    const view = detailView(t, dependencies);
    await audit(tx, actor, { action: "task.create", targetType: "task", targetId: t.id, after: view }, ctx.requestId);
    return view;
  }

  /** Passes if `h` still holds the (locked) task's lease under `epoch`; otherwise 409 "lease lost". */
  function assertLease(t: repo.TaskRow, h: Holder, epoch: number) {
    if (!LEASED.has(t.status)) {
      throw conflict(`lease lost: task ${t.id} is ${t.status} now${t.status === "queued" ? " (its lease ran out or it went back to the queue); claim it again" : ""}`);
    }
    if (t.leaseEpoch !== epoch) {
      throw conflict(`lease lost: epoch ${epoch} is not the task's current lease (epoch ${t.leaseEpoch})${epoch < t.leaseEpoch ? "; it was claimed again since" : ""}`);
    }
    if (t.leaseOwner !== h.leaseOwner) throw conflict(`lease lost: task ${t.id} is leased to another claimant`);
  }

  /** The fenced write itself: `AND lease_epoch = $epoch AND lease_owner = $owner`. */
  async function fencedUpdate(tx: Tx, h: Holder, t: repo.TaskRow, epoch: number, patch: repo.TaskPatch) {
    assertLease(t, h, epoch);
    const u = await repo.updateTask(tx, { tenantId: t.tenantId, taskId: t.id, patch, fence: { epoch, owner: h.leaseOwner } });
    if (!u) throw conflict(`lease lost: task ${t.id} is no longer leased under epoch ${epoch}`);
    return u;
  }

  async function startIn(tx: Tx, h: Holder, t: repo.TaskRow, epoch: number, ctx: Ctx) {
    assertLease(t, h, epoch);
    if (t.status === "in_progress") return t;
    const u = await fencedUpdate(tx, h, t, epoch, { status: "in_progress" });
    await audit(tx, h.actor, { action: "task.start", targetType: "task", targetId: t.id, before: { status: t.status }, after: { status: u.status } }, ctx.requestId);
    return u;
  }

  async function heartbeatIn(tx: Tx, h: Holder, t: repo.TaskRow, epoch: number, ttlSeconds: number, ctx: Ctx) {
    checkTtl(ttlSeconds);
    const u = await fencedUpdate(tx, h, t, epoch, { leaseExpiresAt: repo.leaseUntil(ttlSeconds) });
    await audit(
      tx,
      h.actor,
      {
        action: "task.heartbeat",
        targetType: "task",
        targetId: t.id,
        before: { leaseExpiresAt: t.leaseExpiresAt?.toISOString() ?? null },
        after: { leaseExpiresAt: u.leaseExpiresAt?.toISOString() ?? null },
      },
      ctx.requestId,
    );
    return u;
  }

  /**
   * `hasDependents`: false when the caller knows no task depends on this one (nothing to
   * unblock). `atCommit`: the caller holds the task's row lock and nothing later in its
   * transaction reads the task back, so the update goes with the COMMIT (deferWrite); the
   * row returned is the one it writes, with this process's clock for its timestamps.
   */
  async function completeIn(tx: Tx, h: Holder, t: repo.TaskRow, epoch: number, result: unknown, ctx: Ctx, hasDependents = true, atCommit = false) {
    assertLease(t, h, epoch);
    if (isEmptyJson(result)) throw validation("done needs a result: a non-empty JSON value", [{ path: "result", message: "must be a non-empty JSON value" }]);
    const review = t.requiresReview;
    const status: "in_review" | "done" = review ? "in_review" : "done";
    // Dependents are looked for in this transaction, after the update: it must have run.
    const deferred = atCommit && !hasDependents;
    if (deferred) await deferWrite(tx, repo.completeTaskStatement({ tenantId: t.tenantId, taskId: t.id, epoch, owner: h.leaseOwner, status, result }));
    const now = new Date();
    const u = deferred
      ? { ...t, status, result, leaseOwner: null, leaseExpiresAt: null, completedAt: review ? null : now, updatedAt: now }
      : await fencedUpdate(tx, h, t, epoch, { status, result, leaseOwner: null, leaseExpiresAt: null, completedAt: review ? null : repo.dbNow() });
    if (review) await wakeReviewer(tx, u);
    else if (hasDependents) await wakeDependents(tx, u);
    await audit(
      tx,
      h.actor,
      { action: "task.complete", targetType: "task", targetId: t.id, before: { status: t.status, leaseEpoch: t.leaseEpoch }, after: { status: u.status, result } },
      ctx.requestId,
    );
    return u;
  }

  async function failIn(tx: Tx, h: Holder, t: repo.TaskRow, p: { epoch: number; error: string; retry: boolean }, ctx: Ctx) {
    assertLease(t, h, p.epoch);
    const attempts = t.attempts + 1;
    const requeue = p.retry && attempts < t.maxAttempts;
    const u = await fencedUpdate(tx, h, t, p.epoch, {
      status: requeue ? "queued" : "failed",
      attempts,
      failure: { error: p.error, epoch: p.epoch, agentId: h.agentId },
      claimedByAgentId: requeue ? null : t.claimedByAgentId,
      leaseOwner: null,
      leaseExpiresAt: null,
      completedAt: requeue ? null : repo.dbNow(),
    });
    if (requeue) await wakeFor(tx, t.tenantId, [u]);
    await audit(
      tx,
      h.actor,
      {
        action: "task.fail",
        targetType: "task",
        targetId: t.id,
        before: { status: t.status, attempts: t.attempts, leaseEpoch: t.leaseEpoch },
        after: { status: u.status, attempts: u.attempts, error: p.error, retry: p.retry },
      },
      ctx.requestId,
    );
    return u;
  }

  /**
   * A lease holder's request over REST: the task is looked up (and locked) first, so
   * another tenant's id is a 404 whoever asks; then only an agent's own key may go on.
   */
  function asHolder<T>(actor: Actor, taskId: string, fn: (tx: Tx, h: Holder, t: repo.TaskRow) => Promise<T>) {
    requireScope(actor, "write");
    return withTenant(database, actor.tenantId, async (tx) => {
      const t = await loadTask(tx, actor.tenantId, taskId, true);
      return fn(tx, holderOf(actor), t);
    });
  }

  type ClaimedFields = { id: string; status: string; leaseEpoch: number; claimedByAgentId: string | null; leaseExpiresAt: Date | null };

  /**
   * The `task.claim` event of a claim that started the task in the same statement (queued
   * to in_progress, for run `runId`): one event records both, since the claimed state in
   * between was never visible. A claim over REST (`claim`, then `start`) writes one each.
   */
  async function auditClaimAndStart(tx: Tx, actor: Actor, before: { status: string; leaseEpoch: number }, c: ClaimedFields, runId: string) {
    await audit(tx, actor, {
      action: "task.claim",
      targetType: "task",
      targetId: c.id,
      before,
      after: { status: c.status, leaseEpoch: c.leaseEpoch, claimedByAgentId: c.claimedByAgentId, leaseExpiresAt: c.leaseExpiresAt?.toISOString(), runId },
    });
  }

  /**
   * A lease holder's write from the runtime, in the runtime's transaction. `locked`: the
   * task's row, locked in this transaction already (repo.lockTaskForWriteStatement, sent
   * with its BEGIN); undefined there means no such task.
   */
  async function inRuntime<T>(tx: Tx, p: TaskLeaseWrite & { locked?: { row: repo.LockedTaskRow | undefined } }, fn: (h: Holder, t: repo.TaskRow, hasDependents: boolean) => Promise<T>) {
    const t = p.locked ? p.locked.row : await repo.lockTaskForWrite(tx, { tenantId: p.tenantId, taskId: p.taskId });
    if (!t) throw notFound(`task ${p.taskId}`);
    const { hasDependents, ...row } = t;
    return fn(runtimeHolder(p), row, hasDependents);
  }

  return {
    /** POST: creates a task; supports Idempotency-Key. Wakes whoever may do it when it can start now. */
    async create(actor: Actor, body: CreateTaskBody, ctx: Ctx & { idempotency?: IdempotencyRequest | undefined } = {}) {
      requireScope(actor, "write");
      return runCreate(database, actor.tenantId, ctx.idempotency, async (tx) => ({ status: 201, body: await createIn(tx, actor, body, ctx) }));
    },

    async get(actor: Actor, taskId: string) {
      requireScope(actor, "read");
      return withTenant(database, actor.tenantId, async (tx) => {
        const t = await loadTask(tx, actor.tenantId, taskId);
        return detailView(t, await repo.listDependencies(tx, { tenantId: actor.tenantId, taskId }));
      });
    },

    /** Newest first, optionally by status and by assignee (agent name). */
    async list(
      actor: Actor,
      q: { limit: number; cursor?: string | undefined; status?: TaskStatus | undefined; assignee?: string | undefined },
    ) {
      requireScope(actor, "read");
      const before = decodeCursor(q.cursor, isString);
      const rows = await withTenant(database, actor.tenantId, async (tx) => {
        let assigneeAgentId: string | undefined;
        if (q.assignee !== undefined) {
          const a = await repo.getAgentByName(tx, { tenantId: actor.tenantId, name: q.assignee });
          if (!a) return [];
          assigneeAgentId = a.id;
        }
        return repo.listTasks(tx, { tenantId: actor.tenantId, limit: q.limit + 1, before, status: q.status, assigneeAgentId });
      });
      const p = page(rows, q.limit, (r) => r.id);
      return { items: p.items.map(taskView), nextCursor: p.nextCursor };
    },

    /** PATCH title, body, priority while the task is not finished; add dependencies while it is queued. */
    async update(actor: Actor, taskId: string, b: UpdateTaskBody, ctx: Ctx = {}) {
      requireScope(actor, "write");
      const tenantId = actor.tenantId;
      return withTenant(database, tenantId, async (tx) => {
        const adding = b.add_depends_on ?? [];
        // The graph lock comes before the row lock: taken after it, two updates adding the
        // two halves of a cycle could each hold one task row and wait for the other.
        if (adding.length > 0) await repo.lockDependencyGraph(tx, { tenantId });
        const t = await loadTask(tx, tenantId, taskId, true);
        await assertMayManage(tx, actor, t, "change a task in");
        if (FINISHED.has(t.status)) throw conflict(`task ${taskId} is ${t.status} and can no longer be changed`);
        const before = await repo.listDependencies(tx, { tenantId, taskId });
        if (adding.length > 0) {
          if (t.status !== "queued") throw conflict(`dependencies can be added only while a task is queued; task ${taskId} is ${t.status}`);
          await checkDependencies(tx, tenantId, adding, "add_depends_on");
          const fresh = [...new Set(adding)];
          const cycle = await repo.findDependencyCycle(tx, { tenantId, taskId, dependsOn: fresh });
          if (cycle) throw cycleError(cycle, "add_depends_on");
          await repo.insertDependencies(tx, { tenantId, taskId, dependsOn: fresh });
        }
        const patch: { title?: string; body?: string; priority?: number } = {};
        if (b.title !== undefined) patch.title = b.title;
        if (b.body !== undefined) patch.body = b.body;
        if (b.priority !== undefined) patch.priority = b.priority;
        const u = (await repo.updateTask(tx, { tenantId, taskId, patch }))!;
        const after = adding.length > 0 ? await repo.listDependencies(tx, { tenantId, taskId }) : before;
        const fields = (x: repo.TaskRow, deps: Dependency[]) => ({ title: x.title, body: x.body, priority: x.priority, dependsOn: deps.map((d) => d.id) });
        await audit(tx, actor, { action: "task.update", targetType: "task", targetId: taskId, before: fields(t, before), after: fields(u, after) }, ctx.requestId);
        return detailView(u, after);
      });
    },

    /** Cancels a task that is not finished; a claimant's later writes then get "lease lost". */
    async cancel(actor: Actor, taskId: string, ctx: Ctx = {}) {
      requireScope(actor, "write");
      return withTenant(database, actor.tenantId, async (tx) => {
        const t = await loadTask(tx, actor.tenantId, taskId, true);
        await assertMayManage(tx, actor, t, "cancel a task in");
        if (t.status === "cancelled") return taskView(t);
        if (t.status === "done" || t.status === "failed") throw conflict(`task ${taskId} is ${t.status} and cannot be cancelled`);
        const u = (await repo.updateTask(tx, {
          tenantId: actor.tenantId,
          taskId,
          patch: { status: "cancelled", leaseOwner: null, leaseExpiresAt: null, completedAt: repo.dbNow() },
        }))!;
        await audit(tx, actor, { action: "task.cancel", targetType: "task", targetId: taskId, before: { status: t.status }, after: { status: u.status } }, ctx.requestId);
        return taskView(u);
      });
    },

    /**
     * An agent's key claims a queued task for its agent: assigned to it, or in a domain
     * its descriptor covers, with every dependency done. The row is locked (a concurrent
     * claim of the same task waits, then sees it claimed: 409); the lease epoch rises.
     */
    async claim(actor: Actor, taskId: string, body: { ttlSeconds: number }, ctx: Ctx = {}) {
      checkTtl(body.ttlSeconds);
      return asHolder(actor, taskId, async (tx, h, t) => {
        const tenantId = actor.tenantId;
        const agent = (await repo.getAgentById(tx, { tenantId, agentId: h.agentId }))!;
        if (agent.status !== "active") throw conflict(`agent '${agent.name}' is ${agent.status}; only an active agent claims tasks`);
        if (t.assigneeAgentId !== null) {
          if (t.assigneeAgentId !== h.agentId) throw forbidden(`task ${taskId} is assigned to another agent`);
        } else if (t.domain === null || !(await repo.agentCoversDomain(tx, { tenantId, agentId: h.agentId, domain: t.domain }))) {
          throw forbidden(`task ${taskId} is in domain '${t.domain}', which agent '${agent.name}' does not cover (spec.domains)`);
        }
        if (t.reviewerAgentId === h.agentId) throw forbidden(`agent '${agent.name}' reviews task ${taskId} and cannot also do it`);
        if (t.status !== "queued") throw conflict(`task ${taskId} is ${t.status}, not queued`);
        const waiting = await repo.unfinishedDependencies(tx, { tenantId, taskId });
        if (waiting.length > 0) throw conflict(`task ${taskId} waits for unfinished dependencies: ${waiting.join(", ")}`);
        const c = await repo.claimTask(tx, { tenantId, taskId, agentId: h.agentId, leaseOwner: h.leaseOwner, ttlSeconds: body.ttlSeconds });
        if (!c) throw conflict(`task ${taskId} could not be claimed; retry`);
        await audit(
          tx,
          actor,
          {
            action: "task.claim",
            targetType: "task",
            targetId: taskId,
            before: { status: t.status, leaseEpoch: t.leaseEpoch },
            after: { status: c.status, leaseEpoch: c.leaseEpoch, claimedByAgentId: c.claimedByAgentId, leaseExpiresAt: c.leaseExpiresAt?.toISOString() },
          },
          ctx.requestId,
        );
        return taskView(c);
      });
    },

    /** Claimed → in_progress (optional: complete and fail accept a claimed task too). */
    start: (actor: Actor, taskId: string, body: { epoch: number }, ctx: Ctx = {}) =>
      asHolder(actor, taskId, async (tx, h, t) => taskView(await startIn(tx, h, t, body.epoch, ctx))),

    /** Extends the lease to now + ttlSeconds. */
    heartbeat: (actor: Actor, taskId: string, body: { epoch: number; ttlSeconds: number }, ctx: Ctx = {}) =>
      asHolder(actor, taskId, async (tx, h, t) => taskView(await heartbeatIn(tx, h, t, body.epoch, body.ttlSeconds, ctx))),

    /** Done with a result, or in_review when the task requires review. */
    complete: (actor: Actor, taskId: string, body: { epoch: number; result?: unknown }, ctx: Ctx = {}) =>
      asHolder(actor, taskId, async (tx, h, t) => taskView(await completeIn(tx, h, t, body.epoch, body.result, ctx))),

    /** Failed, or back to the queue (attempts + 1) when `retry` and attempts remain. */
    fail: (actor: Actor, taskId: string, body: { epoch: number; error: string; retry: boolean }, ctx: Ctx = {}) =>
      asHolder(actor, taskId, async (tx, h, t) => taskView(await failIn(tx, h, t, body, ctx))),

    /**
     * The reviewer decides: the reviewing agent's own key, or (no reviewer agent) a person
     * with write scope. Approve: done. Request changes: back to the queue with the comment
     * kept for the next claimant, attempts unchanged.
     */
    async review(actor: Actor, taskId: string, b: { decision: "approve" | "request_changes"; comment?: string | undefined }, ctx: Ctx = {}) {
      requireScope(actor, "write");
      return withTenant(database, actor.tenantId, async (tx) => {
        const t = await loadTask(tx, actor.tenantId, taskId, true);
        if (t.reviewerAgentId !== null) {
          if (actor.agentId !== t.reviewerAgentId) throw forbidden(`task ${taskId} is reviewed by agent ${t.reviewerAgentId}; only that agent's key may review it`);
        } else if (actor.agentId) {
          throw forbidden(`task ${taskId} is reviewed by a person; an agent's key cannot review it`);
        }
        if (t.status !== "in_review") throw conflict(`task ${taskId} is ${t.status}, not in_review`);
        const approve = b.decision === "approve";
        const u = (await repo.updateTask(tx, {
          tenantId: actor.tenantId,
          taskId,
          patch: approve
            ? { status: "done", reviewComment: b.comment ?? null, completedAt: repo.dbNow() }
            : { status: "queued", reviewComment: b.comment ?? null, claimedByAgentId: null },
        }))!;
        if (approve) await wakeDependents(tx, u);
        else await wakeFor(tx, actor.tenantId, [u]);
        await audit(
          tx,
          actor,
          { action: "task.review", targetType: "task", targetId: taskId, before: { status: t.status }, after: { status: u.status, decision: b.decision, comment: b.comment ?? null } },
          ctx.requestId,
        );
        return taskView(u);
      });
    },

    /**
     * For the agent runtime: claims the agent's best claimable task (highest priority,
     * then oldest; assigned to it or in a domain it covers; dependencies done) with a
     * lease for `leaseOwner`, or returns null. Concurrent callers never get the same task.
     */
    async claimNextForAgent(p: { tenantId: string; agentId: string; leaseOwner: string; ttlSeconds: number }) {
      checkTtl(p.ttlSeconds);
      return withTenant(database, p.tenantId, async (tx) => {
        const agent = await repo.getAgentById(tx, { tenantId: p.tenantId, agentId: p.agentId });
        if (agent?.status !== "active") return null;
        // The claim is a second statement, after the row lock: its fresh snapshot sees a
        // dependency added meanwhile, and then the task is passed over (and stays locked
        // by us until commit, hence the exclusion list).
        const passed: string[] = [];
        for (let i = 0; i < 5; i++) {
          const next = await repo.lockNextClaimable(tx, { tenantId: p.tenantId, agentId: p.agentId, exclude: passed });
          if (!next) return null;
          const c = await repo.claimTask(tx, { tenantId: p.tenantId, taskId: next.id, agentId: p.agentId, leaseOwner: p.leaseOwner, ttlSeconds: p.ttlSeconds });
          if (!c) {
            passed.push(next.id);
            continue;
          }
          await audit(tx, agentActor(p.tenantId, p.agentId), {
            action: "task.claim",
            targetType: "task",
            targetId: c.id,
            before: { status: next.status, leaseEpoch: next.leaseEpoch },
            after: { status: c.status, leaseEpoch: c.leaseEpoch, claimedByAgentId: c.claimedByAgentId, leaseExpiresAt: c.leaseExpiresAt?.toISOString() },
          });
          return taskView(c);
        }
        return null;
      });
    },

    /**
     * The runtime's claim, inside its own fenced transaction: the next task (other than
     * `exclude`) is claimed and started at once (queued → in_progress, `run_id` set),
     * `then` runs (it inserts the run), and only then is the `task.claim` event appended
     * (auditClaimAndStart). The caller has checked that the agent is active. The runtime claims
     * with claimNextRunStatements, in the round trip that begins its transaction; this is
     * for when the task those locked gained an unfinished dependency meanwhile.
     */
    async claimAndStartInTx<R>(
      tx: Tx,
      p: { tenantId: string; agentId: string; leaseOwner: string; ttlSeconds: number; runId: string; exclude?: string[] },
      then: (task: ReturnType<typeof taskView>) => Promise<R>,
    ): Promise<R | null> {
      checkTtl(p.ttlSeconds);
      const passed: string[] = [...(p.exclude ?? [])];
      for (let i = 0; i < 5; i++) {
        const next = await repo.lockNextClaimable(tx, { tenantId: p.tenantId, agentId: p.agentId, exclude: passed });
        if (!next) return null;
        const c = await repo.claimTask(tx, { tenantId: p.tenantId, taskId: next.id, agentId: p.agentId, leaseOwner: p.leaseOwner, ttlSeconds: p.ttlSeconds, start: { runId: p.runId } });
        if (!c) {
          passed.push(next.id);
          continue;
        }
        const r = await then(taskView(c));
        await auditClaimAndStart(tx, agentActor(p.tenantId, p.agentId), { status: next.status, leaseEpoch: next.leaseEpoch }, c, p.runId);
        return r;
      }
      return null;
    },

    /** For idle checks: does the agent have a task it could claim now? */
    hasClaimableTask: (p: { tenantId: string; agentId: string }) => withTenant(database, p.tenantId, (tx) => repo.hasClaimableTask(tx, p)),

    /** The runtime's lease-holder writes, inside its own (tenant) transaction. */
    startInTx: (tx: Tx, p: TaskLeaseWrite) => inRuntime(tx, p, async (h, t) => taskView(await startIn(tx, h, t, p.epoch, {}))),
    /** `atCommit`: the update may go with the COMMIT (see completeIn); the runtime reads only the title back. */
    completeInTx: (tx: Tx, p: TaskLeaseWrite & { result: unknown; locked?: { row: repo.LockedTaskRow | undefined }; atCommit?: boolean }) =>
      inRuntime(tx, p, async (h, t, hasDependents) => taskView(await completeIn(tx, h, t, p.epoch, p.result, {}, hasDependents, p.atCommit === true))),
    failInTx: (tx: Tx, p: TaskLeaseWrite & { error: string; retry: boolean; locked?: { row: repo.LockedTaskRow | undefined } }) =>
      inRuntime(tx, p, async (h, t) => taskView(await failIn(tx, h, t, { epoch: p.epoch, error: p.error, retry: p.retry }, {}))),

    /** Extends the runtime's lease; false when the lease is lost (the run should stop working on the task). */
    async heartbeatLease(p: TaskLeaseWrite & { ttlSeconds: number }): Promise<boolean> {
      try {
        await withTenant(database, p.tenantId, (tx) => inRuntime(tx, p, (h, t) => heartbeatIn(tx, h, t, p.epoch, p.ttlSeconds, {})));
        return true;
      } catch (err) {
        if (err instanceof AppError && (err.code === "CONFLICT" || err.code === "NOT_FOUND")) return false;
        throw err;
      }
    },

    /** An agent creates a task from inside a run (the runtime's create_task tool), in the run's transaction. */
    async createInTx(
      tx: Tx,
      p: { tenantId: string; byAgentId: string; title: string; body?: string | undefined; assignee?: string | undefined; domain?: string | undefined; priority?: number | undefined },
    ) {
      const r = createTaskBodySchema.safeParse({ title: p.title, body: p.body, assignee: p.assignee, domain: p.domain, priority: p.priority }, { error: missingIsRequired });
      if (!r.success) {
        const errors = fieldIssues(r.error);
        throw validation(`the task is invalid: ${errors.map((e) => `${e.path}: ${e.message}`).join("; ")}`, errors);
      }
      return createIn(tx, agentActor(p.tenantId, p.byAgentId), r.data, {});
    },

    /** Creates a task as `actor` inside the caller's transaction (an approved proposal's action). */
    createAsInTx: (tx: Tx, actor: Actor, body: CreateTaskBody) => createIn(tx, actor, body, {}),

    recoverExpiredLeases: (now?: Date) => recoverExpiredLeases(deps, now),
  };
};

export type TaskService = ReturnType<typeof taskService>;
