/**
 * The runtime's claim travels with its transaction's BEGIN (rt.claimNextRunStatements):
 * what it claims, what it refuses to claim, the run it starts, its audit events, and the
 * task that gains an unfinished dependency between the lock and the claim.
 */
import { agentRuntime, createServices, type DomainServices, providerCache, systemActor } from "@bosun/core";
import { inlinePrepared, queryBatch, repo, withTenant } from "@bosun/db";
import { createJobs, type Jobs } from "@bosun/jobs";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDb, type TestDb } from "../../../test/helpers/db";
import { recordQueries } from "../../../test/helpers/queries";

let db: TestDb;
let jobs: Jobs;
let services: DomainServices;
let tenantId: string;
let agentId: string;

const q = async <T = Record<string, unknown>>(sql: string, values: unknown[] = []) => (await db.database.pool.query(sql, values)).rows as T[];
const actor = () => systemActor(tenantId, "test");
const createTask = (title: string, more: Record<string, unknown> = {}) =>
  services.tasks.create(actor(), { title, body: "", priority: 50, depends_on: [], requires_review: false, max_attempts: 3, domain: "claims/x", ...more }).then((r) => r.body);
const runtime = () => agentRuntime({ database: db.database, jobs, tasks: services.tasks, provider: providerCache(), workerId: "claims", leaseTtlSeconds: 30 });

/** The agent's session lease, held as a worker would (the claim locks only under it); `fence` to claim under. */
let fence = { owner: "claims-test", epoch: 0 };
async function holdLease() {
  await q(`INSERT INTO agent_sessions (tenant_id, agent_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`, [tenantId, agentId]);
  const [s] = await q<{ epoch: string }>(
    `UPDATE agent_sessions SET lease_owner = 'claims-test', lease_epoch = lease_epoch + 1, lease_expires_at = now() + interval '1 minute'
     WHERE tenant_id = $1 AND agent_id = $2 RETURNING lease_epoch AS epoch`,
    [tenantId, agentId],
  );
  fence = { owner: "claims-test", epoch: Number(s!.epoch) };
}
const releaseLease = () => q(`UPDATE agent_sessions SET lease_owner = NULL, lease_expires_at = NULL WHERE tenant_id = $1 AND agent_id = $2`, [tenantId, agentId]);

/** The claim's statements, sent one by one on `client` inside an open tenant transaction, under `fence`. */
async function claimStatements(client: pg.PoolClient, runId: string, under = fence) {
  const stmts = repo.runtime.claimNextRunStatements({
    tenantId,
    agentId,
    fence: under,
    leaseOwner: `run:${runId}`,
    ttlSeconds: 150,
    run: { id: runId, traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", limits: { maxSteps: 5, maxTokens: 1000, maxWallMs: 60_000 } },
  });
  const results: pg.QueryResult[] = [];
  for (const s of stmts) results.push(await client.query(inlinePrepared(s)));
  return results;
}

async function inTenantTx<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
  const c = await db.database.pool.connect();
  try {
    await c.query(`BEGIN; SET LOCAL role bosun_app; SET LOCAL bosun.tenant_id = '${tenantId}'`);
    return await fn(c);
  } finally {
    await c.query("ROLLBACK");
    c.release();
  }
}

beforeAll(async () => {
  db = await createTestDb();
  jobs = createJobs({ connectionString: db.url, role: "producer", max: 2 });
  await jobs.start();
  services = createServices({ database: db.database, jobs, secureCookies: false });
  const signup = await services.identity.signup({ tenant: { name: "Claims", timeZone: "UTC" }, owner: { email: "claims@example.com", password: "claims-password-1" } });
  tenantId = signup.tenant.id;
  const a = await services.agents.apply(actor(), "claimer", {
    apiVersion: "agent.os/v1",
    kind: "Agent",
    metadata: { name: "claimer", owner: "tests" },
    spec: { model: { provider: "scripted", name: "scripted-small" }, domains: ["claims/*"] },
  });
  agentId = a.body.id;
});

