import { createHash, randomBytes } from "node:crypto";
import { bootstrap, createServices, demoAgents, demoGatewayAgent, verifyPassword } from "@bosun/core";
import { createDatabase, repo, withTenant } from "@bosun/db";
import { createJobs } from "@bosun/jobs";
import type { LightMyRequestResponse } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTenant, createTestApp, PUBLIC_URL, problem, sessionCookie, type TestApp, type TestTenant } from "../../../test/helpers/app";
import { createTestDb, type TestDb } from "../../../test/helpers/db";

let t: TestApp;
let acme: TestTenant;

beforeAll(async () => {
  t = await createTestApp();
  acme = await createTenant(t.app, "Acme");
});
afterAll(() => t.close());

const PASSWORD = "correct horse battery staple";
const ORIGIN = { origin: PUBLIC_URL };
let emails = 0;
const uniqueEmail = (what: string) => `${what}${++emails}.${Date.now()}@example.com`;

async function query<T extends Record<string, unknown>>(text: string, params: unknown[] = []) {
  return (await t.db.database.pool.query<T>(text, params)).rows;
}

async function counts(db: TestDb = t.db) {
  const { rows } = await db.database.pool.query<Record<string, number>>(
    `SELECT (SELECT count(*)::int FROM tenants) AS tenants, (SELECT count(*)::int FROM users) AS users,
            (SELECT count(*)::int FROM memberships) AS memberships, (SELECT count(*)::int FROM api_keys) AS api_keys,
            (SELECT count(*)::int FROM audit_events) AS audit_events, (SELECT count(*)::int FROM agents) AS agents`,
  );
  return rows[0]!;
}

function setCookies(res: LightMyRequestResponse): string[] {
  const raw = res.headers["set-cookie"];
  return Array.isArray(raw) ? raw : raw ? [raw] : [];
}

/** The attributes of the `bosun_session` Set-Cookie, lower-cased names. */
function sessionCookieAttributes(res: LightMyRequestResponse) {
  const c = setCookies(res).find((s) => s.startsWith("bosun_session="));
  if (!c) throw new Error("no bosun_session cookie");
  const [pair, ...attrs] = c.split(";").map((s) => s.trim());
  const out: Record<string, string | true> = {};
  for (const a of attrs) {
    const i = a.indexOf("=");
    if (i < 0) out[a.toLowerCase()] = true;
    else out[a.slice(0, i).toLowerCase()] = a.slice(i + 1);
  }
  return { value: pair!.slice("bosun_session=".length), attrs: out };
}

const login = (email: string, password: string, extra: Record<string, unknown> = {}) =>
  t.app.inject({ method: "POST", url: "/v1/auth/login", payload: { email, password, ...extra } });

const me = (headers: Record<string, string>) => t.app.inject({ url: "/v1/me", headers });

