import { randomBytes } from "node:crypto";
import { rollupCosts } from "@bosun/core";
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from "fastify";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import {
  applyAgent,
  createKey,
  createTenant,
  createTestApp,
  descriptor,
  PUBLIC_URL,
  problem,
  sessionCookie,
  type TestApp,
  type TestTenant,
} from "../../../test/helpers/app";

/**
 * One tenant-isolation and authentication suite over every /v1 route that needs
 * credentials. Tenant A owns the resources named in the URLs; tenant B tries to reach
 * them. Every test must leave tenant A's rows exactly as they were (see afterEach).
 */

type Scope = "read" | "write" | "admin";
type Method = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
type Headers = Record<string, string>;

interface Ctx {
  a: TestTenant;
  b: TestTenant;
  /** Tenant A's agents: `agent` is addressed by B; B creates its own `postAgent` and `putAgent`. */
  agent: string;
  postAgent: string;
  putAgent: string;
  /** A live read key of tenant A. */
  key: string;
  /** Tenant A's task, addressed by B. */
  task: string;
  /** Tenant A's run, addressed by B. */
  run: string;
  /** Tenant A's message to `agent` (also its thread's id), addressed by B. */
  message: string;
  /** Tenant A's budget, addressed by B. */
  budget: string;
  /** Tenant A's policy and pending approval, addressed by B. */
  policy: string;
  approval: string;
  /** Tenant A's open proposal, addressed by B. */
  proposal: string;
  /** Tenant A's budgets, prices and alerts: none may reach B. */
  aCostIds: string[];
  aAgentIds: string[];
  aKeyIds: string[];
  aTaskIds: string[];
  aRunIds: string[];
}

interface RouteCase {
  method: Method;
  /** The route as registered (checked against the app's routes by the guard test). */
  route: string;
  /** The URL to call; {agent}, {putAgent}, {key} and {task} name tenant A's resources. */
  url: string;
  scope: Scope;
  body?: (c: Ctx) => unknown;
  headers?: Headers;
  /** Needs a console session; tenant B's cross-tenant call uses B's session cookie. */
  session?: true;
  /** May an agent-bound key (even with admin scope) call it? */
  agentKey: "allowed" | "forbidden";
  /** What tenant B gets when it calls the URL (which names tenant A's resources). */
  cross: "not-found" | ((res: LightMyRequestResponse, c: Ctx) => void | Promise<void>);
}

const ids = (res: LightMyRequestResponse) => (res.json().items as { id: string }[]).map((i) => i.id);

