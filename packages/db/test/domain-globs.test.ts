import { repo, withTenant } from "@bosun/db";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDb, type TestDb } from "../../../test/helpers/db";

// An agent's `spec.domains` globs decide which unassigned tasks it may claim, and whom a
// new task wakes. Three statements ask it (the claim rule, a single agent's coverage, the
// wake choice among a tenant's agents); each compares the glob's literal head before its
// regular expression. These cases hold for all three.
const CASES: [pattern: string, domain: string, covers: boolean][] = [
  ["finance/*", "finance/invoices", true],
  ["finance/*", "finance/invoices/2026", false],
  ["finance/*", "finance", false],
  ["finance/**", "finance/invoices/2026", true],
  ["finance/invoices", "finance", false],
  ["finance/invoices", "finance/invoices", true],
  ["fin*/q", "finance/q", true],
  ["fin*/q", "fin/q", true],
  ["fin*/q", "fun/q", false],
  ["*", "ops", true],
  ["*", "ops/x", false],
  ["**", "a/b/c", true],
  ["*/reports", "sales/reports", true],
  ["*/reports", "sales/other", false],
  ["?a/*", "ba/x", true],
  ["?a/*", "bba/x", false],
  ["a.b/*", "a.b/x", true],
  ["a.b/*", "axb/x", false],
  ["c[1]/**", "c[1]/x/y", true],
  ["x+y", "x+y", true],
  ["x+y", "xxy", false],
  ["100%/_x", "100%/_x", true],
  ["100%/_x", "1000/ax", false],
  ["back\\slash/*", "back\\slash/x", true],
  ["back\\slash/*", "backslash/x", false],
];

