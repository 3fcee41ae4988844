/**
 * Who a new task wakes: its assignee, or ONE agent covering its domain (idle ones first,
 * spread over the idle ones), and the tick's backstop for the task that waits behind a busy
 * agent while another sits idle.
 */
import { agentRuntime, createServices, type DomainServices, providerCache, systemActor, wakeIdleForStaleTasks } from "@bosun/core";
import { createJobs, type Jobs } from "@bosun/jobs";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDb, type TestDb } from "../../../test/helpers/db";
import { startWorker } from "../src/worker";

let db: TestDb;
let producer: Jobs;
let services: DomainServices;
let tenantId: string;
const silent = pino({ level: process.env.TEST_LOG ?? "silent" });

const q = async <T = Record<string, unknown>>(sql: string, values: unknown[] = []) => (await db.database.pool.query(sql, values)).rows as T[];
const actor = () => systemActor(tenantId, "test");

/** `n` agents `<prefix>-<i>` covering `<prefix>/*`; their ids. */
async function fleet(prefix: string, n: number) {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const name = `${prefix}-${i}`;
    const r = await services.agents.apply(actor(), name, {
      apiVersion: "agent.os/v1",
      kind: "Agent",
      metadata: { name, owner: "tests" },
      spec: { model: { provider: "scripted", name: "scripted-small" }, domains: [`${prefix}/*`] },
    });
    ids.push(r.body.id);
  }
  return ids;
}

const createTask = (title: string, more: Record<string, unknown>) =>
  services.tasks.create(actor(), { title, body: "", priority: 50, depends_on: [], requires_review: false, max_attempts: 3, ...more }).then((r) => r.body);

/** The agents (of `ids`) with a queued agent.wake, one entry per job. */
const queuedWakes = async (ids: string[]) =>
  (
    await q<{ agent: string }>(`SELECT data->>'agentId' AS agent FROM pgboss.job WHERE name = 'agent.wake' AND state = 'created' AND data->>'agentId' = ANY($1) ORDER BY 1`, [
      ids,
    ])
  ).map((r) => r.agent);

/** As if the workers had taken these agents' queued wakes and were done with them. */
const consumeWakes = (ids: string[]) => q(`UPDATE pgboss.job SET state = 'completed' WHERE name = 'agent.wake' AND state = 'created' AND data->>'agentId' = ANY($1)`, [ids]);

/** Holds (or releases) the agents' session leases, as a worker in the middle of a run would. */
const holdLeases = (ids: string[]) =>
  q(
    `INSERT INTO agent_sessions (tenant_id, agent_id, lease_owner, lease_epoch, lease_expires_at)
     SELECT $1, a, 'other-worker', 1, now() + interval '1 hour' FROM unnest($2::text[]) a
     ON CONFLICT (tenant_id, agent_id) DO UPDATE SET lease_owner = 'other-worker', lease_expires_at = now() + interval '1 hour'`,
    [tenantId, ids],
  );
const releaseLeases = (ids: string[]) => q(`UPDATE agent_sessions SET lease_owner = NULL, lease_expires_at = NULL WHERE agent_id = ANY($1)`, [ids]);

/** The backstop looks only at tasks unchanged for a few seconds: age these. */
const age = (taskIds: string[]) => q(`UPDATE tasks SET updated_at = now() - interval '1 minute' WHERE id = ANY($1)`, [taskIds]);

