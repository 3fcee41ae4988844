import { repo, withTenant } from "@bosun/db";
import type { LightMyRequestResponse } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyAgent, createKey, createTenant, createTestApp, problem, type TestApp, type TestTenant } from "../../../test/helpers/app";

let t: TestApp;
let acme: TestTenant;
let acmeKeyId: string;

beforeAll(async () => {
  t = await createTestApp();
  acme = await createTenant(t.app, "Acme");
  acmeKeyId = (await me(acme.auth)).json().actor.id;
});
afterAll(() => t.close());

const bearer = (key: string) => ({ authorization: `Bearer ${key}` });
const me = (headers: Record<string, string>) => t.app.inject({ url: "/v1/me", headers });
const post = (headers: Record<string, string>, payload: Record<string, unknown>) =>
  t.app.inject({ method: "POST", url: "/v1/api-keys", headers, payload });
const revoke = (id: string, headers: Record<string, string> = acme.auth) => t.app.inject({ method: "DELETE", url: `/v1/api-keys/${id}`, headers });

type KeyView = { id: string; name: string; prefix: string; scopes: string[]; agentId: string | null; lastUsedAt: string | null; revokedAt: string | null };

async function listKeys(headers: Record<string, string> = acme.auth): Promise<{ res: LightMyRequestResponse; items: KeyView[] }> {
  const res = await t.app.inject({ url: "/v1/api-keys?limit=100", headers });
  expect(res.statusCode).toBe(200);
  return { res, items: res.json().items };
}

async function keyCount(tenantId = acme.tenantId) {
  const { rows } = await t.db.database.pool.query<{ n: number }>("SELECT count(*)::int AS n FROM api_keys WHERE tenant_id = $1", [tenantId]);
  return rows[0]!.n;
}

const auditOf = (keyId: string) =>
  withTenant(t.db.database, acme.tenantId, (tx) => repo.listAuditForTarget(tx, { tenantId: acme.tenantId, targetType: "api_key", targetId: keyId }));

/** The same key with its last character changed to another valid one. */
const lastCharChanged = (key: string) => key.slice(0, -1) + (key.endsWith("a") ? "b" : "a");

describe("creating and listing keys", () => {
  it("creates a key with the given scopes; the list shows its prefix and never a secret", async () => {
    const res = await post(acme.auth, { name: "ci", scopes: ["write"] });
    expect(res.statusCode).toBe(201);
    const k = res.json();
    expect(k).toMatchObject({ id: expect.stringMatching(/^key_/), name: "ci", scopes: ["write"], agentId: null, expiresAt: null, revokedAt: null, lastUsedAt: null });
    expect(k.key).toMatch(/^bsn_[0-9a-z]{44}$/);
    expect(k.prefix).toBe(k.key.slice(0, 12));

    const { res: listRes, items } = await listKeys();
    const listed = items.find((i) => i.id === k.id);
    expect(listed).toMatchObject({ name: "ci", prefix: k.prefix, scopes: ["write"] });
    for (const item of items) expect(item).not.toHaveProperty("key");
    expect(listRes.body).not.toContain(k.key.slice(16));
    expect(listRes.body).not.toContain(acme.apiKey.slice(16));

    // The key carries exactly its scopes: it writes, but does not administer.
    const who = await me(bearer(k.key));
    expect(who.json()).toMatchObject({ actor: { type: "api_key", id: k.id }, scopes: ["write"], tenant: { id: acme.tenantId } });
    expect((await t.app.inject({ url: "/v1/api-keys", headers: bearer(k.key) })).statusCode).toBe(403);
    const rename = await t.app.inject({ method: "PATCH", url: "/v1/tenant", headers: bearer(k.key), payload: { name: "Renamed" } });
    expect(rename.statusCode).toBe(403);
  });

  it("records when a key was last used", async () => {
    const k = await createKey(t.app, acme, { name: "usage", scopes: ["read"] });
    const lastUsed = async () => (await listKeys()).items.find((i) => i.id === k.id)!.lastUsedAt;
    expect(await lastUsed()).toBeNull();
    const usedAt = Date.now();
    expect((await me(k.auth)).statusCode).toBe(200);
    // The touch is written after the response, off the request's path: wait for it.
    let seen: string | null = null;
    for (let i = 0; i < 40 && !seen; i++) {
      seen = await lastUsed();
      if (!seen) await new Promise((r) => setTimeout(r, 50));
    }
    expect(seen).not.toBeNull();
    expect(Math.abs(new Date(seen!).getTime() - usedAt)).toBeLessThan(10_000);
  });

  it("refuses expiresAt in the past with 422 at expiresAt; a key stops working when it expires", async () => {
    const before = await keyCount();
    const past = await post(acme.auth, { name: "stale", scopes: ["read"], expiresAt: new Date(Date.now() - 60_000).toISOString() });
    expect(past.statusCode).toBe(422);
    expect(problem(past).errors?.map((e) => e.path)).toEqual(["expiresAt"]);
    expect(await keyCount()).toBe(before);

    const expiresAt = new Date(Date.now() + 3_600_000).toISOString();
    const res = await post(acme.auth, { name: "temporary", scopes: ["read"], expiresAt });
    expect(res.statusCode).toBe(201);
    const k = res.json();
    expect(k.expiresAt).toBe(expiresAt);
    expect((await me(bearer(k.key))).statusCode).toBe(200);
    await t.db.database.pool.query("UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = $1", [k.id]);
    const expired = await me(bearer(k.key));
    expect(expired.statusCode).toBe(401);
    expect(problem(expired).code).toBe("UNAUTHORIZED");
  });

  it("cannot grant a scope the credential lacks", async () => {
    const writer = await createKey(t.app, acme, { name: "writer", scopes: ["write"] });
    const before = await keyCount();
    const escalate = await post(writer.auth, { name: "escalated", scopes: ["admin"] });
    expect(escalate.statusCode).toBe(403);
    expect(problem(escalate).code).toBe("FORBIDDEN");
    // Issuing keys at all is an admin's job.
    expect((await post(writer.auth, { name: "same", scopes: ["write"] })).statusCode).toBe(403);
    expect(await keyCount()).toBe(before);
  });
});