const routes: RouteCase[] = [
  {
    method: "GET",
    route: "/v1/runs",
    url: "/v1/runs",
    scope: "read",
    agentKey: "allowed",
    cross: (res, c) => {
      expect(res.statusCode).toBe(200);
      expect(ids(res)).not.toContain(c.run);
    },
  },
  { method: "GET", route: "/v1/runs/:id", url: "/v1/runs/{run}", scope: "read", agentKey: "allowed", cross: "not-found" },
  { method: "GET", route: "/v1/runs/:id/steps", url: "/v1/runs/{run}/steps", scope: "read", agentKey: "allowed", cross: "not-found" },
  { method: "POST", route: "/v1/runs/:id/cancel", url: "/v1/runs/{run}/cancel", scope: "write", agentKey: "forbidden", cross: "not-found" },
  {
    method: "POST",
    route: "/v1/runs/:id/usage",
    url: "/v1/runs/{run}/usage",
    scope: "write",
    body: () => ({ provider: "anthropic", model: "claude-opus-4-7", inputTokens: 1, outputTokens: 1 }),
    agentKey: "allowed",
    cross: "not-found",
  },
  {
    method: "POST",
    route: "/v1/runs/:id/finish",
    url: "/v1/runs/{run}/finish",
    scope: "write",
    body: () => ({ status: "succeeded" }),
    agentKey: "allowed",
    cross: "not-found",
  },
  {
    method: "POST",
    route: "/v1/agents/:name/runs",
    url: "/v1/agents/{agent}/runs",
    scope: "write",
    body: () => ({ input: "hello" }),
    agentKey: "allowed",
    cross: "not-found",
  },
  {
    method: "POST",
    route: "/v1/messages",
    url: "/v1/messages",
    scope: "write",
    body: (c) => ({ to: c.agent, body: "hello" }),
    agentKey: "allowed",
    cross: (res) => {
      // Tenant A's agent does not exist for tenant B.
      expect(res.statusCode).toBe(422);
      expect(problem(res).errors?.[0]?.path).toBe("to");
    },
  },
  {
    method: "GET",
    route: "/v1/messages",
    url: "/v1/messages",
    scope: "read",
    agentKey: "allowed",
    cross: (res, c) => {
      expect(res.statusCode).toBe(200);
      expect(ids(res)).not.toContain(c.message);
    },
  },
  { method: "GET", route: "/v1/messages/:id", url: "/v1/messages/{message}", scope: "read", agentKey: "allowed", cross: "not-found" },
  { method: "GET", route: "/v1/threads/:id", url: "/v1/threads/{message}", scope: "read", agentKey: "allowed", cross: "not-found" },
  { method: "GET", route: "/v1/agents/:name/memory", url: "/v1/agents/{agent}/memory", scope: "read", agentKey: "allowed", cross: "not-found" },
  { method: "POST", route: "/v1/tasks/:id/promote", url: "/v1/tasks/{task}/promote", scope: "write", agentKey: "forbidden", cross: "not-found" },
  {
    method: "GET",
    route: "/v1/agents",
    url: "/v1/agents?limit=200",
    scope: "read",
    agentKey: "allowed",
    cross: (res, c) => {
      expect(res.statusCode).toBe(200);
      const items = res.json().items as { id: string; name: string }[];
      expect(items.map((i) => i.name)).toContain("beta"); // B's own agent: the list works
      expect(items.map((i) => i.name)).not.toContain(c.agent);
      for (const id of c.aAgentIds) expect(ids(res)).not.toContain(id);
    },
  },
  {
    method: "POST",
    route: "/v1/agents",
    url: "/v1/agents",
    scope: "write",
    body: (c) => descriptor(c.postAgent),
    // Tenant A created `postAgent` with this key and this exact body.
    headers: { "idempotency-key": "shared-idem-agent" },
    agentKey: "forbidden",
    cross: (res, c) => {
      // Neither 409 (A's name would leak) nor a replay of A's idempotent response.
      expect(res.statusCode).toBe(201);
      expect(res.headers["idempotent-replayed"]).toBeUndefined();
      expect(res.json()).toMatchObject({ name: c.postAgent, revision: 1 });
      expect(c.aAgentIds).not.toContain(res.json().id);
    },
  },
  { method: "GET", route: "/v1/agents/:name", url: "/v1/agents/{agent}", scope: "read", agentKey: "allowed", cross: "not-found" },
  {
    method: "PUT",
    route: "/v1/agents/:name",
    url: "/v1/agents/{putAgent}",
    scope: "write",
    body: (c) => descriptor(c.putAgent),
    agentKey: "forbidden",
    cross: (res, c) => {
      // B's PUT creates B's own agent: not "unchanged" (200) as if it matched A's.
      expect(res.statusCode).toBe(201);
      expect(res.json()).toMatchObject({ name: c.putAgent, revision: 1, changed: true });
      expect(c.aAgentIds).not.toContain(res.json().id);
    },
  },
  { method: "GET", route: "/v1/agents/:name/revisions", url: "/v1/agents/{agent}/revisions", scope: "read", agentKey: "allowed", cross: "not-found" },
  {
    method: "GET",
    route: "/v1/agents/:name/revisions/:revision",
    url: "/v1/agents/{agent}/revisions/1",
    scope: "read",
    agentKey: "allowed",
    cross: "not-found",
  },
  {
    method: "GET",
    route: "/v1/agents/:name/revisions/:revision/diff",
    url: "/v1/agents/{agent}/revisions/1/diff",
    scope: "read",
    agentKey: "allowed",
    cross: "not-found",
  },
  { method: "POST", route: "/v1/agents/:name/pause", url: "/v1/agents/{agent}/pause", scope: "write", agentKey: "forbidden", cross: "not-found" },
  { method: "POST", route: "/v1/agents/:name/resume", url: "/v1/agents/{agent}/resume", scope: "write", agentKey: "forbidden", cross: "not-found" },
  { method: "POST", route: "/v1/agents/:name/retire", url: "/v1/agents/{agent}/retire", scope: "write", agentKey: "forbidden", cross: "not-found" },
  {
    method: "GET",
    route: "/v1/tasks",
    url: "/v1/tasks?limit=200",
    scope: "read",
    agentKey: "allowed",
    cross: (res, c) => {
      expect(res.statusCode).toBe(200);
      expect((res.json().items as { title: string }[]).map((i) => i.title)).toContain("beta task"); // B's own task: the list works
      for (const id of c.aTaskIds) expect(ids(res)).not.toContain(id);
    },
  },
  {
    method: "POST",
    route: "/v1/tasks",
    url: "/v1/tasks",
    scope: "write",
    // Assigned to A's agent, with the Idempotency-Key A used for this exact body.
    body: (c) => ({ title: "shared", assignee: c.agent }),
    headers: { "idempotency-key": "shared-idem-task" },
    agentKey: "allowed",
    cross: (res) => {
      expect(res.statusCode).toBe(422);
      expect(res.headers["idempotent-replayed"]).toBeUndefined();
      expect(problem(res)).toMatchObject({ code: "VALIDATION", errors: [{ path: "assignee", message: "no such agent" }] });
    },
  },
  { method: "GET", route: "/v1/tasks/:id", url: "/v1/tasks/{task}", scope: "read", agentKey: "allowed", cross: "not-found" },
  { method: "PATCH", route: "/v1/tasks/:id", url: "/v1/tasks/{task}", scope: "write", body: () => ({ priority: 99 }), agentKey: "allowed", cross: "not-found" },
  { method: "POST", route: "/v1/tasks/:id/cancel", url: "/v1/tasks/{task}/cancel", scope: "write", agentKey: "allowed", cross: "not-found" },
  {
    method: "POST",
    route: "/v1/tasks/:id/claim",
    url: "/v1/tasks/{task}/claim",
    scope: "write",
    body: () => ({ ttlSeconds: 60 }),
    agentKey: "allowed",
    cross: "not-found",
  },
  { method: "POST", route: "/v1/tasks/:id/start", url: "/v1/tasks/{task}/start", scope: "write", body: () => ({ epoch: 1 }), agentKey: "allowed", cross: "not-found" },
  {
    method: "POST",
    route: "/v1/tasks/:id/heartbeat",
    url: "/v1/tasks/{task}/heartbeat",
    scope: "write",
    body: () => ({ epoch: 1, ttlSeconds: 60 }),
    agentKey: "allowed",
    cross: "not-found",
  },
  {
    method: "POST",
    route: "/v1/tasks/:id/complete",
    url: "/v1/tasks/{task}/complete",
    scope: "write",
    body: () => ({ epoch: 1, result: { ok: true } }),
    agentKey: "allowed",
    cross: "not-found",
  },
  {
    method: "POST",
    route: "/v1/tasks/:id/fail",
    url: "/v1/tasks/{task}/fail",
    scope: "write",
    body: () => ({ epoch: 1, error: "gave up" }),
    agentKey: "allowed",
    cross: "not-found",
  },
  {
    method: "POST",
    route: "/v1/tasks/:id/review",
    url: "/v1/tasks/{task}/review",
    scope: "write",
    body: () => ({ decision: "approve" }),
    agentKey: "allowed",
    cross: "not-found",
  },
  {
    method: "GET",
    route: "/v1/api-keys",
    url: "/v1/api-keys?limit=200",
    scope: "admin",
    agentKey: "forbidden",
    cross: (res, c) => {
      expect(res.statusCode).toBe(200);
      expect(ids(res).length).toBeGreaterThan(0); // B's own keys: the list works
      for (const id of c.aKeyIds) expect(ids(res)).not.toContain(id);
    },
  },
  {
    method: "POST",
    route: "/v1/api-keys",
    url: "/v1/api-keys",
    scope: "admin",
    // Binding to A's agent, with the Idempotency-Key A used for this exact body.
    body: (c) => ({ name: "bound", scopes: ["read"], agent: c.agent }),
    headers: { "idempotency-key": "shared-idem-key" },
    agentKey: "forbidden",
    cross: (res) => {
      expect(res.statusCode).toBe(422);
      expect(res.headers["idempotent-replayed"]).toBeUndefined();
      expect(problem(res)).toMatchObject({ code: "VALIDATION", errors: [{ path: "agent", message: "no such agent" }] });
    },
  },
  { method: "DELETE", route: "/v1/api-keys/:id", url: "/v1/api-keys/{key}", scope: "admin", agentKey: "forbidden", cross: "not-found" },
  {
    method: "GET",
    route: "/v1/budgets",
    url: "/v1/budgets?limit=200",
    scope: "read",
    agentKey: "forbidden",
    cross: (res, c) => {
      expect(res.statusCode).toBe(200);
      for (const id of c.aCostIds) expect(ids(res)).not.toContain(id);
    },
  },
  {
    method: "POST",
    route: "/v1/budgets",
    url: "/v1/budgets",
    scope: "admin",
    // On A's agent, with the Idempotency-Key A used for this exact body.
    body: (c) => ({ scope: "agent", agent: c.agent, window: "day", limitUsd: 5 }),
    headers: { "idempotency-key": "shared-idem-budget" },
    agentKey: "forbidden",
    cross: (res) => {
      expect(res.statusCode).toBe(422);
      expect(res.headers["idempotent-replayed"]).toBeUndefined();
      expect(problem(res)).toMatchObject({ code: "VALIDATION", errors: [{ path: "agent", message: "no such agent" }] });
    },
  },
  { method: "GET", route: "/v1/budgets/:id", url: "/v1/budgets/{budget}", scope: "read", agentKey: "forbidden", cross: "not-found" },
  { method: "PATCH", route: "/v1/budgets/:id", url: "/v1/budgets/{budget}", scope: "admin", body: () => ({ limitUsd: 1 }), agentKey: "forbidden", cross: "not-found" },
  { method: "DELETE", route: "/v1/budgets/:id", url: "/v1/budgets/{budget}", scope: "admin", agentKey: "forbidden", cross: "not-found" },
  {
    method: "GET",
    route: "/v1/alerts",
    url: "/v1/alerts?limit=200",
    scope: "read",
    agentKey: "forbidden",
    cross: (res) => {
      expect(res.statusCode).toBe(200);
      expect(res.json().items).toEqual([]);
    },
  },
  {
    method: "GET",
    route: "/v1/costs",
    url: "/v1/costs?from=2000-01-01&to=2100-12-31&groupBy=agent",
    scope: "read",
    agentKey: "forbidden",
    cross: (res) => {
      expect(res.statusCode).toBe(200);
      expect(res.json()).toMatchObject({ totalMicros: 0, groups: [] });
    },
  },
  {
    method: "GET",
    route: "/v1/costs/export.csv",
    url: "/v1/costs/export.csv?from=2000-01-01&to=2100-12-31",
    scope: "read",
    agentKey: "forbidden",
    cross: (res) => {
      expect(res.statusCode).toBe(200);
      expect(res.body.trimEnd().split("\r\n")).toHaveLength(1); // the header only
    },
  },
  {
    method: "GET",
    route: "/v1/costs/settings",
    url: "/v1/costs/settings",
    scope: "read",
    agentKey: "forbidden",
    cross: (res) => {
      expect(res.statusCode).toBe(200);
      expect(res.json()).toMatchObject({ alertEmails: [], computeMicrosPerHour: 50_000 });
    },
  },
  {
    method: "PATCH",
    route: "/v1/costs/settings",
    url: "/v1/costs/settings",
    scope: "admin",
    body: () => ({ alertEmails: ["b-finance@example.com"] }),
    agentKey: "forbidden",
    cross: async (res, c) => {
      expect(res.statusCode).toBe(200);
      expect(res.json().alertEmails).toEqual(["b-finance@example.com"]);
      const back = await inject({ method: "PATCH", url: "/v1/costs/settings", headers: c.b.auth, payload: { alertEmails: [] } });
      expect(back.statusCode).toBe(200);
    },
  },
  {
    method: "GET",
    route: "/v1/prices",
    url: "/v1/prices?limit=200&provider=anthropic",
    scope: "read",
    agentKey: "allowed",
    cross: (res, c) => {
      expect(res.statusCode).toBe(200);
      expect(ids(res).length).toBeGreaterThan(0); // the catalogue: the list works
      for (const id of c.aCostIds) expect(ids(res)).not.toContain(id);
    },
  },
  {
    method: "POST",
    route: "/v1/prices",
    url: "/v1/prices",
    scope: "admin",
    body: () => ({ provider: "anthropic", model: "claude-opus-4-7", inputMicrosPerMtok: 1, outputMicrosPerMtok: 2 }),
    agentKey: "forbidden",
    cross: (res, c) => {
      expect(res.statusCode).toBe(201);
      expect(res.json()).toMatchObject({ source: "tenant", inputMicrosPerMtok: 1 });
      expect(c.aCostIds).not.toContain(res.json().id);
    },
  },
  {
    method: "GET",
    route: "/v1/policies",
    url: "/v1/policies?limit=200",
    scope: "read",
    agentKey: "forbidden",
    cross: (res) => {
      expect(res.statusCode).toBe(200);
      expect(res.json().items).toEqual([]);
    },
  },
  {
    method: "POST",
    route: "/v1/policies",
    url: "/v1/policies",
    scope: "admin",
    // On A's agent, with the Idempotency-Key A used for this exact body.
    body: (c) => ({ name: "shared-policy", agent: c.agent, match: { tool: "send_message" }, decision: "deny" }),
    headers: { "idempotency-key": "shared-idem-policy" },
    agentKey: "forbidden",
    cross: (res) => {
      expect(res.statusCode).toBe(422);
      expect(res.headers["idempotent-replayed"]).toBeUndefined();
      expect(problem(res)).toMatchObject({ code: "VALIDATION", errors: [{ path: "agent", message: "no such agent" }] });
    },
  },
  { method: "GET", route: "/v1/policies/:id", url: "/v1/policies/{policy}", scope: "read", agentKey: "forbidden", cross: "not-found" },
  { method: "PATCH", route: "/v1/policies/:id", url: "/v1/policies/{policy}", scope: "admin", body: () => ({ priority: 1 }), agentKey: "forbidden", cross: "not-found" },
  { method: "DELETE", route: "/v1/policies/:id", url: "/v1/policies/{policy}", scope: "admin", agentKey: "forbidden", cross: "not-found" },
  {
    method: "GET",
    route: "/v1/approvals",
    url: "/v1/approvals?limit=200",
    scope: "read",
    agentKey: "forbidden",
    cross: (res) => {
      expect(res.statusCode).toBe(200);
      expect(res.json().items).toEqual([]);
    },
  },
  { method: "GET", route: "/v1/approvals/:id", url: "/v1/approvals/{approval}", scope: "read", agentKey: "forbidden", cross: "not-found" },
  {
    method: "POST",
    route: "/v1/approvals/:id/approve",
    url: "/v1/approvals/{approval}/approve",
    scope: "write",
    body: () => ({ comment: "from the other tenant" }),
    agentKey: "forbidden",
    cross: "not-found",
  },
  { method: "POST", route: "/v1/approvals/:id/deny", url: "/v1/approvals/{approval}/deny", scope: "write", body: () => ({}), agentKey: "forbidden", cross: "not-found" },
  {
    method: "GET",
    route: "/v1/inbox",
    url: "/v1/inbox?limit=200",
    scope: "read",
    agentKey: "forbidden",
    cross: (res) => {
      expect(res.statusCode).toBe(200);
      expect(res.json().items).toEqual([]);
    },
  },
  {
    method: "GET",
    route: "/v1/me",
    url: "/v1/me",
    scope: "read",
    agentKey: "allowed",
    cross: (res, c) => {
      expect(res.statusCode).toBe(200);
      expect(res.json().tenant.id).toBe(c.b.tenantId);
    },
  },
  {
    // Deployment configuration, not tenant data: every tenant's admin sees the same workers.
    method: "GET",
    route: "/v1/settings/deployment",
    url: "/v1/settings/deployment",
    scope: "admin",
    agentKey: "forbidden",
    cross: (res) => {
      expect(res.statusCode).toBe(200);
      expect(Object.keys(res.json()).sort()).toEqual(["note", "providers", "smtp", "workers"]);
    },
  },
  {
    method: "GET",
    route: "/v1/tenant",
    url: "/v1/tenant",
    scope: "read",
    agentKey: "allowed",
    cross: (res, c) => {
      expect(res.statusCode).toBe(200);
      expect(res.json()).toMatchObject({ id: c.b.tenantId, name: "Tenant B" });
    },
  },
  {
    method: "PATCH",
    route: "/v1/tenant",
    url: "/v1/tenant",
    scope: "admin",
    body: () => ({ name: "Renamed by the caller" }),
    agentKey: "forbidden",
    cross: async (res, c) => {
      expect(res.statusCode).toBe(200);
      expect(res.json()).toMatchObject({ id: c.b.tenantId, name: "Renamed by the caller" });
      // Put B's name back for the GET /v1/tenant check; A is checked by afterEach.
      const back = await inject({ method: "PATCH", url: "/v1/tenant", headers: c.b.auth, payload: { name: "Tenant B" } });
      expect(back.statusCode).toBe(200);
    },
  },
  {
    method: "POST",
    route: "/v1/auth/tenant",
    url: "/v1/auth/tenant",
    scope: "read",
    session: true,
    body: (c) => ({ tenantId: c.a.tenantId }),
    agentKey: "allowed",
    cross: async (res, c) => {
      expect(res.statusCode).toBe(404);
      expect(problem(res).code).toBe("NOT_FOUND");
      const me = await inject({ url: "/v1/me", headers: { cookie: c.b.cookie } });
      expect(me.json().tenant.id).toBe(c.b.tenantId);
    },
  },
  {
    method: "GET",
    route: "/v1/mcp-servers",
    url: "/v1/mcp-servers?limit=200",
    scope: "read",
    agentKey: "allowed",
    cross: (res, c) => {
      expect(res.statusCode).toBe(200);
      for (const id of c.aCostIds) expect(ids(res)).not.toContain(id);
    },
  },
  {
    method: "POST",
    route: "/v1/mcp-servers",
    url: "/v1/mcp-servers",
    scope: "admin",
    // With the Idempotency-Key A used: B's own server is created, A's response is not replayed.
    body: () => ({ name: "b-mcp", transport: "http", url: "http://127.0.0.1:9/mcp" }),
    headers: { "idempotency-key": "shared-idem-mcp" },
    agentKey: "forbidden",
    cross: async (res, c) => {
      expect(res.statusCode).toBe(201);
      expect(res.headers["idempotent-replayed"]).toBeUndefined();
      expect(res.json().name).toBe("b-mcp");
      expect((await inject({ method: "DELETE", url: "/v1/mcp-servers/b-mcp", headers: c.b.auth })).statusCode).toBe(200);
    },
  },
  { method: "GET", route: "/v1/mcp-servers/:name", url: "/v1/mcp-servers/a-mcp", scope: "read", agentKey: "allowed", cross: "not-found" },
  { method: "PATCH", route: "/v1/mcp-servers/:name", url: "/v1/mcp-servers/a-mcp", scope: "admin", body: () => ({ status: "disabled" }), agentKey: "forbidden", cross: "not-found" },
  { method: "DELETE", route: "/v1/mcp-servers/:name", url: "/v1/mcp-servers/a-mcp", scope: "admin", agentKey: "forbidden", cross: "not-found" },
  { method: "POST", route: "/v1/mcp-servers/:name/refresh", url: "/v1/mcp-servers/a-mcp/refresh", scope: "admin", agentKey: "forbidden", cross: "not-found" },
  { method: "GET", route: "/v1/mcp-servers/:name/tools", url: "/v1/mcp-servers/a-mcp/tools", scope: "read", agentKey: "allowed", cross: "not-found" },
  {
    method: "PATCH",
    route: "/v1/mcp-servers/:name/tools/:tool",
    url: "/v1/mcp-servers/a-mcp/tools/echo",
    scope: "admin",
    body: () => ({ feeMicros: 1 }),
    agentKey: "forbidden",
    cross: "not-found",
  },
  {
    method: "GET",
    route: "/v1/tools",
    url: "/v1/tools?limit=200",
    scope: "read",
    agentKey: "allowed",
    cross: (res) => {
      expect(res.statusCode).toBe(200);
      expect(res.json().items).toEqual([]);
    },
  },
  {
    method: "GET",
    route: "/v1/proposals",
    url: "/v1/proposals?limit=200",
    scope: "read",
    agentKey: "allowed",
    cross: (res, c) => {
      expect(res.statusCode).toBe(200);
      expect(ids(res)).not.toContain(c.proposal);
    },
  },
  {
    method: "POST",
    route: "/v1/proposals",
    url: "/v1/proposals",
    scope: "write",
    // The body and Idempotency-Key tenant A used for its proposal.
    body: () => ({ title: "shared proposal", domains: ["test/shared"] }),
    headers: { "idempotency-key": "shared-idem-proposal" },
    agentKey: "allowed",
    cross: (res, c) => {
      expect(res.statusCode).toBe(201);
      expect(res.headers["idempotent-replayed"]).toBeUndefined();
      expect(res.json().id).not.toBe(c.proposal);
      // Asked: B's agents covering the domain (B's own alpha-post and alpha-put may exist by now), never A's.
      const asked = res.json().responses as { agent: string; agentId: string }[];
      expect(asked.map((r) => r.agent)).toContain("beta");
      for (const r of asked) expect(c.aAgentIds).not.toContain(r.agentId);
    },
  },
  {
    method: "GET",
    route: "/v1/proposals/settings",
    url: "/v1/proposals/settings",
    scope: "read",
    agentKey: "allowed",
    cross: (res) => {
      expect(res.statusCode).toBe(200);
      expect(res.json()).toEqual({ approveAfterSeconds: 86_400, escalateAfterSeconds: 172_800 });
    },
  },
  {
    method: "PATCH",
    route: "/v1/proposals/settings",
    url: "/v1/proposals/settings",
    scope: "admin",
    body: () => ({ approveAfterSeconds: 600 }),
    agentKey: "forbidden",
    cross: async (res, c) => {
      expect(res.statusCode).toBe(200);
      expect(res.json()).toEqual({ approveAfterSeconds: 600, escalateAfterSeconds: 172_800 });
      const back = await inject({ method: "PATCH", url: "/v1/proposals/settings", headers: c.b.auth, payload: { approveAfterSeconds: 86_400 } });
      expect(back.statusCode).toBe(200);
    },
  },
  { method: "GET", route: "/v1/proposals/:id", url: "/v1/proposals/{proposal}", scope: "read", agentKey: "allowed", cross: "not-found" },
  {
    method: "POST",
    route: "/v1/proposals/:id/responses",
    url: "/v1/proposals/{proposal}/responses",
    scope: "write",
    body: () => ({ stance: "block" }),
    agentKey: "allowed",
    cross: async (res, c) => {
      // B's people do not respond at all; B's own agent does not find A's proposal.
      expect(res.statusCode).toBe(403);
      const beta = await createKey(t.app, c.b, { scopes: ["write"], agent: "beta" });
      const asAgent = await inject({ method: "POST", url: `/v1/proposals/${c.proposal}/responses`, headers: beta.auth, payload: { stance: "block" } });
      expect(asAgent.statusCode).toBe(404);
      expect(problem(asAgent).code).toBe("NOT_FOUND");
    },
  },
  {
    method: "POST",
    route: "/v1/proposals/:id/decide",
    url: "/v1/proposals/{proposal}/decide",
    scope: "write",
    body: () => ({ decision: "approve" }),
    agentKey: "forbidden",
    cross: "not-found",
  },
  {
    method: "GET",
    route: "/v1/audit",
    url: "/v1/audit?limit=200",
    scope: "admin",
    agentKey: "forbidden",
    cross: (res, c) => {
      expect(res.statusCode).toBe(200);
      expect(res.json().items.length).toBeGreaterThan(0); // B's own events: the list works
      for (const e of res.json().items as { target: { id: string } }[]) expect(e.target.id).not.toBe(c.a.tenantId);
    },
  },
  {
    method: "GET",
    route: "/v1/audit/verify",
    url: "/v1/audit/verify",
    scope: "admin",
    agentKey: "forbidden",
    cross: (res) => {
      expect(res.statusCode).toBe(200);
      expect(res.json()).toMatchObject({ ok: true, firstBroken: null });
    },
  },
];

