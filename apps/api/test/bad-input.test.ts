import type { InjectOptions, LightMyRequestResponse } from "fastify";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { applyAgent, createKey, createTenant, createTestApp, descriptor, PUBLIC_URL, sessionCookie, type TestApp, type TestTenant } from "../../../test/helpers/app";

/**
 * Bad input on every write route under /v1. Each request must be refused with a 4xx
 * problem+json carrying `code` and `requestId`, and must write nothing: the row counts of
 * every table a write route touches are the same before and after.
 */

type Method = "POST" | "PUT" | "PATCH" | "DELETE";

interface Env {
  t: TestApp;
  a: TestTenant;
  /** A console session of tenant A's owner, used by the session routes. */
  cookie: string;
  /** A live key of tenant A that DELETE /v1/api-keys/:id addresses. */
  victimKeyId: string;
  /** The key of tenant A's agent `task-agent`, which the task lease routes need. */
  agentAuth: { authorization: string };
  /** One target task per task route, in the state that route accepts: `{task.claim}` in a URL. */
  tasks: Record<string, string>;
  /** Target runs: `{run.cancel}` (a manual run), `{run.usage}` and `{run.finish}` (task-agent's external run). */
  runs: Record<string, string>;
  /** Target budgets: `{budget.patch}`, `{budget.delete}`. */
  budgets: Record<string, string>;
  /** Target policies `{policy.patch}`, `{policy.delete}`; pending approvals `{approval.approve}`, `{approval.deny}`. */
  policies: Record<string, string>;
  approvals: Record<string, string>;
  /** Target open proposals: `{proposal.respond}` (task-agent is asked), `{proposal.decide}`. */
  proposals: Record<string, string>;
}

interface WriteRoute {
  method: Method;
  route: string;
  /** {key} is the victim key's id, {task.x} the target task of route x. Each agent route has its own target agent. */
  url: string;
  /** `agent`: the agent's own key, for the lease routes. */
  auth: "key" | "agent" | "session" | "none";
  /** A body the route accepts; absent for routes that take no body. */
  valid?: (e: Env) => Record<string, unknown>;
  wrongTypes?: Record<string, unknown>;
  /** A body with an unknown field, and the path the error must name. */
  unknownField?: { body: (e: Env) => Record<string, unknown>; path: string };
  /** Absurd values; all must be refused with 422 VALIDATION. */
  absurd?: [string, (e: Env) => unknown][];
  /** Whether the URL has a path parameter to abuse: the agent name or an id (key, task). */
  param?: "name" | "id";
}

const long = (n: number) => "x".repeat(n);
const TOOLS_10K = Array.from({ length: 10_000 }, (_, i) => `mcp://gateway/tool-${i}`);

const agentAbsurd: [string, (e: Env) => unknown][] = [
  ["a 100 000-character name", () => descriptor(long(100_000))],
  ["a 10 000-element tools array", () => descriptor("fresh", { tools: TOOLS_10K })],
  ["a 100 000-character soul", () => descriptor("fresh", { soul: long(100_000) })],
  ["10 000 drives", () => descriptor("fresh", { drives: Array.from({ length: 10_000 }, (_, i) => ({ name: `d${i}`, question: "why?" })) })],
  ["a NUL byte in the soul", () => descriptor("fresh", { soul: "before\u0000after" })],
];

/** Agent routes: the descriptor's name must match the URL's for PUT. */
const withName = (name: string, body: unknown) => {
  const d = structuredClone(body) as { metadata?: { name?: string } };
  if (d.metadata && d.metadata.name === "fresh") d.metadata.name = name;
  return d;
};

const TASK_ID = `tsk_${"0".repeat(26)}`;
const epochAbsurd: [string, (e: Env) => unknown][] = [
  ["a negative epoch", () => ({ epoch: -1 })],
  ["a fractional epoch", () => ({ epoch: 1.5 })],
  ["an epoch beyond 2^53", () => ({ epoch: 2 ** 60 })],
];

