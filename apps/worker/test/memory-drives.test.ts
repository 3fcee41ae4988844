import { agentRuntime, createServices, type DomainServices, providerCache, scheduleTick, systemActor } from "@bosun/core";
import { repo, withTenant } from "@bosun/db";
import { createJobs, type Jobs } from "@bosun/jobs";
import type { ModelProvider, ModelRequest } from "@bosun/llm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDb, type TestDb } from "../../../test/helpers/db";

let db: TestDb;
let producer: Jobs;
let services: DomainServices;
let tenantId: string;

const q = async <T = Record<string, unknown>>(sql: string, values: unknown[] = []) => (await db.database.pool.query(sql, values)).rows as T[];
const actor = () => systemActor(tenantId, "test");

const apply = (name: string, spec: Record<string, unknown>, script?: unknown[]) =>
  services.agents
    .apply(actor(), name, {
      apiVersion: "agent.os/v1",
      kind: "Agent",
      metadata: { name, owner: "tests" },
      spec: {
        model: { provider: "scripted", name: "scripted-small", ...(script ? { script } : {}) },
        soul: `You are ${name}.`,
        drives: [{ name: "ledger-accuracy", question: "Are all invoices reconciled within a day?", every: "1d" }],
        ...spec,
      },
    })
    .then((r) => r.body);

function counting() {
  const real = providerCache();
  const calls: ModelRequest[] = [];
  return {
    calls,
    provider: (m: Parameters<ReturnType<typeof providerCache>>[0]): ModelProvider => ({
      name: "counting",
      complete: (req) => {
        calls.push(req);
        return real(m).complete(req);
      },
    }),
  };
}

const runtime = (id: string, provider = providerCache()) =>
  agentRuntime({ database: db.database, jobs: producer, tasks: services.tasks, provider, workerId: id, leaseTtlSeconds: 5 });

const createTasks = (n: number, assignee: string) => Array.from({ length: n }, (_, i) => ({ call: "create_task", input: { title: `Reconcile batch ${i}`, assignee } }));

beforeAll(async () => {
  db = await createTestDb();
  producer = createJobs({ connectionString: db.url, role: "producer", max: 2 });
  await producer.start();
  services = createServices({ database: db.database, jobs: producer, secureCookies: false });
  const s = await services.identity.signup({ tenant: { name: "Drives", timeZone: "UTC" }, owner: { email: "drive@example.com", password: "drive-password-1" } });
  tenantId = s.tenant.id;
});
afterAll(async () => {
  await producer.stop({ graceful: false, timeout: 1000 });
  await db.drop();
});

