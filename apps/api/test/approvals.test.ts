import { agentRuntime, providerCache } from "@bosun/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyAgent, createKey, createTenant, createTestApp, problem, type TestApp, type TestTenant } from "../../../test/helpers/app";

/**
 * Approvals and the inbox over HTTP, with runs suspended by the real runtime (in process,
 * on the test's database): approve resumes the run and the tool runs once, deny reaches
 * the agent, a decided approval answers 409, and the inbox gathers what needs a person.
 */

let t: TestApp;
let acme: TestTenant;
let other: TestTenant;

const q = async <T = Record<string, unknown>>(sql: string, values: unknown[] = []) => (await t.db.database.pool.query(sql, values)).rows as T[];
const get = (url: string, auth = acme.auth) => t.app.inject({ method: "GET", url, headers: auth });
const post = (url: string, payload: object, auth = acme.auth) => t.app.inject({ method: "POST", url, headers: auth, payload });

const runtime = (id: string) => agentRuntime({ database: t.db.database, jobs: t.jobs, tasks: t.services.tasks, provider: providerCache(), workerId: id, leaseTtlSeconds: 5 });

/** An agent whose first call is create_task over the approval threshold; runs it until it suspends. */
async function suspended(name: string, title: string) {
  const agent = await applyAgent(t.app, acme, name, {
    model: {
      provider: "scripted",
      name: "scripted-small",
      script: [{ call: "create_task", input: { title, assignee: "stock", action_value_usd: 1200 } }],
    },
    approval: { on_action_value_usd_gt: 1000 },
  });
  const run = await post(`/v1/agents/${name}/runs`, { input: "buy" });
  expect(run.statusCode).toBe(201);
  await runtime(`w-${name}`).wake({ tenantId: acme.tenantId, agentId: agent.id });
  const list = await get(`/v1/approvals?agent=${name}&status=pending`);
  expect(list.json().items).toHaveLength(1);
  return { agent, runId: run.json().id as string, approval: list.json().items[0] };
}

beforeAll(async () => {
  t = await createTestApp();
  acme = await createTenant(t.app, "Acme");
  other = await createTenant(t.app, "Other");
  await applyAgent(t.app, acme, "stock");
});
afterAll(() => t?.close());