/** Reachable without credentials (`config: { public: true }`). */
const publicRoutes = ["POST /v1/signup", "POST /v1/auth/login", "POST /v1/auth/logout"];

let t: TestApp;
let c: Ctx;
const keys = {} as Record<"readA" | "writeA" | "revokedA" | "expiredA" | "agentA" | "readB" | "writeB", string>;
let loggedOutCookie: string;
let snapshotBefore: unknown;

const inject = (opts: InjectOptions) => t.app.inject(opts);
const bearer = (key: string): Headers => ({ authorization: `Bearer ${key}` });
const fill = (url: string) =>
  url
    .replace("{agent}", c.agent)
    .replace("{putAgent}", c.putAgent)
    .replace("{key}", c.key)
    .replace("{task}", c.task)
    .replace("{run}", c.run)
    .replace("{message}", c.message)
    .replace("{budget}", c.budget)
    .replace("{policy}", c.policy)
    .replace("{approval}", c.approval)
    .replace("{proposal}", c.proposal);

function call(row: RouteCase, headers: Headers, url = fill(row.url)) {
  const mutating = row.method !== "GET";
  return inject({
    method: row.method,
    url,
    headers: { ...row.headers, ...(mutating && headers.cookie ? { origin: PUBLIC_URL } : {}), ...headers },
    ...(row.body ? { payload: row.body(c) as object } : {}),
  });
}

