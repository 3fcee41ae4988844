import { hashPassword, newId } from "@bosun/core";
import { repo, withSystem } from "@bosun/db";
import type { FastifyInstance, InjectOptions } from "fastify";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { applyAgent, createKey, createTenant, createTestApp, descriptor, PUBLIC_URL, problem, sessionCookie, type TestApp, type TestTenant } from "../../../test/helpers/app";

/**
 * The role and scope matrix over every /v1 route: each route's minimum scope (people's roles
 * map to scopes: owner and admin → admin, operator → write, viewer → read) and whether an
 * agent's own key may call it. Every credential below calls every route; a credential
 * below the route's scope, or an agent's key on a route for people (or a person on a
 * route for agents), must get 403 FORBIDDEN, and every other credential must not get 403.
 *
 * Targets are ids that do not exist, so the scope check (which comes first) is all an
 * allowed caller meets before a 404; routes that decide "agent or person" only after
 * loading their target get real targets (`{task}`, `{reviewTask}`, `{run}`).
 */

type Scope = "read" | "write" | "admin";
type Method = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

interface Row {
  method: Method;
  route: string;
  url: string;
  /** The least scope that may call it. */
  min: Scope;
  /** An agent-bound key: may call it (`yes`), may not (`no`), or is the only one that may (`only`). */
  agent: "yes" | "no" | "only";
  body?: () => unknown;
}

const id = (prefix: string) => `${prefix}_${"0".repeat(26)}`;