const routes: WriteRoute[] = [
  {
    method: "POST",
    route: "/v1/signup",
    url: "/v1/signup",
    auth: "none",
    valid: () => ({ tenant: { name: "Newco", timeZone: "UTC" }, owner: { email: "founder@newco.example", password: "correct horse battery staple" } }),
    wrongTypes: { tenant: { name: 42, timeZone: ["UTC"] }, owner: { email: true, password: 1234567890 } },
    unknownField: {
      body: () => ({ tenant: { name: "Newco" }, owner: { email: "founder2@newco.example", password: "correct horse battery staple", role: "admin" } }),
      path: "owner.role",
    },
    absurd: [
      ["a 100 000-character tenant name", () => ({ tenant: { name: long(100_000) }, owner: { email: "a@newco.example", password: "correct horse battery staple" } })],
      ["a 100 000-character email", () => ({ tenant: { name: "Newco" }, owner: { email: `${long(100_000)}@newco.example`, password: "correct horse battery staple" } })],
      ["a 100 000-character password", () => ({ tenant: { name: "Newco" }, owner: { email: "b@newco.example", password: long(100_000) } })],
      ["a NUL byte in the tenant name", () => ({ tenant: { name: "New\u0000co" }, owner: { email: "c@newco.example", password: "correct horse battery staple" } })],
    ],
  },
  {
    method: "POST",
    route: "/v1/auth/login",
    url: "/v1/auth/login",
    auth: "none",
    valid: (e) => ({ email: e.a.email, password: e.a.password }),
    wrongTypes: { email: 1, password: { guess: true } },
    unknownField: { body: (e) => ({ email: e.a.email, password: e.a.password, rememberMe: true }), path: "rememberMe" },
    absurd: [
      ["a 100 000-character password", (e) => ({ email: e.a.email, password: long(100_000) })],
      ["a 100 000-character email", () => ({ email: `${long(100_000)}@example.com`, password: "whatever" })],
      ["a 100 000-character tenant id", (e) => ({ email: e.a.email, password: e.a.password, tenantId: long(100_000) })],
    ],
  },
  {
    method: "POST",
    route: "/v1/auth/tenant",
    url: "/v1/auth/tenant",
    auth: "session",
    valid: (e) => ({ tenantId: e.a.tenantId }),
    wrongTypes: { tenantId: 123 },
    unknownField: { body: (e) => ({ tenantId: e.a.tenantId, force: true }), path: "force" },
    absurd: [
      ["a 100 000-character tenant id", () => ({ tenantId: long(100_000) })],
      ["a NUL byte in the tenant id", () => ({ tenantId: "ten_\u0000" })],
    ],
  },
  // After /v1/auth/tenant: its control request ends the session the session routes use.
  { method: "POST", route: "/v1/auth/logout", url: "/v1/auth/logout", auth: "session" },
  {
    method: "POST",
    route: "/v1/api-keys",
    url: "/v1/api-keys",
    auth: "key",
    valid: () => ({ name: "ci", scopes: ["read"] }),
    wrongTypes: { name: 7, scopes: "read", expiresAt: 1_700_000_000 },
    unknownField: { body: () => ({ name: "ci", scopes: ["read"], secret: `bsn_${long(44)}` }), path: "secret" },
    absurd: [
      ["a 100 000-character name", () => ({ name: long(100_000), scopes: ["read"] })],
      ["a 10 000-element scopes array", () => ({ name: "ci", scopes: Array.from({ length: 10_000 }, () => "read") })],
      ["a 5000-character agent name", () => ({ name: "ci", scopes: ["read"], agent: long(5000) })],
      ["an expiry that is not a date", () => ({ name: "ci", scopes: ["read"], expiresAt: "tomorrow" })],
      ["a NUL byte in the name", () => ({ name: "c\u0000i", scopes: ["read"] })],
    ],
  },
  { method: "DELETE", route: "/v1/api-keys/:id", url: "/v1/api-keys/{key}", auth: "key", param: "id" },
  {
    method: "POST",
    route: "/v1/agents",
    url: "/v1/agents",
    auth: "key",
    valid: () => descriptor("fresh"),
    wrongTypes: descriptor("fresh", { model: { provider: "scripted", name: "m", max_tokens: "many" }, tools: "all", memory: { retention_days: "forever" } }),
    unknownField: { body: () => descriptor("fresh", { model: { provider: "scripted", name: "m", temperature: 2 } }), path: "spec.model.temperature" },
    absurd: agentAbsurd,
  },
  {
    method: "PUT",
    route: "/v1/agents/:name",
    url: "/v1/agents/put-target",
    auth: "key",
    param: "name",
    valid: () => descriptor("put-target", { soul: "A changed soul." }),
    wrongTypes: descriptor("put-target", { model: { provider: "scripted", name: "m", max_tokens: "many" }, tools: "all", memory: { retention_days: "forever" } }),
    unknownField: { body: () => descriptor("put-target", { model: { provider: "scripted", name: "m", temperature: 2 } }), path: "spec.model.temperature" },
    absurd: agentAbsurd.map(([label, body]) => [label, (e) => withName("put-target", body(e))] as [string, (e: Env) => unknown]),
  },
  { method: "POST", route: "/v1/agents/:name/pause", url: "/v1/agents/pause-target/pause", auth: "key", param: "name" },
  { method: "POST", route: "/v1/agents/:name/resume", url: "/v1/agents/resume-target/resume", auth: "key", param: "name" },
  { method: "POST", route: "/v1/agents/:name/retire", url: "/v1/agents/retire-target/retire", auth: "key", param: "name" },
  {
    method: "POST",
    route: "/v1/tasks",
    url: "/v1/tasks",
    auth: "key",
    valid: () => ({ title: "Fresh task", assignee: "task-agent", priority: 60 }),
    wrongTypes: { title: 5, priority: "high", assignee: ["task-agent"], depends_on: TASK_ID, requires_review: "yes" },
    unknownField: { body: () => ({ title: "Fresh task", assignee: "task-agent", deadline: "tomorrow" }), path: "deadline" },
    absurd: [
      ["a 100 000-character title", () => ({ title: long(100_000), assignee: "task-agent" })],
      ["a 200 000-character body", () => ({ title: "t", body: long(200_000), assignee: "task-agent" })],
      ["a priority over 100", () => ({ title: "t", assignee: "task-agent", priority: 101 })],
      ["a negative priority", () => ({ title: "t", assignee: "task-agent", priority: -1 })],
      ["10 000 dependencies", () => ({ title: "t", assignee: "task-agent", depends_on: Array.from({ length: 10_000 }, () => TASK_ID) })],
      ["a dependency that is not a task id", () => ({ title: "t", assignee: "task-agent", depends_on: ["agt_x"] })],
      ["a dependency on a task that does not exist", () => ({ title: "t", assignee: "task-agent", depends_on: [TASK_ID] })],
      ["max_attempts 0", () => ({ title: "t", assignee: "task-agent", max_attempts: 0 })],
      ["max_attempts 1000", () => ({ title: "t", assignee: "task-agent", max_attempts: 1000 })],
      ["an assignee and a domain", () => ({ title: "t", assignee: "task-agent", domain: "test/x" })],
      ["neither assignee nor domain", () => ({ title: "t" })],
      ["a glob as the domain", () => ({ title: "t", domain: "test/**" })],
      ["an assignee that does not exist", () => ({ title: "t", assignee: "nobody" })],
      ["a NUL byte in the title", () => ({ title: "a\u0000b", assignee: "task-agent" })],
    ],
  },
  {
    method: "PATCH",
    route: "/v1/tasks/:id",
    url: "/v1/tasks/{task.patch}",
    auth: "key",
    param: "id",
    valid: () => ({ title: "Patched", priority: 80 }),
    wrongTypes: { title: 1, priority: "urgent", add_depends_on: TASK_ID },
    unknownField: { body: () => ({ priority: 80, status: "done" }), path: "status" },
    absurd: [
      ["an empty patch", () => ({})],
      ["a 100 000-character title", () => ({ title: long(100_000) })],
      ["a priority of 1000", () => ({ priority: 1000 })],
      ["a dependency on itself", (e) => ({ add_depends_on: [e.tasks.patch] })],
      ["a dependency on a task that does not exist", () => ({ add_depends_on: [TASK_ID] })],
      ["a NUL byte in the body", () => ({ body: "a\u0000b" })],
    ],
  },
  { method: "POST", route: "/v1/tasks/:id/cancel", url: "/v1/tasks/{task.cancel}/cancel", auth: "key", param: "id" },
  {
    method: "POST",
    route: "/v1/tasks/:id/claim",
    url: "/v1/tasks/{task.claim}/claim",
    auth: "agent",
    param: "id",
    valid: () => ({ ttlSeconds: 120 }),
    wrongTypes: { ttlSeconds: "two minutes" },
    unknownField: { body: () => ({ ttlSeconds: 120, owner: "someone-else" }), path: "owner" },
    absurd: [
      ["a zero ttl", () => ({ ttlSeconds: 0 })],
      ["a ttl over an hour", () => ({ ttlSeconds: 3601 })],
      ["a fractional ttl", () => ({ ttlSeconds: 1.5 })],
    ],
  },
  {
    method: "POST",
    route: "/v1/tasks/:id/start",
    url: "/v1/tasks/{task.start}/start",
    auth: "agent",
    param: "id",
    valid: () => ({ epoch: 1 }),
    wrongTypes: { epoch: "1" },
    unknownField: { body: () => ({ epoch: 1, force: true }), path: "force" },
    absurd: epochAbsurd,
  },
  {
    method: "POST",
    route: "/v1/tasks/:id/heartbeat",
    url: "/v1/tasks/{task.heartbeat}/heartbeat",
    auth: "agent",
    param: "id",
    valid: () => ({ epoch: 1, ttlSeconds: 600 }),
    wrongTypes: { epoch: true, ttlSeconds: "forever" },
    unknownField: { body: () => ({ epoch: 1, leaseOwner: "me" }), path: "leaseOwner" },
    absurd: [...epochAbsurd, ["a ttl of a day", () => ({ epoch: 1, ttlSeconds: 86_400 })]],
  },
  {
    method: "POST",
    route: "/v1/tasks/:id/complete",
    url: "/v1/tasks/{task.complete}/complete",
    auth: "agent",
    param: "id",
    valid: () => ({ epoch: 1, result: { reconciled: 3 } }),
    wrongTypes: { epoch: "one", result: { ok: true } },
    unknownField: { body: () => ({ epoch: 1, result: { ok: true }, status: "done" }), path: "status" },
    absurd: [
      ...epochAbsurd.map(([label, body]) => [label, (e: Env) => ({ ...(body(e) as object), result: "ok" })] as [string, (e: Env) => unknown]),
      ["no result", () => ({ epoch: 1 })],
      ["a null result", () => ({ epoch: 1, result: null })],
      ["an empty object as the result", () => ({ epoch: 1, result: {} })],
      ["a blank string as the result", () => ({ epoch: 1, result: "   " })],
      ["a result nested 1000 deep", () => ({ epoch: 1, result: JSON.parse(`${"[".repeat(1000)}1${"]".repeat(1000)}`) })],
      ["a NUL byte in the result", () => ({ epoch: 1, result: { text: "a\u0000b" } })],
    ],
  },
  {
    method: "POST",
    route: "/v1/tasks/:id/fail",
    url: "/v1/tasks/{task.fail}/fail",
    auth: "agent",
    param: "id",
    valid: () => ({ epoch: 1, error: "the ledger is down", retry: true }),
    wrongTypes: { epoch: 1, error: { message: "down" }, retry: "yes" },
    unknownField: { body: () => ({ epoch: 1, error: "down", attempts: 0 }), path: "attempts" },
    absurd: [
      ...epochAbsurd.map(([label, body]) => [label, (e: Env) => ({ ...(body(e) as object), error: "x" })] as [string, (e: Env) => unknown]),
      ["an empty error", () => ({ epoch: 1, error: "" })],
      ["a 100 000-character error", () => ({ epoch: 1, error: long(100_000) })],
    ],
  },
  {
    method: "POST",
    route: "/v1/tasks/:id/review",
    url: "/v1/tasks/{task.review}/review",
    auth: "key",
    param: "id",
    valid: () => ({ decision: "request_changes", comment: "Show your sources." }),
    wrongTypes: { decision: true, comment: 5 },
    unknownField: { body: () => ({ decision: "approve", score: 10 }), path: "score" },
    absurd: [
      ["an unknown decision", () => ({ decision: "maybe" })],
      ["changes requested without a comment", () => ({ decision: "request_changes" })],
      ["a 100 000-character comment", () => ({ decision: "approve", comment: long(100_000) })],
    ],
  },
  { method: "POST", route: "/v1/runs/:id/cancel", url: "/v1/runs/{run.cancel}/cancel", auth: "key", param: "id" },
  {
    method: "POST",
    route: "/v1/runs/:id/usage",
    url: "/v1/runs/{run.usage}/usage",
    auth: "agent",
    param: "id",
    valid: () => ({ provider: "anthropic", model: "claude-opus-4-7-20260214", inputTokens: 100, outputTokens: 20, cacheReadTokens: 900 }),
    wrongTypes: { provider: 5, model: [], inputTokens: "many", outputTokens: null },
    unknownField: { body: () => ({ provider: "openai", model: "gpt-5", inputTokens: 1, outputTokens: 1, costUsd: 3 }), path: "costUsd" },
    absurd: [
      ["negative tokens", () => ({ provider: "openai", model: "gpt-5", inputTokens: -1, outputTokens: 1 })],
      ["fractional tokens", () => ({ provider: "openai", model: "gpt-5", inputTokens: 1.5, outputTokens: 1 })],
      ["a trillion tokens", () => ({ provider: "openai", model: "gpt-5", inputTokens: 1e12, outputTokens: 1 })],
      ["a 100 000-character model", () => ({ provider: "openai", model: long(100_000), inputTokens: 1, outputTokens: 1 })],
    ],
  },
  {
    method: "POST",
    route: "/v1/runs/:id/finish",
    url: "/v1/runs/{run.finish}/finish",
    auth: "agent",
    param: "id",
    valid: () => ({ status: "succeeded", result: { ok: true } }),
    wrongTypes: { status: true, error: 5 },
    unknownField: { body: () => ({ status: "failed", error: "x", retry: true }), path: "retry" },
    absurd: [
      ["an unknown status", () => ({ status: "done" })],
      ["a 100 000-character error", () => ({ status: "failed", error: long(100_000) })],
    ],
  },
  {
    method: "POST",
    route: "/v1/agents/:name/runs",
    url: "/v1/agents/task-agent/runs",
    auth: "key",
    param: "name",
    valid: () => ({ input: "Check the ledger." }),
    wrongTypes: { input: 42 },
    unknownField: { body: () => ({ input: "go", model: "gpt-5" }), path: "model" },
    absurd: [
      ["an empty input", () => ({ input: "" })],
      ["a 200 000-character input", () => ({ input: long(200_000) })],
    ],
  },
  {
    method: "POST",
    route: "/v1/messages",
    url: "/v1/messages",
    auth: "key",
    valid: () => ({ to: "task-agent", body: "Hello there." }),
    wrongTypes: { to: 5, body: ["hi"] },
    unknownField: { body: () => ({ to: "task-agent", body: "hi", cc: "everyone" }), path: "cc" },
    absurd: [
      ["an agent that does not exist", () => ({ to: "nobody-here", body: "hi" })],
      ["an empty body", () => ({ to: "task-agent", body: "" })],
      ["a 200 000-character body", () => ({ to: "task-agent", body: long(200_000) })],
      ["a NUL byte in the body", () => ({ to: "task-agent", body: "a\u0000b" })],
      ["both a recipient and a broadcast", () => ({ to: "task-agent", body: "hi", broadcast: true })],
      ["no recipient at all", () => ({ body: "hi" })],
      ["a reply to a message that does not exist", () => ({ reply_to: `msg_${"0".repeat(26)}`, body: "hi" })],
      ["a reply to something that is not a message id", () => ({ reply_to: "../../etc/passwd", body: "hi" })],
      ["a thread that does not exist", () => ({ to: "task-agent", body: "hi", thread_id: `msg_${"1".repeat(26)}` })],
      ["a thread without a recipient", () => ({ broadcast: true, body: "hi", thread_id: `msg_${"1".repeat(26)}` })],
    ],
  },
  {
    method: "POST",
    route: "/v1/budgets",
    url: "/v1/budgets",
    auth: "key",
    valid: () => ({ scope: "agent", agent: "task-agent", window: "day", limitUsd: 5 }),
    wrongTypes: { scope: 5, window: true, limitUsd: "five", thresholds: "50,80" },
    unknownField: { body: () => ({ scope: "tenant", window: "day", limitUsd: 5, currency: "EUR" }), path: "currency" },
    absurd: [
      ["a negative limit", () => ({ scope: "tenant", window: "day", limitUsd: -1 })],
      ["a limit finer than a micro-dollar", () => ({ scope: "tenant", window: "day", limitUsd: 0.0000001 })],
      ["a limit of 10^12 dollars", () => ({ scope: "tenant", window: "day", limitUsd: 1e12 })],
      ["an agent budget without its agent", () => ({ scope: "agent", window: "day", limitUsd: 5 })],
      ["an agent that does not exist", () => ({ scope: "agent", agent: "nobody-here", window: "day", limitUsd: 5 })],
      ["a calls limit on a usd budget", () => ({ scope: "tenant", window: "day", limitUsd: 5, limitCalls: 10 })],
      ["a weekly window", () => ({ scope: "tenant", window: "week", limitUsd: 5 })],
      ["10 000 thresholds", () => ({ scope: "tenant", window: "day", limitUsd: 5, thresholds: Array.from({ length: 10_000 }, (_, i) => i + 1) })],
      ["a threshold of 0 %", () => ({ scope: "tenant", window: "day", limitUsd: 5, thresholds: [0] })],
    ],
  },
  {
    method: "PATCH",
    route: "/v1/budgets/:id",
    url: "/v1/budgets/{budget.patch}",
    auth: "key",
    param: "id",
    valid: () => ({ thresholds: [25, 50], enforcement: "soft" }),
    wrongTypes: { thresholds: "all", enforcement: 1, limitUsd: "more" },
    unknownField: { body: () => ({ limitUsd: 1, scope: "agent" }), path: "scope" },
    absurd: [
      ["an empty change", () => ({})],
      ["a negative limit", () => ({ limitUsd: -5 })],
      ["a calls limit on a usd budget", () => ({ limitCalls: 5 })],
      ["an unknown onExhausted", () => ({ onExhausted: "shrug" })],
    ],
  },
  { method: "DELETE", route: "/v1/budgets/:id", url: "/v1/budgets/{budget.delete}", auth: "key", param: "id" },
  {
    method: "POST",
    route: "/v1/policies",
    url: "/v1/policies",
    auth: "key",
    valid: () => ({ name: "approve-big-buys", agent: "task-agent", match: { tool: "create_task", actionValueUsdGt: 100 }, decision: "require_approval", approvalExpiresIn: "2h" }),
    wrongTypes: { name: 5, match: "everything", decision: true, priority: "high" },
    unknownField: { body: () => ({ name: "p", decision: "deny", effect: "block" }), path: "effect" },
    absurd: [
      ["a 100 000-character name", () => ({ name: long(100_000), decision: "deny" })],
      ["an unknown decision", () => ({ name: "p", decision: "maybe" })],
      ["an agent that does not exist", () => ({ name: "p", agent: "nobody-here", decision: "deny" })],
      ["a 10 000-character tool pattern", () => ({ name: "p", match: { tool: long(10_000) }, decision: "deny" })],
      ["a NUL byte in the tool pattern", () => ({ name: "p", match: { tool: "create\u0000task" }, decision: "deny" })],
      ["a threshold finer than a micro-dollar", () => ({ name: "p", match: { actionValueUsdGt: 0.0000001 }, decision: "deny" })],
      ["a negative threshold", () => ({ name: "p", match: { actionValueUsdGt: -1 }, decision: "deny" })],
      ["an unknown side effect", () => ({ name: "p", match: { sideEffect: "cosmic" }, decision: "deny" })],
      ["an approval expiry on a deny policy", () => ({ name: "p", decision: "deny", approvalExpiresIn: "1h" })],
      ["an approval expiry of 999 999 days", () => ({ name: "p", decision: "require_approval", approvalExpiresIn: "999999d" })],
      ["a negative priority", () => ({ name: "p", decision: "deny", priority: -1 })],
    ],
  },
  {
    method: "PATCH",
    route: "/v1/policies/:id",
    url: "/v1/policies/{policy.patch}",
    auth: "key",
    param: "id",
    valid: () => ({ priority: 5, match: { sideEffect: "external" } }),
    wrongTypes: { priority: "first", match: [], decision: 1 },
    unknownField: { body: () => ({ priority: 5, scope: "tenant" }), path: "scope" },
    absurd: [
      ["a name that is not a slug", () => ({ name: "Big Buys!" })],
      ["an approval expiry on a deny policy", () => ({ approvalExpiresIn: "1h" })],
      ["an agent that does not exist", () => ({ agent: "nobody-here" })],
    ],
  },
  { method: "DELETE", route: "/v1/policies/:id", url: "/v1/policies/{policy.delete}", auth: "key", param: "id" },
  {
    method: "POST",
    route: "/v1/approvals/:id/approve",
    url: "/v1/approvals/{approval.approve}/approve",
    auth: "key",
    param: "id",
    valid: () => ({ comment: "looks right" }),
    wrongTypes: { comment: 5 },
    unknownField: { body: () => ({ comment: "ok", decision: "deny" }), path: "decision" },
    absurd: [
      ["a 100 000-character comment", () => ({ comment: long(100_000) })],
      ["an empty comment", () => ({ comment: "" })],
      ["a NUL byte in the comment", () => ({ comment: "o\u0000k" })],
    ],
  },
  {
    method: "POST",
    route: "/v1/approvals/:id/deny",
    url: "/v1/approvals/{approval.deny}/deny",
    auth: "key",
    param: "id",
    valid: () => ({ comment: "not now" }),
    wrongTypes: { comment: ["no"] },
    unknownField: { body: () => ({ reason: "no" }), path: "reason" },
    absurd: [["a 100 000-character comment", () => ({ comment: long(100_000) })]],
  },
  {
    method: "PATCH",
    route: "/v1/costs/settings",
    url: "/v1/costs/settings",
    auth: "key",
    valid: () => ({ allowUnpricedModels: true, alertEmails: ["finance@example.com"] }),
    wrongTypes: { allowUnpricedModels: "yes", computeMicrosPerHour: "cheap", alertEmails: "finance@example.com" },
    unknownField: { body: () => ({ allowUnpricedModels: true, currency: "EUR" }), path: "currency" },
    absurd: [
      ["an empty change", () => ({})],
      ["a negative compute rate", () => ({ computeMicrosPerHour: -1 })],
      ["a fractional compute rate", () => ({ computeMicrosPerHour: 1.5 })],
      ["an alert address that is not one", () => ({ alertEmails: ["not an email"] })],
      ["10 000 alert addresses", () => ({ alertEmails: Array.from({ length: 10_000 }, (_, i) => `a${i}@example.com`) })],
    ],
  },
  {
    method: "POST",
    route: "/v1/prices",
    url: "/v1/prices",
    auth: "key",
    valid: () => ({ provider: "anthropic", model: "claude-opus-4-7", inputMicrosPerMtok: 4_000_000, outputMicrosPerMtok: 20_000_000 }),
    wrongTypes: { provider: 5, model: [], inputMicrosPerMtok: "4", outputMicrosPerMtok: null },
    unknownField: { body: () => ({ provider: "openai", model: "gpt-5", inputMicrosPerMtok: 1, outputMicrosPerMtok: 1, currency: "EUR" }), path: "currency" },
    absurd: [
      ["a negative price", () => ({ provider: "openai", model: "gpt-5", inputMicrosPerMtok: -1, outputMicrosPerMtok: 1 })],
      ["a fractional price", () => ({ provider: "openai", model: "gpt-5", inputMicrosPerMtok: 1.5, outputMicrosPerMtok: 1 })],
      ["a model that is a spreadsheet formula", () => ({ provider: "openai", model: "=cmd()", inputMicrosPerMtok: 1, outputMicrosPerMtok: 1 })],
      ["a 100 000-character model", () => ({ provider: "openai", model: long(100_000), inputMicrosPerMtok: 1, outputMicrosPerMtok: 1 })],
      ["an effective date that is not one", () => ({ provider: "openai", model: "gpt-5", inputMicrosPerMtok: 1, outputMicrosPerMtok: 1, effectiveFrom: "soon" })],
      ["a NUL byte in the note", () => ({ provider: "openai", model: "gpt-5", inputMicrosPerMtok: 1, outputMicrosPerMtok: 1, note: "a\u0000b" })],
    ],
  },
  {
    method: "POST",
    route: "/v1/mcp-servers",
    url: "/v1/mcp-servers",
    auth: "key",
    valid: () => ({ name: "fresh-mcp", transport: "http", url: "http://127.0.0.1:9/mcp" }),
    wrongTypes: { name: 5, transport: true, url: 7, limits: "fast" },
    unknownField: { body: () => ({ name: "x-mcp", transport: "http", url: "http://127.0.0.1:9/mcp", shell: "sh" }), path: "shell" },
    absurd: [
      ["a stdio server without a command", () => ({ name: "x-mcp", transport: "stdio" })],
      ["an http server without a url", () => ({ name: "x-mcp", transport: "http" })],
      ["a file: url", () => ({ name: "x-mcp", transport: "http", url: "file:///etc/passwd" })],
      ["a 100 000-character url", () => ({ name: "x-mcp", transport: "http", url: `http://x/${long(100_000)}` })],
      ["a 40-character name", () => ({ name: "a".repeat(40), transport: "http", url: "http://x/mcp" })],
      ["a secret name with spaces", () => ({ name: "x-mcp", transport: "http", url: "http://x/mcp", secrets: { "two words": "v" } })],
      ["10 000 args", () => ({ name: "x-mcp", transport: "stdio", command: "mcp-server-everything", args: Array.from({ length: 10_000 }, () => "a") })],
      ["zero calls per minute", () => ({ name: "x-mcp", transport: "http", url: "http://x/mcp", limits: { callsPerMinute: 0 } })],
      ["a NUL byte in the name", () => ({ name: "x\u0000y", transport: "http", url: "http://x/mcp" })],
    ],
  },
  {
    method: "PATCH",
    route: "/v1/mcp-servers/:name",
    url: "/v1/mcp-servers/mcp-patch",
    auth: "key",
    valid: () => ({ limits: { callsPerMinute: 5 }, secrets: null }),
    wrongTypes: { status: 5, limits: "x", secrets: "all" },
    unknownField: { body: () => ({ status: "active", name: "renamed" }), path: "name" },
    absurd: [
      ["an unknown status", () => ({ status: "maybe" })],
      ["a command for an http server", () => ({ command: "mcp-server-everything" })],
      ["a timeout of an hour", () => ({ limits: { timeoutMs: 3_600_000 } })],
    ],
  },
  { method: "DELETE", route: "/v1/mcp-servers/:name", url: "/v1/mcp-servers/mcp-delete", auth: "key" },
  {
    method: "PATCH",
    route: "/v1/mcp-servers/:name/tools/:tool",
    url: "/v1/mcp-servers/mcp-patch/tools/echo",
    auth: "key",
    valid: () => ({ feeMicros: 1000, valueField: "order.total" }),
    wrongTypes: { feeMicros: "1", sideEffect: 3, valueField: 7 },
    unknownField: { body: () => ({ feeMicros: 1, price: 2 }), path: "price" },
    absurd: [
      ["a negative fee", () => ({ feeMicros: -1 })],
      ["a fractional fee", () => ({ feeMicros: 1.5 })],
      ["a fee of 10^15", () => ({ feeMicros: 1e15 })],
      ["a value field that is not a path", () => ({ valueField: "a..b" })],
      ["an unknown side effect", () => ({ sideEffect: "cosmic" })],
    ],
  },
  {
    method: "POST",
    route: "/v1/proposals",
    url: "/v1/proposals",
    auth: "key",
    valid: () => ({ title: "Move invoices", domains: ["test/invoices"], action: { type: "create_tasks", tasks: [{ title: "move", domain: "test/invoices" }] } }),
    wrongTypes: { title: 5, domains: "test/x", action: [] },
    unknownField: { body: () => ({ title: "p", domains: ["test/x"], urgency: "high" }), path: "urgency" },
    absurd: [
      ["a 100 000-character title", () => ({ title: long(100_000), domains: ["test/x"] })],
      ["no domains", () => ({ title: "p", domains: [] })],
      ["10 000 domains", () => ({ title: "p", domains: Array.from({ length: 10_000 }, (_, i) => `test/d${i}`) })],
      ["a glob instead of a domain path", () => ({ title: "p", domains: ["test/*"] })],
      ["a NUL byte in the title", () => ({ title: "p\u0000q", domains: ["test/x"] })],
      ["an unknown action", () => ({ title: "p", domains: ["test/x"], action: { type: "drop_database" } })],
      ["an action creating 1000 tasks", () => ({ title: "p", domains: ["test/x"], action: { type: "create_tasks", tasks: Array.from({ length: 1000 }, () => ({ title: "t", domain: "test/x" })) } })],
      ["a task with neither assignee nor domain", () => ({ title: "p", domains: ["test/x"], action: { type: "create_tasks", tasks: [{ title: "t" }] } })],
      ["domains for an agent that does not exist", () => ({ title: "p", domains: ["test/x"], action: { type: "set_agent_domains", agent: "nobody-here", domains: ["test/*"] } })],
    ],
  },
  {
    method: "PATCH",
    route: "/v1/proposals/settings",
    url: "/v1/proposals/settings",
    auth: "key",
    valid: () => ({ approveAfterSeconds: 7200 }),
    wrongTypes: { approveAfterSeconds: "1d", escalateAfterSeconds: [] },
    unknownField: { body: () => ({ approveAfterSeconds: 3600, timeZone: "UTC" }), path: "timeZone" },
    absurd: [
      ["nothing to change", () => ({})],
      ["a zero window", () => ({ approveAfterSeconds: 0 })],
      ["a negative window", () => ({ escalateAfterSeconds: -60 })],
      ["a ten-year window", () => ({ escalateAfterSeconds: 315_360_000 })],
      ["a fractional window", () => ({ approveAfterSeconds: 3600.5 })],
      ["approval after escalation", () => ({ approveAfterSeconds: 7200, escalateAfterSeconds: 3600 })],
    ],
  },
  {
    method: "POST",
    route: "/v1/proposals/:id/responses",
    url: "/v1/proposals/{proposal.respond}/responses",
    auth: "agent",
    param: "id",
    valid: () => ({ stance: "concern", comment: "check the totals" }),
    wrongTypes: { stance: 1, comment: ["no"] },
    unknownField: { body: () => ({ stance: "support", weight: 3 }), path: "weight" },
    absurd: [
      ["an unknown stance", () => ({ stance: "veto" })],
      ["an empty comment", () => ({ stance: "block", comment: "" })],
      ["a 100 000-character comment", () => ({ stance: "block", comment: long(100_000) })],
      ["a NUL byte in the comment", () => ({ stance: "block", comment: "n\u0000o" })],
    ],
  },
  {
    method: "POST",
    route: "/v1/proposals/:id/decide",
    url: "/v1/proposals/{proposal.decide}/decide",
    auth: "key",
    param: "id",
    valid: () => ({ decision: "reject", comment: "not now" }),
    wrongTypes: { decision: true, comment: 5 },
    unknownField: { body: () => ({ decision: "approve", force: true }), path: "force" },
    absurd: [
      ["an unknown decision", () => ({ decision: "maybe" })],
      ["an empty comment", () => ({ decision: "reject", comment: "" })],
    ],
  },
  {
    method: "PATCH",
    route: "/v1/tenant",
    url: "/v1/tenant",
    auth: "key",
    valid: () => ({ name: "Renamed" }),
    wrongTypes: { name: 5, timeZone: false },
    unknownField: { body: () => ({ name: "Renamed", plan: "enterprise" }), path: "plan" },
    absurd: [
      ["a 100 000-character name", () => ({ name: long(100_000) })],
      ["a 100 000-character time zone", () => ({ timeZone: long(100_000) })],
      ["a NUL byte in the name", () => ({ name: "Re\u0000named" })],
    ],
  },
];

