/**
 * The console's REST client. Every call goes to the same origin with the session cookie;
 * failures become an ApiError that carries the problem+json `code`, `detail`, field issues
 * and the `requestId`, so a screen can show something a person can act on (or quote).
 */
import type {
  agentApplyResultSchema,
  agentMemorySchema,
  agentSchema,
  alertSchema,
  apiKeySchema,
  approvalSchema,
  auditEventSchema,
  auditVerifySchema,
  budgetSchema,
  costSettingsSchema,
  costsSchema,
  createdApiKeySchema,
  FieldIssue,
  inboxItemSchema,
  mcpRefreshResultSchema,
  mcpServerSchema,
  mcpToolSchema,
  meSchema,
  policySchema,
  proposalDetailSchema,
  proposalSchema,
  revisionDiffSchema,
  revisionSchema,
  runDetailSchema,
  runSchema,
  sentMessageSchema,
  stepSchema,
  taskDetailSchema,
  taskSchema,
  tenantSchema,
} from "@bosun/contracts";
import type { z } from "zod";

export type Me = z.output<typeof meSchema>;
export type Tenant = z.output<typeof tenantSchema>;
export type Agent = z.output<typeof agentSchema>;
export type ApplyResult = z.output<typeof agentApplyResultSchema>;
export type Revision = z.output<typeof revisionSchema>;
export type RevisionDiff = z.output<typeof revisionDiffSchema>;
export type Task = z.output<typeof taskSchema>;
export type TaskDetail = z.output<typeof taskDetailSchema>;
export type Run = z.output<typeof runSchema>;
export type RunDetail = z.output<typeof runDetailSchema>;
export type Step = z.output<typeof stepSchema>;
export type ApiKey = z.output<typeof apiKeySchema>;
export type CreatedApiKey = z.output<typeof createdApiKeySchema>;
export type SentMessage = z.output<typeof sentMessageSchema>;
export type Budget = z.output<typeof budgetSchema>;
export type BudgetAlert = z.output<typeof alertSchema>;
export type Costs = z.output<typeof costsSchema>;
export type CostSettings = z.output<typeof costSettingsSchema>;
export type CostGroup = Costs["groupBy"];
export type Approval = z.output<typeof approvalSchema>;
export type Policy = z.output<typeof policySchema>;
export type InboxItem = z.output<typeof inboxItemSchema>;
export type AuditEvent = z.output<typeof auditEventSchema>;
export type AuditVerification = z.output<typeof auditVerifySchema>;
export type AgentMemory = z.output<typeof agentMemorySchema>;
export type Proposal = z.output<typeof proposalSchema>;
export type ProposalDetail = z.output<typeof proposalDetailSchema>;
export type McpServer = z.output<typeof mcpServerSchema>;
export type McpTool = z.output<typeof mcpToolSchema>;
export type McpRefreshResult = z.output<typeof mcpRefreshResultSchema>;
export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly detail: string,
    readonly requestId: string | undefined,
    readonly issues: FieldIssue[] = [],
  ) {
    super(detail);
  }
}

/** Called when any request answers 401: the session ended, so the app shows the login. */
let onUnauthorized: () => void = () => {};
export function setUnauthorizedHandler(fn: () => void) {
  onUnauthorized = fn;
}

type Query = Record<string, string | number | undefined | null>;

function withQuery(path: string, query?: Query): string {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== "") params.set(k, String(v));
  const s = params.toString();
  return s ? `${path}?${s}` : path;
}