describe("revoking keys", () => {
  it("revokes at once, idempotently, and audits create and revoke with actor, before and after", async () => {
    const k = await createKey(t.app, acme, { name: "doomed", scopes: ["read"] });
    expect((await me(k.auth)).statusCode).toBe(200);

    const first = await revoke(k.id);
    expect(first.statusCode).toBe(200);
    const revokedAt = first.json().revokedAt;
    expect(revokedAt).toEqual(expect.any(String));
    expect(first.json()).not.toHaveProperty("key");

    const after = await me(k.auth);
    expect(after.statusCode).toBe(401);
    expect(problem(after).code).toBe("UNAUTHORIZED");

    const second = await revoke(k.id);
    expect(second.statusCode).toBe(200);
    expect(second.json().revokedAt).toBe(revokedAt);
    expect((await listKeys()).items.find((i) => i.id === k.id)!.revokedAt).toBe(revokedAt);

    const events = await auditOf(k.id);
    expect(events.map((e) => e.action)).toEqual(["api_key.create", "api_key.revoke"]);
    for (const e of events) expect(e).toMatchObject({ actorType: "api_key", actorId: acmeKeyId, targetType: "api_key", targetId: k.id });
    expect(events[0]!.before).toBeNull();
    expect(events[0]!.after).toMatchObject({ id: k.id, name: "doomed", scopes: ["read"], revokedAt: null });
    expect(events[1]!.before).toMatchObject({ id: k.id, revokedAt: null });
    expect(events[1]!.after).toMatchObject({ id: k.id, revokedAt });
    expect(JSON.stringify(events)).not.toContain(k.key.slice(16));
  });

  it("writes one revoke audit event when revokes of the same key race", async () => {
    const k = await createKey(t.app, acme, { name: "raced", scopes: ["read"] });
    const actor = (await t.services.apiKeys.authenticate(acme.apiKey))!;
    const results = await Promise.all(Array.from({ length: 6 }, () => t.services.apiKeys.revoke(actor, k.id)));
    expect(new Set(results.map((r) => r.revokedAt)).size).toBe(1);
    expect((await auditOf(k.id)).map((e) => e.action)).toEqual(["api_key.create", "api_key.revoke"]);
  });

  it("answers 404 for an unknown key and for another tenant's key, which keeps working", async () => {
    expect((await revoke("key_00000000000000000000000000")).statusCode).toBe(404);
    const other = await createTenant(t.app, "Other");
    const otherKeyId = (await me(other.auth)).json().actor.id;
    const res = await revoke(otherKeyId);
    expect(res.statusCode).toBe(404);
    expect((await me(other.auth)).statusCode).toBe(200);
    // Nor does the list show another tenant's keys.
    expect((await listKeys()).items.some((i) => i.id === otherKeyId)).toBe(false);
  });
});