const TABLES = [
  "mcp_servers",
  "mcp_tools",
  "tenants",
  "users",
  "memberships",
  "sessions",
  "api_keys",
  "agents",
  "agent_revisions",
  "audit_events",
  "idempotency_keys",
  "tasks",
  "task_dependencies",
  "runs",
  "steps",
  "messages",
  "memory_items",
  "agent_memory",
  "agent_drives",
  "autonomy_days",
  "waitpoints",
  "budgets",
  "policies",
  "budget_windows",
  "budget_reservations",
  "budget_alerts",
  "cost_ledger",
  "cost_settings",
  "price_overrides",
  "proposals",
  "proposal_responses",
  "proposal_settings",
];

async function counts(t: TestApp): Promise<Record<string, number>> {
  const sql = `SELECT ${TABLES.map((n) => `(SELECT count(*)::int FROM ${n}) AS ${n}`).join(", ")}`;
  return (await t.db.database.pool.query(sql)).rows[0];
}

/** Sets up a tenant with one target per route, so an accepted request would write something. */
async function setUp(t: TestApp): Promise<Env> {
  const a = await createTenant(t.app, "Tenant A");
  for (const name of ["put-target", "pause-target", "resume-target", "retire-target"]) await applyAgent(t.app, a, name);
  const paused = await t.app.inject({ method: "POST", url: "/v1/agents/resume-target/pause", headers: a.auth });
  expect(paused.json().status).toBe("paused");
  const victim = await createKey(t.app, a, { scopes: ["read"] });
  await applyAgent(t.app, a, "task-agent");
  const agentAuth = (await createKey(t.app, a, { scopes: ["write"], agent: "task-agent" })).auth;
  const tasks: Record<string, string> = {};
  for (const route of ["patch", "cancel", "claim", "start", "heartbeat", "complete", "fail", "review"]) {
    const res = await t.app.inject({
      method: "POST",
      url: "/v1/tasks",
      headers: a.auth,
      payload: { title: `${route} target`, assignee: "task-agent", requires_review: route === "review" },
    });
    tasks[route] = res.json().id;
    if (["patch", "cancel", "claim"].includes(route)) continue;
    // The lease routes' targets are claimed under epoch 1; the review target is in review.
    const claim = await t.app.inject({ method: "POST", url: `/v1/tasks/${tasks[route]}/claim`, headers: agentAuth, payload: {} });
    expect(claim.json().leaseEpoch).toBe(1);
    if (route === "review") {
      const done = await t.app.inject({ method: "POST", url: `/v1/tasks/${tasks[route]}/complete`, headers: agentAuth, payload: { epoch: 1, result: "draft" } });
      expect(done.json().status).toBe("in_review");
    }
  }
  // A session of its own: if a bad logout got through, only this one would end.
  const login = await t.app.inject({ method: "POST", url: "/v1/auth/login", payload: { email: a.email, password: a.password } });
  const manual: string = (await t.app.inject({ method: "POST", url: "/v1/agents/task-agent/runs", headers: a.auth, payload: { input: "to cancel" } })).json().id;
  const external: string = (await t.app.inject({ method: "POST", url: "/v1/agents/task-agent/runs", headers: agentAuth, payload: { input: "external" } })).json().id;
  const runs: Record<string, string> = { cancel: manual, usage: external, finish: external };
  const budgets: Record<string, string> = {};
  for (const route of ["patch", "delete"]) {
    const res = await t.app.inject({ method: "POST", url: "/v1/budgets", headers: a.auth, payload: { scope: "tenant", window: "month", limitUsd: 100 } });
    budgets[route] = res.json().id;
  }
  // MCP server targets (never connected to) with one catalogue entry for the tool route.
  for (const name of ["mcp-patch", "mcp-delete"]) {
    const res = await t.app.inject({ method: "POST", url: "/v1/mcp-servers", headers: a.auth, payload: { name, transport: "http", url: "http://127.0.0.1:9/mcp" } });
    expect(res.statusCode).toBe(201);
    if (name === "mcp-patch") {
      await t.db.database.pool.query(
        `INSERT INTO mcp_tools (tenant_id, server_id, name, version, schema_hash, input_schema) VALUES ($1, $2, 'echo', 1, 'h', '{"type":"object"}')`,
        [a.tenantId, res.json().id],
      );
    }
  }
  const policies: Record<string, string> = {};
  for (const route of ["patch", "delete"]) {
    const res = await t.app.inject({ method: "POST", url: "/v1/policies", headers: a.auth, payload: { name: `policy-${route}`, decision: "deny", match: { tool: "send_message" } } });
    expect(res.statusCode).toBe(201);
    policies[route] = res.json().id;
  }
  // Pending approvals on a run of their own (cancelling the manual run would cancel them).
  const gated: string = (await t.app.inject({ method: "POST", url: "/v1/agents/task-agent/runs", headers: a.auth, payload: { input: "gated" } })).json().id;
  const approvals: Record<string, string> = { approve: `wpt_${"a".repeat(26)}`, deny: `wpt_${"d".repeat(26)}` };
  for (const [i, id] of Object.values(approvals).entries()) {
    await t.db.database.pool.query(
      `INSERT INTO waitpoints (tenant_id, id, run_id, agent_id, kind, ref, expires_at, payload)
       SELECT $1, $2, $3, id, 'approval', 'create_task', now() + interval '1 day', jsonb_build_object('tool', 'create_task', 'toolUseId', $4::text, 'llmSeq', 0)
       FROM agents WHERE tenant_id = $1 AND name = 'task-agent'`,
      [a.tenantId, id, gated, `t${i}`],
    );
  }
  const proposals: Record<string, string> = {};
  for (const route of ["respond", "decide"]) {
    const res = await t.app.inject({ method: "POST", url: "/v1/proposals", headers: a.auth, payload: { title: `${route} target`, domains: ["test/proposals"] } });
    expect(res.statusCode).toBe(201);
    proposals[route] = res.json().id;
  }
  return { t, a, cookie: sessionCookie(login), victimKeyId: victim.id, agentAuth, tasks, runs, budgets, policies, approvals, proposals };
}

