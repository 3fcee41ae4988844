import { randomBytes } from "node:crypto";
import { type AgentDescriptorInput, emailSchema, passwordSchema } from "@bosun/contracts";
import { type Database, repo, withTenant } from "@bosun/db";
import type { Actor } from "./actor";
import type { AgentService } from "./agents/service";
import { isValidKeyFormat } from "./api-keys";
import { AppError } from "./errors";
import { bootstrapGatewayDemo } from "./gateway/demo";
import { bootstrapMemoryDemo, demoDreamScript } from "./memory/demo";
import type { GatewayService } from "./gateway/service";
import type { IdentityService } from "./identity";
import type { TaskService } from "./tasks/service";

export interface BootstrapEnv {
  BOSUN_INIT_API_KEY?: string | undefined;
  BOSUN_INIT_ADMIN_EMAIL?: string | undefined;
  BOSUN_INIT_ADMIN_PASSWORD?: string | undefined;
  BOSUN_INIT_TENANT?: string | undefined;
}

export interface BootstrapResult {
  created: boolean;
  tenantId?: string;
  email?: string;
  password?: string;
  apiKey?: string;
  passwordGenerated?: boolean;
}

/** Agents the demo tenant starts with, on the offline scripted provider. */
export const demoAgents: AgentDescriptorInput[] = [
  {
    apiVersion: "agent.os/v1",
    kind: "Agent",
    metadata: { name: "reconciliation-finance", owner: "finance-platform", description: "Reconciles invoices against the ledger" },
    spec: {
      model: { provider: "scripted", name: "scripted-small", pinned_revision: "2026-01-01" },
      soul: "You are the finance team's reconciliation agent. You are careful, terse and never guess an amount.",
      drives: [{ name: "ledger-accuracy", question: "Are all invoices reconciled within a day?", every: "1d" }],
      // Its seeded memories are consolidated by a scripted dream soon after the first start (memory/demo.ts).
      memory: { type: "persistent", retention_days: 90, working_tokens: 2000, dream: { script: demoDreamScript } },
      tools: ["mcp://gateway/ledger/read"],
      domains: ["finance/*"],
      schedule: { every: "15m" },
      budgets: { calls_per_hour: 200, usd_per_day: 40, usd_per_invocation: 2 },
      approval: { on_action_value_usd_gt: 1000 },
    },
  },
  {
    apiVersion: "agent.os/v1",
    kind: "Agent",
    metadata: { name: "support-triage", owner: "support-ops", description: "Sorts incoming tickets and drafts first replies" },
    spec: {
      model: { provider: "scripted", name: "scripted-small", pinned_revision: "2026-01-01" },
      soul: "You triage support tickets: label them, find duplicates and draft a first reply for a human to send.",
      domains: ["support/*"],
      schedule: { every: "5m" },
      budgets: { usd_per_day: 10 },
    },
  },
  {
    apiVersion: "agent.os/v1",
    kind: "Agent",
    metadata: { name: "release-notes", owner: "platform" },
    spec: {
      model: { provider: "scripted", name: "scripted-large", pinned_revision: "2026-01-01" },
      soul: "You write release notes from merged changes, for users rather than engineers.",
      domains: ["docs/releases/*"],
    },
  },
];

/** Tasks the demo tenant starts with. */
export const demoTasks = [
  { title: "Reconcile the October invoices", body: "Match every October invoice to a ledger entry.", assignee: "reconciliation-finance" },
  { title: "Triage the overnight support tickets", body: "Label each ticket and draft first replies.", assignee: "support-triage" },
  { title: "Check the VAT totals of invoice batch 42", domain: "finance/invoices", priority: 70 },
  { title: "Draft the release notes for 1.4", assignee: "release-notes" },
];

const BOOTSTRAP_LOCK = 4_242_002;

/**
 * First start: when the database has no tenant, create one with an owner, an admin key
 * and demo agents, from `BOSUN_INIT_*` when set (headless initialisation) or generated.
 * Later starts find a tenant and do nothing. An advisory lock keeps two processes that
 * start together from both bootstrapping.
 */