describe("signup", () => {
  it("creates a tenant, its owner and a first admin key that is shown once and authenticates", async () => {
    const email = uniqueEmail("signup");
    const res = await t.app.inject({
      method: "POST",
      url: "/v1/signup",
      payload: { tenant: { name: "Globex", timeZone: "America/New_York" }, owner: { email, password: PASSWORD, name: "Hank" } },
    });
    expect(res.statusCode).toBe(201);
    const body = res.json();
    expect(body.tenant).toMatchObject({ id: expect.stringMatching(/^ten_/), name: "Globex", timeZone: "America/New_York" });
    expect(body.user).toEqual({ id: expect.stringMatching(/^usr_/), email });
    expect(body.apiKey).toMatchObject({ scopes: ["admin"], agentId: null, revokedAt: null, expiresAt: null });
    const key: string = body.apiKey.key;
    expect(key).toMatch(/^bsn_[0-9a-z]{44}$/);
    expect(body.apiKey.prefix).toBe(key.slice(0, 12));

    const who = await me({ authorization: `Bearer ${key}` });
    expect(who.statusCode).toBe(200);
    expect(who.json()).toMatchObject({
      actor: { type: "api_key", id: body.apiKey.id },
      scopes: ["admin"],
      role: null,
      agentId: null,
      user: null,
      tenant: { id: body.tenant.id, name: "Globex", timeZone: "America/New_York" },
    });

    // Shown once: the list of keys never carries the secret.
    const list = await t.app.inject({ url: "/v1/api-keys", headers: { authorization: `Bearer ${key}` } });
    expect(list.statusCode).toBe(200);
    expect(list.json().items).toHaveLength(1);
    expect(list.json().items[0]).not.toHaveProperty("key");
    expect(list.body).not.toContain(key.slice(16));

    const m = await query("SELECT role FROM memberships WHERE tenant_id = $1 AND user_id = $2", [body.tenant.id, body.user.id]);
    expect(m).toEqual([{ role: "owner" }]);
    // Written unsealed: chain them, then read the chain.
    await repo.sealAudit(t.db.database, body.tenant.id);
    const events = await withTenant(t.db.database, body.tenant.id, (tx) => repo.listAudit(tx, { tenantId: body.tenant.id, afterSeq: 0, limit: 10 }));
    expect(events.map((e) => [e.action, e.actorType, e.actorId])).toEqual([
      ["tenant.create", "user", body.user.id],
      ["api_key.create", "user", body.user.id],
    ]);
    expect(JSON.stringify(events)).not.toContain(key.slice(16));
  });

  it("stores the password argon2id-hashed and the API key only as a sha256 hash", async () => {
    const [user] = await query<{ password_hash: string }>("SELECT password_hash FROM users WHERE id = $1", [acme.userId]);
    expect(user!.password_hash.startsWith("$argon2id$")).toBe(true);
    expect(user!.password_hash).not.toContain(PASSWORD);
    expect(await verifyPassword(user!.password_hash, PASSWORD)).toBe(true);

    const rows = await query<Record<string, unknown>>("SELECT * FROM api_keys WHERE tenant_id = $1", [acme.tenantId]);
    expect(rows).toHaveLength(1);
    const row = rows[0]!;
    expect(row.secret_hash).toBe(createHash("sha256").update(acme.apiKey).digest("hex"));
    // No column holds the key or its secret part (everything after the 12-character lookup).
    const secretPart = acme.apiKey.slice(16);
    for (const [column, value] of Object.entries(row)) {
      const text = value instanceof Date ? value.toISOString() : JSON.stringify(value);
      expect(text, `column ${column}`).not.toContain(acme.apiKey);
      expect(text, `column ${column}`).not.toContain(secretPart);
    }
  });

  it("refuses an email that is already taken (in any case) with 409 and writes nothing", async () => {
    const before = await counts();
    const res = await t.app.inject({
      method: "POST",
      url: "/v1/signup",
      payload: { tenant: { name: "Copycat" }, owner: { email: acme.email.toUpperCase(), password: "another password 123" } },
    });
    expect(res.statusCode).toBe(409);
    expect(problem(res).code).toBe("CONFLICT");
    expect(await counts()).toEqual(before);
    expect(await query("SELECT id FROM tenants WHERE name = 'Copycat'")).toEqual([]);
    // The existing owner's password is untouched.
    expect((await login(acme.email, PASSWORD)).statusCode).toBe(200);
  });

  it("rejects an invalid time zone at tenant.timeZone, and an API key chosen by the client", async () => {
    const before = await counts();
    const res = await t.app.inject({
      method: "POST",
      url: "/v1/signup",
      payload: { tenant: { name: "Nowhere", timeZone: "Mars/Olympus_Mons" }, owner: { email: uniqueEmail("tz"), password: PASSWORD } },
    });
    expect(res.statusCode).toBe(422);
    const p = problem(res);
    expect(p.code).toBe("VALIDATION");
    expect(p.errors?.map((e) => e.path)).toEqual(["tenant.timeZone"]);

    // Only headless initialisation may choose the key; over the API it is always generated.
    const chosen = `bsn_${"a".repeat(40)}`;
    const withKey = await t.app.inject({
      method: "POST",
      url: "/v1/signup",
      payload: { tenant: { name: "Chooser" }, owner: { email: uniqueEmail("chooser"), password: PASSWORD }, apiKey: chosen },
    });
    expect(withKey.statusCode).toBe(422);
    expect(problem(withKey).errors?.map((e) => e.path)).toEqual(["apiKey"]);
    expect(await counts()).toEqual(before);
  });
});