let ip = 0;

/** The URL with its placeholders filled: {key} and {task.x}. */
const fillUrl = (e: Env, url: string) =>
  url
    .replace("{key}", e.victimKeyId)
    .replace(/\{task\.(\w+)\}/, (_, name: string) => e.tasks[name]!)
    .replace(/\{run\.(\w+)\}/, (_, name: string) => e.runs[name]!)
    .replace(/\{budget\.(\w+)\}/, (_, name: string) => e.budgets[name]!)
    .replace(/\{policy\.(\w+)\}/, (_, name: string) => e.policies[name]!)
    .replace(/\{approval\.(\w+)\}/, (_, name: string) => e.approvals[name]!)
    .replace(/\{proposal\.(\w+)\}/, (_, name: string) => e.proposals[name]!);

function request(e: Env, route: WriteRoute, opts: { payload?: string | object; contentType?: string; url?: string; headers?: Record<string, string> }) {
  const auth = route.auth === "key" ? e.a.auth : route.auth === "agent" ? e.agentAuth : route.auth === "session" ? { cookie: e.cookie, origin: PUBLIC_URL } : {};
  ip += 1;
  return e.t.app.inject({
    method: route.method,
    url: opts.url ?? fillUrl(e, route.url),
    headers: { ...auth, ...(opts.contentType ? { "content-type": opts.contentType } : {}), ...opts.headers },
    ...(opts.payload !== undefined ? { payload: opts.payload } : {}),
    // Signup and login are rate limited per address: give each request its own.
    remoteAddress: `10.1.${ip >> 8}.${ip & 255}`,
  } as InjectOptions);
}