/** Everything of tenant A that any test here could change (last_used_at aside), in one query. */
async function snapshotA() {
  const part = (name: string, sql: string) => `'${name}', (SELECT coalesce(json_agg(x), '[]') FROM (${sql}) x)`;
  const { rows } = await t.db.database.pool.query(
    `SELECT json_build_object(
      ${part("tenant", "SELECT name, time_zone, updated_at FROM tenants WHERE id = $1")},
      ${part("agents", "SELECT id, name, owner, status, revision, spec_hash, descriptor, updated_at FROM agents WHERE tenant_id = $1 ORDER BY id")},
      ${part("revisions", "SELECT agent_id, revision, spec_hash FROM agent_revisions WHERE tenant_id = $1 ORDER BY agent_id, revision")},
      ${part("keys", "SELECT id, name, scopes, agent_id, expires_at, revoked_at FROM api_keys WHERE tenant_id = $1 ORDER BY id")},
      ${part("audit", "SELECT count(*)::int AS n, max(seq)::int AS seq FROM audit_events WHERE tenant_id = $1")},
      ${part("idempotency", "SELECT key, request_hash, status_code FROM idempotency_keys WHERE tenant_id = $1 ORDER BY key")},
      ${part("memberships", "SELECT user_id, role FROM memberships WHERE tenant_id = $1 ORDER BY user_id")},
      ${part("tasks", "SELECT id, title, priority, status, attempts, lease_epoch, lease_owner, result, updated_at FROM tasks WHERE tenant_id = $1 ORDER BY id")},
      ${part("dependencies", "SELECT task_id, depends_on_id FROM task_dependencies WHERE tenant_id = $1 ORDER BY task_id, depends_on_id")},
      ${part("runs", "SELECT id, status, step_count, ended_at FROM runs WHERE tenant_id = $1 ORDER BY id")},
      ${part("messages", "SELECT id FROM messages WHERE tenant_id = $1 ORDER BY id")},
      ${part("budgets", "SELECT id, scope, agent_id, metric, period, limit_value, enforcement, thresholds, on_exhausted, updated_at FROM budgets WHERE tenant_id = $1 ORDER BY id")},
      ${part("prices", "SELECT id, provider, model, input_micros_per_mtok, effective_from FROM price_overrides WHERE tenant_id = $1 ORDER BY id")},
      ${part("costSettings", "SELECT allow_unpriced_models, compute_micros_per_hour, alert_emails FROM cost_settings WHERE tenant_id = $1")},
      ${part("alerts", "SELECT id, status FROM budget_alerts WHERE tenant_id = $1 ORDER BY id")},
      ${part("policies", "SELECT id, name, agent_id, priority, tool_pattern, decision, updated_at FROM policies WHERE tenant_id = $1 ORDER BY id")},
      ${part("waitpoints", "SELECT id, status, resolution, resolved_at FROM waitpoints WHERE tenant_id = $1 ORDER BY id")},
      ${part("ledger", "SELECT count(*)::int AS n, sum(cost_micros)::bigint AS cost FROM cost_ledger WHERE tenant_id = $1")},
      ${part("proposals", "SELECT id, status, due_at, decided_at, applied_at, updated_at FROM proposals WHERE tenant_id = $1 ORDER BY id")},
      ${part("proposalResponses", "SELECT proposal_id, agent_id, stance, comment FROM proposal_responses WHERE tenant_id = $1 ORDER BY proposal_id, agent_id")},
      ${part("proposalSettings", "SELECT approve_after_seconds, escalate_after_seconds FROM proposal_settings WHERE tenant_id = $1")},
      ${part("mcpServers", "SELECT id, name, url, status, calls_per_minute, updated_at FROM mcp_servers WHERE tenant_id = $1 ORDER BY id")},
      ${part("mcpTools", "SELECT server_id, name, version, fee_micros, current FROM mcp_tools WHERE tenant_id = $1 ORDER BY server_id, name, version")}
    ) AS snapshot`,
    [c.a.tenantId],
  );
  return rows[0].snapshot;
}

