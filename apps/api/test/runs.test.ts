import { agentRuntime, providerCache } from "@bosun/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyAgent, createKey, createTenant, createTestApp, problem, type TestApp, type TestTenant } from "../../../test/helpers/app";

let t: TestApp;
let acme: TestTenant;

beforeAll(async () => {
  t = await createTestApp();
  acme = await createTenant(t.app);
});
afterAll(() => t.close());

const runtime = () =>
  agentRuntime({ database: t.db.database, jobs: t.jobs, tasks: t.services.tasks, provider: providerCache(), workerId: "api-test", leaseTtlSeconds: 5 });

describe("runs over the API", () => {
  it("starts a manual run, shows it with its steps, and hides secrets in the trace", async () => {
    const agent = await applyAgent(t.app, acme, "manual-agent");
    const start = await t.app.inject({
      method: "POST",
      url: "/v1/agents/manual-agent/runs",
      headers: acme.auth,
      payload: { input: "Check the deploy. The token is sk-ant-abcdefghijklmnopqrstuvwxyz0123 and the key bsn_abcdefghijklmnopqrstuvwxyz012345" },
    });
    expect(start.statusCode).toBe(201);
    const run = start.json();
    expect(run).toMatchObject({ agentId: agent.id, agent: "manual-agent", trigger: "manual", status: "running", parentRunId: null, rootRunId: run.id });
    expect((await runtime().wake({ tenantId: acme.tenantId, agentId: agent.id })).outcome).toBe("ran");

    const got = await t.app.inject({ url: `/v1/runs/${run.id}`, headers: acme.auth });
    expect(got.statusCode).toBe(200);
    expect(got.json()).toMatchObject({ id: run.id, status: "succeeded", model: "scripted-small", stepCount: 1 });
    expect(got.json().tree.map((r: { id: string }) => r.id)).toEqual([run.id]);

    const steps = await t.app.inject({ url: `/v1/runs/${run.id}/steps`, headers: acme.auth });
    expect(steps.statusCode).toBe(200);
    const items = steps.json().items;
    expect(items).toHaveLength(1);
    expect(items[0]).toMatchObject({ seq: 0, kind: "llm", model: "scripted-small", status: "ok" });
    expect(items[0].outputTokens).toBeGreaterThan(0);
    // The scripted model echoes the input in its answer; the secrets in it are redacted.
    const body = JSON.stringify(got.json()) + JSON.stringify(items);
    expect(body).not.toContain("sk-ant-abcdefghijklmnopqrstuvwxyz0123");
    expect(body).not.toContain("bsn_abcdefghijklmnopqrstuvwxyz012345");

    const list = await t.app.inject({ url: "/v1/runs?agent=manual-agent&status=succeeded", headers: acme.auth });
    expect(list.json().items.map((r: { id: string; agent: string }) => [r.id, r.agent])).toEqual([[run.id, "manual-agent"]]);
  });

  it("cancels a waiting or running run once", async () => {
    await applyAgent(t.app, acme, "cancel-me");
    const run = (await t.app.inject({ method: "POST", url: "/v1/agents/cancel-me/runs", headers: acme.auth, payload: { input: "x" } })).json();
    const c1 = await t.app.inject({ method: "POST", url: `/v1/runs/${run.id}/cancel`, headers: acme.auth });
    expect(c1.statusCode).toBe(200);
    expect(c1.json().status).toBe("cancelled");
    const c2 = await t.app.inject({ method: "POST", url: `/v1/runs/${run.id}/cancel`, headers: acme.auth });
    expect(c2.statusCode).toBe(409);
    expect(problem(c2).code).toBe("CONFLICT");
    // The runtime does not pick up a cancelled run.
    const agentId = run.agentId as string;
    expect((await runtime().wake({ tenantId: acme.tenantId, agentId })).outcome).toBe("idle");
  });

  it("lets an external agent open its own run, report usage and finish it", async () => {
    await applyAgent(t.app, acme, "external-bot");
    const key = await createKey(t.app, acme, { scopes: ["write"], agent: "external-bot" });
    const run = await t.app.inject({ method: "POST", url: "/v1/agents/external-bot/runs", headers: key.auth, payload: { input: "working on it" } });
    expect(run.statusCode).toBe(201);
    expect(run.json().trigger).toBe("external");
    const id = run.json().id;
    const usage = await t.app.inject({
      method: "POST",
      url: `/v1/runs/${id}/usage`,
      headers: key.auth,
      payload: { provider: "anthropic", model: "claude-opus-4-7-20260214", inputTokens: 120, outputTokens: 30, cacheReadTokens: 900 },
    });
    expect(usage.statusCode).toBe(201);
    expect(usage.json()).toMatchObject({ kind: "usage", seq: 0, model: "claude-opus-4-7-20260214", inputTokens: 120, cacheReadTokens: 900, outputTokens: 30 });
    // The runtime leaves external runs alone.
    expect((await runtime().wake({ tenantId: acme.tenantId, agentId: run.json().agentId })).outcome).toBe("idle");
    // Only the agent itself reports on its run.
    const byAdmin = await t.app.inject({
      method: "POST",
      url: `/v1/runs/${id}/usage`,
      headers: acme.auth,
      payload: { provider: "x", model: "y", inputTokens: 1, outputTokens: 1 },
    });
    expect(byAdmin.statusCode).toBe(403);
    const fin = await t.app.inject({ method: "POST", url: `/v1/runs/${id}/finish`, headers: key.auth, payload: { status: "succeeded", result: { ok: true } } });
    expect(fin.statusCode).toBe(200);
    expect(fin.json()).toMatchObject({ status: "succeeded", stepCount: 1, inputTokens: 1020, outputTokens: 30, model: "claude-opus-4-7-20260214" });
  });

  it("delivers a message and the agent answers it in a run", async () => {
    const agent = await applyAgent(t.app, acme, "inbox-agent");
    const sent = await t.app.inject({ method: "POST", url: "/v1/messages", headers: acme.auth, payload: { to: "inbox-agent", body: "Are you there?" } });
    expect(sent.statusCode).toBe(201);
    expect(sent.json().id).toMatch(/^msg_/);
    expect((await runtime().wake({ tenantId: acme.tenantId, agentId: agent.id })).outcome).toBe("ran");
    const runs = (await t.app.inject({ url: "/v1/runs?agent=inbox-agent", headers: acme.auth })).json().items;
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({ trigger: "message", status: "succeeded" });
    const unknown = await t.app.inject({ method: "POST", url: "/v1/messages", headers: acme.auth, payload: { to: "nobody", body: "hi" } });
    expect(unknown.statusCode).toBe(422);
    expect(problem(unknown).errors?.[0]?.path).toBe("to");
  });
});
