import { systemActor, taskService } from "@bosun/core";
import { repo, withTenant } from "@bosun/db";
import type { LightMyRequestResponse } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyAgent, createKey, createTenant, createTestApp, problem, type TestApp, type TestTenant } from "../../../test/helpers/app";

let t: TestApp;
let acme: TestTenant;
type Auth = { authorization: string };
/** Agent keys (write scope, bound to the agent) by agent name, and agent ids. */
const key: Record<string, Auth> = {};
const agentId: Record<string, string> = {};

async function agent(name: string, domains: string[] = ["test/*"]) {
  const a = await applyAgent(t.app, acme, name, { domains });
  agentId[name] = a.id;
  key[name] = (await createKey(t.app, acme, { scopes: ["write"], agent: name })).auth;
  return a;
}

beforeAll(async () => {
  t = await createTestApp();
  acme = await createTenant(t.app);
  await agent("alice", ["finance/*"]);
  await agent("bob", ["finance/**"]);
  await agent("carol", ["hr/*"]);
});
afterAll(() => t.close());

const create = (body: Record<string, unknown>, auth: Auth = acme.auth) => t.app.inject({ method: "POST", url: "/v1/tasks", headers: auth, payload: body });

async function newTask(body: Record<string, unknown>) {
  const res = await create({ title: "a task", ...body });
  if (res.statusCode !== 201) throw new Error(`task creation failed: ${res.statusCode} ${res.body}`);
  return res.json() as { id: string; status: string };
}

const post = (auth: Auth, id: string, action: string, payload: Record<string, unknown> = {}) =>
  t.app.inject({ method: "POST", url: `/v1/tasks/${id}/${action}`, headers: auth, payload });
const get = async (id: string) => (await t.app.inject({ url: `/v1/tasks/${id}`, headers: acme.auth })).json();

async function claimed(auth: Auth, id: string, ttlSeconds = 300) {
  const res = await post(auth, id, "claim", { ttlSeconds });
  expect(res.statusCode, res.body).toBe(200);
  return res.json() as { leaseEpoch: number; status: string; leaseExpiresAt: string };
}

function expectConflict(res: LightMyRequestResponse, message: RegExp) {
  expect(res.statusCode, res.body).toBe(409);
  expect(problem(res)).toMatchObject({ code: "CONFLICT", detail: expect.stringMatching(message) });
}

async function auditActions(taskId: string) {
  return withTenant(t.db.database, acme.tenantId, (tx) => repo.listAuditForTarget(tx, { tenantId: acme.tenantId, targetType: "task", targetId: taskId }));
}

/** Runs the lease sweep after pushing these tasks' leases into the past. */
async function expireLeases(...ids: string[]) {
  await t.db.database.pool.query("UPDATE tasks SET lease_expires_at = now() - interval '1 second' WHERE id = ANY($1)", [ids]);
  return t.services.tasks.recoverExpiredLeases();
}

const wakeJobs = async (forAgent: string) =>
  (
    await t.db.database.pool.query<{ data: { tenantId: string; agentId: string; reason: string }; singleton_key: string }>(
      "SELECT data, singleton_key FROM pgboss.job WHERE name = 'agent.wake' AND data->>'agentId' = $1",
      [forAgent],
    )
  ).rows;