function expectUnauthorized(res: LightMyRequestResponse) {
  expect(res.statusCode).toBe(401);
  if (res.body === "") return; // HEAD
  expect(problem(res)).toMatchObject({ status: 401, code: "UNAUTHORIZED", requestId: expect.any(String) });
}

beforeAll(async () => {
  t = await createTestApp();
  const a = await createTenant(t.app, "Tenant A");
  const b = await createTenant(t.app, "Tenant B");

  const alpha = await applyAgent(t.app, a, "alpha");
  const alphaPut = await applyAgent(t.app, a, "alpha-put");
  const alphaPost = await inject({
    method: "POST",
    url: "/v1/agents",
    headers: { ...a.auth, "idempotency-key": "shared-idem-agent" },
    payload: descriptor("alpha-post"),
  });
  expect(alphaPost.statusCode).toBe(201);
  const bound = await inject({
    method: "POST",
    url: "/v1/api-keys",
    headers: { ...a.auth, "idempotency-key": "shared-idem-key" },
    payload: { name: "bound", scopes: ["read"], agent: "alpha" },
  });
  expect(bound.statusCode).toBe(201);
  await applyAgent(t.app, b, "beta");
  const before = await inject({ method: "POST", url: "/v1/tasks", headers: a.auth, payload: { title: "before", assignee: "alpha" } });
  const task = await inject({
    method: "POST",
    url: "/v1/tasks",
    headers: { ...a.auth, "idempotency-key": "shared-idem-task" },
    payload: { title: "shared", assignee: "alpha" },
  });
  expect(task.statusCode).toBe(201);
  await inject({ method: "PATCH", url: `/v1/tasks/${task.json().id}`, headers: a.auth, payload: { add_depends_on: [before.json().id] } });
  expect((await inject({ method: "POST", url: "/v1/tasks", headers: b.auth, payload: { title: "beta task", assignee: "beta" } })).statusCode).toBe(201);

  const readA = await createKey(t.app, a, { scopes: ["read"] });
  keys.readA = readA.key;
  keys.writeA = (await createKey(t.app, a, { scopes: ["write"] })).key;
  keys.agentA = (await createKey(t.app, a, { scopes: ["admin"], agent: "alpha" })).key;
  keys.readB = (await createKey(t.app, b, { scopes: ["read"] })).key;
  keys.writeB = (await createKey(t.app, b, { scopes: ["write"] })).key;

  // Revoked and expired admin keys; each works first, so only revocation/expiry can fail it.
  const revoked = await createKey(t.app, a, { scopes: ["admin"] });
  const expired = await createKey(t.app, a, { scopes: ["admin"], expiresAt: new Date(Date.now() + 3_600_000).toISOString() });
  for (const k of [revoked, expired]) expect((await inject({ url: "/v1/me", headers: k.auth })).statusCode).toBe(200);
  expect((await inject({ method: "DELETE", url: `/v1/api-keys/${revoked.id}`, headers: a.auth })).statusCode).toBe(200);
  await t.db.database.pool.query("UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = $1", [expired.id]);
  keys.revokedA = revoked.key;
  keys.expiredA = expired.key;

  // A console session that has been logged out.
  const login = await inject({ method: "POST", url: "/v1/auth/login", payload: { email: a.email, password: a.password } });
  loggedOutCookie = sessionCookie(login);
  expect((await inject({ method: "POST", url: "/v1/auth/logout", headers: { cookie: loggedOutCookie, origin: PUBLIC_URL } })).statusCode).toBe(204);

  const run = await inject({ method: "POST", url: "/v1/agents/alpha/runs", headers: a.auth, payload: { input: "tenant A's run" } });
  expect(run.statusCode).toBe(201);
  const message = await inject({ method: "POST", url: "/v1/messages", headers: a.auth, payload: { to: "alpha", body: "tenant A's message" } });
  expect(message.statusCode).toBe(201);
  // Tenant A's cost data: a budget (with the Idempotency-Key B reuses), a price, settings,
  // a charge in the ledger and its rollup, and an alert.
  const budget = await inject({
    method: "POST",
    url: "/v1/budgets",
    headers: { ...a.auth, "idempotency-key": "shared-idem-budget" },
    payload: { scope: "agent", agent: "alpha", window: "day", limitUsd: 5 },
  });
  expect(budget.statusCode).toBe(201);
  const price = await inject({
    method: "POST",
    url: "/v1/prices",
    headers: a.auth,
    payload: { provider: "anthropic", model: "claude-opus-4-7", inputMicrosPerMtok: 3_000_000, outputMicrosPerMtok: 15_000_000 },
  });
  expect(price.statusCode).toBe(201);
  expect((await inject({ method: "PATCH", url: "/v1/costs/settings", headers: a.auth, payload: { alertEmails: ["a-finance@example.com"] } })).statusCode).toBe(200);
  await t.db.database.pool.query(
    `INSERT INTO cost_ledger (tenant_id, id, run_created_at, idempotency_key, kind, agent_id, run_id, provider, model, input_tokens, cost_micros)
     VALUES ($1, 'chg_00000000000000000000000000', now(), $2, 'tokens', $3, $4, 'scripted', 'scripted-small', 1000, 1000)`,
    [a.tenantId, `${run.json().id}:0`, alpha.id, run.json().id],
  );
  await rollupCosts(t.db.database);
  const alertId = "alr_00000000000000000000000000";
  await t.db.database.pool.query(
    `INSERT INTO budget_alerts (tenant_id, id, budget_id, window_key, threshold, agent_id, window_start, spent, limit_value, status)
     VALUES ($1, $2, $3, 'w', 50, $4, now(), 2500000, 5000000, 'unsent')`,
    [a.tenantId, alertId, budget.json().id, alpha.id],
  );
  // Tenant A's MCP server (never reached: nothing here lists it) and one catalogue entry.
  const mcp = await inject({
    method: "POST",
    url: "/v1/mcp-servers",
    headers: { ...a.auth, "idempotency-key": "shared-idem-mcp" },
    payload: { name: "b-mcp", transport: "http", url: "http://127.0.0.1:9/mcp" },
  });
  expect(mcp.statusCode).toBe(201);
  expect((await inject({ method: "PATCH", url: "/v1/mcp-servers/b-mcp", headers: a.auth, payload: { url: "http://127.0.0.1:9/a" } })).statusCode).toBe(200);
  await t.db.database.pool.query(`UPDATE mcp_servers SET name = 'a-mcp' WHERE id = $1`, [mcp.json().id]);
  await t.db.database.pool.query(
    `INSERT INTO mcp_tools (tenant_id, server_id, name, version, schema_hash, input_schema) VALUES ($1, $2, 'echo', 1, 'h', '{"type":"object"}')`,
    [a.tenantId, mcp.json().id],
  );
  // Tenant A's policy (with the Idempotency-Key B reuses) and a pending approval on A's run.
  const policy = await inject({
    method: "POST",
    url: "/v1/policies",
    headers: { ...a.auth, "idempotency-key": "shared-idem-policy" },
    payload: { name: "shared-policy", agent: "alpha", match: { tool: "send_message" }, decision: "deny" },
  });
  expect(policy.statusCode).toBe(201);
  const approvalId = "wpt_00000000000000000000000000";
  await t.db.database.pool.query(
    `INSERT INTO waitpoints (tenant_id, id, run_id, agent_id, kind, ref, expires_at, payload)
     VALUES ($1, $2, $3, $4, 'approval', 'create_task', now() + interval '1 day', '{"tool": "create_task", "toolUseId": "t1", "llmSeq": 0}')`,
    [a.tenantId, approvalId, run.json().id, alpha.id],
  );
  expect((await inject({ url: "/v1/inbox", headers: a.auth })).json().items).toMatchObject([{ kind: "approval", id: approvalId }]);
  // Tenant A's open proposal (with the Idempotency-Key B reuses) and its own proposal windows.
  const proposal = await inject({
    method: "POST",
    url: "/v1/proposals",
    headers: { ...a.auth, "idempotency-key": "shared-idem-proposal" },
    payload: { title: "shared proposal", domains: ["test/shared"] },
  });
  expect(proposal.statusCode).toBe(201);
  expect((await inject({ method: "PATCH", url: "/v1/proposals/settings", headers: a.auth, payload: { approveAfterSeconds: 3600 } })).statusCode).toBe(200);
  const aKeyIds = (await t.db.database.pool.query<{ id: string }>("SELECT id FROM api_keys WHERE tenant_id = $1", [a.tenantId])).rows.map((r) => r.id);
  c = {
    a,
    b,
    agent: "alpha",
    postAgent: "alpha-post",
    putAgent: "alpha-put",
    key: readA.id,
    task: task.json().id,
    run: run.json().id,
    message: message.json().id,
    aRunIds: [run.json().id],
    budget: budget.json().id,
    aCostIds: [budget.json().id, price.json().id, alertId, mcp.json().id, policy.json().id, approvalId, proposal.json().id],
    policy: policy.json().id,
    approval: approvalId,
    proposal: proposal.json().id,
    aAgentIds: [alpha.id, alphaPut.id, alphaPost.json().id],
    aKeyIds,
    aTaskIds: [before.json().id, task.json().id],
  };
  expect(aKeyIds).toHaveLength(7);
  snapshotBefore = await snapshotA();
});

