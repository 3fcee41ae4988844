import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyAgent, createKey, createTenant, createTestApp, problem, type TestApp, type TestTenant } from "../../../test/helpers/app";

let t: TestApp;
let acme: TestTenant;

const q = async <T = Record<string, unknown>>(sql: string, values: unknown[] = []) => (await t.db.database.pool.query(sql, values)).rows as T[];
const get = (url: string, auth = acme.auth) => t.app.inject({ method: "GET", url, headers: auth });
const send = (method: "POST" | "PATCH" | "DELETE", url: string, payload?: object, headers: Record<string, string> = {}) =>
  t.app.inject({ method, url, headers: { ...acme.auth, ...headers }, ...(payload ? { payload } : {}) });

beforeAll(async () => {
  t = await createTestApp();
  acme = await createTenant(t.app, "Acme");
  await applyAgent(t.app, acme, "buyer");
});
afterAll(() => t?.close());

describe("policies over HTTP", () => {
  it("creates, reads, lists, changes and deletes policies, each change audited", async () => {
    const created = await send(
      "POST",
      "/v1/policies",
      { name: "approve-big-buys", agent: "buyer", match: { tool: "mcp://gateway/shop/*", actionValueUsdGt: 250.5 }, decision: "require_approval", approvalExpiresIn: "2h" },
      { "idempotency-key": "policy-1" },
    );
    expect(created.statusCode).toBe(201);
    const p = created.json();
    expect(p).toMatchObject({
      name: "approve-big-buys",
      scope: "agent",
      agent: "buyer",
      priority: 100,
      match: { tool: "mcp://gateway/shop/*", sideEffect: null, actionValueUsdGt: 250.5 },
      decision: "require_approval",
      approvalExpiresSeconds: 7200,
      description: null,
    });
    expect(p.id).toMatch(/^pol_[0-9a-z]{26}$/);
    expect((await q(`SELECT action_value_gt_micros::text AS v FROM policies WHERE id = $1`, [p.id]))[0]).toEqual({ v: "250500000" });
    // The same request with the same Idempotency-Key replays the first response.
    const replay = await send(
      "POST",
      "/v1/policies",
      { name: "approve-big-buys", agent: "buyer", match: { tool: "mcp://gateway/shop/*", actionValueUsdGt: 250.5 }, decision: "require_approval", approvalExpiresIn: "2h" },
      { "idempotency-key": "policy-1" },
    );
    expect(replay.headers["idempotent-replayed"]).toBe("true");
    expect(replay.json().id).toBe(p.id);

    const tenantWide = await send("POST", "/v1/policies", { name: "no-external", match: { sideEffect: "external" }, decision: "deny", priority: 5 });
    expect(tenantWide.json()).toMatchObject({ scope: "tenant", agent: null, priority: 5, match: { tool: null, sideEffect: "external", actionValueUsdGt: null } });

    expect((await get(`/v1/policies/${p.id}`)).json()).toEqual(p);
    const page1 = await get("/v1/policies?limit=1");
    expect(page1.json().items).toHaveLength(1);
    const page2 = await get(`/v1/policies?limit=10&cursor=${page1.json().nextCursor}`);
    expect([...page1.json().items, ...page2.json().items].map((x: { id: string }) => x.id).sort()).toEqual([p.id, tenantWide.json().id].sort());
    expect((await get("/v1/policies?agent=buyer")).json().items.map((x: { id: string }) => x.id)).toEqual([p.id]);
    expect(problem(await get("/v1/policies?agent=nobody")).code).toBe("NOT_FOUND");

    // A change: the given match replaces the whole match; the decision may drop its expiry.
    const patched = await send("PATCH", `/v1/policies/${p.id}`, { match: { tool: "create_task" }, priority: 7, description: "orders" });
    expect(patched.json()).toMatchObject({ match: { tool: "create_task", actionValueUsdGt: null }, priority: 7, description: "orders", approvalExpiresSeconds: 7200 });
    const toDeny = await send("PATCH", `/v1/policies/${p.id}`, { decision: "deny" });
    expect(toDeny.json()).toMatchObject({ decision: "deny", approvalExpiresSeconds: null });
    const toTenant = await send("PATCH", `/v1/policies/${p.id}`, { agent: null });
    expect(toTenant.json()).toMatchObject({ scope: "tenant", agent: null });
    // Names are unique per tenant.
    const clash = await send("PATCH", `/v1/policies/${p.id}`, { name: "no-external" });
    expect(clash.statusCode).toBe(409);
    expect(problem(clash).code).toBe("CONFLICT");
    const dup = await send("POST", "/v1/policies", { name: "no-external", decision: "allow" });
    expect(dup.statusCode).toBe(409);

    const deleted = await send("DELETE", `/v1/policies/${p.id}`);
    expect(deleted.json().id).toBe(p.id);
    expect(problem(await get(`/v1/policies/${p.id}`)).code).toBe("NOT_FOUND");

    const audit = await q<{ action: string; actor_type: string }>(
      `SELECT action, actor_type FROM audit_events WHERE tenant_id = $1 AND target_type = 'policy' AND target_id = $2 ORDER BY pos`,
      [acme.tenantId, p.id],
    );
    expect(audit.map((a) => a.action)).toEqual(["policy.create", "policy.update", "policy.update", "policy.update", "policy.delete"]);
  });

  it("lets read keys list, only admins write, and no agent key do either", async () => {
    const read = await createKey(t.app, acme, { scopes: ["read"] });
    const write = await createKey(t.app, acme, { scopes: ["write"] });
    const agentKey = await createKey(t.app, acme, { scopes: ["admin"], agent: "buyer" });
    expect((await get("/v1/policies", read.auth)).statusCode).toBe(200);
    const body = { name: "by-operator", decision: "deny" };
    for (const auth of [read.auth, write.auth, agentKey.auth]) {
      const res = await t.app.inject({ method: "POST", url: "/v1/policies", headers: auth, payload: body });
      expect(res.statusCode).toBe(403);
      expect(problem(res).code).toBe("FORBIDDEN");
    }
    expect(problem(await get("/v1/policies", agentKey.auth)).code).toBe("FORBIDDEN");
  });

  it("creates each name once when the same policy is posted concurrently", async () => {
    const results = await Promise.all(Array.from({ length: 8 }, () => send("POST", "/v1/policies", { name: "raced", decision: "deny", match: { tool: "send_message" } })));
    expect(results.map((r) => r.statusCode).sort()).toEqual([201, 409, 409, 409, 409, 409, 409, 409]);
    expect((await q(`SELECT count(*)::int AS n FROM policies WHERE tenant_id = $1 AND name = 'raced'`, [acme.tenantId]))[0]).toEqual({ n: 1 });
  });
});