describe("console sessions", () => {
  it("login sets an HttpOnly, SameSite=Lax, Path=/ session cookie that authenticates as the owner", async () => {
    const res = await login(acme.email, PASSWORD);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ tenantId: acme.tenantId, user: { id: acme.userId, email: acme.email } });
    const { value, attrs } = sessionCookieAttributes(res);
    expect(value.length).toBeGreaterThanOrEqual(20);
    expect(attrs.httponly).toBe(true);
    expect(String(attrs.samesite).toLowerCase()).toBe("lax");
    expect(attrs.path).toBe("/");
    expect(Number(attrs["max-age"])).toBeGreaterThan(0);

    const who = await me({ cookie: `bosun_session=${value}` });
    expect(who.statusCode).toBe(200);
    expect(who.json()).toMatchObject({
      actor: { type: "user", id: acme.userId },
      role: "owner",
      scopes: ["admin"],
      agentId: null,
      user: { id: acme.userId, email: acme.email },
      tenant: { id: acme.tenantId, name: "Acme", timeZone: "Europe/Paris" },
      tenants: [{ id: acme.tenantId, name: "Acme", role: "owner" }],
    });

    // The email is matched without regard to case.
    const upper = await login(acme.email.toUpperCase(), PASSWORD);
    expect(upper.statusCode).toBe(200);
    expect(upper.json().user.id).toBe(acme.userId);
  });

  it("answers a wrong password and an unknown email alike: 401, same message, no cookie", async () => {
    const wrong = await login(acme.email, "not the password at all");
    const unknown = await login(uniqueEmail("nobody"), PASSWORD);
    for (const res of [wrong, unknown]) {
      expect(res.statusCode).toBe(401);
      expect(problem(res).code).toBe("UNAUTHORIZED");
      expect(setCookies(res).some((c) => /^bosun_session=[^;]+/.test(c))).toBe(false);
    }
    expect(problem(wrong).detail).toBe(problem(unknown).detail);
  });

  it("refuses cookie-authenticated writes without this server's Origin, and accepts them with it", async () => {
    const patch = (headers: Record<string, string>, name: string) =>
      t.app.inject({ method: "PATCH", url: "/v1/tenant", headers: { cookie: acme.cookie, ...headers }, payload: { name } });

    const refused = [
      await patch({}, "Hijacked"),
      await patch({ origin: "http://evil.test" }, "Hijacked"),
      await patch({ origin: "http://bosun.test.evil.test" }, "Hijacked"),
      await patch({ origin: "null" }, "Hijacked"),
      await patch({ referer: "http://evil.test/page" }, "Hijacked"),
    ];
    for (const res of refused) {
      expect(res.statusCode).toBe(403);
      expect(problem(res).code).toBe("FORBIDDEN");
    }
    // Reads need no Origin, and nothing was renamed.
    const read = await t.app.inject({ url: "/v1/tenant", headers: { cookie: acme.cookie } });
    expect(read.statusCode).toBe(200);
    expect(read.json().name).toBe("Acme");

    const ok = await patch(ORIGIN, "Acme Corp");
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toMatchObject({ id: acme.tenantId, name: "Acme Corp" });
    const viaReferer = await patch({ referer: `${PUBLIC_URL}/settings` }, "Acme");
    expect(viaReferer.statusCode).toBe(200);
    expect(viaReferer.json().name).toBe("Acme");

    // An API key is not a cookie: its writes need no Origin.
    const keyWrite = await t.app.inject({ method: "PATCH", url: "/v1/tenant", headers: acme.auth, payload: { timeZone: "Europe/Paris" } });
    expect(keyWrite.statusCode).toBe(200);
  });

  it("logout invalidates the session and clears the cookie", async () => {
    const cookie = sessionCookie(await login(acme.email, PASSWORD));
    const sessionId = cookie.slice("bosun_session=".length);
    expect((await me({ cookie })).statusCode).toBe(200);
    expect(await query("SELECT id FROM sessions WHERE id = $1", [sessionId])).toHaveLength(1);

    const out = await t.app.inject({ method: "POST", url: "/v1/auth/logout", headers: { cookie, ...ORIGIN } });
    expect(out.statusCode).toBe(204);
    const cleared = sessionCookieAttributes(out);
    expect(cleared.value).toBe("");
    expect(cleared.attrs["max-age"]).toBe("0");
    expect(await query("SELECT id FROM sessions WHERE id = $1", [sessionId])).toEqual([]);

    const after = await me({ cookie });
    expect(after.statusCode).toBe(401);
    expect(problem(after).code).toBe("UNAUTHORIZED");
    // The other sessions of the same user live on.
    expect((await me({ cookie: acme.cookie })).statusCode).toBe(200);
  });
});

