import { systemActor, taskService } from "@bosun/core";
import { createDatabase, type Database, withTenant } from "@bosun/db";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyAgent, createKey, createTenant, createTestApp, type TestApp, type TestTenant } from "../../../test/helpers/app";

/**
 * Claims raced for real: several claimers on their own connections over the same tasks.
 * Every task must be claimed once and completed once, which the audit trail (one event per
 * mutation, in the mutation's transaction) shows exactly.
 */

let t: TestApp;
let acme: TestTenant;
const CLAIMERS = 4;
const TASKS = 200;

beforeAll(async () => {
  t = await createTestApp();
  acme = await createTenant(t.app);
});
afterAll(() => t.close());

async function createTasks(domain: string, n: number): Promise<string[]> {
  const actor = systemActor(acme.tenantId, "test");
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const r = await t.services.tasks.create(actor, {
      title: `job ${i}`,
      body: "",
      priority: i % 5,
      domain,
      depends_on: [],
      requires_review: false,
      max_attempts: 3,
    });
    ids.push(r.body.id);
  }
  return ids;
}

/** Per task: how many claim and complete events the audit trail holds, and its final state. */
async function tally(ids: string[]) {
  const { rows } = await t.db.database.pool.query<{ id: string; status: string; claims: number; completes: number; result: { by: string } }>(
    `SELECT t.id, t.status, t.result,
            count(*) FILTER (WHERE e.action = 'task.claim')::int AS claims,
            count(*) FILTER (WHERE e.action = 'task.complete')::int AS completes
     FROM tasks t LEFT JOIN audit_events e ON e.tenant_id = t.tenant_id AND e.target_type = 'task' AND e.target_id = t.id
     WHERE t.tenant_id = $1 AND t.id = ANY($2) GROUP BY t.tenant_id, t.id`,
    [acme.tenantId, ids],
  );
  return rows;
}

function shuffled<T>(xs: T[]): T[] {
  const a = [...xs];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

describe("racing claimers", () => {
  it("over REST: four agent keys race over 200 tasks; each is claimed and completed exactly once", async () => {
    const agents: { id: string; auth: { authorization: string } }[] = [];
    for (let i = 0; i < CLAIMERS; i++) {
      const a = await applyAgent(t.app, acme, `rest-${i}`, { domains: ["rest/*"] });
      agents.push({ id: a.id, auth: (await createKey(t.app, acme, { scopes: ["write"], agent: `rest-${i}` })).auth });
    }
    const ids = await createTasks("rest/batch", TASKS);
    const won = new Map<string, string[]>();
    const statuses = new Map<number, number>();
    await Promise.all(
      agents.map(async (a) => {
        won.set(a.id, []);
        for (const id of shuffled(ids)) {
          const claim = await t.app.inject({ method: "POST", url: `/v1/tasks/${id}/claim`, headers: a.auth, payload: { ttlSeconds: 60 } });
          statuses.set(claim.statusCode, (statuses.get(claim.statusCode) ?? 0) + 1);
          if (claim.statusCode !== 200) continue;
          const done = await t.app.inject({
            method: "POST",
            url: `/v1/tasks/${id}/complete`,
            headers: a.auth,
            payload: { epoch: claim.json().leaseEpoch, result: { by: a.id } },
          });
          expect(done.statusCode, done.body).toBe(200);
          won.get(a.id)!.push(id);
        }
      }),
    );
    // Losing claims are refused as conflicts, never as errors.
    expect([...statuses.keys()].sort()).toEqual([200, 409]);
    expect(statuses.get(200)).toBe(TASKS);
    const all = [...won.values()].flat();
    expect(all).toHaveLength(TASKS);
    expect(new Set(all).size).toBe(TASKS);
    const rows = await tally(ids);
    expect(rows).toHaveLength(TASKS);
    for (const r of rows) {
      expect({ id: r.id, status: r.status, claims: r.claims, completes: r.completes }).toEqual({ id: r.id, status: "done", claims: 1, completes: 1 });
      expect(won.get(r.result.by)).toContain(r.id);
    }
  });

  it("through the runtime: four workers on their own pools drain 200 tasks, each claimed and completed once", async () => {
    const agentIds: string[] = [];
    for (let i = 0; i < CLAIMERS; i++) agentIds.push((await applyAgent(t.app, acme, `runtime-${i}`, { domains: ["runtime/**"] })).id);
    const ids = await createTasks("runtime/batch/a", TASKS);
    const pools: Database[] = Array.from({ length: CLAIMERS }, () => createDatabase(t.db.url, { max: 2, applicationName: "bosun-test-claimer" }));
    try {
      const got = await Promise.all(
        pools.map(async (database, i) => {
          const tasks = taskService({ database, jobs: t.jobs });
          const agentId = agentIds[i]!;
          const leaseOwner = `worker-${i}`;
          const mine: { id: string; priority: number }[] = [];
          for (;;) {
            const c = await tasks.claimNextForAgent({ tenantId: acme.tenantId, agentId, leaseOwner, ttlSeconds: 60 });
            if (!c) break;
            await withTenant(database, acme.tenantId, (tx) =>
              tasks.completeInTx(tx, { tenantId: acme.tenantId, taskId: c.id, agentId, leaseOwner, epoch: c.leaseEpoch, result: { by: agentId } }),
            );
            mine.push({ id: c.id, priority: c.priority });
          }
          return mine;
        }),
      );
      const all = got.flat().map((g) => g.id);
      expect(all).toHaveLength(TASKS);
      expect(new Set(all).size).toBe(TASKS);
      // Every worker got some of the work, and each took higher priorities first.
      for (const mine of got) {
        expect(mine.length).toBeGreaterThan(0);
        const priorities = mine.map((m) => m.priority);
        expect(priorities).toEqual([...priorities].sort((x, y) => y - x));
      }
      const rows = await tally(ids);
      for (const r of rows) expect({ status: r.status, claims: r.claims, completes: r.completes }).toEqual({ status: "done", claims: 1, completes: 1 });
    } finally {
      await Promise.all(pools.map((p) => p.close()));
    }
  });

  it("the same claim sent twice at once: one lease, one conflict", async () => {
    await applyAgent(t.app, acme, "twice", { domains: ["twice/*"] });
    const auth = (await createKey(t.app, acme, { scopes: ["write"], agent: "twice" })).auth;
    for (const id of await createTasks("twice/x", 5)) {
      const send = () => t.app.inject({ method: "POST", url: `/v1/tasks/${id}/claim`, headers: auth, payload: { ttlSeconds: 60 } });
      const [a, b] = await Promise.all([send(), send()]);
      expect([a.statusCode, b.statusCode].sort()).toEqual([200, 409]);
      const [row] = await tally([id]);
      expect(row).toMatchObject({ status: "claimed", claims: 1 });
      expect((a.statusCode === 200 ? a : b).json().leaseEpoch).toBe(1);
    }
  });
});