describe("keys bound to an agent", () => {
  it("authenticates as the agent, and cannot issue or revoke keys", async () => {
    const agent = await applyAgent(t.app, acme, "bound-agent");
    const res = await post(acme.auth, { name: "agent key", scopes: ["admin"], agent: "bound-agent" });
    expect(res.statusCode).toBe(201);
    const k = res.json();
    expect(k.agentId).toBe(agent.id);

    const who = await me(bearer(k.key));
    expect(who.statusCode).toBe(200);
    expect(who.json()).toMatchObject({ actor: { type: "agent", id: agent.id }, agentId: agent.id, tenant: { id: acme.tenantId }, user: null });

    expect((await post(bearer(k.key), { name: "child", scopes: ["read"] })).statusCode).toBe(403);
    expect((await revoke(acmeKeyId, bearer(k.key))).statusCode).toBe(403);
    expect((await me(acme.auth)).statusCode).toBe(200);
  });

  it("refuses an unknown agent with 422 at agent, creating nothing", async () => {
    const before = await keyCount();
    const res = await post(acme.auth, { name: "ghost key", scopes: ["write"], agent: "no-such-agent" });
    expect(res.statusCode).toBe(422);
    expect(problem(res).errors?.map((e) => e.path)).toEqual(["agent"]);
    expect(await keyCount()).toBe(before);
  });
});

describe("Idempotency-Key", () => {
  it("creates one key for two requests with the same key; the replay does not show the secret again", async () => {
    const headers = { ...acme.auth, "idempotency-key": "key-idem-1" };
    const first = await post(headers, { name: "idem", scopes: ["read"] });
    expect(first.statusCode).toBe(201);
    expect(first.headers["idempotent-replayed"]).toBeUndefined();
    expect(first.json().key).toMatch(/^bsn_/);

    const replay = await post(headers, { name: "idem", scopes: ["read"] });
    expect(replay.statusCode).toBe(201);
    expect(replay.headers["idempotent-replayed"]).toBe("true");
    const { key: firstKey, ...firstView } = first.json();
    expect(replay.json()).toEqual({ ...firstView, key: null });
    expect(replay.body).not.toContain(firstKey.slice(16));
    expect((await listKeys()).items.filter((i) => i.name === "idem")).toHaveLength(1);
    expect((await auditOf(first.json().id)).map((e) => e.action)).toEqual(["api_key.create"]);

    const other = await post(headers, { name: "idem", scopes: ["write"] });
    expect(other.statusCode).toBe(422);
    expect(problem(other).code).toBe("IDEMPOTENCY_CONFLICT");
  });

  it("creates one key when two requests with the same key race", async () => {
    const headers = { ...acme.auth, "idempotency-key": "key-idem-race" };
    const [a, b] = await Promise.all([post(headers, { name: "idem-race", scopes: ["read"] }), post(headers, { name: "idem-race", scopes: ["read"] })]);
    expect([a.statusCode, b.statusCode]).toEqual([201, 201]);
    expect(a.json().id).toBe(b.json().id);
    expect([a.json().key, b.json().key].filter((k) => k !== null)).toHaveLength(1);
    expect([a.headers["idempotent-replayed"], b.headers["idempotent-replayed"]].filter(Boolean)).toEqual(["true"]);
    expect((await listKeys()).items.filter((i) => i.name === "idem-race")).toHaveLength(1);
  });
});

describe("verifying keys", () => {
  it("rejects a key that differs from a real one only in its last character", async () => {
    const tampered = lastCharChanged(acme.apiKey);
    expect(tampered).not.toBe(acme.apiKey);
    expect(tampered).toHaveLength(acme.apiKey.length);
    // Same lookup part, so the row is found and it is the hash comparison that refuses it.
    const { rows } = await t.db.database.pool.query("SELECT id FROM api_keys WHERE lookup = $1", [tampered.slice(4, 16)]);
    expect(rows).toEqual([{ id: acmeKeyId }]);
    const res = await me(bearer(tampered));
    expect(res.statusCode).toBe(401);
    expect(problem(res).code).toBe("UNAUTHORIZED");
    expect(await t.services.apiKeys.authenticate(tampered)).toBeNull();

    for (const bad of [`${acme.apiKey}x`, acme.apiKey.slice(0, -1), acme.apiKey.toUpperCase()]) {
      expect((await me(bearer(bad))).statusCode, bad).toBe(401);
    }
    expect((await me(acme.auth)).statusCode).toBe(200);
  });

  it("rejects malformed Authorization headers with 401, even with a valid session cookie alongside", async () => {
    for (const authorization of ["Bearer", `Basic ${acme.apiKey}`, "Bearer bsn_short", `Bearer ${acme.apiKey} extra`]) {
      const res = await me({ authorization });
      expect(res.statusCode, authorization).toBe(401);
    }
    const mixed = await me({ authorization: `Bearer ${lastCharChanged(acme.apiKey)}`, cookie: acme.cookie });
    expect(mixed.statusCode).toBe(401);
  });
});