describe("session cookies that do not resolve", () => {
  it("answers an unknown or malformed session cookie with 401 and clears it", async () => {
    for (const cookie of ["bosun_session=not-a-session", "bosun_session=%E0%A4%A", `other=1; bosun_session=%zz`]) {
      const res = await me({ cookie });
      expect(res.statusCode, cookie).toBe(401);
      expect(problem(res).code).toBe("UNAUTHORIZED");
      expect(sessionCookieAttributes(res)).toMatchObject({ value: "", attrs: { "max-age": "0" } });
    }
    // Public routes still answer with a broken cookie.
    const out = await t.app.inject({ method: "POST", url: "/v1/auth/logout", headers: { cookie: "bosun_session=%E0%A4%A" } });
    expect(out.statusCode).toBe(204);
  });
});

describe("tenant switching", () => {
  let beta: TestTenant;

  beforeAll(async () => {
    beta = await createTenant(t.app, "Beta");
    await t.db.database.pool.query("INSERT INTO memberships (tenant_id, user_id, role) VALUES ($1, $2, 'viewer')", [beta.tenantId, acme.userId]);
  });

  it("switches the session to another tenant of the user, with that tenant's role and scopes", async () => {
    const cookie = sessionCookie(await login(acme.email, PASSWORD));
    const before = (await me({ cookie })).json();
    expect(before.tenant.id).toBe(acme.tenantId);
    expect(before.tenants).toEqual([
      { id: acme.tenantId, name: "Acme", role: "owner" },
      { id: beta.tenantId, name: "Beta", role: "viewer" },
    ]);

    const sw = await t.app.inject({ method: "POST", url: "/v1/auth/tenant", headers: { cookie, ...ORIGIN }, payload: { tenantId: beta.tenantId } });
    expect(sw.statusCode).toBe(204);
    const after = await me({ cookie });
    expect(after.statusCode).toBe(200);
    expect(after.json()).toMatchObject({
      actor: { type: "user", id: acme.userId },
      tenant: { id: beta.tenantId, name: "Beta" },
      role: "viewer",
      scopes: ["read"],
    });

    // A viewer reads but does not change the tenant, nor create keys.
    expect((await t.app.inject({ url: "/v1/agents", headers: { cookie } })).statusCode).toBe(200);
    const rename = await t.app.inject({ method: "PATCH", url: "/v1/tenant", headers: { cookie, ...ORIGIN }, payload: { name: "Owned" } });
    expect(rename.statusCode).toBe(403);
    expect(problem(rename).code).toBe("FORBIDDEN");
    const key = await t.app.inject({ method: "POST", url: "/v1/api-keys", headers: { cookie, ...ORIGIN }, payload: { name: "x", scopes: ["read"] } });
    expect(key.statusCode).toBe(403);
    expect((await t.app.inject({ url: "/v1/tenant", headers: beta.auth })).json().name).toBe("Beta");

    // The other sessions of the user stay in their own tenant; switching back restores the owner.
    expect((await me({ cookie: acme.cookie })).json().tenant.id).toBe(acme.tenantId);
    const back = await t.app.inject({ method: "POST", url: "/v1/auth/tenant", headers: { cookie, ...ORIGIN }, payload: { tenantId: acme.tenantId } });
    expect(back.statusCode).toBe(204);
    expect((await me({ cookie })).json()).toMatchObject({ tenant: { id: acme.tenantId }, role: "owner", scopes: ["admin"] });
  });

  it("refuses a tenant the user does not belong to with 404, and leaves the session where it was", async () => {
    // Beta's owner is not a member of Acme.
    const sw = await t.app.inject({
      method: "POST",
      url: "/v1/auth/tenant",
      headers: { cookie: beta.cookie, ...ORIGIN },
      payload: { tenantId: acme.tenantId },
    });
    expect(sw.statusCode).toBe(404);
    expect(problem(sw).code).toBe("NOT_FOUND");
    const missing = await t.app.inject({
      method: "POST",
      url: "/v1/auth/tenant",
      headers: { cookie: beta.cookie, ...ORIGIN },
      payload: { tenantId: "ten_00000000000000000000000000" },
    });
    expect(missing.statusCode).toBe(404);
    expect((await me({ cookie: beta.cookie })).json()).toMatchObject({ tenant: { id: beta.tenantId }, role: "owner" });

    // An API key belongs to one tenant: it cannot switch.
    const withKey = await t.app.inject({ method: "POST", url: "/v1/auth/tenant", headers: beta.auth, payload: { tenantId: beta.tenantId } });
    expect(withKey.statusCode).toBe(400);
  });

  it("login can choose the tenant, but only one the user belongs to", async () => {
    const inBeta = await login(acme.email, PASSWORD, { tenantId: beta.tenantId });
    expect(inBeta.statusCode).toBe(200);
    expect(inBeta.json().tenantId).toBe(beta.tenantId);
    expect((await me({ cookie: sessionCookie(inBeta) })).json()).toMatchObject({ tenant: { id: beta.tenantId }, role: "viewer" });

    const notMine = await login(beta.email, PASSWORD, { tenantId: acme.tenantId });
    expect(notMine.statusCode).toBe(403);
    expect(setCookies(notMine).some((c) => /^bosun_session=[^;]+/.test(c))).toBe(false);
  });
});