describe("creating, reading, changing and cancelling", () => {
  it("documents every task route in the OpenAPI document", async () => {
    const doc = (await t.app.inject({ url: "/docs/json" })).json();
    for (const action of ["cancel", "claim", "start", "heartbeat", "complete", "fail", "review"]) {
      expect(doc.paths[`/v1/tasks/{id}/${action}`]?.post, action).toBeDefined();
    }
    expect(doc.paths["/v1/tasks"].post.requestBody.content["application/json"].schema).toBeDefined();
    expect(Object.keys(doc.paths["/v1/tasks/{id}/complete"].post.responses)).toEqual(expect.arrayContaining(["200", "404", "409", "422"]));
  });


  it("creates with defaults, gets with dependencies, lists newest first with filters and a cursor", async () => {
    const first = await create({ title: "Reconcile March", body: "All invoices.", assignee: "alice", priority: 70 });
    expect(first.statusCode).toBe(201);
    expect(first.json()).toMatchObject({
      title: "Reconcile March",
      body: "All invoices.",
      priority: 70,
      status: "queued",
      assigneeAgentId: agentId.alice,
      domain: null,
      requiresReview: false,
      reviewerAgentId: null,
      maxAttempts: 3,
      attempts: 0,
      leaseEpoch: 0,
      leaseExpiresAt: null,
      result: null,
      createdBy: { type: "api_key", id: expect.stringMatching(/^key_/) },
      dependencies: [],
    });
    const a = first.json();
    const b = await newTask({ title: "Invoices for April", domain: "finance/invoices", depends_on: [a.id] });
    const c = await newTask({ title: "Hire", assignee: "carol" });
    expect(b).toMatchObject({ priority: 50, dependencies: [{ id: a.id, title: "Reconcile March", status: "queued" }] });
    expect(await get(b.id)).toMatchObject({ id: b.id, domain: "finance/invoices", dependencies: [{ id: a.id, status: "queued" }] });

    const list = await t.app.inject({ url: "/v1/tasks", headers: acme.auth });
    expect(list.statusCode).toBe(200);
    const ids = list.json().items.map((i: { id: string }) => i.id);
    expect(ids.indexOf(c.id)).toBeLessThan(ids.indexOf(b.id));
    expect(ids.indexOf(b.id)).toBeLessThan(ids.indexOf(a.id));
    expect(list.json().items[0]).not.toHaveProperty("dependencies");

    const forAlice = await t.app.inject({ url: "/v1/tasks?assignee=alice", headers: acme.auth });
    expect(forAlice.json().items.map((i: { id: string }) => i.id)).toContain(a.id);
    expect(forAlice.json().items.every((i: { assigneeAgentId: string }) => i.assigneeAgentId === agentId.alice)).toBe(true);
    const nobody = await t.app.inject({ url: "/v1/tasks?assignee=nobody", headers: acme.auth });
    expect(nobody.json()).toEqual({ items: [], nextCursor: null });

    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const q: string = cursor ? `&cursor=${encodeURIComponent(cursor)}` : "";
      const res = await t.app.inject({ url: `/v1/tasks?limit=1${q}`, headers: acme.auth });
      expect(res.json().items.length).toBeLessThanOrEqual(1);
      seen.push(...res.json().items.map((i: { id: string }) => i.id));
      cursor = res.json().nextCursor;
    } while (cursor);
    expect(seen).toEqual(ids);

    expect((await t.app.inject({ url: "/v1/tasks?cursor=garbage", headers: acme.auth })).statusCode).toBe(400);
    expect((await t.app.inject({ url: `/v1/tasks/tsk_${"0".repeat(26)}`, headers: acme.auth })).statusCode).toBe(404);
  });

  it("updates an unfinished task and cancels it, auditing each change; a cancelled task stays as it is", async () => {
    const task = await newTask({ title: "Draft", assignee: "alice" });
    const patched = await t.app.inject({ method: "PATCH", url: `/v1/tasks/${task.id}`, headers: acme.auth, payload: { title: "Final", priority: 90 } });
    expect(patched.statusCode).toBe(200);
    expect(patched.json()).toMatchObject({ title: "Final", priority: 90, body: "", dependencies: [] });

    const cancel = await post(acme.auth, task.id, "cancel");
    expect(cancel.statusCode).toBe(200);
    expect(cancel.json()).toMatchObject({ status: "cancelled", completedAt: expect.any(String) });
    expect((await post(acme.auth, task.id, "cancel")).json().status).toBe("cancelled");
    expectConflict(await t.app.inject({ method: "PATCH", url: `/v1/tasks/${task.id}`, headers: acme.auth, payload: { title: "Again" } }), /cancelled/);
    expectConflict(await post(key.alice!, task.id, "claim"), /is cancelled, not queued/);

    const events = await auditActions(task.id);
    expect(events.map((e) => e.action)).toEqual(["task.create", "task.update", "task.cancel"]);
    expect(events[1]).toMatchObject({ before: { title: "Draft", priority: 50 }, after: { title: "Final", priority: 90 } });
    expect(events[2]).toMatchObject({ before: { status: "queued" }, after: { status: "cancelled" } });

    const cancelled = await t.app.inject({ url: "/v1/tasks?status=cancelled", headers: acme.auth });
    expect(cancelled.json().items.map((i: { id: string }) => i.id)).toContain(task.id);
    expect(cancelled.json().items.every((i: { status: string }) => i.status === "cancelled")).toBe(true);
  });

  it("refuses an unknown or retired agent, both assignee and domain, unknown dependencies and a reviewer that is the assignee", async () => {
    await agent("gone");
    expect((await t.app.inject({ method: "POST", url: "/v1/agents/gone/retire", headers: acme.auth })).statusCode).toBe(200);
    const cases: [Record<string, unknown>, string, RegExp][] = [
      [{ title: "x", assignee: "nobody" }, "assignee", /no such agent/],
      [{ title: "x", assignee: "gone" }, "assignee", /retired/],
      [{ title: "x", assignee: "alice", domain: "finance/x" }, "assignee", /either an assignee or a domain/],
      [{ title: "x" }, "assignee", /either an assignee or a domain/],
      [{ title: "x", assignee: "alice", depends_on: [`tsk_${"0".repeat(26)}`] }, "depends_on.0", /no such task/],
      [{ title: "x", assignee: "alice", requires_review: true, reviewer: "alice" }, "reviewer", /must not be the assignee/],
      [{ title: "x", assignee: "alice", reviewer: "bob" }, "reviewer", /requires_review/],
      [{ title: "x", assignee: "alice", requires_review: true, reviewer: "gone" }, "reviewer", /retired/],
      [{ title: "x", domain: "finance/*" }, "domain", /domain path/],
    ];
    const before = (await t.db.database.pool.query("SELECT count(*)::int AS n FROM tasks")).rows[0].n;
    for (const [body, path, message] of cases) {
      const res = await create(body);
      expect(res.statusCode, JSON.stringify(body)).toBe(422);
      expect(problem(res).errors).toContainEqual({ path, message: expect.stringMatching(message) });
    }
    const cancelled = await newTask({ assignee: "alice" });
    await post(acme.auth, cancelled.id, "cancel");
    const onCancelled = await create({ title: "x", assignee: "alice", depends_on: [cancelled.id] });
    expect(problem(onCancelled).errors).toEqual([{ path: "depends_on.0", message: expect.stringMatching(/cancelled/) }]);
    expect((await t.app.inject({ method: "PATCH", url: `/v1/tasks/${cancelled.id}`, headers: acme.auth, payload: {} })).statusCode).toBe(422);
    expect((await t.db.database.pool.query("SELECT count(*)::int AS n FROM tasks")).rows[0].n).toBe(before + 1);
  });

  it("lets an agent create tasks and change only its own", async () => {
    const mine = await create({ title: "sub-task", assignee: "bob" }, key.alice);
    expect(mine.statusCode).toBe(201);
    expect(mine.json().createdBy).toEqual({ type: "agent", id: agentId.alice });
    const theirs = await newTask({ assignee: "alice" });
    const patch = (id: string) => t.app.inject({ method: "PATCH", url: `/v1/tasks/${id}`, headers: key.alice!, payload: { priority: 1 } });
    expect((await patch(mine.json().id)).statusCode).toBe(200);
    expect((await patch(theirs.id)).statusCode).toBe(403);
    expect((await post(key.alice!, theirs.id, "cancel")).statusCode).toBe(403);
  });
});