describe("domain globs", () => {
  let db: TestDb;
  const tenantOf = (i: number) => `ten_0000000000globcase${String(i).padStart(8, "0")}`;
  const agentOf = (i: number) => `agt_0000000000globcase${String(i).padStart(8, "0")}`;
  beforeAll(async () => {
    db = await createTestDb();
    // A tenant per case, each with one agent: the wake choice names whoever covers the task.
    for (const [i, [pattern]] of CASES.entries()) {
      await db.database.pool.query(`INSERT INTO tenants (id, name) VALUES ($1, $1)`, [tenantOf(i)]);
      await db.database.pool.query(
        `INSERT INTO agents (tenant_id, id, name, owner, revision, spec_hash, descriptor) VALUES ($1, $2, 'a', 'o', 1, 'h', $3)`,
        [tenantOf(i), agentOf(i), { apiVersion: "agent.os/v1", kind: "Agent", metadata: { name: "a", owner: "o" }, spec: { domains: [pattern] } }],
      );
    }
  });
  afterAll(() => db.drop());

  /** A tenant of `n` agents named `prefix` + a number, each with the one glob `glob` (SQL over `g`, 1..n). */
  async function fleet(tenantId: string, prefix: string, n: number, glob: string) {
    await db.database.pool.query(`INSERT INTO tenants (id, name) VALUES ($1, $1)`, [tenantId]);
    await db.database.pool.query(
      `INSERT INTO agents (tenant_id, id, name, owner, revision, spec_hash, descriptor)
       SELECT $1, $2 || lpad(g::text, 30 - length($2), '0'), 'a-' || g, 'o', 1, 'h',
              jsonb_build_object('apiVersion', 'agent.os/v1', 'kind', 'Agent', 'spec', jsonb_build_object('domains', jsonb_build_array(${glob})))
       FROM generate_series(1, $3::int) g`,
      [tenantId, prefix, n],
    );
  }

  it.each(CASES.map((c, i) => [...c, i] as const))("%s covers %s: %s", async (_pattern, domain, covers, i) => {
    const tenantId = tenantOf(i);
    const agentId = agentOf(i);
    await withTenant(db.database, tenantId, async (tx) => {
      expect(await repo.agentCoversDomain(tx, { tenantId, agentId, domain })).toBe(covers);
      expect(await repo.agentsToWake(tx, { tenantId, tasks: [{ id: "tsk_glob", domain, reviewerAgentId: null }], seed: 1 })).toEqual(covers ? [agentId] : []);
      await tx.$client.query(
        `INSERT INTO tasks (tenant_id, id, title, body, priority, domain, status, created_by_type, created_by_id) VALUES ($1, 'tsk_glob' || $3, 't', '', 50, $2, 'queued', 'user', 'usr_test')`,
        [tenantId, domain, i],
      );
      expect(await repo.hasClaimableTask(tx, { tenantId, agentId })).toBe(covers);
      await tx.$client.query(`DELETE FROM tasks WHERE tenant_id = $1`, [tenantId]);
    });
  });

  it("wakes the one covering agent among a fleet with more distinct globs than Postgres keeps compiled", async () => {
    // Postgres keeps the last 32 regular expressions it compiled; 100 agents with a glob each
    // go past that in every statement that asks them all. More than WAKE_CANDIDATES active
    // agents: the covering ones are found by their globs' heads (bosun_wake_candidates).
    const tenantId = "ten_0000000000globfleet0000000";
    await fleet(tenantId, "agt_globfleet", 100, `'team' || g || '/*'`);
    await withTenant(db.database, tenantId, async (tx) => {
      const chosen = await repo.agentsToWake(tx, {
        tenantId,
        tasks: [7, 42, 100, 101].map((n) => ({ id: `tsk_team${n}`, domain: `team${n}/x`, reviewerAgentId: null })),
        seed: 3,
      });
      expect(chosen.sort()).toEqual([7, 42, 100].map((n) => `agt_globfleet${String(n).padStart(17, "0")}`));
    });
  });

  it("counts an agent's assigned task, but not one it reviews, one waiting for a dependency, or another tenant's", async () => {
    // As the schedule tick asks it: the owner role, no row-level security to lean on.
    const tenantId = tenantOf(0); // its agent covers finance/*
    const agentId = agentOf(0);
    const other = tenantOf(1);
    const exists = async () =>
      (await db.database.pool.query(`SELECT ${repo.claimableTaskExists("$1::text", "$2::text")} AS yes`, [tenantId, agentId])).rows[0].yes as boolean;
    const task = (tenant: string, id: string, cols: Record<string, string | null>) =>
      db.database.pool.query(
        `INSERT INTO tasks (tenant_id, id, title, body, priority, status, created_by_type, created_by_id, ${Object.keys(cols).join(", ")})
         VALUES ($1, $2, 't', '', 50, 'queued', 'user', 'usr_test', ${Object.keys(cols).map((_, i) => `$${i + 3}`).join(", ")})`,
        [tenant, id, ...Object.values(cols)],
      );
    try {
      await task(other, "tsk_glob_other_tenant", { domain: "finance/invoices" });
      expect(await exists()).toBe(false);
      await task(tenantId, "tsk_glob_reviewed", { domain: "finance/invoices", reviewer_agent_id: agentId });
      expect(await exists()).toBe(false);
      await task(tenantId, "tsk_glob_blocker", { domain: "ops/x" });
      await task(tenantId, "tsk_glob_blocked", { domain: "finance/invoices" });
      await db.database.pool.query(`INSERT INTO task_dependencies (tenant_id, task_id, depends_on_id) VALUES ($1, 'tsk_glob_blocked', 'tsk_glob_blocker')`, [tenantId]);
      expect(await exists()).toBe(false);
      await task(tenantId, "tsk_glob_assigned", { assignee_agent_id: agentId, domain: "ops/elsewhere" });
      expect(await exists()).toBe(true);
      await db.database.pool.query(`UPDATE tasks SET status = 'done' WHERE tenant_id = $1 AND id = 'tsk_glob_assigned'`, [tenantId]);
      expect(await exists()).toBe(false);
      await db.database.pool.query(`UPDATE tasks SET status = 'done' WHERE tenant_id = $1 AND id = 'tsk_glob_blocker'`, [tenantId]);
      expect(await exists()).toBe(true);
    } finally {
      await db.database.pool.query(`DELETE FROM task_dependencies WHERE tenant_id = $1`, [tenantId]);
      await db.database.pool.query(`DELETE FROM tasks WHERE tenant_id = ANY($1)`, [[tenantId, other]]);
    }
  });

  it("chooses a task's wake among a window of a big fleet's covering agents, idle ones first", async () => {
    const tenantId = "ten_0000000000globpool00000000";
    await fleet(tenantId, "agt_globpool", 200, `'pool/*'`);
    // Every agent busy: a live lease on its session.
    await db.database.pool.query(
      `INSERT INTO agent_sessions (tenant_id, agent_id, lease_owner, lease_epoch, lease_expires_at)
       SELECT tenant_id, id, 'w', 1, now() + interval '1 hour' FROM agents WHERE tenant_id = $1`,
      [tenantId],
    );
    const seed = 12345;
    // The window: active agents in the order of hashtext(id) from hashtext(seed), wrapping.
    const window = (
      await db.database.pool.query<{ id: string }>(
        `SELECT id FROM agents WHERE tenant_id = $1 AND status = 'active' ORDER BY hashtext(id) < hashtext($2::text), hashtext(id) LIMIT $3`,
        [tenantId, String(seed), repo.WAKE_CANDIDATES],
      )
    ).rows.map((r) => r.id);
    expect(window).toHaveLength(repo.WAKE_CANDIDATES);
    const outside = (await db.database.pool.query<{ id: string }>(`SELECT id FROM agents WHERE tenant_id = $1 AND id <> ALL($2) ORDER BY id LIMIT 1`, [tenantId, window])).rows[0]!.id;
    const choose = () =>
      withTenant(db.database, tenantId, (tx) => repo.agentsToWake(tx, { tenantId, tasks: [{ id: "tsk_pool", domain: "pool/x", reviewerAgentId: null }], seed }));
    const idle = (agentId: string, yes: boolean) =>
      db.database.pool.query(`UPDATE agent_sessions SET lease_owner = ${yes ? "NULL" : "'w'"} WHERE tenant_id = $1 AND agent_id = $2`, [tenantId, agentId]);

    // All busy: a busy agent of the window.
    const [busy] = await choose();
    expect(window).toContain(busy);
    // An idle agent in the window is preferred to the busy ones.
    const idleInside = window[37]!;
    await idle(idleInside, true);
    expect(await choose()).toEqual([idleInside]);
    // One outside it is not looked at: the window's busy agents are (it re-checks when it
    // releases; the tick's backstop wakes idle agents for tasks left queued).
    await idle(idleInside, false);
    await idle(outside, true);
    const [chosen] = await choose();
    expect(window).toContain(chosen);
    expect(chosen).not.toBe(outside);
  });

  it("finds wake candidates of the calling transaction's tenant only", async () => {
    // bosun_wake_candidates reads agents past row-level security (SECURITY DEFINER, for its
    // indexes); it answers a tenant's transaction about that tenant alone.
    const candidates = (c: { query: (t: string, v: unknown[]) => Promise<{ rows: { id: string }[] }> }, tenant: string) =>
      c.query(`SELECT bosun_wake_candidates($1, 'finance/invoices', NULL, 1, 64) AS id`, [tenant]).then((r) => r.rows.map((x) => x.id));
    // Case 0's agent covers finance/*.
    expect(await withTenant(db.database, tenantOf(0), (tx) => candidates(tx.$client, tenantOf(0)))).toEqual([agentOf(0)]);
    expect(await withTenant(db.database, tenantOf(1), (tx) => candidates(tx.$client, tenantOf(0)))).toEqual([]);
    // A system transaction (no tenant of its own) names the tenant.
    expect(await candidates(db.database.pool, tenantOf(0))).toEqual([agentOf(0)]);
  });

  it("runs the app's statements without JIT compilation", async () => {
    // A generic plan's cost can pass jit_above_cost for a big tenant; compiling then costs
    // more than the statement (see client.ts).
    const { rows } = await db.database.pool.query(`SELECT current_setting('jit') AS jit`);
    expect(rows[0].jit).toBe("off");
  });
});
