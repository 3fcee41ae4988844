import { buildApp, loadApiConfig } from "@bosun/api";
import { createServices, type DomainServices } from "@bosun/core";
import { createJobs, type Jobs } from "@bosun/jobs";
import type { FastifyInstance, LightMyRequestResponse } from "fastify";
import { createTestDb, type TestDb } from "./db";

export interface TestApp {
  app: FastifyInstance;
  db: TestDb;
  jobs: Jobs;
  services: DomainServices;
  close(): Promise<void>;
}

export const PUBLIC_URL = "http://bosun.test";

/** The real API (in process, driven with app.inject) on its own cloned database. */
export async function createTestApp(overrides: Parameters<typeof loadApiConfig>[1] = {}): Promise<TestApp> {
  const db = await createTestDb();
  const jobs = createJobs({ connectionString: db.url, role: "producer", max: 2 });
  await jobs.start();
  const services = createServices({ database: db.database, jobs, secureCookies: false });
  const config = loadApiConfig({}, { publicUrl: PUBLIC_URL, rateLimitPerMinute: 100_000, consoleDir: "/nonexistent", ...overrides });
  const app = await buildApp(services, config, { logger: false });
  await app.ready();
  return {
    app,
    db,
    jobs,
    services,
    async close() {
      await app.close();
      await jobs.stop({ graceful: false, timeout: 1000 });
      await db.drop();
    },
  };
}

export interface TestTenant {
  tenantId: string;
  userId: string;
  email: string;
  password: string;
  /** The tenant's first admin key, from signup. */
  apiKey: string;
  /** A console session cookie (`bosun_session=…`) for the owner. */
  cookie: string;
  auth: { authorization: string };
}

let counter = 0;

/** Signs up a tenant over the API and logs its owner in: the `createTenant()` factory. */
export async function createTenant(app: FastifyInstance, name = "Acme"): Promise<TestTenant> {
  counter += 1;
  const email = `owner${counter}.${Date.now()}@example.com`;
  const password = "correct horse battery staple";
  const res = await app.inject({
    method: "POST",
    url: "/v1/signup",
    payload: { tenant: { name, timeZone: "Europe/Paris" }, owner: { email, password } },
  });
  if (res.statusCode !== 201) throw new Error(`signup failed: ${res.statusCode} ${res.body}`);
  const body = res.json();
  const login = await app.inject({ method: "POST", url: "/v1/auth/login", payload: { email, password } });
  if (login.statusCode !== 200) throw new Error(`login failed: ${login.statusCode} ${login.body}`);
  const cookie = sessionCookie(login);
  return {
    tenantId: body.tenant.id,
    userId: body.user.id,
    email,
    password,
    apiKey: body.apiKey.key,
    cookie,
    auth: { authorization: `Bearer ${body.apiKey.key}` },
  };
}

export function sessionCookie(res: LightMyRequestResponse): string {
  const raw = res.headers["set-cookie"];
  const all = Array.isArray(raw) ? raw : raw ? [raw] : [];
  const c = all.find((s) => s.startsWith("bosun_session="));
  if (!c) throw new Error("no session cookie set");
  return c.split(";")[0]!;
}

/** Creates a key over the API with the given scopes; returns its secret and id. */
export async function createKey(
  app: FastifyInstance,
  t: TestTenant,
  body: { name?: string; scopes: string[]; agent?: string; expiresAt?: string },
): Promise<{ id: string; key: string; auth: { authorization: string } }> {
  const res = await app.inject({ method: "POST", url: "/v1/api-keys", headers: t.auth, payload: { name: "test key", ...body } });
  if (res.statusCode !== 201) throw new Error(`key creation failed: ${res.statusCode} ${res.body}`);
  const k = res.json();
  return { id: k.id, key: k.key, auth: { authorization: `Bearer ${k.key}` } };
}

export function descriptor(name: string, patch: Record<string, unknown> = {}) {
  return {
    apiVersion: "agent.os/v1",
    kind: "Agent",
    metadata: { name, owner: "platform" },
    spec: {
      model: { provider: "scripted", name: "scripted-small", pinned_revision: "2026-01-01" },
      soul: "You are a test agent.",
      domains: ["test/*"],
      ...patch,
    },
  };
}

export async function applyAgent(app: FastifyInstance, t: TestTenant, name: string, patch: Record<string, unknown> = {}) {
  const res = await app.inject({ method: "PUT", url: `/v1/agents/${name}`, headers: t.auth, payload: descriptor(name, patch) });
  if (res.statusCode >= 300) throw new Error(`apply failed: ${res.statusCode} ${res.body}`);
  return res.json();
}

/** Asserts a problem+json body and returns it. */
export function problem(res: LightMyRequestResponse) {
  if (!String(res.headers["content-type"]).startsWith("application/problem+json")) {
    throw new Error(`expected problem+json, got ${res.headers["content-type"]}: ${res.body.slice(0, 200)}`);
  }
  return res.json() as { code: string; status: number; detail: string; requestId: string; errors?: { path: string; message: string }[] };
}
