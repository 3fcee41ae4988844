import { createServices, systemActor } from "@bosun/core";
import { withTenant } from "@bosun/db";
import { createJobs, DEAD_LETTER_QUEUE, type Jobs } from "@bosun/jobs";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDb, type TestDb } from "../../../test/helpers/db";
import { createRuntime, startWorker, type Worker } from "../src/worker";

let db: TestDb;
let producer: Jobs;
let workerJobs: Jobs;
let worker: Worker;
const T = "ten_0000000000aaaaaaaaaaaaaaaa";

const jobsNamed = async (name: string) =>
  (await db.database.pool.query(`SELECT id, state, data, retry_count FROM pgboss.job WHERE name = $1 ORDER BY created_on`, [name])).rows;

async function until<T>(fn: () => Promise<T | undefined | null | false>, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  db = await createTestDb();
  await db.database.pool.query(`INSERT INTO tenants (id, name) VALUES ($1, 'Jobs')`, [T]);
  producer = createJobs({ connectionString: db.url, role: "producer", max: 2 });
  await producer.start();
  workerJobs = createJobs({ connectionString: db.url, role: "worker", max: 2 });
  const services = createServices({ database: db.database, jobs: workerJobs, secureCookies: false });
  worker = await startWorker({ jobs: workerJobs, services, logger: pino({ level: "silent" }) });
});
afterAll(async () => {
  await worker.stop();
  await producer.stop({ graceful: false, timeout: 1000 });
  await db.drop();
});

describe("enqueue inside the caller's transaction", () => {
  it("leaves no job behind when the transaction rolls back", async () => {
    await expect(
      withTenant(db.database, T, async (tx) => {
        await producer.enqueue(tx, "agent.schedule.sync", { tenantId: T, agentId: "agt_rolledback00000000000000", revision: 1 });
        throw new Error("rollback");
      }),
    ).rejects.toThrow("rollback");
    const rows = await jobsNamed("agent.schedule.sync");
    expect(rows.filter((r) => r.data.agentId === "agt_rolledback00000000000000")).toEqual([]);
  });

  it("refuses a payload that does not match the catalogue before it reaches the queue", async () => {
    await expect(
      withTenant(db.database, T, (tx) => producer.enqueue(tx, "agent.schedule.sync", { tenantId: T } as never)),
    ).rejects.toThrow();
  });

  it("commits the job with the agent, and the worker arms the schedule", async () => {
    const services = createServices({ database: db.database, jobs: producer, secureCookies: false });
    const actor = systemActor(T, "test");
    const before = Date.now();
    const r = await services.agents.apply(actor, "ticker", {
      apiVersion: "agent.os/v1",
      kind: "Agent",
      metadata: { name: "ticker", owner: "ops" },
      spec: { model: { provider: "scripted", name: "scripted-small" }, schedule: { every: "15m" } },
    });
    expect(r.body.nextWakeAt).toBeNull();
    const armed = await until(async () => {
      const a = await services.agents.get(actor, "ticker");
      return a.nextWakeAt ? a : null;
    });
    const at = new Date(armed.nextWakeAt!).getTime();
    expect(at).toBeGreaterThanOrEqual(before + 15 * 60_000 - 1000);
    expect(at).toBeLessThanOrEqual(Date.now() + 15 * 60_000 + 1000);
    const done = await until(async () => {
      const rows = await jobsNamed("agent.schedule.sync");
      const mine = rows.filter((j) => j.data.agentId === armed.id);
      return mine.length === 1 && mine[0].state === "completed" ? mine : null;
    });
    expect(done).toHaveLength(1);

    // Pausing disarms it: the status change enqueues the same job for the same revision.
    await services.agents.pause(actor, "ticker");
    await until(async () => ((await services.agents.get(actor, "ticker")).nextWakeAt === null ? true : null));
  });

  it("ignores a late job for an older revision", async () => {
    const services = createServices({ database: db.database, jobs: producer, secureCookies: false });
    const actor = systemActor(T, "test");
    const base = { apiVersion: "agent.os/v1", kind: "Agent", metadata: { name: "fenced", owner: "ops" } };
    const a = await services.agents.apply(actor, "fenced", { ...base, spec: { model: { provider: "scripted", name: "s" }, schedule: { every: "1h" } } });
    await services.agents.apply(actor, "fenced", { ...base, spec: { model: { provider: "scripted", name: "s" } } });
    const stale = await services.agents.syncSchedule({ tenantId: T, agentId: a.body.id, revision: 1 });
    expect(stale).toEqual({ applied: false, nextWakeAt: null });
    const current = await services.agents.syncSchedule({ tenantId: T, agentId: a.body.id, revision: 2 });
    expect(current).toEqual({ applied: true, nextWakeAt: null });
  });
});