/** Sends a bad request and checks the refusal and that no table changed. */
async function expectRefused(e: Env, send: () => Promise<LightMyRequestResponse>, status: number, code: string) {
  const before = await counts(e.t);
  const res = await send();
  expect(res.statusCode, res.body.slice(0, 300)).toBeGreaterThanOrEqual(400);
  expect(res.statusCode, res.body.slice(0, 300)).toBeLessThan(500);
  expect(res.headers["content-type"]).toMatch(/^application\/problem\+json/);
  const body = res.json();
  expect(body).toMatchObject({ code: expect.any(String), requestId: expect.stringMatching(/\S/), status: res.statusCode });
  expect({ status: res.statusCode, code: body.code }).toEqual({ status, code });
  expect(await counts(e.t), "nothing may be written").toEqual(before);
  return body as { errors?: { path: string; message: string }[]; detail: string };
}

const YAML_BOMB = `a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
`;

/** A body with `key` as an own property at the top and inside its first nested object. */
function poisoned(body: Record<string, unknown>, key: "__proto__" | "constructor") {
  const payload = key === "__proto__" ? { polluted: "yes" } : { prototype: { polluted: "yes" } };
  const out: Record<string, unknown> = { [key]: payload, ...body };
  const nested = Object.keys(body).find((k) => typeof body[k] === "object" && body[k] !== null && !Array.isArray(body[k]));
  if (nested) out[nested] = { [key]: payload, ...(body[nested] as object) };
  return JSON.stringify(out);
}