describe("approvals over HTTP", () => {
  it("shows the suspended call; approving resumes the run and the tool runs once; the same request again is 409", async () => {
    const { agent, runId, approval } = await suspended("buyer", "order 40 servers");
    expect(approval).toMatchObject({
      status: "pending",
      agent: "buyer",
      runId,
      runStatus: "waiting",
      tool: "create_task",
      ref: "create_task",
      input: { title: "order 40 servers", action_value_usd: 1200 },
      rule: { source: "descriptor", name: "spec.approval.on_action_value_usd_gt" },
      actionValueUsd: 1200,
      decidedAt: null,
      comment: null,
      decidedBy: null,
    });
    expect(approval.reason).toMatch(/\$1200\.00 is over the agent's approval threshold of \$1000\.00/);
    expect((await get(`/v1/approvals/${approval.id}`)).json()).toEqual(approval);

    // An operator (write scope) may decide; a read key or the agent's own key may not.
    const operator = await createKey(t.app, acme, { scopes: ["write"] });
    const reader = await createKey(t.app, acme, { scopes: ["read"] });
    const agentKey = await createKey(t.app, acme, { scopes: ["admin"], agent: "buyer" });
    for (const auth of [reader.auth, agentKey.auth]) expect(problem(await post(`/v1/approvals/${approval.id}/approve`, {}, auth)).code).toBe("FORBIDDEN");

    const approved = await post(`/v1/approvals/${approval.id}/approve`, { comment: "budgeted in Q3" }, operator.auth);
    expect(approved.statusCode).toBe(200);
    expect(approved.json()).toMatchObject({ status: "approved", comment: "budgeted in Q3", decidedBy: { type: "api_key", id: operator.id } });
    expect(approved.json().decidedAt).not.toBeNull();
    const again = await post(`/v1/approvals/${approval.id}/approve`, { comment: "budgeted in Q3" }, operator.auth);
    expect(again.statusCode).toBe(409);
    expect(problem(again)).toMatchObject({ code: "CONFLICT", detail: expect.stringContaining("already approved") });
    expect(problem(await post(`/v1/approvals/${approval.id}/deny`, {}, operator.auth)).code).toBe("CONFLICT");

    await runtime("w-buyer-2").wake({ tenantId: acme.tenantId, agentId: agent.id });
    await runtime("w-buyer-3").wake({ tenantId: acme.tenantId, agentId: agent.id });
    expect((await q(`SELECT count(*)::int AS n FROM tasks WHERE title = 'order 40 servers'`))[0]).toEqual({ n: 1 });
    expect((await get(`/v1/runs/${runId}`)).json()).toMatchObject({ status: "succeeded" });
    const steps = (await get(`/v1/runs/${runId}/steps`)).json().items as { kind: string; name: string }[];
    expect(steps.map((s) => s.kind)).toEqual(["llm", "approval", "tool", "llm"]);

    const audit = await q<{ action: string; actor_id: string }>(`SELECT action, actor_id FROM audit_events WHERE target_type = 'approval' AND target_id = $1`, [approval.id]);
    expect(audit).toEqual([{ action: "approval.approve", actor_id: operator.id }]);
  });

  it("denies with a comment: the run resumes and the agent reads the denial", async () => {
    const { agent, runId, approval } = await suspended("spender", "buy a yacht");
    const denied = await post(`/v1/approvals/${approval.id}/deny`, { comment: "no yachts" });
    expect(denied.json()).toMatchObject({ status: "denied", comment: "no yachts", decidedBy: { type: "api_key" } });
    await runtime("w-spender-2").wake({ tenantId: acme.tenantId, agentId: agent.id });
    expect((await q(`SELECT count(*)::int AS n FROM tasks WHERE title = 'buy a yacht'`))[0]).toEqual({ n: 0 });
    expect((await get(`/v1/runs/${runId}`)).json()).toMatchObject({ status: "succeeded" });
    const steps = (await get(`/v1/runs/${runId}/steps`)).json().items as { kind: string; status: string; output: { content: string } }[];
    const result = steps.find((s) => s.kind === "tool")!;
    expect(result.status).toBe("error");
    expect(JSON.parse(result.output.content)).toMatchObject({ denied: true, comment: "no yachts", by: { type: "api_key" } });

    // Filters: by status and agent, newest first, paged.
    expect((await get("/v1/approvals?status=denied")).json().items.map((a: { id: string }) => a.id)).toEqual([approval.id]);
    const all = (await get("/v1/approvals?limit=1")).json();
    expect(all.items).toHaveLength(1);
    expect(all.items[0].id).toBe(approval.id);
    const rest = (await get(`/v1/approvals?limit=50&cursor=${all.nextCursor}`)).json();
    expect(rest.items.map((a: { status: string }) => a.status)).toContain("approved");
    expect(problem(await get("/v1/approvals?cursor=bm9wZQ")).code).toBe("BAD_REQUEST");
    expect(problem(await get("/v1/approvals?status=maybe")).code).toBe("VALIDATION");
  });

  it("keeps a tenant's approvals from another tenant", async () => {
    const { approval } = await suspended("secretive", "secret purchase");
    expect((await get("/v1/approvals", other.auth)).json().items).toEqual([]);
    expect(problem(await get(`/v1/approvals/${approval.id}`, other.auth)).code).toBe("NOT_FOUND");
    expect(problem(await post(`/v1/approvals/${approval.id}/approve`, {}, other.auth)).code).toBe("NOT_FOUND");
    expect((await get(`/v1/approvals/${approval.id}`)).json().status).toBe("pending");
    // Cancelling the run cancels its approval: it leaves the inbox.
    expect((await post(`/v1/runs/${approval.runId}/cancel`, {})).statusCode).toBe(200);
    expect((await get(`/v1/approvals/${approval.id}`)).json().status).toBe("cancelled");
  });
});

describe("the inbox", () => {
  it("lists a queued task whose dependency will never be done, once, until it is cancelled", async () => {
    const fresh = await createTenant(t.app, "Blocked");
    const auth = fresh.auth;
    const first = (await post("/v1/tasks", { title: "fetch the statements", domain: "finance/statements" }, auth)).json();
    const second = (await post("/v1/tasks", { title: "fetch the invoices", domain: "finance/invoices" }, auth)).json();
    const after = (await post("/v1/tasks", { title: "reconcile", domain: "finance/ledger", depends_on: [first.id, second.id] }, auth)).json();
    expect((await get("/v1/inbox?kind=task", auth)).json().items).toEqual([]);
    // Both dependencies end without being done: one row for the blocked task, naming both.
    expect((await post(`/v1/tasks/${first.id}/cancel`, {}, auth)).statusCode).toBe(200);
    expect((await post(`/v1/tasks/${second.id}/cancel`, {}, auth)).statusCode).toBe(200);
    const items = (await get("/v1/inbox", auth)).json().items;
    expect(items).toHaveLength(1);
    const [firstId, secondId] = [first.id, second.id].sort();
    expect(items[0]).toMatchObject({ kind: "task", id: after.id, title: "reconcile", summary: `blocked: ${firstId} is cancelled, ${secondId} is cancelled`, links: { taskId: after.id } });
    // Another tenant sees nothing of it; cancelled, it leaves the inbox.
    expect((await get("/v1/inbox", other.auth)).json().items).toEqual([]);
    expect((await post(`/v1/tasks/${after.id}/cancel`, {}, auth)).statusCode).toBe(200);
    expect((await get("/v1/inbox", auth)).json().items).toEqual([]);
  });

  it("gathers pending approvals, escalated tasks, agents paused by a budget and escalated proposals, newest first", async () => {
    const fresh = await createTenant(t.app, "Inbox");
    const auth = fresh.auth;
    const wake = (agentId: string) => agentRuntime({ database: t.db.database, jobs: t.jobs, tasks: t.services.tasks, provider: providerCache(), workerId: "w-inbox", leaseTtlSeconds: 5 }).wake({ tenantId: fresh.tenantId, agentId });
    expect((await get("/v1/inbox", auth)).json()).toEqual({ items: [], nextCursor: null });

    // 1. An escalated task: one attempt, its lease ran out.
    await applyAgent(t.app, fresh, "worker");
    const workerKey = await createKey(t.app, fresh, { scopes: ["write"], agent: "worker" });
    const task = (await post("/v1/tasks", { title: "reconcile the ledger", assignee: "worker", max_attempts: 1 }, auth)).json();
    expect((await post(`/v1/tasks/${task.id}/claim`, { ttlSeconds: 60 }, workerKey.auth)).statusCode).toBe(200);
    await q(`UPDATE tasks SET lease_expires_at = now() - interval '1 second' WHERE id = $1`, [task.id]);
    expect(await t.services.tasks.recoverExpiredLeases()).toMatchObject({ escalated: 1 });

    // 2. An agent its daily budget paused (and one an operator paused, which is not for the inbox).
    const broke = await applyAgent(t.app, fresh, "broke", { budgets: { usd_per_day: 0.000001 } });
    await post("/v1/agents/broke/runs", { input: "spend" }, auth);
    await wake(broke.id);
    expect((await get("/v1/agents/broke", auth)).json().status).toBe("paused");
    await applyAgent(t.app, fresh, "resting");
    expect((await post("/v1/agents/resting/pause", {}, auth)).statusCode).toBe(200);

    // 3. A pending approval.
    const gated = await applyAgent(t.app, fresh, "gated", { model: { provider: "scripted", name: "scripted-small", script: [{ call: "send_message", input: { to: "worker", body: "hi" } }] } });
    expect((await post("/v1/policies", { name: "ask-before-messages", agent: "gated", match: { tool: "send_message" }, decision: "require_approval" }, auth)).statusCode).toBe(201);
    await post("/v1/agents/gated/runs", { input: "say hi" }, auth);
    await wake(gated.id);

    // 4. An escalated proposal.
    await q(
      `INSERT INTO proposals (tenant_id, id, title, domains, proposer_type, proposer_id, status, approve_at, escalate_at, escalated_at)
       VALUES ($1, 'prp_00000000000000000000000000', 'move invoices to finance', '["finance/invoices"]', 'user', 'usr_x', 'escalated', now(), now(), now())`,
      [fresh.tenantId],
    );

    const inbox = (await get("/v1/inbox", auth)).json();
    expect(inbox.nextCursor).toBeNull();
    expect(inbox.items.map((i: { kind: string }) => i.kind)).toEqual(["proposal", "approval", "agent", "task"]);
    const [proposal, approval, paused, escalated] = inbox.items;
    expect(proposal).toMatchObject({ id: "prp_00000000000000000000000000", title: "move invoices to finance", links: { proposalId: "prp_00000000000000000000000000" } });
    expect(approval).toMatchObject({ title: "Approve send_message", agent: "gated", links: { approvalId: approval.id, runId: expect.any(String), agentId: gated.id } });
    expect(approval.summary).toMatch(/policy 'ask-before-messages'/);
    expect(paused).toMatchObject({ id: broke.id, agent: "broke", title: "Agent broke paused by a budget", summary: expect.stringMatching(/^budget bud_\w+ exhausted$/) });
    expect(escalated).toMatchObject({ id: task.id, title: "reconcile the ledger", agent: "worker", links: { taskId: task.id } });

    // Paged one at a time, the same items in the same order; filtered by kind.
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { items: { id: string }[]; nextCursor: string | null } = (await get(`/v1/inbox?limit=1${cursor ? `&cursor=${cursor}` : ""}`, auth)).json();
      seen.push(...page.items.map((i) => i.id));
      cursor = page.nextCursor;
    } while (cursor);
    expect(seen).toEqual(inbox.items.map((i: { id: string }) => i.id));
    expect((await get("/v1/inbox?kind=task", auth)).json().items.map((i: { id: string }) => i.id)).toEqual([task.id]);
    expect(problem(await get("/v1/inbox?cursor=WyJ4IiwieSIsInoiXQ", auth)).code).toBe("BAD_REQUEST");

    // Decided, it leaves the inbox; another tenant sees none of it.
    expect((await post(`/v1/approvals/${approval.id}/approve`, {}, auth)).statusCode).toBe(200);
    expect((await get("/v1/inbox?kind=approval", auth)).json().items).toEqual([]);
    expect((await get("/v1/inbox", other.auth)).json().items).toEqual([]);
    const agentKey = await createKey(t.app, fresh, { scopes: ["read"], agent: "worker" });
    expect(problem(await get("/v1/inbox", agentKey.auth)).code).toBe("FORBIDDEN");
  });
});