const rows: Row[] = [
  // identity
  { method: "GET", route: "/v1/me", url: "/v1/me", min: "read", agent: "yes" },
  { method: "GET", route: "/v1/tenant", url: "/v1/tenant", min: "read", agent: "yes" },
  { method: "PATCH", route: "/v1/tenant", url: "/v1/tenant", min: "admin", agent: "no", body: () => ({ name: "Matrix" }) },
  // With a key this is a 400 (switching needs a session); the point here is that nobody gets 403.
  { method: "POST", route: "/v1/auth/tenant", url: "/v1/auth/tenant", min: "read", agent: "yes", body: () => ({ tenantId: env.tenant.tenantId }) },
  // API keys
  { method: "GET", route: "/v1/api-keys", url: "/v1/api-keys", min: "admin", agent: "no" },
  { method: "POST", route: "/v1/api-keys", url: "/v1/api-keys", min: "admin", agent: "no", body: () => ({ name: "matrix", scopes: ["read"] }) },
  { method: "DELETE", route: "/v1/api-keys/:id", url: `/v1/api-keys/${id("key")}`, min: "admin", agent: "no" },
  // agents
  { method: "GET", route: "/v1/agents", url: "/v1/agents", min: "read", agent: "yes" },
  { method: "POST", route: "/v1/agents", url: "/v1/agents", min: "write", agent: "no", body: () => descriptor("matrix-post") },
  { method: "GET", route: "/v1/agents/:name", url: "/v1/agents/matrix", min: "read", agent: "yes" },
  { method: "PUT", route: "/v1/agents/:name", url: "/v1/agents/matrix-put", min: "write", agent: "no", body: () => descriptor("matrix-put") },
  { method: "GET", route: "/v1/agents/:name/revisions", url: "/v1/agents/matrix/revisions", min: "read", agent: "yes" },
  { method: "GET", route: "/v1/agents/:name/revisions/:revision", url: "/v1/agents/matrix/revisions/1", min: "read", agent: "yes" },
  { method: "GET", route: "/v1/agents/:name/revisions/:revision/diff", url: "/v1/agents/matrix/revisions/1/diff?to=1", min: "read", agent: "yes" },
  { method: "POST", route: "/v1/agents/:name/pause", url: "/v1/agents/no-such-agent/pause", min: "write", agent: "no" },
  { method: "POST", route: "/v1/agents/:name/resume", url: "/v1/agents/no-such-agent/resume", min: "write", agent: "no" },
  { method: "POST", route: "/v1/agents/:name/retire", url: "/v1/agents/no-such-agent/retire", min: "write", agent: "no" },
  { method: "GET", route: "/v1/agents/:name/memory", url: "/v1/agents/matrix/memory", min: "read", agent: "yes" },
  // runs
  { method: "GET", route: "/v1/runs", url: "/v1/runs", min: "read", agent: "yes" },
  { method: "GET", route: "/v1/runs/:id", url: `/v1/runs/${id("run")}`, min: "read", agent: "yes" },
  { method: "GET", route: "/v1/runs/:id/steps", url: `/v1/runs/${id("run")}/steps`, min: "read", agent: "yes" },
  { method: "POST", route: "/v1/runs/:id/cancel", url: `/v1/runs/${id("run")}/cancel`, min: "write", agent: "no" },
  {
    method: "POST",
    route: "/v1/runs/:id/usage",
    url: "/v1/runs/{run}/usage",
    min: "write",
    agent: "only",
    body: () => ({ provider: "anthropic", model: "claude-opus-4-7", inputTokens: 1, outputTokens: 1 }),
  },
  { method: "POST", route: "/v1/runs/:id/finish", url: "/v1/runs/{run}/finish", min: "write", agent: "only", body: () => ({ status: "succeeded" }) },
  { method: "POST", route: "/v1/agents/:name/runs", url: "/v1/agents/matrix/runs", min: "write", agent: "yes", body: () => ({ input: "hello" }) },
  // messages
  { method: "POST", route: "/v1/messages", url: "/v1/messages", min: "write", agent: "yes", body: () => ({ to: "matrix", body: "hello" }) },
  { method: "GET", route: "/v1/messages", url: "/v1/messages", min: "read", agent: "yes" },
  { method: "GET", route: "/v1/messages/:id", url: `/v1/messages/${id("msg")}`, min: "read", agent: "yes" },
  { method: "GET", route: "/v1/threads/:id", url: `/v1/threads/${id("msg")}`, min: "read", agent: "yes" },
  // tasks
  { method: "GET", route: "/v1/tasks", url: "/v1/tasks", min: "read", agent: "yes" },
  { method: "POST", route: "/v1/tasks", url: "/v1/tasks", min: "write", agent: "yes", body: () => ({ title: "matrix", assignee: "matrix" }) },
  { method: "GET", route: "/v1/tasks/:id", url: `/v1/tasks/${id("tsk")}`, min: "read", agent: "yes" },
  { method: "PATCH", route: "/v1/tasks/:id", url: `/v1/tasks/${id("tsk")}`, min: "write", agent: "yes", body: () => ({ priority: 1 }) },
  { method: "POST", route: "/v1/tasks/:id/cancel", url: `/v1/tasks/${id("tsk")}/cancel`, min: "write", agent: "yes" },
  { method: "POST", route: "/v1/tasks/:id/claim", url: "/v1/tasks/{task}/claim", min: "write", agent: "only", body: () => ({ ttlSeconds: 60 }) },
  { method: "POST", route: "/v1/tasks/:id/start", url: "/v1/tasks/{task}/start", min: "write", agent: "only", body: () => ({ epoch: 1 }) },
  { method: "POST", route: "/v1/tasks/:id/heartbeat", url: "/v1/tasks/{task}/heartbeat", min: "write", agent: "only", body: () => ({ epoch: 1, ttlSeconds: 60 }) },
  { method: "POST", route: "/v1/tasks/:id/complete", url: "/v1/tasks/{task}/complete", min: "write", agent: "only", body: () => ({ epoch: 1, result: { ok: true } }) },
  { method: "POST", route: "/v1/tasks/:id/fail", url: "/v1/tasks/{task}/fail", min: "write", agent: "only", body: () => ({ epoch: 1, error: "x" }) },
  // A task a person reviews: the reviewing agent's key is the only agent credential that could.
  { method: "POST", route: "/v1/tasks/:id/promote", url: `/v1/tasks/${id("tsk")}/promote`, min: "write", agent: "no" },
  { method: "POST", route: "/v1/tasks/:id/review", url: "/v1/tasks/{reviewTask}/review", min: "write", agent: "no", body: () => ({ decision: "approve" }) },
  // costs
  { method: "GET", route: "/v1/budgets", url: "/v1/budgets", min: "read", agent: "no" },
  { method: "POST", route: "/v1/budgets", url: "/v1/budgets", min: "admin", agent: "no", body: () => ({ scope: "tenant", window: "day", limitUsd: 5 }) },
  { method: "GET", route: "/v1/budgets/:id", url: `/v1/budgets/${id("bud")}`, min: "read", agent: "no" },
  { method: "PATCH", route: "/v1/budgets/:id", url: `/v1/budgets/${id("bud")}`, min: "admin", agent: "no", body: () => ({ limitUsd: 1 }) },
  { method: "DELETE", route: "/v1/budgets/:id", url: `/v1/budgets/${id("bud")}`, min: "admin", agent: "no" },
  { method: "GET", route: "/v1/alerts", url: "/v1/alerts", min: "read", agent: "no" },
  { method: "GET", route: "/v1/costs", url: "/v1/costs?from=2026-01-01&to=2026-01-31&groupBy=agent", min: "read", agent: "no" },
  { method: "GET", route: "/v1/costs/export.csv", url: "/v1/costs/export.csv?from=2026-01-01&to=2026-01-31", min: "read", agent: "no" },
  { method: "GET", route: "/v1/costs/settings", url: "/v1/costs/settings", min: "read", agent: "no" },
  { method: "PATCH", route: "/v1/costs/settings", url: "/v1/costs/settings", min: "admin", agent: "no", body: () => ({ alertEmails: [] }) },
  { method: "GET", route: "/v1/prices", url: "/v1/prices", min: "read", agent: "yes" },
  {
    method: "POST",
    route: "/v1/prices",
    url: "/v1/prices",
    min: "admin",
    agent: "no",
    body: () => ({ provider: "anthropic", model: "claude-opus-4-7", inputMicrosPerMtok: 1, outputMicrosPerMtok: 2 }),
  },
  // proposals
  { method: "GET", route: "/v1/proposals", url: "/v1/proposals", min: "read", agent: "yes" },
  { method: "POST", route: "/v1/proposals", url: "/v1/proposals", min: "write", agent: "yes", body: () => ({ title: "matrix", domains: ["matrix/x"] }) },
  { method: "GET", route: "/v1/proposals/settings", url: "/v1/proposals/settings", min: "read", agent: "yes" },
  { method: "PATCH", route: "/v1/proposals/settings", url: "/v1/proposals/settings", min: "admin", agent: "no", body: () => ({ approveAfterSeconds: 86_400 }) },
  { method: "GET", route: "/v1/proposals/:id", url: `/v1/proposals/${id("prp")}`, min: "read", agent: "yes" },
  { method: "POST", route: "/v1/proposals/:id/responses", url: `/v1/proposals/${id("prp")}/responses`, min: "write", agent: "only", body: () => ({ stance: "support" }) },
  { method: "POST", route: "/v1/proposals/:id/decide", url: `/v1/proposals/${id("prp")}/decide`, min: "write", agent: "no", body: () => ({ decision: "approve" }) },
  // policies, approvals and the inbox
  { method: "GET", route: "/v1/policies", url: "/v1/policies", min: "read", agent: "no" },
  { method: "POST", route: "/v1/policies", url: "/v1/policies", min: "admin", agent: "no", body: () => ({ name: `matrix-${Math.random().toString(36).slice(2, 8)}`, decision: "allow" }) },
  { method: "GET", route: "/v1/policies/:id", url: `/v1/policies/${id("pol")}`, min: "read", agent: "no" },
  { method: "PATCH", route: "/v1/policies/:id", url: `/v1/policies/${id("pol")}`, min: "admin", agent: "no", body: () => ({ priority: 5 }) },
  { method: "DELETE", route: "/v1/policies/:id", url: `/v1/policies/${id("pol")}`, min: "admin", agent: "no" },
  { method: "GET", route: "/v1/approvals", url: "/v1/approvals", min: "read", agent: "no" },
  { method: "GET", route: "/v1/approvals/:id", url: `/v1/approvals/${id("wpt")}`, min: "read", agent: "no" },
  { method: "POST", route: "/v1/approvals/:id/approve", url: `/v1/approvals/${id("wpt")}/approve`, min: "write", agent: "no", body: () => ({}) },
  { method: "POST", route: "/v1/approvals/:id/deny", url: `/v1/approvals/${id("wpt")}/deny`, min: "write", agent: "no", body: () => ({}) },
  { method: "GET", route: "/v1/inbox", url: "/v1/inbox", min: "read", agent: "no" },
  // the MCP gateway
  { method: "GET", route: "/v1/mcp-servers", url: "/v1/mcp-servers", min: "read", agent: "yes" },
  {
    method: "POST",
    route: "/v1/mcp-servers",
    url: "/v1/mcp-servers",
    min: "admin",
    agent: "no",
    body: () => ({ name: `matrix-${Math.random().toString(36).slice(2, 8)}`, transport: "http", url: "http://127.0.0.1:9/mcp", status: "disabled" }),
  },
  { method: "GET", route: "/v1/mcp-servers/:name", url: "/v1/mcp-servers/no-such-server", min: "read", agent: "yes" },
  { method: "PATCH", route: "/v1/mcp-servers/:name", url: "/v1/mcp-servers/no-such-server", min: "admin", agent: "no", body: () => ({ status: "disabled" }) },
  { method: "DELETE", route: "/v1/mcp-servers/:name", url: "/v1/mcp-servers/no-such-server", min: "admin", agent: "no" },
  { method: "POST", route: "/v1/mcp-servers/:name/refresh", url: "/v1/mcp-servers/no-such-server/refresh", min: "admin", agent: "no" },
  { method: "GET", route: "/v1/mcp-servers/:name/tools", url: "/v1/mcp-servers/no-such-server/tools", min: "read", agent: "yes" },
  {
    method: "PATCH",
    route: "/v1/mcp-servers/:name/tools/:tool",
    url: "/v1/mcp-servers/no-such-server/tools/no_tool",
    min: "admin",
    agent: "no",
    body: () => ({ feeMicros: 1 }),
  },
  { method: "GET", route: "/v1/tools", url: "/v1/tools", min: "read", agent: "yes" },
  // audit
  { method: "GET", route: "/v1/audit", url: "/v1/audit", min: "admin", agent: "no" },
  { method: "GET", route: "/v1/audit/verify", url: "/v1/audit/verify", min: "admin", agent: "no" },
  // settings (deployment-wide, as the workers report it)
  { method: "GET", route: "/v1/settings/deployment", url: "/v1/settings/deployment", min: "admin", agent: "no" },
];

