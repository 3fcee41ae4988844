import { type PreparedStatement, repo, withTenant } from "@bosun/db";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDb, type TestDb } from "../../../test/helpers/db";

// The runtime's statements that address one task or run by its key also check its status
// (queued, leased, running). Each status has an index of its own (tasks_status_idx, and
// the partial tasks_lease_idx and runs_active_idx), and the planner weighs them with the
// table's statistics: right after a burst of new tasks, before autovacuum has analyzed
// the table again, those still say that hardly any task is queued or leased, and a status
// index then looks as cheap as the primary key. Taken, it reads every queued task of the
// tenant (or every leased task of every tenant) for each claim or completion: a burst of
// n tasks costs n² row reads. Measured: 830 rows read per claim behind a queue of ~900.
// These statements must find their row by its key whatever the statistics say; the plans
// checked here are the generic ones a connection keeps for its prepared statements.
describe("key lookups under stale statistics", () => {
  let db: TestDb;
  const tenantId = "ten_0000000000000000keylookup1";
  const agentId = "agt_0000000000000000keylookup1";
  const queuedId = "tsk_0000000000000000000queued1";
  const leasedId = "tsk_0000000000000000000leased1";
  const runId = "run_00000000000000000000leased1";

  beforeAll(async () => {
    db = await createTestDb();
    const q = (text: string, args: unknown[] = []) => db.database.pool.query(text, args);
    await q(`INSERT INTO tenants (id, name) VALUES ($1, $1)`, [tenantId]);
    await q(`INSERT INTO agents (tenant_id, id, name, owner, revision, spec_hash, descriptor) VALUES ($1, $2, 'a', 'o', 1, 'h', $3)`, [
      tenantId,
      agentId,
      { apiVersion: "agent.os/v1", kind: "Agent", metadata: { name: "a", owner: "o" }, spec: { domains: ["w/*"] } },
    ]);
    await q(`INSERT INTO agent_sessions (tenant_id, agent_id, lease_owner, lease_epoch, lease_expires_at) VALUES ($1, $2, 'w', 1, now() + interval '1 hour')`, [tenantId, agentId]);
    const tasks = (status: string, n: number, prefix: string, leased: boolean) =>
      q(
        `INSERT INTO tasks (tenant_id, id, title, body, priority, domain, status, created_by_type, created_by_id, lease_owner, lease_epoch, lease_expires_at, claimed_by_agent_id)
         SELECT $1, $2 || lpad(g::text, 26 - length($2), '0'), 't', '', 50, 'w/x', $3, 'system', 's',
                CASE WHEN $5 THEN 'run:o' END, 1, CASE WHEN $5 THEN now() + interval '1 hour' END, CASE WHEN $5 THEN $6 END
         FROM generate_series(1, $4) g`,
        [tenantId, prefix, status, n, leased, agentId],
      );
    const runs = (status: string, from: number, n: number) =>
      q(
        `INSERT INTO runs (tenant_id, id, agent_id, task_id, root_run_id, traceparent, trigger, status, limits, input)
         SELECT $1, 'run_' || lpad(g::text, 26, '0'), $2, NULL, 'run_' || lpad(g::text, 26, '0'), 't', 'task', $3, '{}', '{}' FROM generate_series($4::int, $4::int + $5::int - 1) g`,
        [tenantId, agentId, status, from, n],
      );
    // What the statistics see: a quiet tenant, every task done and every run finished.
    await tasks("done", 3000, "tsk_done", false);
    await runs("succeeded", 1, 3000);
    await q("ANALYZE");
    // Then a burst: thousands queued and hundreds leased, not analyzed yet.
    await tasks("queued", 3000, "tsk_queued", false);
    await tasks("in_progress", 600, "tsk_leased", true);
    await q(`INSERT INTO tasks (tenant_id, id, title, body, priority, domain, status, created_by_type, created_by_id) VALUES ($1, $2, 't', '', 50, 'w/x', 'queued', 'system', 's')`, [tenantId, queuedId]);
    await runs("running", 3001, 600);
    await q(
      `INSERT INTO runs (tenant_id, id, agent_id, task_id, root_run_id, traceparent, trigger, status, limits, input) VALUES ($1, $2, $3, $4, $2, 't', 'task', 'running', '{}', '{}')`,
      [tenantId, runId, agentId, leasedId],
    );
    await q(
      `INSERT INTO tasks (tenant_id, id, title, body, priority, domain, status, created_by_type, created_by_id, lease_owner, lease_epoch, lease_expires_at, claimed_by_agent_id, run_id)
       VALUES ($1, $2, 't', '', 50, 'w/x', 'in_progress', 'system', 's', 'run:o', 3, now() + interval '1 hour', $3, $4)`,
      [tenantId, leasedId, agentId, runId],
    );
  });
  afterAll(() => db.drop());

  /** The generic plan of `st`, as the app role in the tenant's transaction, after `setup` (statements). */
  async function genericPlan(st: PreparedStatement, setup: string[] = []): Promise<string> {
    return withTenant(db.database, tenantId, async (tx) => {
      const c = tx.$client;
      for (const s of setup) await c.query(s);
      await c.query(`SET LOCAL plan_cache_mode = force_generic_plan`);
      await c.query(`PREPARE plan_check AS ${st.text}`);
      try {
        const { rows } = await c.query<{ "QUERY PLAN": string }>(`EXPLAIN EXECUTE plan_check(${st.args.join(", ")})`);
        return rows.map((r) => r["QUERY PLAN"]).join("\n");
      } finally {
        await c.query(`DEALLOCATE plan_check`);
      }
    });
  }
  /** The lines of `plan` that read `table` (as `alias`). */
  const scansOf = (plan: string, table: string) => plan.split("\n").filter((l) => new RegExp(`(Scan|Scan using \\S+) on ${table}\\b`).test(l));

  it("the claim's start reads the locked task by its key", async () => {
    const [, start] = repo.runtime.claimNextRunStatements({
      tenantId,
      agentId,
      fence: { owner: "w", epoch: 1 },
      leaseOwner: "run:x",
      ttlSeconds: 60,
      run: { id: "run_000000000000000000000fresh1", traceparent: "00-0-0-01", limits: { maxSteps: 1, maxTokens: 1, maxWallMs: 1 } },
    });
    const plan = await genericPlan(start!, [`SELECT set_config('bosun.claim', '${queuedId}', true)`]);
    const scans = scansOf(plan, "tasks t");
    expect(scans.length, plan).toBeGreaterThan(0);
    expect(scans[0], plan).toContain("tasks_tenant_id_id_pk");
  });

  it("the claim's audit event reads the claimed task by its key", async () => {
    const st = repo.runtime.claimAuditStatement({ tenantId, agentId, runId, id: "aud_00000000000000000000000001" });
    const plan = await genericPlan(st, [`SELECT set_config('bosun.claim', '${leasedId}', true)`]);
    expect(scansOf(plan, "tasks t")[0], plan).toContain("tasks_tenant_id_id_pk");
  });

  it("a completion finds the leased task by its key, not among every leased task", async () => {
    const st = repo.completeTaskStatement({ tenantId, taskId: leasedId, epoch: 3, owner: "run:o", status: "done", result: { ok: true } });
    const plan = await genericPlan(st);
    expect(scansOf(plan, "tasks")[0], plan).toContain("tasks_tenant_id_id_pk");
  });

  it("the claimed run is read by its key, not among the tenant's running ones", async () => {
    const [, , read] = repo.runtime.claimNextRunStatements({
      tenantId,
      agentId,
      fence: { owner: "w", epoch: 1 },
      leaseOwner: "run:x",
      ttlSeconds: 60,
      run: { id: runId, traceparent: "00-0-0-01", limits: { maxSteps: 1, maxTokens: 1, maxWallMs: 1 } },
    });
    const plan = await genericPlan(read!);
    expect(scansOf(plan, "runs")[0], plan).toContain("runs_tenant_id_id_pk");
  });
});