afterEach(async () => {
  // Compare, then take the new state as the baseline, so a change fails only the test that made it.
  const [before, now] = [snapshotBefore, await snapshotA()];
  snapshotBefore = now;
  expect(now, "tenant A's rows changed").toEqual(before);
});

afterAll(() => t?.close());

/** Credentials that must get 401 on every route. */
const badCredentials: [string, () => Headers][] = [
  ["no credentials", () => ({})],
  ["a revoked key", () => bearer(keys.revokedA)],
  ["an expired key", () => bearer(keys.expiredA)],
  ["a malformed bearer token", () => ({ authorization: "Bearer not-a-key" })],
  ["an empty bearer token", () => ({ authorization: "Bearer " })],
  ["a valid key without the Bearer scheme", () => ({ authorization: keys.readA })],
  ["a Basic credential", () => ({ authorization: `Basic ${Buffer.from("user:pass").toString("base64")}` })],
  ["an unknown well-formed key", () => bearer(`bsn_${randomToken(44)}`)],
  ["a known key's lookup with a wrong secret", () => bearer(keys.readA.slice(0, 16) + randomToken(32))],
  ["an unknown session cookie", () => ({ cookie: `bosun_session=${randomToken(40)}` })],
  ["a logged-out session cookie", () => ({ cookie: loggedOutCookie })],
];

