import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import { hashPassword, newId, reportWorker } from "@bosun/core";
import { repo, withSystem } from "@bosun/db";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { createKey, createTenant, createTestApp, problem, sessionCookie, type TestApp, type TestTenant } from "../../../test/helpers/app";

/**
 * GET /v1/settings/deployment against a real worker process (apps/worker/src/main.ts,
 * spawned with its own environment, as a deployment runs it): the worker reports SMTP and
 * providers into `workers`; the API shows them to admins without any credential.
 */

const SMTP_USER = "mailer-user-7q";
const SMTP_PASSWORD = "s3cret-Pw-9x";
const ANTHROPIC_KEY = "sk-ant-test-key-not-to-leak-41";

let t: TestApp;
let owner: TestTenant;
let child: ChildProcess | undefined;

const get = (headers: Record<string, string>) => t.app.inject({ method: "GET", url: "/v1/settings/deployment", headers });
const q = async <T = Record<string, unknown>>(sql: string, params: unknown[] = []) => (await t.db.database.pool.query(sql, params)).rows as T[];

async function until(check: () => Promise<boolean>, ms: number, what: string) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function viewerCookie(tenant: TestTenant) {
  const email = `viewer.${Date.now()}@example.com`;
  const password = "viewer password 1";
  const passwordHash = await hashPassword(password);
  await withSystem(t.db.database, async (tx) => {
    const user = await repo.insertUser(tx, { id: newId("usr"), email, name: "viewer", passwordHash });
    await repo.insertMembership(tx, { tenantId: tenant.tenantId, userId: user!.id, role: "viewer" });
  });
  const login = await t.app.inject({ method: "POST", url: "/v1/auth/login", payload: { email, password } });
  expect(login.statusCode).toBe(200);
  return sessionCookie(login);
}

beforeAll(async () => {
  t = await createTestApp();
  owner = await createTenant(t.app, "Deployment");
});

afterAll(async () => {
  if (child && child.exitCode === null) child.kill("SIGKILL");
  await t?.close();
});