async function request<T>(method: string, path: string, opts: { body?: unknown; yaml?: string; query?: Query; quiet401?: boolean } = {}): Promise<T> {
  const headers: Record<string, string> = { accept: "application/json" };
  let body: string | undefined;
  if (opts.yaml !== undefined) {
    headers["content-type"] = "application/yaml";
    body = opts.yaml;
  } else if (opts.body !== undefined) {
    headers["content-type"] = "application/json";
    body = JSON.stringify(opts.body);
  }
  let res: Response;
  try {
    res = await fetch(withQuery(path, opts.query), { method, headers, body, credentials: "same-origin" });
  } catch {
    throw new ApiError(0, "NETWORK", "the API could not be reached; check your connection and that Bosun is running", undefined);
  }
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  if (!res.ok) {
    const p = (json ?? {}) as { code?: string; detail?: string; title?: string; requestId?: string; errors?: FieldIssue[] };
    const err = new ApiError(
      res.status,
      p.code ?? `HTTP_${res.status}`,
      p.detail ?? p.title ?? (res.statusText || "the request failed"),
      p.requestId ?? res.headers.get("x-request-id") ?? undefined,
      p.errors ?? [],
    );
    if (res.status === 401 && !opts.quiet401) onUnauthorized();
    throw err;
  }
  return json as T;
}

/** Follows `nextCursor` until the list ends or `max` items are in (trace steps, revisions). */
async function all<T>(path: string, query: Query = {}, max = 1000): Promise<T[]> {
  const out: T[] = [];
  let cursor: string | null | undefined;
  do {
    const page: Page<T> = await request("GET", path, { query: { ...query, limit: 200, cursor } });
    out.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor && out.length < max);
  return out;
}

const enc = encodeURIComponent;