interface Case {
  name: string;
  opts: (e: Env) => Parameters<typeof request>[2];
  status: number;
  code: string;
  /** A field path the problem must name. */
  path?: string;
}

/** Refused while the body is parsed: they apply to every write route, with or without a body. */
function parseCases(route: WriteRoute): Case[] {
  const base = (e: Env) => route.valid?.(e) ?? { note: "this route takes no body" };
  return [
    { name: "malformed JSON", opts: () => ({ payload: '{"name": "unterminated', contentType: "application/json" }), status: 400, code: "BAD_REQUEST" },
    { name: "an empty JSON body", opts: () => ({ payload: "", contentType: "application/json" }), status: 400, code: "BAD_REQUEST" },
    { name: "malformed YAML", opts: () => ({ payload: "name: [unclosed\nscopes: {\n", contentType: "application/yaml" }), status: 400, code: "BAD_REQUEST" },
    { name: "YAML with a duplicate key", opts: () => ({ payload: "name: one\nname: two\n", contentType: "application/yaml" }), status: 400, code: "BAD_REQUEST" },
    { name: "a YAML bomb (billion laughs)", opts: () => ({ payload: YAML_BOMB, contentType: "application/yaml" }), status: 400, code: "BAD_REQUEST" },
    { name: "deeply nested YAML", opts: () => ({ payload: `${"[".repeat(2_000)}${"]".repeat(2_000)}`, contentType: "text/yaml" }), status: 400, code: "BAD_REQUEST" },
    { name: "an XML body", opts: () => ({ payload: "<agent/>", contentType: "application/xml" }), status: 415, code: "UNSUPPORTED_MEDIA_TYPE" },
    { name: "a form-encoded body", opts: () => ({ payload: "name=x&scopes=admin", contentType: "application/x-www-form-urlencoded" }), status: 415, code: "UNSUPPORTED_MEDIA_TYPE" },
    { name: "a JSON __proto__ key", opts: (e) => ({ payload: poisoned(base(e), "__proto__"), contentType: "application/json" }), status: 400, code: "BAD_REQUEST" },
    { name: "a JSON constructor.prototype key", opts: (e) => ({ payload: poisoned(base(e), "constructor"), contentType: "application/json" }), status: 400, code: "BAD_REQUEST" },
    // JSON is YAML: the same text through the YAML parser.
    { name: "a YAML __proto__ key", opts: (e) => ({ payload: poisoned(base(e), "__proto__"), contentType: "application/yaml" }), status: 400, code: "BAD_REQUEST" },
    { name: "a YAML constructor.prototype key", opts: (e) => ({ payload: poisoned(base(e), "constructor"), contentType: "application/yaml" }), status: 400, code: "BAD_REQUEST" },
  ];
}