describe("dead letters", () => {
  it("sends a job whose payload does not parse straight to the dead-letter queue, without retries", async () => {
    const id = await producer.boss.send("agent.schedule.sync", { tenantId: T, bogus: true }, { deadLetter: DEAD_LETTER_QUEUE });
    const failed = await until(async () => {
      const rows = await jobsNamed("agent.schedule.sync");
      const j = rows.find((r) => r.id === id);
      return j && j.state === "failed" ? j : null;
    });
    expect(failed.retry_count).toBe(0);
    const dead = await until(async () => {
      const rows = await jobsNamed(DEAD_LETTER_QUEUE);
      return rows.find((r) => r.data.bogus === true) ?? null;
    });
    expect(dead.data).toEqual({ tenantId: T, bogus: true });
  });
});

describe("pollers", () => {
  it("polls each rare queue with one slot, and the agents' queues with one per slot of the worker's concurrency", async () => {
    // Every slot is a pg-boss worker that queries Postgres each polling interval, idle or not.
    const jobs = createJobs({ connectionString: db.url, role: "worker", max: 2 });
    const services = createServices({ database: db.database, jobs, secureCookies: false });
    const w = await startWorker({ jobs, services, logger: pino({ level: "silent" }), runtime: createRuntime(services, jobs), concurrency: 6, tickMs: 0 });
    try {
      const slots: Record<string, number> = {};
      for (const x of jobs.boss.getWipData()) slots[x.name] = (slots[x.name] ?? 0) + 1;
      expect(slots).toEqual({ "agent.wake": 6, "agent.dream": 6, "agent.schedule.sync": 1, "alert.send": 1, "costs.rollup": 1 });
    } finally {
      await w.stop();
    }
  });
});

describe("the app role's grants on pg-boss's schema", () => {
  /** When each catalog row the grants write was last written (a GRANT rewrites it even when nothing changes). */
  const catalogRows = async () =>
    (
      await db.database.pool.query(
        `SELECT (SELECT xmin::text FROM pg_namespace WHERE nspname = 'pgboss') AS schema,
                (SELECT string_agg(c.relname || ':' || c.xmin::text, ',' ORDER BY c.oid) FROM pg_class c WHERE c.relnamespace = 'pgboss'::regnamespace) AS relations,
                (SELECT string_agg(d.xmin::text, ',' ORDER BY d.oid) FROM pg_default_acl d WHERE d.defaclnamespace = 'pgboss'::regnamespace) AS defaults`,
      )
    ).rows[0];
  const startAndStop = async () => {
    const jobs = createJobs({ connectionString: db.url, role: "producer", max: 1 });
    await jobs.start();
    await jobs.stop({ graceful: false, timeout: 1000 });
  };

  it("are not written again by a process that starts when they are in place (a changed schema row drops every cached plan)", async () => {
    const before = await catalogRows();
    expect(before.schema).toBeTruthy();
    await startAndStop();
    expect(await catalogRows()).toEqual(before);
  });

  it("are given again where one is missing", async () => {
    const has = async () =>
      (
        await db.database.pool.query(
          `SELECT has_table_privilege('bosun_app', 'pgboss.job', 'INSERT') AS insert,
                  has_schema_privilege('bosun_app', 'pgboss', 'USAGE') AS usage,
                  EXISTS (SELECT 1 FROM pg_default_acl d, aclexplode(d.defaclacl) a
                          WHERE d.defaclnamespace = 'pgboss'::regnamespace AND d.defaclobjtype = 'r' AND a.grantee = 'bosun_app'::regrole AND a.privilege_type = 'UPDATE') AS "defaultUpdate"`,
        )
      ).rows[0];
    expect(await has()).toEqual({ insert: true, usage: true, defaultUpdate: true });
    await db.database.pool.query(`REVOKE INSERT ON pgboss.job FROM bosun_app; REVOKE USAGE ON SCHEMA pgboss FROM bosun_app;
      ALTER DEFAULT PRIVILEGES IN SCHEMA pgboss REVOKE UPDATE ON TABLES FROM bosun_app`);
    expect(await has()).toEqual({ insert: false, usage: false, defaultUpdate: false });
    await startAndStop();
    expect(await has()).toEqual({ insert: true, usage: true, defaultUpdate: true });
  });
});