function randomToken(n: number) {
  const alphabet = "0123456789abcdefghijklmnopqrstuvwxyz";
  return Array.from(randomBytes(n), (x) => alphabet[x % alphabet.length]).join("");
}

describe.each(routes)("$method $route", (row) => {
  test.each(badCredentials)("%s → 401 UNAUTHORIZED", async (_name, headers) => {
    expectUnauthorized(await call(row, headers()));
  });

  if (row.method === "GET") {
    test("HEAD without credentials → 401", async () => {
      expectUnauthorized(await inject({ method: "HEAD", url: fill(row.url) }));
    });
  }

  test("a percent-encoded path gets the same 401 as the plain one", async () => {
    const plain = await call(row, {});
    const encoded = await call(row, {}, fill(row.url).replace("/v1/", "/%761/"));
    expectUnauthorized(encoded);
    expect(problem(encoded).detail).toBe(problem(plain).detail);
    expectUnauthorized(await call(row, { authorization: "Bearer not-a-key" }, fill(row.url).replace("/v1/", "/%761/")));
  });

  const weaker: Scope[] = row.scope === "admin" ? ["read", "write"] : row.scope === "write" ? ["read"] : [];
  if (weaker.length > 0) {
    test.each(weaker)(`a %s key lacks the '${row.scope}' scope → 403 FORBIDDEN`, async (scope) => {
      const res = await call(row, bearer(scope === "read" ? keys.readA : keys.writeA));
      expect(res.statusCode).toBe(403);
      expect(problem(res).code).toBe("FORBIDDEN");
    });
  }

  if (row.agentKey === "forbidden") {
    test("an agent-bound admin key → 403 FORBIDDEN", async () => {
      const res = await call(row, bearer(keys.agentA));
      expect(res.statusCode).toBe(403);
      expect(problem(res).code).toBe("FORBIDDEN");
    });
  }

  const minimalB = () => (row.session ? { cookie: c.b.cookie } : row.scope === "read" ? bearer(keys.readB) : row.scope === "write" ? bearer(keys.writeB) : c.b.auth);
  test(`tenant B (${row.session ? "session" : `${row.scope} key`}) cannot reach tenant A's data`, async () => {
    const res = await call(row, minimalB());
    // Nothing of tenant A appears in what B gets back, beyond what B itself sent.
    const sent = fill(row.url) + JSON.stringify(row.body?.(c) ?? null);
    for (const secret of [c.a.tenantId, ...c.aAgentIds, ...c.aKeyIds, ...c.aTaskIds, ...c.aRunIds, ...c.aCostIds]) {
      if (!sent.includes(secret)) expect(res.body).not.toContain(secret);
    }
    if (row.cross === "not-found") {
      expect(res.statusCode).toBe(404);
      expect(problem(res).code).toBe("NOT_FOUND");
    } else {
      await row.cross(res, c);
    }
  });

  if (row.cross === "not-found") {
    test("tenant B's console session → 404 NOT_FOUND", async () => {
      const res = await call(row, { cookie: c.b.cookie });
      expect(res.statusCode).toBe(404);
      expect(problem(res).code).toBe("NOT_FOUND");
    });
  }
});