afterAll(async () => {
  await jobs?.stop({ graceful: false, timeout: 1000 });
  await db?.drop();
});

describe("the claim sent with the BEGIN", () => {
  it("claims the highest-priority task in one round trip with the fence, starts its run with the task's text, and audits the claim", async () => {
    const low = await createTask("low", { priority: 10 });
    const high = await createTask("Reconcile March", { priority: 90, body: "  the ledger  \n\n\t" });
    const recording = recordQueries();
    const seen = recording.sent;
    let outcome: Awaited<ReturnType<ReturnType<typeof runtime>["wake"]>>;
    try {
      outcome = await runtime().wake({ tenantId, agentId });
    } finally {
      recording.stop();
    }
    expect(outcome).toEqual({ outcome: "ran", runs: 2 });
    // The claim went with the BEGIN and the fence; the per-row claim queries were not sent.
    // (Prepared once on the connection, then EXECUTEd: the PREPARE goes ahead of the BEGIN.)
    const begins = seen.filter((s) => /^(PREPARE [^;]*;\n)*BEGIN/.test(s) || s.startsWith("PREPARE"));
    expect(begins.filter((s) => s.includes("EXECUTE bosun_b_claim_lock(") && s.includes("EXECUTE bosun_b_claim_start("))).toHaveLength(3);
    // That round trip is the whole transaction: the claim's audit events are written in it
    // (from the claimed row), and it ends with the COMMIT; the first call's preparation,
    // with no budget to hold, writes nothing and sends nothing.
    const claims = begins.filter((s) => s.includes("EXECUTE bosun_b_claim_lock("));
    expect(claims.every((s) => s.includes("EXECUTE bosun_b_claim_audit(") && s.endsWith("COMMIT"))).toBe(true);
    expect(seen.filter((s) => s.includes('"action":"task.claim"'))).toEqual([]);
    // Its commit does not wait for the WAL flush (see nextRun): the step's commit, which does, flushes it first.
    expect(begins.filter((s) => s.includes("EXECUTE bosun_b_claim_lock(") && s.includes("SET LOCAL synchronous_commit = off"))).toHaveLength(3);
    expect(seen.filter((s) => s.includes("synchronous_commit") && !s.includes("bosun_b_claim_lock"))).toEqual([]);
    expect(seen.filter((s) => /skip locked/i.test(s) && /from "tasks"/i.test(s))).toEqual([]);
    // The first call's prompt layers were read in that round trip too, after the claim.
    expect(seen.filter((s) => s === "bosun_memory_prompt_reads")).toEqual([]);
    expect(begins.filter((s) => s.indexOf("EXECUTE bosun_b_memory_prompt_reads_if_claim_locked(") > s.indexOf("EXECUTE bosun_b_claim_start("))).toHaveLength(3);
    // The model's turn is two round trips. With its BEGIN (after the fence): the model's
    // step, its charge, and the task's row lock, in that order.
    const unprepared = (s: string) => s.replace(/^(PREPARE [^;]*;\n)*/, "");
    const turns = seen.map(unprepared).filter((s) => s.startsWith("BEGIN") && s.includes("EXECUTE bosun_b_insert_step_update_run("));
    expect(turns).toHaveLength(2);
    for (const t of turns) {
      const at = ["EXECUTE bosun_b_fence(", "EXECUTE bosun_b_insert_step_update_run(", "EXECUTE bosun_b_charge_and_take(", "EXECUTE bosun_b_task_for_write("].map((x) => t.indexOf(x));
      expect(at.every((i) => i > 0)).toBe(true);
      expect([...at].sort((a, b) => a - b)).toEqual(at);
    }
    // With its COMMIT: complete_task's savepoint, the task's completion, the tool's step and
    // the audit events; with no task depending on this one, no lookup of dependents was made.
    const commits = seen.map(unprepared).filter((s) => s.includes("EXECUTE bosun_b_complete_task("));
    expect(commits).toHaveLength(2);
    for (const c of commits) {
      expect(c.startsWith("SAVEPOINT tool_in_turn;\nEXECUTE bosun_b_audit_insert(")).toBe(true);
      expect(c).toContain("EXECUTE bosun_b_insert_step_update_run_held(");
      expect(c).toContain("EXECUTE bosun_b_audit_insert(");
      expect(c.endsWith("COMMIT")).toBe(true);
    }
    // Nothing of the turn went in a round trip of its own.
    expect(seen.filter((s) => /^SAVEPOINT \w+$/.test(s) || /^(bosun_runtime_insert_step_update_run|bosun_costs_charge_and_take)$/.test(s))).toEqual([]);
    expect(seen.filter((s) => unprepared(s).startsWith("EXECUTE bosun_b_task_for_write("))).toEqual([]);
    expect(seen.filter((s) => /from "task_dependencies"/i.test(s) || /^update "tasks"/.test(s))).toEqual([]);

    const [h] = await q<{ status: string; lease_epoch: string; run_id: string }>(`SELECT status, lease_epoch, run_id FROM tasks WHERE id = $1`, [high.id]);
    expect(h).toMatchObject({ status: "done", lease_epoch: "1" });
    const [run] = await q<{ input: { kind: string; text: string; task: { id: string; epoch: number; leaseOwner: string } }; task_id: string; trigger: string; created_at: Date }>(
      `SELECT input, task_id, trigger, created_at FROM runs WHERE id = $1`,
      [h!.run_id],
    );
    // The same text the runtime built in TypeScript: `Task <id>: <title>\n\n<body>`, trimmed.
    expect(run!.input).toEqual({ kind: "task", text: `Task ${high.id}: Reconcile March\n\n  the ledger`, task: { id: high.id, epoch: 1, leaseOwner: `run:${h!.run_id}` } });
    expect(run).toMatchObject({ task_id: high.id, trigger: "task" });
    const [lowRun] = await q<{ input: { text: string }; created_at: Date }>(`SELECT r.input, r.created_at FROM runs r JOIN tasks t ON t.run_id = r.id WHERE t.id = $1`, [low.id]);
    expect(lowRun!.input.text).toBe(`Task ${low.id}: low`);
    // Highest priority first.
    expect(run!.created_at.getTime()).toBeLessThanOrEqual(lowRun!.created_at.getTime());

    const events = await services.audit.list(actor(), { targetId: high.id, limit: 50 });
    // The claim started the task in the same statement: one event records both.
    expect(events.items.map((e) => e.action).sort()).toEqual(["task.claim", "task.complete", "task.create"]);
    const claim = events.items.find((e) => e.action === "task.claim")!;
    expect(claim).toMatchObject({
      actor: { type: "agent", id: agentId },
      before: { status: "queued", leaseEpoch: 0 },
      after: { status: "in_progress", leaseEpoch: 1, claimedByAgentId: agentId, runId: h!.run_id },
    });
    // As JavaScript's toISOString writes it, as the tasks service's own claim event does.
    expect((claim.after as { leaseExpiresAt: string }).leaseExpiresAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(Object.keys(claim.after as object).sort()).toEqual(["claimedByAgentId", "leaseEpoch", "leaseExpiresAt", "runId", "status"]);
    expect(claim.requestId ?? null).toBeNull();
  });

  it("reads the spend context with the claim from an agent's second run on, and again when its descriptor changed", async () => {
    const rtm = runtime();
    const recording = recordQueries();
    const seen = recording.sent;
    const named = () => seen.filter((s) => s === "bosun_costs_spend_context_prices").length;
    const withBegin = () => seen.filter((s) => s.includes("EXECUTE bosun_b_spend_context_prices_if_claim_locked(")).length;
    try {
      await createTask("first of the shape");
      await rtm.wake({ tenantId, agentId });
      expect(named()).toBe(1);
      // (The wake's last look for work, after the run, already sends it, gated off.)
      const sent = withBegin();
      await createTask("second of the shape");
      await rtm.wake({ tenantId, agentId });
      expect(named()).toBe(1);
      expect(withBegin()).toBeGreaterThan(sent);
      // A new descriptor (its spec hash): the read that went with the claim is not used.
      await services.agents.apply(actor(), "claimer", {
        apiVersion: "agent.os/v1",
        kind: "Agent",
        metadata: { name: "claimer", owner: "tests" },
        spec: { model: { provider: "scripted", name: "scripted-small" }, domains: ["claims/*", "claims-too/*"] },
      });
      await createTask("after the change");
      await rtm.wake({ tenantId, agentId });
      expect(named()).toBe(2);
    } finally {
      recording.stop();
    }
    const runs = await q<{ status: string }>(`SELECT r.status FROM runs r JOIN tasks t ON t.id = r.task_id WHERE t.title IN ('first of the shape', 'second of the shape', 'after the change')`);
    expect(runs.map((r) => r.status)).toEqual(["succeeded", "succeeded", "succeeded"]);
  });

  it("a completion wakes the agent of a task it unblocks", async () => {
    const other = await services.agents.apply(actor(), "waiter", {
      apiVersion: "agent.os/v1",
      kind: "Agent",
      metadata: { name: "waiter", owner: "tests" },
      spec: { model: { provider: "scripted", name: "scripted-small" }, domains: ["waiting/*"] },
    });
    const first = await createTask("first of two");
    const then = await createTask("then", { domain: "waiting/x", depends_on: [first.id] });
    const wakesFor = async (id: string) =>
      (await q<{ n: number }>(`SELECT count(*)::int AS n FROM pgboss.job WHERE name = 'agent.wake' AND data->>'agentId' = $1`, [id]))[0]!.n;
    const before = await wakesFor(other.body.id);
    await runtime().wake({ tenantId, agentId });
    expect((await q<{ status: string }>(`SELECT status FROM tasks WHERE id = $1`, [first.id]))[0]!.status).toBe("done");
    expect(await wakesFor(other.body.id)).toBe(before + 1);
    expect((await q<{ status: string }>(`SELECT status FROM tasks WHERE id = $1`, [then.id]))[0]!.status).toBe("queued");
    await q(`UPDATE tasks SET status = 'cancelled' WHERE id = $1`, [then.id]);
  });

  it("locks nothing for a paused agent, nor while the agent has a run to resume, nor under a lease the worker no longer holds", async () => {
    const t = await createTask("held back");
    await holdLease();
    // A lease taken over since (a higher epoch, or another owner): nothing is locked.
    for (const stale of [{ ...fence, epoch: fence.epoch - 1 }, { ...fence, owner: "someone-else" }]) {
      const r = await inTenantTx((c) => claimStatements(c, "run_stale_000000000000000000", stale));
      expect(repo.runtime.claimedRun(r)).toEqual({ locked: null, task: null, run: null });
    }
    await q(`UPDATE agents SET status = 'paused' WHERE id = $1`, [agentId]);
    try {
      const paused = await inTenantTx((c) => claimStatements(c, "run_paused_00000000000000000"));
      expect(repo.runtime.claimedRun(paused)).toEqual({ locked: null, task: null, run: null });
    } finally {
      await q(`UPDATE agents SET status = 'active' WHERE id = $1`, [agentId]);
    }
    await q(
      `INSERT INTO runs (tenant_id, id, agent_id, root_run_id, traceparent, trigger, status, limits, input)
       VALUES ($1, 'run_resumable_000000000000000', $2, 'run_resumable_000000000000000', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', 'message', 'running', '{}', '{}')`,
      [tenantId, agentId],
    );
    try {
      const resumable = await inTenantTx((c) => claimStatements(c, "run_resume_00000000000000000"));
      expect(repo.runtime.claimedRun(resumable)).toEqual({ locked: null, task: null, run: null });
    } finally {
      await q(`DELETE FROM runs WHERE id = 'run_resumable_000000000000000'`);
    }
    // And with neither, the same statements take it.
    const free = await inTenantTx((c) => claimStatements(c, "run_free_0000000000000000000"));
    const claimed = repo.runtime.claimedRun(free);
    expect(claimed.locked).toBe(t.id);
    expect(claimed.task).toMatchObject({ id: t.id, status: "in_progress", leaseEpoch: 1, claimedByAgentId: agentId });
    expect(claimed.run).toMatchObject({ id: "run_free_0000000000000000000", taskId: t.id, status: "running", trigger: "task" });
    // (rolled back: the task is still queued)
    expect((await q<{ status: string }>(`SELECT status FROM tasks WHERE id = $1`, [t.id]))[0]!.status).toBe("queued");
    await q(`UPDATE tasks SET status = 'cancelled' WHERE id = $1`, [t.id]);
    await releaseLease();
  });

  it("does not claim a locked task that gained an unfinished dependency before the claim; the runtime then claims another", async () => {
    const blocker = await createTask("blocker", { domain: "elsewhere/x" });
    const first = await createTask("first", { priority: 80 });
    const second = await createTask("second", { priority: 20 });
    await holdLease();
    const stmts = repo.runtime.claimNextRunStatements({
      tenantId,
      agentId,
      fence,
      leaseOwner: "run:x",
      ttlSeconds: 150,
      run: { id: "run_dep_000000000000000000000", traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", limits: { maxSteps: 5, maxTokens: 1000, maxWallMs: 60_000 } },
    });
    const results = await inTenantTx(async (c) => {
      const lock = await c.query(inlinePrepared(stmts[0]!));
      // Another transaction adds a dependency to the locked task and commits (a row lock of
      // NO KEY UPDATE strength does not stop the key-share lock the insert takes).
      await q(`INSERT INTO task_dependencies (tenant_id, task_id, depends_on_id) VALUES ($1, $2, $3)`, [tenantId, first.id, blocker.id]);
      // (And these two as the runtime sends them: prepared, one round trip.)
      return [lock, ...(await queryBatch(c, stmts.slice(1)))];
    });
    expect(repo.runtime.claimedRun(results)).toEqual({ locked: first.id, task: null, run: null });
    await releaseLease();

    // Through the runtime: `first` waits for its dependency, `second` is done.
    await runtime().wake({ tenantId, agentId });
    const rows = await q<{ id: string; status: string }>(`SELECT id, status FROM tasks WHERE id = ANY($1) ORDER BY priority DESC`, [[first.id, second.id]]);
    expect(rows).toEqual([
      { id: first.id, status: "queued" },
      { id: second.id, status: "done" },
    ]);
    // `second` was claimed by the fallback (the tasks service writes its events): the same
    // shape as those the claim's own statement writes (the first test).
    const secondEvents = (await services.audit.list(actor(), { targetId: second.id, limit: 50 })).items;
    expect(secondEvents.map((e) => e.action).sort()).toEqual(["task.claim", "task.complete", "task.create"]);
    const claimEvent = secondEvents.find((e) => e.action === "task.claim");
    const secondRun = (await q<{ run_id: string }>(`SELECT run_id FROM tasks WHERE id = $1`, [second.id]))[0]!.run_id;
    expect(claimEvent).toMatchObject({
      actor: { type: "agent", id: agentId },
      before: { status: "queued", leaseEpoch: 0 },
      after: { status: "in_progress", leaseEpoch: 1, claimedByAgentId: agentId, runId: secondRun },
    });
    expect(Object.keys(claimEvent!.after as object).sort()).toEqual(["claimedByAgentId", "leaseEpoch", "leaseExpiresAt", "runId", "status"]);
    expect((claimEvent!.after as { leaseExpiresAt: string }).leaseExpiresAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    // The fallback's own claim passes over the task the lock found (claimAndStartInTx's `exclude`).
    await q(`DELETE FROM task_dependencies WHERE task_id = $1`, [first.id]);
    const none = await withTenant(db.database, tenantId, (tx) =>
      services.tasks.claimAndStartInTx(tx, { tenantId, agentId, leaseOwner: "run:y", ttlSeconds: 150, runId: "run_y", exclude: [first.id] }, async (task) => task.id),
    );
    expect(none).toBeNull();
    expect((await q<{ status: string }>(`SELECT status FROM tasks WHERE id = $1`, [first.id]))[0]!.status).toBe("queued");
  });
});