/** Reachable without credentials. */
const publicRoutes = ["POST /v1/signup", "POST /v1/auth/login", "POST /v1/auth/logout"];

interface Credential {
  name: string;
  scope: Scope;
  agent: boolean;
  headers: () => Record<string, string>;
  session: boolean;
}

const env = {} as { t: TestApp; tenant: TestTenant; targets: Record<string, string>; creds: Credential[] };
const rank: Record<Scope, number> = { read: 1, write: 2, admin: 3 };

const forbiddenFor = (c: Credential, r: Row) => rank[c.scope] < rank[r.min] || (c.agent ? r.agent === "no" : r.agent === "only");

/** A console user of the tenant with `role`, logged in: its session cookie. */
async function member(app: FastifyInstance, tenant: TestTenant, role: "admin" | "operator" | "viewer") {
  const email = `${role}.${Date.now()}@example.com`;
  const password = "matrix password 1";
  const passwordHash = await hashPassword(password);
  await withSystem(env.t.db.database, async (tx) => {
    const user = await repo.insertUser(tx, { id: newId("usr"), email, name: role, passwordHash });
    await repo.insertMembership(tx, { tenantId: tenant.tenantId, userId: user!.id, role });
  });
  const login = await app.inject({ method: "POST", url: "/v1/auth/login", payload: { email, password } });
  expect(login.statusCode).toBe(200);
  return sessionCookie(login);
}