describe("dependencies", () => {
  it("makes a chain A ← B ← C claimable in order only", async () => {
    const a = await newTask({ title: "A", assignee: "alice" });
    const b = await newTask({ title: "B", assignee: "alice", depends_on: [a.id] });
    const c = await newTask({ title: "C", assignee: "alice", depends_on: [b.id] });
    const claimable = () => withTenant(t.db.database, acme.tenantId, (tx) => repo.hasClaimableTask(tx, { tenantId: acme.tenantId, agentId: agentId.alice! }));
    // Other tests leave alice's own queued tasks behind; count only this chain's.
    await t.db.database.pool.query("UPDATE tasks SET status = 'cancelled' WHERE tenant_id = $1 AND assignee_agent_id = $2 AND status = 'queued' AND id <> ALL($3)", [
      acme.tenantId,
      agentId.alice,
      [a.id, b.id, c.id],
    ]);

    expectConflict(await post(key.alice!, c.id, "claim"), new RegExp(`waits for unfinished dependencies: ${b.id}`));
    expectConflict(await post(key.alice!, b.id, "claim"), new RegExp(a.id));
    const leaseA = await claimed(key.alice!, a.id);
    expect(await claimable()).toBe(false);
    expect((await post(key.alice!, a.id, "complete", { epoch: leaseA.leaseEpoch, result: { ok: true } })).statusCode).toBe(200);
    expect(await claimable()).toBe(true);
    expect((await get(b.id)).dependencies).toEqual([{ id: a.id, title: "A", status: "done" }]);

    expectConflict(await post(key.alice!, c.id, "claim"), new RegExp(b.id));
    // The runtime's claim takes the only claimable one, B.
    const next = await t.services.tasks.claimNextForAgent({ tenantId: acme.tenantId, agentId: agentId.alice!, leaseOwner: "worker-1:run_x", ttlSeconds: 60 });
    expect(next).toMatchObject({ id: b.id, status: "claimed", leaseEpoch: 1, claimedByAgentId: agentId.alice });
    expect(await t.services.tasks.claimNextForAgent({ tenantId: acme.tenantId, agentId: agentId.alice!, leaseOwner: "worker-1:run_y", ttlSeconds: 60 })).toBeNull();
    // Over REST the runtime's lease is not the key's.
    expectConflict(await post(key.alice!, b.id, "complete", { epoch: 1, result: "done" }), /leased to another claimant/);
    await withTenant(t.db.database, acme.tenantId, (tx) =>
      t.services.tasks.completeInTx(tx, { tenantId: acme.tenantId, taskId: b.id, agentId: agentId.alice!, leaseOwner: "worker-1:run_x", epoch: 1, result: "B done" }),
    );
    const leaseC = await claimed(key.alice!, c.id);
    expect(leaseC.leaseEpoch).toBe(1);
  });

  it("refuses a cycle made by adding a dependency, naming it in order, and writes nothing", async () => {
    const a = await newTask({ title: "A", assignee: "carol" });
    const b = await newTask({ title: "B", assignee: "carol", depends_on: [a.id] });
    const c = await newTask({ title: "C", assignee: "carol", depends_on: [b.id] });
    const state = async () =>
      (
        await t.db.database.pool.query(
          `SELECT (SELECT count(*)::int FROM task_dependencies WHERE tenant_id = $1) AS deps,
                  (SELECT count(*)::int FROM audit_events WHERE tenant_id = $1) AS audit,
                  (SELECT updated_at FROM tasks WHERE id = $2) AS updated`,
          [acme.tenantId, a.id],
        )
      ).rows[0];
    const before = await state();
    const res = await t.app.inject({ method: "PATCH", url: `/v1/tasks/${a.id}`, headers: acme.auth, payload: { title: "A2", add_depends_on: [c.id] } });
    expect(res.statusCode).toBe(422);
    expect(problem(res)).toMatchObject({
      code: "VALIDATION",
      detail: `dependency cycle: ${a.id} → ${c.id} → ${b.id} → ${a.id}`,
      errors: [{ path: "add_depends_on", message: expect.stringContaining(`${a.id} → ${c.id} → ${b.id} → ${a.id}`) }],
    });
    const self = await t.app.inject({ method: "PATCH", url: `/v1/tasks/${b.id}`, headers: acme.auth, payload: { add_depends_on: [b.id] } });
    expect(problem(self).detail).toBe(`dependency cycle: ${b.id} → ${b.id}`);
    expect(await state()).toEqual(before);
    expect((await get(a.id)).title).toBe("A");

    // A dependency that closes no cycle is added, and blocks the task until it is done.
    const d = await newTask({ title: "D", assignee: "carol" });
    const ok = await t.app.inject({ method: "PATCH", url: `/v1/tasks/${a.id}`, headers: acme.auth, payload: { add_depends_on: [d.id, d.id] } });
    expect(ok.statusCode, ok.body).toBe(200);
    expect(ok.json().dependencies).toEqual([{ id: d.id, title: "D", status: "queued" }]);
    expectConflict(await post(key.carol!, a.id, "claim"), new RegExp(d.id));
    // Only while queued.
    const lease = await claimed(key.carol!, d.id);
    const late = await t.app.inject({ method: "PATCH", url: `/v1/tasks/${d.id}`, headers: acme.auth, payload: { add_depends_on: [c.id] } });
    expectConflict(late, /only while a task is queued/);
    expect(lease.leaseEpoch).toBe(1);
  });

  it("refuses the two halves of a cycle added at the same time", async () => {
    const a = await newTask({ title: "A", assignee: "carol" });
    const b = await newTask({ title: "B", assignee: "carol" });
    const [ab, ba] = await Promise.all([
      t.app.inject({ method: "PATCH", url: `/v1/tasks/${a.id}`, headers: acme.auth, payload: { add_depends_on: [b.id] } }),
      t.app.inject({ method: "PATCH", url: `/v1/tasks/${b.id}`, headers: acme.auth, payload: { add_depends_on: [a.id] } }),
    ]);
    expect([ab.statusCode, ba.statusCode].sort()).toEqual([200, 422]);
    const edges = await t.db.database.pool.query("SELECT task_id FROM task_dependencies WHERE task_id = ANY($1)", [[a.id, b.id]]);
    expect(edges.rowCount).toBe(1);
  });
});

