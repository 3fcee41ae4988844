import { randomBytes } from "node:crypto";
import { type AgentRuntime, agentRuntime, createServices, type DomainServices, providerCache, systemActor } from "@bosun/core";
import { createDatabase, type Database } from "@bosun/db";
import { createJobs, type Jobs } from "@bosun/jobs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startMcpHttpFixture } from "../../../test/fixtures/mcp-http-server";
import { createTestDb, type TestDb } from "../../../test/helpers/db";

process.env.BOSUN_SECRET_KEY ??= randomBytes(32).toString("hex");

/**
 * A gateway call holds no database connection while the MCP server works: the worker's
 * pool here has two connections, fewer than the calls in flight. (When the call ran inside
 * the run's transaction, each call held one connection and waited for a second for its
 * call slot: with as many calls as connections, the worker deadlocked.)
 */
const WORKER_APP = "bosun-gw-phases-worker";
const DELAY_MS = 3000;

let db: TestDb;
let small: Database;
let producer: Jobs;
let services: DomainServices;
let tenantId: string;
let rt: AgentRuntime;
let fixture: Awaited<ReturnType<typeof startMcpHttpFixture>>;

const q = async <T = Record<string, unknown>>(sql: string, values: unknown[] = []) => (await db.database.pool.query(sql, values)).rows as T[];
const actor = () => systemActor(tenantId, "test");
const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms));

async function agentWithTask(name: string, script: unknown[], spec: Record<string, unknown> = {}) {
  const d = { apiVersion: "agent.os/v1", kind: "Agent", metadata: { name, owner: "tests" }, spec: { model: { provider: "scripted", name: "scripted-small", script }, soul: "", ...spec } };
  const agent = (await services.agents.apply(actor(), name, d)).body;
  const task = (await services.tasks.create(actor(), { title: `work for ${name}`, body: "", priority: 50, depends_on: [], requires_review: false, max_attempts: 1, assignee: name })).body;
  return { agent, taskId: task.id };
}

/** The worker's connections that have sat in an open transaction for over a second. */
const longOpenTransactions = () =>
  q(
    `SELECT pid, state, now() - xact_start AS age FROM pg_stat_activity
     WHERE datname = current_database() AND application_name = $1
       AND state LIKE 'idle in transaction%' AND now() - xact_start > interval '1 second'`,
    [WORKER_APP],
  );

beforeAll(async () => {
  db = await createTestDb();
  small = createDatabase(db.url, { max: 2, applicationName: WORKER_APP });
  producer = createJobs({ connectionString: db.url, role: "producer", max: 2 });
  await producer.start();
  services = createServices({ database: db.database, jobs: producer, secureCookies: false });
  const s = await services.identity.signup({ tenant: { name: "Phases", timeZone: "UTC" }, owner: { email: "phases@example.com", password: "phases-password-1" } });
  tenantId = s.tenant.id;
  fixture = await startMcpHttpFixture({ delayMs: DELAY_MS });
  await services.gateway.create(actor(), { name: "slow", transport: "http", url: fixture.url, limits: { timeoutMs: 20_000 } });
  await services.gateway.refresh(actor(), "slow");
  // The worker: everything it does goes through the two-connection pool.
  const ws = createServices({ database: small, jobs: producer, secureCookies: false });
  rt = agentRuntime({ database: small, jobs: producer, tasks: ws.tasks, provider: providerCache(), workerId: "w-phases", leaseTtlSeconds: 30 });
});
afterAll(async () => {
  rt?.stop();
  await sleep(200);
  await fixture?.close();
  await producer?.stop({ graceful: false, timeout: 1000 });
  // (Before the fix this pool deadlocked and would never close: do not hang on it.)
  await Promise.race([small?.close().catch(() => {}), sleep(2000)]);
  await db?.drop();
});