describe("drive consultations", () => {
  it("under `propose`, creates no more tasks than the daily cap, all in the backlog for a person to promote", async () => {
    const agent = await apply("proposer", { autonomy: { level: "propose", tasks_per_day: 2 } }, [...createTasks(4, "proposer"), { say: "done" }]);
    const c = counting();
    expect((await runtime("w-prop", c.provider).wake({ tenantId, agentId: agent.id })).outcome).toBe("ran");
    const [run] = await q<{ id: string; trigger: string; input: { kind: string; text: string } }>(`SELECT id, trigger, input FROM runs WHERE agent_id = $1`, [agent.id]);
    expect(run).toMatchObject({ trigger: "drive", input: { kind: "drive" } });
    expect(run!.input.text).toContain("Are all invoices reconciled within a day?");
    const tasks = await q<{ id: string; status: string }>(`SELECT id, status FROM tasks WHERE created_by_id = $1 ORDER BY id`, [agent.id]);
    expect(tasks.map((t) => t.status)).toEqual(["backlog", "backlog"]);
    const steps = await q<{ status: string; output: { content: string } }>(`SELECT status, output FROM steps WHERE run_id = $1 AND name = 'create_task' ORDER BY seq`, [run!.id]);
    expect(steps.map((s) => s.status)).toEqual(["ok", "ok", "error", "error"]);
    expect(steps[2]!.output.content).toMatch(/daily cap reached/);

    // Backlog tasks are not claimed; a person promotes one to the queue.
    expect(await q(`SELECT 1 FROM tasks WHERE id = ANY($1) AND status <> 'backlog'`, [tasks.map((t) => t.id)])).toHaveLength(0);
    expect(await services.drives.promote(actor(), tasks[0]!.id)).toEqual({ id: tasks[0]!.id, status: "queued" });
    await expect(services.drives.promote(actor(), tasks[0]!.id)).rejects.toMatchObject({ code: "CONFLICT" });

    // The drive is not due again today: the next wake makes no model call for it.
    const calls = c.calls.length;
    await q(`UPDATE tasks SET status = 'cancelled' WHERE id = $1`, [tasks[0]!.id]);
    expect((await runtime("w-prop2", c.provider).wake({ tenantId, agentId: agent.id })).outcome).toBe("idle");
    expect(c.calls.length).toBe(calls);
  });

  it("under `act`, queues its tasks (within the cap); under `none`, is never consulted", async () => {
    const actor1 = await apply("actor", { autonomy: { level: "act", tasks_per_day: 1 } }, [...createTasks(2, "actor"), { say: "done" }]);
    expect((await runtime("w-act").wake({ tenantId, agentId: actor1.id })).outcome).toBe("ran");
    const made = await q<{ status: string }>(`SELECT status FROM tasks WHERE created_by_id = $1`, [actor1.id]);
    expect(made).toHaveLength(1);
    expect(["queued", "claimed", "in_progress", "done"]).toContain(made[0]!.status);

    const quiet = await apply("hands-off", { autonomy: { level: "none" } }, createTasks(3, "hands-off"));
    const c = counting();
    expect((await runtime("w-none", c.provider).wake({ tenantId, agentId: quiet.id })).outcome).toBe("idle");
    expect(c.calls).toHaveLength(0);
    expect(await q(`SELECT 1 FROM tasks WHERE created_by_id = $1`, [quiet.id])).toHaveLength(0);
  });

  it("holds the daily cap under concurrent runs", async () => {
    const agent = await apply("racer", { autonomy: { level: "act", tasks_per_day: 5 } });
    const got = await Promise.all(
      Array.from({ length: 12 }, () => withTenant(db.database, tenantId, (tx) => repo.memory.takeTaskAllowance(tx, { tenantId, agentId: agent.id, cap: 5 }))),
    );
    expect(got.filter((n) => n !== null).sort()).toEqual([1, 2, 3, 4, 5]);
    expect((await q<{ tasks_created: number }>(`SELECT tasks_created FROM autonomy_days WHERE agent_id = $1`, [agent.id]))[0]!.tasks_created).toBe(5);
  });

  it("an agent with nothing to do and no due drive makes no model call over 100 ticks", async () => {
    const consulted = await apply("consulted", { schedule: { every: "1s" }, autonomy: { level: "act", tasks_per_day: 3 } });
    const none = await apply("no-autonomy", { schedule: { every: "1s" }, autonomy: { level: "none" } });
    const plain = await apply("no-drives", { schedule: { every: "1s" }, drives: [] });
    const ids = [consulted.id, none.id, plain.id];
    // A drive that has never been consulted is due: the first tick wakes its agent (and only it).
    await q(`UPDATE agents SET next_wake_at = now() - interval '1 second' WHERE id = ANY($1)`, [ids]);
    const wakes = async () => (await q<{ n: number }>(`SELECT count(*)::int AS n FROM pgboss.job WHERE name = 'agent.wake' AND data->>'agentId' = ANY($1)`, [ids]))[0]!.n;
    const w0 = await wakes();
    await scheduleTick({ database: db.database, jobs: producer });
    expect(await wakes()).toBe(w0 + 1);
    const c = counting();
    expect((await runtime("w-tick", c.provider).wake({ tenantId, agentId: consulted.id })).outcome).toBe("ran");
    const consultedCalls = c.calls.length;
    expect(consultedCalls).toBeGreaterThan(0);
    await q(`DELETE FROM pgboss.job WHERE name = 'agent.wake' AND data->>'agentId' = ANY($1)`, [ids]);

    const idleBefore = await q<{ agent_id: string; idle_cycles: number }>(`SELECT agent_id, idle_cycles::int FROM agent_sessions WHERE agent_id = ANY($1)`, [ids]);
    for (let i = 0; i < 100; i++) {
      await q(`UPDATE agents SET next_wake_at = now() - interval '1 second' WHERE id = ANY($1)`, [ids]);
      await scheduleTick({ database: db.database, jobs: producer });
    }
    expect(await wakes()).toBe(0);
    const idleAfter = await q<{ agent_id: string; idle_cycles: number }>(`SELECT agent_id, idle_cycles::int FROM agent_sessions WHERE agent_id = ANY($1)`, [ids]);
    for (const id of ids) {
      const b = idleBefore.find((r) => r.agent_id === id)?.idle_cycles ?? 0;
      expect(idleAfter.find((r) => r.agent_id === id)?.idle_cycles).toBe(b + 100);
    }
    // And were they woken anyway, they would find nothing: no model call.
    for (const id of ids) expect((await runtime(`w-idle-${id}`, c.provider).wake({ tenantId, agentId: id })).outcome).toBe("idle");
    expect(c.calls.length).toBe(consultedCalls);
  });
});
