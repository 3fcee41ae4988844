import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyAgent, createKey, createTenant, createTestApp, problem, type TestApp, type TestTenant } from "../../../test/helpers/app";

/**
 * Ownership over REST: an agent's own key writes only inside the domains its descriptor
 * covers; outside them it gets 403 OUTSIDE_DOMAIN, told to make a proposal, and nothing is
 * written. (The runtime's tools are covered in apps/worker/test/proposals.test.ts.)
 */

let t: TestApp;
let acme: TestTenant;
let finKey: { authorization: string };

const createTask = (body: Record<string, unknown>, auth = finKey) => t.app.inject({ method: "POST", url: "/v1/tasks", headers: auth, payload: body });
const taskCount = async () => (await t.db.database.pool.query<{ n: number }>("SELECT count(*)::int AS n FROM tasks WHERE tenant_id = $1", [acme.tenantId])).rows[0]!.n;

beforeAll(async () => {
  t = await createTestApp();
  acme = await createTenant(t.app, "Acme");
  await applyAgent(t.app, acme, "fin", { domains: ["finance/*"] });
  await applyAgent(t.app, acme, "ops", { domains: ["ops/*"] });
  finKey = (await createKey(t.app, acme, { scopes: ["write"], agent: "fin" })).auth;
});
afterAll(() => t?.close());

describe("an agent's key", () => {
  it("creates tasks in its own domains", async () => {
    const res = await createTask({ title: "mine", domain: "finance/invoices" });
    expect(res.statusCode).toBe(201);
  });

  it("is refused outside them with OUTSIDE_DOMAIN and told to make a proposal; nothing is written", async () => {
    const before = await taskCount();
    for (const domain of ["ops/deploys", "finance/invoices/2026", "finance"]) {
      const res = await createTask({ title: "not mine", domain });
      expect(res.statusCode, domain).toBe(403);
      const p = problem(res);
      expect(p.code).toBe("OUTSIDE_DOMAIN");
      expect(p.detail).toContain(`domain '${domain}'`);
      expect(p.detail).toContain("finance/*");
      expect(p.detail).toContain("POST /v1/proposals");
      expect(p.detail).toContain("propose");
    }
    expect(await taskCount()).toBe(before);
    // The way it is told to take works: a proposal to the owners of that domain.
    const proposal = await t.app.inject({ method: "POST", url: "/v1/proposals", headers: finKey, payload: { title: "ops task", domains: ["ops/deploys"] } });
    expect(proposal.statusCode).toBe(201);
    expect(proposal.json().responses.map((r: { agent: string }) => r.agent)).toEqual(["ops"]);
  });

  it("may still ask a named agent for work (a task without a domain is a request, like a message)", async () => {
    const res = await createTask({ title: "for ops", assignee: "ops" });
    expect(res.statusCode).toBe(201);
  });

  it("cannot change or cancel its own task once the task's domain is no longer its own", async () => {
    const task = (await createTask({ title: "moving", domain: "finance/moving" })).json();
    expect((await t.app.inject({ method: "PATCH", url: `/v1/tasks/${task.id}`, headers: finKey, payload: { priority: 70 } })).statusCode).toBe(200);
    await applyAgent(t.app, acme, "fin", { domains: ["finance/ledger"] });
    const patch = await t.app.inject({ method: "PATCH", url: `/v1/tasks/${task.id}`, headers: finKey, payload: { priority: 10 } });
    expect(patch.statusCode).toBe(403);
    expect(problem(patch).code).toBe("OUTSIDE_DOMAIN");
    const cancel = await t.app.inject({ method: "POST", url: `/v1/tasks/${task.id}/cancel`, headers: finKey });
    expect(problem(cancel).code).toBe("OUTSIDE_DOMAIN");
    const after = (await t.app.inject({ url: `/v1/tasks/${task.id}`, headers: acme.auth })).json();
    expect(after).toMatchObject({ priority: 70, status: "queued" });
    await applyAgent(t.app, acme, "fin", { domains: ["finance/*"] });
  });

  it("cannot apply another agent's descriptor (nor its own): that is a proposal's set_agent_domains", async () => {
    const res = await t.app.inject({
      method: "PUT",
      url: "/v1/agents/ops",
      headers: finKey,
      payload: { apiVersion: "agent.os/v1", kind: "Agent", metadata: { name: "ops", owner: "x" }, spec: { model: { provider: "scripted", name: "scripted-small" }, domains: ["finance/*"] } },
    });
    expect(res.statusCode).toBe(403);
    expect(problem(res).detail).toMatch(/proposal/);
  });
});

describe("people and unbound keys", () => {
  it("are limited by their scopes, not by domains", async () => {
    expect((await createTask({ title: "admin anywhere", domain: "ops/anything" }, acme.auth)).statusCode).toBe(201);
    const write = await createKey(t.app, acme, { scopes: ["write"] });
    expect((await createTask({ title: "writer anywhere", domain: "hr/anything" }, write.auth)).statusCode).toBe(201);
  });
});