describe("gateway calls run outside the run's transaction", () => {
  it("more concurrent MCP calls than pool connections all finish, with no transaction left open during the calls", async () => {
    const n = 4;
    const agents = await Promise.all(
      Array.from({ length: n }, (_, i) => agentWithTask(`phase-${i}`, [{ call: "mcp__slow__echo", input: { text: `phase-${i}` } }], { tools: ["mcp://gateway/slow/*"] })),
    );
    const stepsDone = async () => Number((await q<{ n: string }>(`SELECT count(*) AS n FROM steps WHERE name = 'mcp__slow__echo' AND kind = 'tool'`))[0]!.n);

    let settled = false;
    const wakes = Promise.all(agents.map((a) => rt.wake({ tenantId, agentId: a.agent.id }))).finally(() => {
      settled = true;
    });
    // While calls are in flight: how many at once, and any transaction of the worker kept open.
    let maxInFlight = 0;
    const open: unknown[] = [];
    const sampler = (async () => {
      while (!settled) {
        const received = fixture.callsTo("echo");
        if (received > 0) {
          maxInFlight = Math.max(maxInFlight, received - (await stepsDone()));
          open.push(...(await longOpenTransactions()));
        }
        await sleep(100);
      }
    })();
    const timedOut = Symbol("timed out");
    const outcome = await Promise.race([wakes, sleep(60_000).then(() => timedOut)]);
    settled = true;
    await sampler;

    expect(outcome).not.toBe(timedOut);
    expect(outcome).toEqual(agents.map(() => ({ outcome: "ran", runs: 1 })));
    expect(open).toEqual([]);
    // More calls were waiting on the server at once than the worker has connections.
    expect(maxInFlight).toBeGreaterThan(2);
    expect(fixture.callsTo("echo")).toBe(n);
    for (const a of agents) {
      const [t] = await q<{ status: string; run_id: string }>(`SELECT status, run_id FROM tasks WHERE id = $1`, [a.taskId]);
      expect(t!.status).toBe("done");
      const steps = await q<{ status: string; output: { content: string } }>(`SELECT status, output FROM steps WHERE run_id = $1 AND name = 'mcp__slow__echo'`, [t!.run_id]);
      expect(steps).toEqual([expect.objectContaining({ status: "ok", output: expect.objectContaining({ content: expect.stringContaining("phase-") }) })]);
    }
  }, 90_000);

  it("a lease lost during the MCP call writes no step and gives the reserved fee back", async () => {
    await services.gateway.updateTool(actor(), "slow", "pay", { feeMicros: 250_000 });
    const before = fixture.callsTo("pay");
    const { agent, taskId } = await agentWithTask("phase-lost", [{ call: "mcp__slow__pay", input: { amount: 2, to: "x" } }], {
      tools: ["mcp://gateway/slow/pay"],
      budgets: { usd_per_day: 5 },
    });
    const wake = rt.wake({ tenantId, agentId: agent.id });
    const deadline = Date.now() + 30_000;
    while (fixture.callsTo("pay") === before && Date.now() < deadline) await sleep(50);
    expect(fixture.callsTo("pay")).toBe(before + 1);
    const [t] = await q<{ run_id: string }>(`SELECT run_id FROM tasks WHERE id = $1`, [taskId]);
    // Phase 1 committed: the fee is held while the server works.
    const held = await q<{ key: string }>(`SELECT key FROM budget_reservations WHERE run_id = $1`, [t!.run_id]);
    expect(held).toHaveLength(1);
    // Another worker takes the session over mid-call (this update would wait for the call
    // if the call ran inside the run's transaction, which locks the session row).
    const took = Date.now();
    await q(`UPDATE agent_sessions SET lease_owner = 'thief', lease_epoch = lease_epoch + 1 WHERE agent_id = $1`, [agent.id]);
    expect(Date.now() - took).toBeLessThan(DELAY_MS - 500);
    expect(await wake).toEqual({ outcome: "lease_lost" });
    expect(await q(`SELECT 1 FROM steps WHERE run_id = $1 AND name = 'mcp__slow__pay'`, [t!.run_id])).toEqual([]);
    expect(await q(`SELECT 1 FROM cost_ledger WHERE run_id = $1 AND kind = 'action'`, [t!.run_id])).toEqual([]);
    expect(await q(`SELECT 1 FROM budget_reservations WHERE key = $1`, [held[0]!.key])).toEqual([]);
    const [w] = await q<{ reserved: string }>(
      `SELECT coalesce(sum(reserved), 0)::text AS reserved FROM budget_windows w JOIN budgets b ON b.tenant_id = w.tenant_id AND b.id = w.budget_id WHERE b.agent_id = $1`,
      [agent.id],
    );
    expect(Number(w!.reserved)).toBe(0);
  }, 60_000);
});