export async function bootstrap(
  deps: { database: Database; identity: IdentityService; agents: AgentService; tasks?: TaskService; gateway?: GatewayService },
  rawEnv: BootstrapEnv,
  opts: { demoAgents?: boolean } = {},
): Promise<BootstrapResult> {
  // An empty variable (`BOSUN_INIT_ADMIN_PASSWORD=` in a compose file) means "not set";
  // before, it made an empty password while reporting one as generated.
  const unset = (v: string | undefined) => (v === "" ? undefined : v);
  const env: BootstrapEnv = {
    BOSUN_INIT_API_KEY: unset(rawEnv.BOSUN_INIT_API_KEY),
    BOSUN_INIT_ADMIN_EMAIL: unset(rawEnv.BOSUN_INIT_ADMIN_EMAIL),
    BOSUN_INIT_ADMIN_PASSWORD: unset(rawEnv.BOSUN_INIT_ADMIN_PASSWORD),
    BOSUN_INIT_TENANT: unset(rawEnv.BOSUN_INIT_TENANT),
  };
  if (env.BOSUN_INIT_API_KEY !== undefined && !isValidKeyFormat(env.BOSUN_INIT_API_KEY)) {
    throw new AppError("VALIDATION", "BOSUN_INIT_API_KEY must be 'bsn_' followed by 32 to 200 letters, digits, '-' or '_'");
  }
  // A session-level lock held on one connection for the whole bootstrap: a second
  // process starting at the same moment waits, then finds the tenant and does nothing.
  const lockClient = await deps.database.pool.connect();
  try {
    await lockClient.query("SELECT pg_advisory_lock($1)", [BOOTSTRAP_LOCK]);
    const { rows } = await lockClient.query<{ n: number }>("SELECT count(*)::int AS n FROM tenants");
    if (rows[0]!.n > 0) return { created: false };
    return await createFirstTenant(deps, env, opts);
  } finally {
    await lockClient.query("SELECT pg_advisory_unlock($1)", [BOOTSTRAP_LOCK]).catch(() => {});
    lockClient.release();
  }
}

async function createFirstTenant(
  deps: { database: Database; identity: IdentityService; agents: AgentService; tasks?: TaskService; gateway?: GatewayService },
  env: BootstrapEnv,
  opts: { demoAgents?: boolean },
): Promise<BootstrapResult> {
  // Signup over the API enforces these, and login rejects an email that is not one: an
  // admin created from a malformed variable could never log in.
  if (env.BOSUN_INIT_ADMIN_EMAIL !== undefined && !emailSchema.safeParse(env.BOSUN_INIT_ADMIN_EMAIL).success) {
    throw new AppError("VALIDATION", "BOSUN_INIT_ADMIN_EMAIL must be an email address (at most 254 characters)");
  }
  if (env.BOSUN_INIT_ADMIN_PASSWORD !== undefined && !passwordSchema.safeParse(env.BOSUN_INIT_ADMIN_PASSWORD).success) {
    throw new AppError("VALIDATION", "BOSUN_INIT_ADMIN_PASSWORD must be 10 to 256 characters long");
  }
  const passwordGenerated = !env.BOSUN_INIT_ADMIN_PASSWORD;
  const password = env.BOSUN_INIT_ADMIN_PASSWORD ?? randomBytes(12).toString("base64url");
  const email = env.BOSUN_INIT_ADMIN_EMAIL ?? "admin@bosun.local";
  const result = await deps.identity.signup({
    tenant: { name: env.BOSUN_INIT_TENANT ?? "Demo", timeZone: "UTC" },
    owner: { email, password, name: "Admin" },
    apiKey: env.BOSUN_INIT_API_KEY,
  });
  if (opts.demoAgents !== false) {
    const actor: Actor = {
      type: "user",
      id: result.user.id,
      tenantId: result.tenant.id,
      scopes: ["admin"],
      role: "owner",
      agentId: null,
      keyId: null,
    };
    for (const d of demoAgents) await deps.agents.apply(actor, d.metadata.name, d);
    const finance = await withTenant(deps.database, result.tenant.id, (tx) => repo.getAgentByName(tx, { tenantId: result.tenant.id, name: "reconciliation-finance" }));
    if (finance) await bootstrapMemoryDemo(deps.database, { tenantId: result.tenant.id, agentId: finance.id });
    // Work for the demo fleet, so that the first start shows agents taking and finishing tasks.
    if (deps.tasks) {
      for (const t of demoTasks) {
        await deps.tasks.create(actor, { body: "", priority: 50, depends_on: [], requires_review: false, max_attempts: 3, ...t });
      }
    }
    // The MCP gateway demo: server-everything and an agent whose second call waits for approval.
    if (deps.gateway) await bootstrapGatewayDemo({ gateway: deps.gateway, agents: deps.agents, tasks: deps.tasks }, actor);
  }
  return { created: true, tenantId: result.tenant.id, email, password, apiKey: result.apiKey.key!, passwordGenerated };
}
