import { writeWorking } from "@bosun/core";
import { withTenant } from "@bosun/db";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyAgent, createKey, createTenant, createTestApp, descriptor, problem, type TestApp, type TestTenant } from "../../../test/helpers/app";

let t: TestApp;
let acme: TestTenant;
let other: TestTenant;

beforeAll(async () => {
  t = await createTestApp();
  acme = await createTenant(t.app, "Acme");
  other = await createTenant(t.app, "Other");
});
afterAll(() => t.close());

describe("GET /v1/agents/{name}/memory", () => {
  it("shows the layers with their usage and limits", async () => {
    const agent = await applyAgent(t.app, acme, "rememberer", { soul: "You reconcile ledgers.", memory: { working_tokens: 800, retention_days: 30 } });
    for (const content of ["Acme pays on the 5th.", "Northwind disputes every third invoice."]) {
      const r = await withTenant(t.db.database, acme.tenantId, (tx) =>
        writeWorking(tx, { tenantId: acme.tenantId, agentId: agent.id, limit: 800, retentionDays: 30, op: { action: "add", content }, source: "operator" }),
      );
      expect(r.ok).toBe(true);
    }
    const res = await t.app.inject({ url: "/v1/agents/rememberer/memory", headers: acme.auth });
    expect(res.statusCode).toBe(200);
    const m = res.json();
    expect(m).toMatchObject({
      agent: "rememberer",
      soul: { limit: 1500 },
      working: { limit: 800 },
      archive: { items: 0, retentionDays: 30 },
      dreams: { lastAt: null, changesSince: 2 },
    });
    expect(m.tokenizer).toContain("o200k_base");
    expect(m.soul.tokens).toBeGreaterThan(0);
    expect(m.working.items.map((i: { content: string }) => i.content)).toEqual(["Acme pays on the 5th.", "Northwind disputes every third invoice."]);
    expect(m.working.tokens).toBe(m.working.items.reduce((n: number, i: { tokens: number }) => n + i.tokens, 0));
  });

  it("is invisible to another tenant and to another agent's key", async () => {
    await applyAgent(t.app, acme, "secretive");
    await applyAgent(t.app, acme, "neighbour");
    const cross = await t.app.inject({ url: "/v1/agents/secretive/memory", headers: other.auth });
    expect(cross.statusCode).toBe(404);
    expect(problem(cross).code).toBe("NOT_FOUND");
    const key = await createKey(t.app, acme, { scopes: ["read"], agent: "neighbour" });
    expect((await t.app.inject({ url: "/v1/agents/secretive/memory", headers: key.auth })).statusCode).toBe(404);
    expect((await t.app.inject({ url: "/v1/agents/neighbour/memory", headers: key.auth })).statusCode).toBe(200);
  });

  it("refuses a descriptor whose soul is over the token bound, as problem+json", async () => {
    const soul = Array.from({ length: 900 }, (_, i) => `k${(i * 7919) % 100_003}`).join(" ");
    const res = await t.app.inject({ method: "PUT", url: "/v1/agents/wordy", headers: acme.auth, payload: descriptor("wordy", { soul }) });
    expect(res.statusCode).toBe(422);
    const p = problem(res);
    expect(p.code).toBe("VALIDATION");
    expect(p.errors).toEqual([{ path: "spec.soul", message: expect.stringMatching(/^the soul is \d+ tokens; at most 1500/) }]);
  });
});