/** Refused by the body's schema: only for routes that take a body. */
function schemaCases(route: WriteRoute): Case[] {
  if (!route.valid) return [];
  const cases: Case[] = [
    { name: "wrong types", opts: () => ({ payload: route.wrongTypes! }), status: 422, code: "VALIDATION" },
    { name: "wrong types (YAML)", opts: () => ({ payload: JSON.stringify(route.wrongTypes), contentType: "application/yaml" }), status: 422, code: "VALIDATION" },
    { name: "an unknown field", opts: (e) => ({ payload: route.unknownField!.body(e) }), status: 422, code: "VALIDATION", path: route.unknownField!.path },
    { name: "a JSON array instead of an object", opts: () => ({ payload: "[]", contentType: "application/json" }), status: 422, code: "VALIDATION" },
    { name: "JSON null", opts: () => ({ payload: "null", contentType: "application/json" }), status: 422, code: "VALIDATION" },
    { name: "a YAML scalar", opts: () => ({ payload: "just a string\n", contentType: "application/yaml" }), status: 422, code: "VALIDATION" },
    { name: "a plain-text body", opts: () => ({ payload: "hello", contentType: "text/plain" }), status: 422, code: "VALIDATION" },
    {
      name: "deeply nested JSON",
      opts: () => ({ payload: `${"[".repeat(20_000)}${"]".repeat(20_000)}`, contentType: "application/json" }),
      status: 422,
      code: "VALIDATION",
    },
  ];
  for (const [label, body] of route.absurd ?? []) cases.push({ name: label, opts: (e) => ({ payload: body(e) as object }), status: 422, code: "VALIDATION" });
  return cases;
}