describe("headless initialisation (bootstrap)", () => {
  const initKey = () => `bsn_${randomBytes(30).toString("base64url")}`; // 40 characters
  const opened: { close(): Promise<void> }[] = [];
  afterAll(async () => {
    for (const o of opened) await o.close();
  });

  /** A fresh migrated database with no tenant, and the services a process would build on it. */
  async function fresh() {
    const db = await createTestDb();
    const jobs = createJobs({ connectionString: db.url, role: "producer", max: 2 });
    await jobs.start();
    const services = createServices({ database: db.database, jobs, secureCookies: false });
    const extra: { close(): Promise<void> }[] = [];
    const handle = {
      db,
      jobs,
      services,
      /** Services on a second connection pool to the same database: another process. */
      anotherProcess() {
        const database = createDatabase(db.url, { max: 4, applicationName: "bosun-test-2" });
        extra.push(database);
        return createServices({ database, jobs, secureCookies: false });
      },
      async close() {
        for (const e of extra) await e.close();
        await jobs.stop({ graceful: false, timeout: 1000 });
        await db.drop();
      },
    };
    opened.push(handle);
    return handle;
  }

  it("creates the named tenant with the given key and admin password, and demo agents; a second run does nothing", async () => {
    const f = await fresh();
    expect((await counts(f.db)).tenants).toBe(0);
    const key = initKey();
    const env = {
      BOSUN_INIT_API_KEY: key,
      BOSUN_INIT_ADMIN_EMAIL: "ops@initech.example",
      BOSUN_INIT_ADMIN_PASSWORD: "headless password 42",
      BOSUN_INIT_TENANT: "Initech",
    };
    const r = await bootstrap(f.services, env);
    expect(r).toMatchObject({ created: true, email: "ops@initech.example", apiKey: key, passwordGenerated: false });
    const { rows: tenants } = await f.db.database.pool.query("SELECT id, name FROM tenants");
    expect(tenants).toEqual([{ id: r.tenantId, name: "Initech" }]);

    const actor = await f.services.apiKeys.authenticate(key);
    expect(actor).toMatchObject({ type: "api_key", tenantId: r.tenantId, scopes: ["admin"], agentId: null });
    expect(await f.services.apiKeys.authenticate(key.slice(0, -1) + (key.endsWith("A") ? "B" : "A"))).toBeNull();

    const session = await f.services.identity.login({ email: "ops@initech.example", password: "headless password 42" });
    expect(session.tenant.id).toBe(r.tenantId);
    await expect(f.services.identity.login({ email: "ops@initech.example", password: "wrong password" })).rejects.toMatchObject({ code: "UNAUTHORIZED" });

    const { rows: agents } = await f.db.database.pool.query<{ name: string }>("SELECT name FROM agents WHERE tenant_id = $1 ORDER BY name", [r.tenantId]);
    expect(agents.map((a) => a.name)).toEqual([...demoAgents, demoGatewayAgent].map((d) => d.metadata.name).sort());

    const before = await counts(f.db);
    expect(before).toMatchObject({ tenants: 1, users: 1, api_keys: 1, agents: demoAgents.length + 1 });
    const again = await bootstrap(f.services, env);
    expect(again).toEqual({ created: false });
    // A later start with other settings changes nothing either: its key does not work.
    const otherKey = initKey();
    expect(await bootstrap(f.services, { ...env, BOSUN_INIT_API_KEY: otherKey, BOSUN_INIT_TENANT: "Other" })).toEqual({ created: false });
    expect(await f.services.apiKeys.authenticate(otherKey)).toBeNull();
    expect(await counts(f.db)).toEqual(before);
  });

  it("refuses a malformed BOSUN_INIT_API_KEY, and creates exactly one tenant when two processes start at once", async () => {
    const f = await fresh();
    for (const bad of ["bsn_short", `sk_${"a".repeat(40)}`, `bsn_${"a".repeat(39)} `, `bsn_${"é".repeat(40)}`]) {
      await expect(bootstrap(f.services, { BOSUN_INIT_API_KEY: bad })).rejects.toThrow(/BOSUN_INIT_API_KEY must be 'bsn_' followed by/);
    }
    // An admin the console's login would refuse is refused here, before anything is written.
    await expect(bootstrap(f.services, { BOSUN_INIT_ADMIN_EMAIL: "admin" })).rejects.toThrow(/BOSUN_INIT_ADMIN_EMAIL/);
    await expect(bootstrap(f.services, { BOSUN_INIT_ADMIN_PASSWORD: "short" })).rejects.toThrow(/BOSUN_INIT_ADMIN_PASSWORD/);
    expect(await counts(f.db)).toMatchObject({ tenants: 0, users: 0, api_keys: 0 });

    const [keyA, keyB] = [initKey(), initKey()];
    const results = await Promise.all([
      bootstrap(f.services, { BOSUN_INIT_API_KEY: keyA, BOSUN_INIT_ADMIN_PASSWORD: "password of process A", BOSUN_INIT_TENANT: "A" }),
      bootstrap(f.anotherProcess(), { BOSUN_INIT_API_KEY: keyB, BOSUN_INIT_ADMIN_PASSWORD: "password of process B", BOSUN_INIT_TENANT: "B" }),
    ]);
    expect(results.map((r) => r.created).sort()).toEqual([false, true]);
    expect(await counts(f.db)).toMatchObject({ tenants: 1, users: 1, memberships: 1, api_keys: 1, agents: demoAgents.length + 1 });
    const winner = results.find((r) => r.created)!;
    const { rows } = await f.db.database.pool.query("SELECT name FROM tenants");
    expect(rows).toEqual([{ name: winner.apiKey === keyA ? "A" : "B" }]);
    const [a, b] = [await f.services.apiKeys.authenticate(keyA), await f.services.apiKeys.authenticate(keyB)];
    expect([a, b].filter(Boolean)).toHaveLength(1);
    expect((a ?? b)!.tenantId).toBe(winner.tenantId);
  });

  it("treats empty variables as unset: it generates a password that works and a key", async () => {
    const f = await fresh();
    const r = await bootstrap(
      f.services,
      { BOSUN_INIT_API_KEY: "", BOSUN_INIT_ADMIN_EMAIL: "", BOSUN_INIT_ADMIN_PASSWORD: "", BOSUN_INIT_TENANT: "" },
      { demoAgents: false },
    );
    expect(r).toMatchObject({ created: true, email: "admin@bosun.local", passwordGenerated: true });
    expect(r.password!.length).toBeGreaterThanOrEqual(10);
    expect(r.apiKey).toMatch(/^bsn_[0-9a-z]{44}$/);
    expect(await f.services.apiKeys.authenticate(r.apiKey!)).toMatchObject({ tenantId: r.tenantId, scopes: ["admin"] });
    expect((await f.services.identity.login({ email: r.email!, password: r.password! })).tenant.id).toBe(r.tenantId);
    const { rows } = await f.db.database.pool.query("SELECT name FROM tenants");
    expect(rows).toEqual([{ name: "Demo" }]);
    expect((await counts(f.db)).agents).toBe(0);
  });
});

describe("login from another site", () => {
  it("refuses a login whose Origin names another site, and accepts one with none (scripts)", async () => {
    const t = await createTestApp();
    try {
      const tenant = await createTenant(t.app);
      const foreign = await t.app.inject({
        method: "POST",
        url: "/v1/auth/login",
        headers: { origin: "https://evil.example" },
        payload: { email: tenant.email, password: tenant.password },
      });
      expect(foreign.statusCode).toBe(403);
      expect(foreign.headers["set-cookie"]).toBeUndefined();
      const script = await t.app.inject({ method: "POST", url: "/v1/auth/login", payload: { email: tenant.email, password: tenant.password } });
      expect(script.statusCode).toBe(200);
      const own = await t.app.inject({
        method: "POST",
        url: "/v1/auth/login",
        headers: { origin: "http://bosun.test" },
        payload: { email: tenant.email, password: tenant.password },
      });
      expect(own.statusCode).toBe(200);
    } finally {
      await t.close();
    }
  });
});