describe("leases over REST", () => {
  it("claims, heartbeats, starts and completes with an agent key, auditing each step", async () => {
    const task = await newTask({ title: "Invoices", domain: "finance/invoices" });
    const before = Date.now();
    const lease = await claimed(key.alice!, task.id, 120);
    expect(lease).toMatchObject({ status: "claimed", leaseEpoch: 1, claimedByAgentId: agentId.alice });
    const expires = new Date(lease.leaseExpiresAt).getTime();
    expect(expires).toBeGreaterThan(before + 110_000);
    expect(expires).toBeLessThan(Date.now() + 130_000);

    const hb = await post(key.alice!, task.id, "heartbeat", { epoch: 1, ttlSeconds: 600 });
    expect(hb.statusCode).toBe(200);
    expect(new Date(hb.json().leaseExpiresAt).getTime()).toBeGreaterThan(expires + 400_000);
    expect((await post(key.alice!, task.id, "start", { epoch: 1 })).json().status).toBe("in_progress");
    const done = await post(key.alice!, task.id, "complete", { epoch: 1, result: { reconciled: 42 } });
    expect(done.statusCode).toBe(200);
    expect(done.json()).toMatchObject({ status: "done", result: { reconciled: 42 }, leaseExpiresAt: null, completedAt: expect.any(String) });
    expectConflict(await post(key.alice!, task.id, "complete", { epoch: 1, result: { again: true } }), /lease lost: .* is done/);

    const events = await auditActions(task.id);
    expect(events.map((e) => [e.action, e.actorType, e.actorId])).toEqual([
      ["task.create", "api_key", expect.stringMatching(/^key_/)],
      ["task.claim", "agent", agentId.alice],
      ["task.heartbeat", "agent", agentId.alice],
      ["task.start", "agent", agentId.alice],
      ["task.complete", "agent", agentId.alice],
    ]);
    expect(events[4]).toMatchObject({ before: { status: "in_progress", leaseEpoch: 1 }, after: { status: "done", result: { reconciled: 42 } } });
  });

  it("lets only an agent whose key covers the task claim it", async () => {
    const forAlice = await newTask({ assignee: "alice" });
    const deep = await newTask({ domain: "finance/invoices/2026" });
    expect((await post(acme.auth, forAlice.id, "claim")).statusCode).toBe(403);
    expect(problem(await post(key.bob!, forAlice.id, "claim")).detail).toMatch(/assigned to another agent/);
    // finance/* is one segment; finance/** any depth.
    expect(problem(await post(key.alice!, deep.id, "claim")).detail).toMatch(/does not cover/);
    expect(problem(await post(key.carol!, deep.id, "claim")).detail).toMatch(/does not cover/);
    expect((await claimed(key.bob!, deep.id)).leaseEpoch).toBe(1);
    expect((await post(key.alice!, forAlice.id, "claim", { ttlSeconds: 3601 })).statusCode).toBe(422);

    const readOnly = await createKey(t.app, acme, { scopes: ["read"], agent: "alice" });
    expect((await post(readOnly.auth, forAlice.id, "claim")).statusCode).toBe(403);
    await t.app.inject({ method: "POST", url: "/v1/agents/alice/pause", headers: acme.auth });
    expectConflict(await post(key.alice!, forAlice.id, "claim"), /paused/);
    await t.app.inject({ method: "POST", url: "/v1/agents/alice/resume", headers: acme.auth });
    expect((await claimed(key.alice!, forAlice.id)).leaseEpoch).toBe(1);
  });

  it("refuses done without a result", async () => {
    const task = await newTask({ assignee: "alice" });
    const { leaseEpoch: epoch } = await claimed(key.alice!, task.id);
    for (const payload of [{ epoch }, { epoch, result: null }, { epoch, result: {} }, { epoch, result: [] }, { epoch, result: "  " }]) {
      const res = await post(key.alice!, task.id, "complete", payload);
      expect(res.statusCode, JSON.stringify(payload)).toBe(422);
      expect(problem(res).errors?.map((e) => e.path)).toEqual(["result"]);
    }
    expect((await get(task.id)).status).toBe("claimed");

    // The runtime's path holds to the same rule.
    await agent("runner", ["runner/*"]);
    const other = await newTask({ domain: "runner/x" });
    const lease = { tenantId: acme.tenantId, agentId: agentId.runner!, leaseOwner: "worker-9:run_z" };
    const c = await t.services.tasks.claimNextForAgent({ ...lease, ttlSeconds: 60 });
    expect(c?.id).toBe(other.id);
    await expect(
      withTenant(t.db.database, acme.tenantId, (tx) => t.services.tasks.completeInTx(tx, { ...lease, taskId: other.id, epoch: c!.leaseEpoch, result: {} })),
    ).rejects.toThrow(/done needs a result/);
    expect((await get(other.id)).status).toBe("claimed");
  });

  it("refuses a stale epoch after the lease expired and another agent claimed the task", async () => {
    const task = await newTask({ title: "Contested", domain: "finance/ledger" });
    const first = await claimed(key.alice!, task.id);
    expect(first.leaseEpoch).toBe(1);
    const swept = await expireLeases(task.id);
    expect(swept.requeued).toBeGreaterThanOrEqual(1);
    expect(await get(task.id)).toMatchObject({ status: "queued", attempts: 1, leaseEpoch: 1, claimedByAgentId: null, failure: { error: "lease expired" } });
    expectConflict(await post(key.alice!, task.id, "heartbeat", { epoch: 1 }), /lease lost: .* is queued/);

    const second = await claimed(key.bob!, task.id);
    expect(second.leaseEpoch).toBe(2);
    const stale = await post(key.alice!, task.id, "complete", { epoch: 1, result: { by: "alice" } });
    expectConflict(stale, /lease lost: epoch 1 is not the task's current lease \(epoch 2\)/);
    // The right epoch is not enough without the lease: it is bob's key's.
    expectConflict(await post(key.alice!, task.id, "complete", { epoch: 2, result: { by: "alice" } }), /leased to another claimant/);
    expect((await post(key.bob!, task.id, "complete", { epoch: 2, result: { by: "bob" } })).statusCode).toBe(200);
    expect(await get(task.id)).toMatchObject({ status: "done", result: { by: "bob" }, claimedByAgentId: agentId.bob, attempts: 1 });
    const actions = (await auditActions(task.id)).map((e) => e.action);
    expect(actions).toEqual(["task.create", "task.claim", "task.lease_expired", "task.claim", "task.complete"]);
  });

  it("escalates once max_attempts leases have expired, and fails once retries are spent", async () => {
    const task = await newTask({ assignee: "carol", max_attempts: 2 });
    await claimed(key.carol!, task.id);
    await expireLeases(task.id);
    expect(await get(task.id)).toMatchObject({ status: "queued", attempts: 1 });
    await claimed(key.carol!, task.id);
    const swept = await expireLeases(task.id);
    expect(swept.escalated).toBeGreaterThanOrEqual(1);
    expect(await get(task.id)).toMatchObject({ status: "escalated", attempts: 2, leaseEpoch: 2, claimedByAgentId: agentId.carol });
    expectConflict(await post(key.carol!, task.id, "claim"), /escalated/);
    expect((await auditActions(task.id)).map((e) => e.action).slice(-1)).toEqual(["task.escalate"]);
    // Nothing is left for the sweep.
    expect(await t.services.tasks.recoverExpiredLeases()).toEqual({ requeued: 0, escalated: 0 });

    const flaky = await newTask({ assignee: "carol", max_attempts: 2 });
    let lease = await claimed(key.carol!, flaky.id);
    const retry = await post(key.carol!, flaky.id, "fail", { epoch: lease.leaseEpoch, error: "upstream timeout", retry: true });
    expect(retry.json()).toMatchObject({ status: "queued", attempts: 1, failure: { error: "upstream timeout" } });
    lease = await claimed(key.carol!, flaky.id);
    const spent = await post(key.carol!, flaky.id, "fail", { epoch: lease.leaseEpoch, error: "still down", retry: true });
    expect(spent.json()).toMatchObject({ status: "failed", attempts: 2, completedAt: expect.any(String) });
    const noRetry = await newTask({ assignee: "carol" });
    lease = await claimed(key.carol!, noRetry.id);
    expect((await post(key.carol!, noRetry.id, "fail", { epoch: lease.leaseEpoch, error: "cannot" })).json()).toMatchObject({ status: "failed", attempts: 1 });
  });

  it("cancelling a claimed task makes the claimant's next write a lost lease", async () => {
    const task = await newTask({ assignee: "alice" });
    const lease = await claimed(key.alice!, task.id);
    expect((await post(acme.auth, task.id, "cancel")).json()).toMatchObject({ status: "cancelled", leaseExpiresAt: null });
    expectConflict(await post(key.alice!, task.id, "complete", { epoch: lease.leaseEpoch, result: "late" }), /lease lost: .* is cancelled/);
  });
});

describe("the runtime's side", () => {
  it("claims by priority then age, heartbeats until the lease is lost, and fails with a retry", async () => {
    await agent("rt", ["rt/**"]);
    const lease = { tenantId: acme.tenantId, agentId: agentId.rt!, leaseOwner: "worker-2:run_a" };
    const low = await newTask({ domain: "rt/a", priority: 10 });
    const high1 = await newTask({ domain: "rt/a/b", priority: 90 });
    const high2 = await newTask({ domain: "rt/c", priority: 90 });
    expect(await t.services.tasks.hasClaimableTask({ tenantId: acme.tenantId, agentId: agentId.rt! })).toBe(true);
    const order = [];
    for (let i = 0; i < 3; i++) order.push((await t.services.tasks.claimNextForAgent({ ...lease, ttlSeconds: 60 }))!.id);
    expect(order).toEqual([high1.id, high2.id, low.id]);
    expect(await t.services.tasks.hasClaimableTask({ tenantId: acme.tenantId, agentId: agentId.rt! })).toBe(false);

    const write = { ...lease, taskId: low.id, epoch: 1 };
    expect(await t.services.tasks.heartbeatLease({ ...write, ttlSeconds: 120 })).toBe(true);
    expect(await t.services.tasks.heartbeatLease({ ...write, epoch: 2, ttlSeconds: 120 })).toBe(false);
    await withTenant(t.db.database, acme.tenantId, (tx) => t.services.tasks.startInTx(tx, write));
    expect((await get(low.id)).status).toBe("in_progress");
    await expireLeases(low.id);
    expect(await t.services.tasks.heartbeatLease({ ...write, ttlSeconds: 120 })).toBe(false);

    const again = (await t.services.tasks.claimNextForAgent({ ...lease, ttlSeconds: 60 }))!;
    expect(again).toMatchObject({ id: low.id, leaseEpoch: 2, attempts: 1 });
    const failed = await withTenant(t.db.database, acme.tenantId, (tx) =>
      t.services.tasks.failInTx(tx, { ...lease, taskId: low.id, epoch: 2, error: "tool error", retry: true }),
    );
    expect(failed).toMatchObject({ status: "queued", attempts: 2 });
    expect((await auditActions(low.id)).map((e) => [e.action, e.actorType])).toEqual([
      ["task.create", "api_key"],
      ["task.claim", "agent"],
      ["task.heartbeat", "agent"],
      ["task.start", "agent"],
      ["task.lease_expired", "system"],
      ["task.claim", "agent"],
      ["task.fail", "agent"],
    ]);
  });

  it("the lease sweep covers every tenant", async () => {
    const other = await createTenant(t.app, "Other");
    await applyAgent(t.app, other, "elsewhere");
    const otherKey = (await createKey(t.app, other, { scopes: ["write"], agent: "elsewhere" })).auth;
    const theirs = await create({ title: "theirs", assignee: "elsewhere" }, other.auth);
    const ours = await newTask({ assignee: "carol" });
    await claimed(otherKey, theirs.json().id);
    await claimed(key.carol!, ours.id);
    expect(await expireLeases(theirs.json().id, ours.id)).toEqual({ requeued: 2, escalated: 0 });
    const rows = await t.db.database.pool.query("SELECT tenant_id, status, attempts FROM tasks WHERE id = ANY($1) ORDER BY tenant_id", [[theirs.json().id, ours.id]]);
    expect(rows.rows.map((r) => [r.status, r.attempts])).toEqual([
      ["queued", 1],
      ["queued", 1],
    ]);
  });
});

describe("review", () => {
  it("a person approves or requests changes when there is no reviewer agent", async () => {
    const task = await newTask({ title: "Close the books", assignee: "alice", requires_review: true });
    let lease = await claimed(key.alice!, task.id);
    const review = await post(key.alice!, task.id, "complete", { epoch: lease.leaseEpoch, result: { draft: 1 } });
    expect(review.json()).toMatchObject({ status: "in_review", result: { draft: 1 }, completedAt: null, leaseExpiresAt: null });
    expect((await post(key.bob!, task.id, "review", { decision: "approve" })).statusCode).toBe(403);
    const readKey = await createKey(t.app, acme, { scopes: ["read"] });
    expect((await post(readKey.auth, task.id, "review", { decision: "approve" })).statusCode).toBe(403);
    expect((await post(acme.auth, task.id, "review", { decision: "request_changes" })).statusCode).toBe(422);

    const changes = await post(acme.auth, task.id, "review", { decision: "request_changes", comment: "Add the March accruals." });
    expect(changes.statusCode).toBe(200);
    expect(changes.json()).toMatchObject({ status: "queued", reviewComment: "Add the March accruals.", attempts: 0, claimedByAgentId: null });
    expectConflict(await post(acme.auth, task.id, "review", { decision: "approve" }), /not in_review/);

    lease = await claimed(key.alice!, task.id);
    expect(lease.leaseEpoch).toBe(2);
    await post(key.alice!, task.id, "complete", { epoch: 2, result: { draft: 2 } });
    const approved = await post(acme.auth, task.id, "review", { decision: "approve", comment: "Good." });
    expect(approved.json()).toMatchObject({ status: "done", result: { draft: 2 }, reviewComment: "Good.", completedAt: expect.any(String) });
    const actions = (await auditActions(task.id)).map((e) => e.action);
    expect(actions).toEqual(["task.create", "task.claim", "task.complete", "task.review", "task.claim", "task.complete", "task.review"]);
  });

  it("a reviewer agent reviews with its own key, and is woken when the task goes to review", async () => {
    await agent("auditor", ["audit/*"]);
    const task = await newTask({ assignee: "alice", requires_review: true, reviewer: "auditor" });
    const lease = await claimed(key.alice!, task.id);
    expect(await wakeJobs(agentId.auditor!)).toHaveLength(0);
    await post(key.alice!, task.id, "complete", { epoch: lease.leaseEpoch, result: "ready" });
    expect(await wakeJobs(agentId.auditor!)).toHaveLength(1);
    expect((await post(acme.auth, task.id, "review", { decision: "approve" })).statusCode).toBe(403);
    expect((await post(key.auditor!, task.id, "review", { decision: "approve" })).json()).toMatchObject({ status: "done" });
  });
});

describe("waking agents", () => {
  it("enqueues agent.wake in the create's transaction, and none when the create fails", async () => {
    await agent("waker");
    expect(await wakeJobs(agentId.waker!)).toEqual([]);
    await newTask({ assignee: "waker" });
    const jobs = await wakeJobs(agentId.waker!);
    expect(jobs).toEqual([{ data: { tenantId: acme.tenantId, agentId: agentId.waker, reason: "task" }, singleton_key: `${acme.tenantId}:${agentId.waker}` }]);

    await agent("quiet");
    const refused = await create({ title: "x", assignee: "quiet", depends_on: [`tsk_${"1".repeat(26)}`] });
    expect(refused.statusCode).toBe(422);
    expect(await wakeJobs(agentId.quiet!)).toEqual([]);

    // A failure after the job was sent rolls the job back with the task.
    const failing = taskService({
      database: t.db.database,
      jobs: {
        enqueue: async (...args: Parameters<typeof t.jobs.enqueue>) => {
          await t.jobs.enqueue(...args);
          throw new Error("crash after enqueue");
        },
      },
    });
    const actor = systemActor(acme.tenantId, "test");
    await expect(
      failing.create(actor, { title: "doomed", body: "", priority: 50, assignee: "quiet", depends_on: [], requires_review: false, max_attempts: 3 }),
    ).rejects.toThrow("crash after enqueue");
    expect(await wakeJobs(agentId.quiet!)).toEqual([]);
    expect((await t.db.database.pool.query("SELECT 1 FROM tasks WHERE title = 'doomed'")).rowCount).toBe(0);
  });

  it("wakes one active agent covering a domain, and a dependent's agent only once it is unblocked", async () => {
    await agent("ops-1", ["ops/*"]);
    await agent("ops-2", ["ops/**"]);
    await agent("ops-3", ["ops/*"]);
    await t.app.inject({ method: "POST", url: "/v1/agents/ops-3/pause", headers: acme.auth });
    await newTask({ domain: "ops/deploys" });
    // One task needs one agent: one of the two active ones, never the paused one.
    expect((await wakeJobs(agentId["ops-1"]!)).length + (await wakeJobs(agentId["ops-2"]!)).length).toBe(1);
    expect(await wakeJobs(agentId["ops-3"]!)).toHaveLength(0);

    await agent("later");
    const first = await newTask({ assignee: "carol" });
    await newTask({ assignee: "later", depends_on: [first.id] });
    expect(await wakeJobs(agentId.later!)).toHaveLength(0);
    const lease = await claimed(key.carol!, first.id);
    await post(key.carol!, first.id, "complete", { epoch: lease.leaseEpoch, result: "ok" });
    expect(await wakeJobs(agentId.later!)).toHaveLength(1);
  });
});