/** Abuse of the path parameter. */
function paramCases(route: WriteRoute): Case[] {
  if (!route.param) return [];
  const at = (_e: Env, value: string) => (route.param === "name" ? route.url.replace(/\/agents\/[^/]+/, `/agents/${value}`) : route.url.replace(/\{[\w.]+\}/, value));
  // The id in the URL, as the route's target has it.
  const target = (e: Env) => fillUrl(e, route.url).split("/")[3]!;
  const payload = (e: Env) => (route.valid ? route.valid(e) : undefined);
  const cases: Case[] = [
    { name: "a 5000-character path parameter", opts: (e) => ({ url: at(e, long(5000)), payload: payload(e) }), status: 400, code: "BAD_REQUEST" },
    { name: "malformed percent-encoding in the path", opts: (e) => ({ url: at(e, "%E0%A4%A"), payload: payload(e) }), status: 400, code: "BAD_REQUEST" },
    { name: "a NUL byte in the path", opts: (e) => ({ url: at(e, "a%00b"), payload: payload(e) }), status: 422, code: "VALIDATION" },
  ];
  if (route.param === "name") {
    cases.push({ name: "a 100-character agent name", opts: (e) => ({ url: at(e, "a".repeat(100)), payload: payload(e) }), status: 422, code: "VALIDATION" });
    cases.push({ name: "an agent name with capitals", opts: (e) => ({ url: at(e, "Put-Target"), payload: payload(e) }), status: 422, code: "VALIDATION" });
  } else {
    cases.push({ name: "an id of the wrong shape", opts: (e) => ({ url: at(e, target(e).toUpperCase()), payload: payload(e) }), status: 422, code: "VALIDATION" });
  }
  return cases;
}

/** An Idempotency-Key that is too long or not visible ASCII. */
function headerCases(route: WriteRoute): Case[] {
  if (route.method !== "POST" || !["/v1/agents", "/v1/api-keys", "/v1/tasks", "/v1/budgets", "/v1/policies", "/v1/proposals"].includes(route.route)) return [];
  return [
    { name: "a 300-character Idempotency-Key", opts: (e) => ({ payload: route.valid!(e), headers: { "idempotency-key": long(300) } }), status: 400, code: "BAD_REQUEST" },
    { name: "an Idempotency-Key with spaces", opts: (e) => ({ payload: route.valid!(e), headers: { "idempotency-key": "two words" } }), status: 400, code: "BAD_REQUEST" },
  ];
}

describe("bad input on every write route", () => {
  let env: Env;
  beforeAll(async () => {
    env = await setUp(await createTestApp());
  });
  afterAll(() => env?.t.close());

  describe.each(routes)("$method $route", (route) => {
    test.each([...parseCases(route), ...schemaCases(route), ...paramCases(route), ...headerCases(route)])(
      "$name → $status $code",
      async ({ opts, status, code, path }) => {
        const problem = await expectRefused(env, () => request(env, route, opts(env)), status, code);
        if (path) expect(problem.errors?.map((i) => i.path)).toContain(path);
      },
    );
  });

  test("nothing polluted Object.prototype", () => {
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.prototype).not.toHaveProperty("polluted");
  });

  // Controls, run last: the same routes accept the valid request, so the refusals above
  // came from the bad input and not from, say, a missing credential or target.
  test.each(routes)("control: $method $route accepts its valid request", async (route) => {
    const before = await counts(env.t);
    const res = await request(env, route, { ...(route.valid ? { payload: route.valid(env) } : {}) });
    expect(res.statusCode, res.body.slice(0, 300)).toBeLessThan(300);
    if (route.route !== "/v1/auth/tenant") expect(await counts(env.t)).not.toEqual(before);
  });
});

describe("a body over the limit", () => {
  let env: Env;
  beforeAll(async () => {
    env = await setUp(await createTestApp({ bodyLimitBytes: 10_000 }));
  });
  afterAll(() => env?.t.close());

  const big = JSON.stringify({ pad: long(20_000) });
  test.each(routes)("$method $route: a 20 KB JSON body → 413 PAYLOAD_TOO_LARGE", async (route) => {
    await expectRefused(env, () => request(env, route, { payload: big, contentType: "application/json" }), 413, "PAYLOAD_TOO_LARGE");
  });

  test.each(routes.filter((r) => r.valid))("$method $route: a 20 KB YAML body → 413 PAYLOAD_TOO_LARGE", async (route) => {
    await expectRefused(env, () => request(env, route, { payload: `pad: ${long(20_000)}\n`, contentType: "application/yaml" }), 413, "PAYLOAD_TOO_LARGE");
  });
});