function call(r: Row, c: Credential) {
  let url = r.url;
  for (const [k, v] of Object.entries(env.targets)) url = url.replace(`{${k}}`, v);
  const opts: InjectOptions = { method: r.method, url, headers: { ...c.headers(), ...(c.session && r.method !== "GET" ? { origin: PUBLIC_URL } : {}) } };
  if (r.body) opts.payload = r.body() as object;
  return env.t.app.inject(opts);
}

beforeAll(async () => {
  env.t = await createTestApp();
  const { app } = env.t;
  env.tenant = await createTenant(app, "Matrix");
  await applyAgent(app, env.tenant, "matrix");
  const cookies = {
    owner: env.tenant.cookie,
    admin: await member(app, env.tenant, "admin"),
    operator: await member(app, env.tenant, "operator"),
    viewer: await member(app, env.tenant, "viewer"),
  };
  const keys = {
    read: (await createKey(app, env.tenant, { scopes: ["read"] })).auth,
    write: (await createKey(app, env.tenant, { scopes: ["write"] })).auth,
    admin: env.tenant.auth,
    agent: (await createKey(app, env.tenant, { scopes: ["admin"], agent: "matrix" })).auth,
    agentRead: (await createKey(app, env.tenant, { scopes: ["read"], agent: "matrix" })).auth,
  };
  env.creds = [
    { name: "owner (console)", scope: "admin", agent: false, session: true, headers: () => ({ cookie: cookies.owner }) },
    { name: "admin (console)", scope: "admin", agent: false, session: true, headers: () => ({ cookie: cookies.admin }) },
    { name: "operator (console)", scope: "write", agent: false, session: true, headers: () => ({ cookie: cookies.operator }) },
    { name: "viewer (console)", scope: "read", agent: false, session: true, headers: () => ({ cookie: cookies.viewer }) },
    { name: "read key", scope: "read", agent: false, session: false, headers: () => keys.read },
    { name: "write key", scope: "write", agent: false, session: false, headers: () => keys.write },
    { name: "admin key", scope: "admin", agent: false, session: false, headers: () => keys.admin },
    { name: "agent-bound read key", scope: "read", agent: true, session: false, headers: () => keys.agentRead },
    { name: "agent-bound admin key", scope: "admin", agent: true, session: false, headers: () => keys.agent },
  ];
  const task = await app.inject({ method: "POST", url: "/v1/tasks", headers: keys.admin, payload: { title: "lease target", assignee: "matrix" } });
  const reviewTask = await app.inject({ method: "POST", url: "/v1/tasks", headers: keys.admin, payload: { title: "review target", assignee: "matrix", requires_review: true } });
  const run = await app.inject({ method: "POST", url: "/v1/agents/matrix/runs", headers: keys.admin, payload: { input: "run target" } });
  env.targets = { task: task.json().id, reviewTask: reviewTask.json().id, run: run.json().id };
  for (const v of Object.values(env.targets)) expect(v).toBeTruthy();
});
afterAll(() => env.t?.close());