async function until<T>(fn: () => Promise<T | undefined | null | false>, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`${what} not met in ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const backstop = () => wakeIdleForStaleTasks({ database: db.database, jobs: producer });

beforeAll(async () => {
  db = await createTestDb();
  producer = createJobs({ connectionString: db.url, role: "producer", max: 2 });
  await producer.start();
  services = createServices({ database: db.database, jobs: producer, secureCookies: false });
  const s = await services.identity.signup({ tenant: { name: "Wakes", timeZone: "UTC" }, owner: { email: "wakes@example.com", password: "wakes-password-1" } });
  tenantId = s.tenant.id;
});
afterAll(async () => {
  await producer.stop({ graceful: false, timeout: 1000 });
  await db.drop();
});

describe("a new task wakes one agent", () => {
  it("a domain task with 8 idle covering agents enqueues exactly one agent.wake", async () => {
    const ids = await fleet("one", 8);
    await createTask("just one", { domain: "one/work" });
    const woken = await queuedWakes(ids);
    expect(woken).toHaveLength(1);
    expect(ids).toContain(woken[0]);
  });

  it("8 tasks created at once with 8 idle agents wake several distinct agents", async () => {
    const ids = await fleet("burst", 8);
    await Promise.all(Array.from({ length: 8 }, (_, i) => createTask(`burst ${i}`, { domain: "burst/work" })));
    const woken = await queuedWakes(ids);
    // One job per agent at most (the singleton key), one agent per task.
    expect(new Set(woken).size).toBe(woken.length);
    expect(woken.length).toBeGreaterThan(1);
  });

  it("one batch of tasks (dependents unblocked at once) goes to distinct agents", async () => {
    const ids = await fleet("batch", 8);
    const [gatekeeper] = await fleet("gate", 1);
    const gate = await createTask("gate", { assignee: "gate-0" });
    for (let i = 0; i < 8; i++) await createTask(`after ${i}`, { domain: "batch/work", depends_on: [gate.id] });
    expect(await queuedWakes(ids)).toEqual([]);
    // The scripted model completes the gate; its completion wakes the dependents' agents.
    const rt = agentRuntime({ database: db.database, jobs: producer, tasks: services.tasks, provider: providerCache(), workerId: "w-gate", leaseTtlSeconds: 5 });
    expect((await rt.wake({ tenantId, agentId: gatekeeper! })).outcome).toBe("ran");
    expect((await q(`SELECT status FROM tasks WHERE id = $1`, [gate.id]))[0]).toEqual({ status: "done" });
    expect((await queuedWakes(ids)).sort()).toEqual([...ids].sort());
  });

  it("an assigned task wakes its assignee only", async () => {
    const ids = await fleet("assigned", 8);
    await createTask("for #3", { assignee: "assigned-3" });
    expect(await queuedWakes(ids)).toEqual([ids[3]]);
  });

  it("prefers an idle agent to a busy one, and one with no wake queued", async () => {
    const ids = await fleet("tier", 3);
    // #0 and #1 busy, #2 idle: always #2.
    await holdLeases([ids[0]!, ids[1]!]);
    for (let i = 0; i < 3; i++) {
      await createTask(`idle first ${i}`, { domain: "tier/work" });
      expect(await queuedWakes(ids)).toEqual([ids[2]]);
      await consumeWakes(ids);
    }
    // All idle, #0 and #1 have a wake queued already: #2 again.
    await releaseLeases(ids);
    await createTask("gate a", { assignee: "tier-0" });
    await createTask("gate b", { assignee: "tier-1" });
    await createTask("no queued wake first", { domain: "tier/work" });
    expect(await queuedWakes(ids)).toEqual([...ids].sort());
  });

  it("never wakes the task's reviewer for it", async () => {
    const ids = await fleet("rev", 2);
    for (let i = 0; i < 4; i++) {
      await createTask(`reviewed ${i}`, { domain: "rev/work", requires_review: true, reviewer: "rev-0" });
      expect(await queuedWakes(ids)).toEqual([ids[1]]);
      await consumeWakes(ids);
    }
  });
});

describe("the backstop in the worker's tick", () => {
  // The backstop looks across tenants, and a worker takes every queued wake: the tasks and
  // wakes above are none of their business here.
  beforeAll(async () => {
    await q(`UPDATE tasks SET status = 'cancelled' WHERE status = 'queued'`);
    await q(`UPDATE pgboss.job SET state = 'completed' WHERE name = 'agent.wake' AND state = 'created'`);
  });

  it("wakes an idle agent for a task whose wake went to a busy one, once, and a worker then does it", async () => {
    const ids = await fleet("race", 4);
    await holdLeases(ids);
    const task = await createTask("raced", { domain: "race/work" });
    const [busy] = await queuedWakes(ids);
    expect(busy).toBeDefined();
    // The race: the wake went to `busy`, which marked its session and is in a long run;
    // the others released after re-checking for work, before the task committed.
    await consumeWakes(ids);
    await releaseLeases(ids.filter((id) => id !== busy));

    // Not before the grace period.
    expect(await backstop()).toEqual({ woken: 0 });
    await age([task.id]);
    expect(await backstop()).toEqual({ woken: 1 });
    const [idle] = await queuedWakes(ids);
    expect(idle).not.toBe(busy);
    expect(await queuedWakes(ids)).toHaveLength(1);
    // A wake is queued for the task now: the next tick adds none.
    expect(await backstop()).toEqual({ woken: 0 });
    expect(await queuedWakes(ids)).toHaveLength(1);

    const jobs = createJobs({ connectionString: db.url, role: "worker", max: 2 });
    const s = createServices({ database: db.database, jobs, secureCookies: false });
    const runtime = agentRuntime({ database: db.database, jobs, tasks: s.tasks, provider: providerCache(), workerId: "w-race", leaseTtlSeconds: 5 });
    const worker = await startWorker({ jobs, services: s, logger: silent, runtime });
    try {
      await until(async () => (await q<{ status: string }>(`SELECT status FROM tasks WHERE id = $1`, [task.id]))[0]?.status === "done", 30_000, "task done");
    } finally {
      await worker.stop();
    }
    expect((await q(`SELECT claimed_by_agent_id FROM tasks WHERE id = $1`, [task.id]))[0]).toEqual({ claimed_by_agent_id: idle });
    await releaseLeases(ids);
  }, 60_000);

  it("does nothing for a task that is not claimable, or whose agents are all busy", async () => {
    const ids = await fleet("blocked", 2);
    const gate = await createTask("not done yet", { assignee: "blocked-0" });
    const waiting = await createTask("waits for the gate", { domain: "blocked/work", depends_on: [gate.id] });
    await consumeWakes(ids);
    await age([waiting.id]);
    expect(await backstop()).toEqual({ woken: 0 });

    // Claimable, but every covering agent is busy: they re-check when they release.
    const busy = await fleet("allbusy", 2);
    await holdLeases(busy);
    const t = await createTask("behind busy agents", { domain: "allbusy/work" });
    await consumeWakes(busy);
    await age([t.id]);
    expect(await backstop()).toEqual({ woken: 0 });
    expect(await queuedWakes([...ids, ...busy])).toEqual([]);
    await releaseLeases(busy);
    await q(`UPDATE tasks SET status = 'cancelled' WHERE id = ANY($1)`, [[t.id, waiting.id]]);
  });

  it("runs in the worker's tick", async () => {
    const ids = await fleet("ticked", 2);
    const task = await createTask("found by the tick", { domain: "ticked/work" });
    // Its wake was lost to the race above (taken by an agent that had already looked).
    await consumeWakes(ids);
    await age([task.id]);
    const jobs = createJobs({ connectionString: db.url, role: "worker", max: 2 });
    const s = createServices({ database: db.database, jobs, secureCookies: false });
    const runtime = agentRuntime({ database: db.database, jobs, tasks: s.tasks, provider: providerCache(), workerId: "w-tick", leaseTtlSeconds: 5 });
    const worker = await startWorker({ jobs, services: s, logger: silent, runtime });
    try {
      await worker.tick();
      await until(async () => (await q<{ status: string }>(`SELECT status FROM tasks WHERE id = $1`, [task.id]))[0]?.status === "done", 30_000, "task done");
    } finally {
      await worker.stop();
    }
  }, 60_000);
});