describe("positive controls", () => {
  test("tenant A's own keys reach tenant A's resources", async () => {
    expect((await inject({ url: "/v1/agents/alpha", headers: bearer(keys.readA) })).json().name).toBe("alpha");
    expect((await inject({ url: "/v1/agents/alpha/revisions/1/diff", headers: bearer(keys.readA) })).statusCode).toBe(200);
    expect((await inject({ url: "/v1/api-keys", headers: c.a.auth })).json().items.map((k: { id: string }) => k.id)).toContain(c.key);
  });

  test("an agent-bound key authenticates as its agent and may read", async () => {
    const me = await inject({ url: "/v1/me", headers: bearer(keys.agentA) });
    expect(me.statusCode).toBe(200);
    expect(me.json()).toMatchObject({ actor: { type: "agent", id: c.aAgentIds[0] }, agentId: c.aAgentIds[0], scopes: ["admin"] });
    expect((await inject({ url: "/v1/agents/alpha", headers: bearer(keys.agentA) })).statusCode).toBe(200);
  });

  test("tenant A's keys reach tenant A's task; tenant B's own agent key cannot claim it", async () => {
    const got = await inject({ url: `/v1/tasks/${c.task}`, headers: bearer(keys.readA) });
    expect(got.json()).toMatchObject({ id: c.task, dependencies: [{ id: c.aTaskIds[0] }] });
    const betaKey = await createKey(t.app, c.b, { scopes: ["write"], agent: "beta" });
    const claim = await inject({ method: "POST", url: `/v1/tasks/${c.task}/claim`, headers: betaKey.auth, payload: {} });
    expect(claim.statusCode).toBe(404);
    expect(problem(claim).code).toBe("NOT_FOUND");
  });

  test("tenant A's key addressed by tenant B stays live", async () => {
    expect((await inject({ url: "/v1/me", headers: bearer(keys.readA) })).json().tenant.id).toBe(c.a.tenantId);
  });
});

/** Every (method, route) the app registered, parsed from printRoutes' tree. */
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

describe("the table covers every authenticated route", () => {
  test("every /v1 route is either in the table or known to be public", async () => {
    const registered = registeredRoutes(t.app).filter((r) => r.route.startsWith("/v1/"));
    const table = new Set(routes.map((r) => `${r.method} ${r.route}`));
    const all = new Set(registered.map((r) => `${r.method} ${r.route}`));
    // The parser found the routes (so this test cannot pass on an empty list).
    expect(all).toContain("POST /v1/signup");
    expect(all).toContain("DELETE /v1/api-keys/:id");
    expect(all).toContain("GET /v1/agents/:name/revisions/:revision/diff");

    const missing = [...all].filter((r) => {
      const [method, route] = r.split(" ") as [string, string];
      const key = method === "HEAD" ? `GET ${route}` : r; // HEAD is Fastify's twin of a GET
      return !table.has(key) && !publicRoutes.includes(key);
    });
    expect(missing, "add these routes to the isolation table (or mark them public)").toEqual([]);
    // And the table lists no route that does not exist.
    expect([...table, ...publicRoutes].filter((r) => !all.has(r))).toEqual([]);
  });

  test("every registered /v1 route outside the public list demands credentials; the public ones do not", async () => {
    const concrete = (route: string) =>
      route.replace(":name", "some-agent").replace(":revision", "1").replace(":id", `key_${"0".repeat(26)}`).replace(/:\w+/g, "x");
    for (const { method, route } of registeredRoutes(t.app).filter((r) => r.route.startsWith("/v1/"))) {
      const res = await inject({ method: method as Method, url: concrete(route), ...(method === "GET" || method === "HEAD" ? {} : { payload: {} }) });
      if (publicRoutes.includes(`${method} ${route}`)) expect(res.statusCode, `${method} ${route}`).not.toBe(401);
      else expect(res.statusCode, `${method} ${route}`).toBe(401);
    }
  });
});