describe("the matrix", () => {
  test("every role and every key against every route: 403 FORBIDDEN exactly where the table says", async () => {
    const wrong: string[] = [];
    for (const r of rows) {
      for (const c of env.creds) {
        const res = await call(r, c);
        const forbidden = forbiddenFor(c, r);
        const got403 = res.statusCode === 403;
        if (res.statusCode >= 500) wrong.push(`${r.method} ${r.route} as ${c.name}: ${res.statusCode} ${res.body.slice(0, 200)}`);
        else if (forbidden && !(got403 && problem(res).code === "FORBIDDEN")) wrong.push(`${r.method} ${r.route} as ${c.name}: expected 403 FORBIDDEN, got ${res.statusCode} ${res.body.slice(0, 200)}`);
        else if (!forbidden && got403) wrong.push(`${r.method} ${r.route} as ${c.name}: expected no 403, got ${res.body.slice(0, 200)}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  test("people's roles resolve to the scopes the table assumes", async () => {
    const scopes = [];
    for (const c of env.creds) scopes.push([c.name, (await env.t.app.inject({ url: "/v1/me", headers: c.headers() })).json().scopes]);
    expect(scopes).toEqual(env.creds.map((c) => [c.name, [c.scope]]));
  });
});

/** Every (method, route) the app registered, parsed from printRoutes' tree (as in isolation.test.ts). */
function registeredRoutes(app: FastifyInstance): { method: string; route: string }[] {
  const out: { method: string; route: string }[] = [];
  const stack: string[] = [];
  for (const line of app.printRoutes({ commonPrefix: false }).split("\n")) {
    const m = /^((?:│ {3}| {4})*)[├└]── (\S+)(?: \(([A-Z, ]+)\))?$/.exec(line);
    if (!m) continue;
    const depth = m[1]!.length / 4;
    const path = (depth === 0 ? "" : stack[depth - 1]!) + m[2]!;
    stack[depth] = path;
    for (const method of m[3]?.split(", ") ?? []) out.push({ method, route: path });
  }
  return out;
}

describe("the table", () => {
  test("covers every registered /v1 route, and lists none that does not exist", () => {
    const registered = new Set(
      registeredRoutes(env.t.app)
        .filter((r) => r.route.startsWith("/v1/") && r.method !== "HEAD")
        .map((r) => `${r.method} ${r.route}`),
    );
    expect(registered).toContain("GET /v1/audit/verify");
    const table = new Set(rows.map((r) => `${r.method} ${r.route}`));
    const missing = [...registered].filter((r) => !table.has(r) && !publicRoutes.includes(r));
    expect(missing, "add these routes to the role/scope table in rbac.test.ts").toEqual([]);
    expect([...table].filter((r) => !registered.has(r))).toEqual([]);
  });
});