describe("GET /v1/settings/deployment", () => {
  test("with no worker ever seen: no SMTP, no providers, and a note saying why", async () => {
    const res = await get(owner.auth);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ workers: [], smtp: null, providers: [], note: expect.stringContaining("no worker is online") });
  });

  test("a worker not seen for minutes shows offline, and its configuration is not taken as current", async () => {
    await q(
      `INSERT INTO workers (id, host, pid, version, started_at, last_seen_at, smtp, providers)
       VALUES ('stale-worker', 'old-host', 42, '0.0.1', now() - interval '1 hour', now() - interval '5 minutes', $1, '[]')`,
      [JSON.stringify({ configured: true, host: "old.example.test", port: 25, secure: false, from: "old@example.test" })],
    );
    const body = (await get(owner.auth)).json();
    expect(body.workers).toEqual([expect.objectContaining({ id: "stale-worker", host: "old-host", pid: 42, online: false })]);
    expect(body.smtp).toBeNull();
    expect(body.note).toContain("no worker is online");
  });

  test("a real worker reports SMTP (host, port, from; never user or password) and its providers", async () => {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      DATABASE_URL: t.db.url,
      SMTP_URL: `smtp://${SMTP_USER}:${SMTP_PASSWORD}@mail.example.test:2525`,
      BOSUN_MAIL_FROM: "Fleet Ops <ops@example.test>",
      ANTHROPIC_API_KEY: ANTHROPIC_KEY,
      BOSUN_TICK_MS: "60000",
      LOG_LEVEL: "silent",
    };
    delete env.OPENAI_API_KEY;
    child = spawn(process.execPath, ["--import", "tsx", path.resolve("apps/worker/src/main.ts")], { env, stdio: ["ignore", "ignore", "inherit"] });
    await until(async () => (await q(`SELECT 1 FROM workers WHERE pid = $1 AND stopped_at IS NULL`, [child!.pid])).length === 1, 60_000, "the worker's row");

    const [row] = await q<{ id: string; smtp: unknown; providers: unknown }>(`SELECT id, smtp, providers FROM workers WHERE pid = $1`, [child.pid]);
    const stored = JSON.stringify(row);
    for (const secret of [SMTP_USER, SMTP_PASSWORD, ANTHROPIC_KEY]) expect(stored).not.toContain(secret);

    const res = await get(owner.auth);
    expect(res.statusCode).toBe(200);
    for (const secret of [SMTP_USER, SMTP_PASSWORD, ANTHROPIC_KEY]) expect(res.body).not.toContain(secret);
    const body = res.json();
    expect(body.workers[0]).toMatchObject({ id: row!.id, pid: child.pid, online: true, version: "0.1.0" });
    expect(body.workers.map((w: { id: string; online: boolean }) => [w.id, w.online])).toEqual([
      [row!.id, true],
      ["stale-worker", false],
    ]);
    expect(body.smtp).toEqual({ configured: true, host: "mail.example.test", port: 2525, secure: false, from: "Fleet Ops <ops@example.test>" });
    expect(body.note).toBeNull();
    const providers = Object.fromEntries(body.providers.map((p: { name: string; configured: boolean }) => [p.name, p.configured]));
    expect(providers).toEqual({ anthropic: true, openai: false, "openai-compatible": true, scripted: true });
  });

  test("admins only: viewer, read and write keys and agent keys get 403; the owner's session and an admin key get 200", async () => {
    const { app } = t;
    await app.inject({ method: "PUT", url: "/v1/agents/deployer", headers: owner.auth, payload: { apiVersion: "agent.os/v1", kind: "Agent", metadata: { name: "deployer", owner: "ops" }, spec: { model: { provider: "scripted", name: "scripted-small", pinned_revision: "2026-01-01" }, soul: "x", domains: ["ops/*"] } } });
    const denied = {
      viewer: { cookie: await viewerCookie(owner) },
      read: (await createKey(app, owner, { scopes: ["read"] })).auth,
      write: (await createKey(app, owner, { scopes: ["write"] })).auth,
      agent: (await createKey(app, owner, { scopes: ["admin"], agent: "deployer" })).auth,
    };
    for (const [name, headers] of Object.entries(denied)) {
      const res = await get(headers);
      expect({ name, status: res.statusCode, code: problem(res).code }).toEqual({ name, status: 403, code: "FORBIDDEN" });
      expect(res.body).not.toContain("mail.example.test");
    }
    expect((await get({ cookie: owner.cookie })).statusCode).toBe(200);
    expect((await get(owner.auth)).statusCode).toBe(200);
    const none = await get({});
    expect(none.statusCode).toBe(401);
    expect(problem(none).code).toBe("UNAUTHORIZED");
  });

  test("another tenant's admin sees the same deployment (global), and none of the first tenant's data", async () => {
    const other = await createTenant(t.app, "Other");
    const res = await get(other.auth);
    expect(res.statusCode).toBe(200);
    expect(res.json().smtp).toMatchObject({ host: "mail.example.test" });
    expect(res.body).not.toContain(owner.tenantId);
  });

  test("a worker stopped gracefully (SIGTERM) is marked stopped and shows offline", async () => {
    const pid = child!.pid;
    child!.kill("SIGTERM");
    await new Promise((r) => (child!.exitCode !== null ? r(null) : child!.once("exit", r)));
    expect(child!.exitCode).toBe(0);
    const [row] = await q<{ stopped_at: Date | null }>(`SELECT stopped_at FROM workers WHERE pid = $1`, [pid]);
    expect(row!.stopped_at).not.toBeNull();
    const body = (await get(owner.auth)).json();
    expect(body.workers.every((w: { online: boolean }) => !w.online)).toBe(true);
    expect(body.smtp).toBeNull();
  });

  test("each worker report deletes the rows of workers not seen for a week, and keeps the others", async () => {
    await q(
      `INSERT INTO workers (id, host, pid, version, started_at, last_seen_at, smtp, providers)
       VALUES ('gone-8d', 'h', 1, '0.0.1', now() - interval '9 days', now() - interval '8 days', '{}', '[]'),
              ('gone-6d', 'h', 2, '0.0.1', now() - interval '7 days', now() - interval '6 days', '{}', '[]')`,
    );
    const before = (await q<{ id: string }>(`SELECT id FROM workers ORDER BY id`)).map((r) => r.id);
    await reportWorker(t.db.database, { id: "reporter", version: "0.1.0", startedAt: new Date(), smtp: { configured: false, host: null, port: null, secure: null, from: null }, providers: [] });
    const after = (await q<{ id: string }>(`SELECT id FROM workers ORDER BY id`)).map((r) => r.id);
    expect(after).toEqual([...before.filter((id) => id !== "gone-8d"), "reporter"].sort());
    await q(`DELETE FROM workers WHERE id IN ('gone-6d', 'reporter')`);
  });
});