export const api = {
  me: (quiet401 = false) => request<Me>("GET", "/v1/me", { quiet401 }),
  login: (email: string, password: string) => request<{ tenantId: string }>("POST", "/v1/auth/login", { body: { email, password }, quiet401: true }),
  logout: () => request<void>("POST", "/v1/auth/logout"),
  switchTenant: (tenantId: string) => request<void>("POST", "/v1/auth/tenant", { body: { tenantId } }),
  updateTenant: (patch: { name?: string; timeZone?: string }) => request<Tenant>("PATCH", "/v1/tenant", { body: patch }),
  deployment: () => request<import("@bosun/contracts").Deployment>("GET", "/v1/settings/deployment"),

  agents: (query: Query = {}) => request<Page<Agent>>("GET", "/v1/agents", { query: { limit: 200, ...query } }),
  agent: (name: string) => request<Agent>("GET", `/v1/agents/${enc(name)}`),
  applyYaml: (name: string, yaml: string) => request<ApplyResult>("PUT", `/v1/agents/${enc(name)}`, { yaml }),
  applyJson: (name: string, descriptor: unknown) => request<ApplyResult>("PUT", `/v1/agents/${enc(name)}`, { body: descriptor }),
  revisions: (name: string) => all<Revision>(`/v1/agents/${enc(name)}/revisions`),
  diff: (name: string, from: number, to: number) => request<RevisionDiff>("GET", `/v1/agents/${enc(name)}/revisions/${from}/diff`, { query: { to } }),
  agentAction: (name: string, action: "pause" | "resume" | "retire") => request<Agent>("POST", `/v1/agents/${enc(name)}/${action}`),
  startRun: (name: string, input: string) => request<Run>("POST", `/v1/agents/${enc(name)}/runs`, { body: { input } }),
  sendMessage: (to: string, body: string) => request<SentMessage>("POST", "/v1/messages", { body: { to, body } }),

  tasks: (query: Query = {}) => request<Page<Task>>("GET", "/v1/tasks", { query }),
  task: (id: string) => request<TaskDetail>("GET", `/v1/tasks/${enc(id)}`),
  createTask: (body: Record<string, unknown>) => request<TaskDetail>("POST", "/v1/tasks", { body }),
  updateTask: (id: string, body: Record<string, unknown>) => request<TaskDetail>("PATCH", `/v1/tasks/${enc(id)}`, { body }),
  cancelTask: (id: string) => request<Task>("POST", `/v1/tasks/${enc(id)}/cancel`),
  reviewTask: (id: string, decision: "approve" | "request_changes", comment?: string) =>
    request<Task>("POST", `/v1/tasks/${enc(id)}/review`, { body: comment ? { decision, comment } : { decision } }),

  runs: (query: Query = {}) => request<Page<Run>>("GET", "/v1/runs", { query }),
  run: (id: string) => request<RunDetail>("GET", `/v1/runs/${enc(id)}`),
  steps: (id: string) => all<Step>(`/v1/runs/${enc(id)}/steps`, {}, 2000),
  cancelRun: (id: string) => request<Run>("POST", `/v1/runs/${enc(id)}/cancel`),

  apiKeys: () => all<ApiKey>("/v1/api-keys"),
  createApiKey: (body: { name: string; scopes: string[]; agent?: string; expiresAt?: string }) => request<CreatedApiKey>("POST", "/v1/api-keys", { body }),
  revokeApiKey: (id: string) => request<ApiKey>("DELETE", `/v1/api-keys/${enc(id)}`),

  costs: (query: { from: string; to: string; groupBy: CostGroup; agent?: string }) => request<Costs>("GET", "/v1/costs", { query }),
  costSettings: () => request<CostSettings>("GET", "/v1/costs/settings"),
  budgets: (query: Query = {}) => all<Budget>("/v1/budgets", query),
  createBudget: (body: Record<string, unknown>) => request<Budget>("POST", "/v1/budgets", { body }),
  updateBudget: (id: string, body: Record<string, unknown>) => request<Budget>("PATCH", `/v1/budgets/${enc(id)}`, { body }),
  deleteBudget: (id: string) => request<Budget>("DELETE", `/v1/budgets/${enc(id)}`),
  alerts: (query: Query = {}) => request<Page<BudgetAlert>>("GET", "/v1/alerts", { query: { limit: 50, ...query } }),

  inbox: (query: Query = {}) => request<Page<InboxItem>>("GET", "/v1/inbox", { query: { limit: 100, ...query } }),
  approvals: (query: Query = {}) => request<Page<Approval>>("GET", "/v1/approvals", { query: { limit: 100, ...query } }),
  approval: (id: string) => request<Approval>("GET", `/v1/approvals/${enc(id)}`),
  decideApproval: (id: string, decision: "approve" | "deny", comment?: string) =>
    request<Approval>("POST", `/v1/approvals/${enc(id)}/${decision}`, { body: comment ? { comment } : {} }),

  policies: () => all<Policy>("/v1/policies"),
  createPolicy: (body: Record<string, unknown>) => request<Policy>("POST", "/v1/policies", { body }),
  deletePolicy: (id: string) => request<Policy>("DELETE", `/v1/policies/${enc(id)}`),

  proposals: (query: Query = {}) => request<Page<Proposal>>("GET", "/v1/proposals", { query: { limit: 50, ...query } }),
  proposal: (id: string) => request<ProposalDetail>("GET", `/v1/proposals/${enc(id)}`),
  decideProposal: (id: string, decision: "approve" | "reject", comment?: string) =>
    request<ProposalDetail>("POST", `/v1/proposals/${enc(id)}/decide`, { body: comment ? { decision, comment } : { decision } }),

  audit: (query: Query = {}) => request<Page<AuditEvent>>("GET", "/v1/audit", { query: { limit: 50, ...query } }),
  verifyAudit: () => request<AuditVerification>("GET", "/v1/audit/verify"),

  memory: (name: string) => request<AgentMemory>("GET", `/v1/agents/${enc(name)}/memory`),

  mcpServers: () => all<McpServer>("/v1/mcp-servers"),
  createMcpServer: (body: Record<string, unknown>) => request<McpServer>("POST", "/v1/mcp-servers", { body }),
  refreshMcpServer: (name: string) => request<McpRefreshResult>("POST", `/v1/mcp-servers/${enc(name)}/refresh`),
  mcpTools: (server: string) => all<McpTool>(`/v1/mcp-servers/${enc(server)}/tools`),
};

/** The CSV export of the ledger (or its daily rollups): a plain link, the cookie authenticates it. */
export function costExportUrl(from: string, to: string, rows: "ledger" | "rollups" = "ledger"): string {
  return withQuery("/v1/costs/export.csv", { from, to, rows });
}
