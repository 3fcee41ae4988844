import { sql } from "drizzle-orm";
import { bigint, boolean, check, date, foreignKey, index, integer, jsonb, pgTable, primaryKey, text, uniqueIndex } from "drizzle-orm/pg-core";
import { agents } from "./agents";
import { createdAt, tenantId, tenantPolicy, ts, updatedAt } from "./columns";
import { tenants } from "./tenants";

/*
 * Cost governance. Money is integer micro-dollars (bigint): $1 = 1,000,000. Token prices
 * are micro-dollars per million tokens, so $0.075 / MTok is 75,000 and every list price
 * is an integer. The arithmetic lives in packages/core/src/costs/money.ts.
 */

const micros = (name: string) => bigint(name, { mode: "number" });

/**
 * The list-price catalogue: every provider's price per model, versioned by effective
 * date (a price change is a new row; old rows stay so old charges keep naming theirs).
 * Global, not tenant-owned: the application role may read it, not change it (see the
 * migration). `model` is the exact id, or `*` for any model of the provider.
 */
export const modelPrices = pgTable(
  "model_prices",
  {
    id: text("id").primaryKey(),
    provider: text("provider").notNull(),
    model: text("model").notNull(),
    inputMicrosPerMtok: micros("input_micros_per_mtok").notNull(),
    outputMicrosPerMtok: micros("output_micros_per_mtok").notNull(),
    cacheReadMicrosPerMtok: micros("cache_read_micros_per_mtok").notNull(),
    cacheWriteMicrosPerMtok: micros("cache_write_micros_per_mtok").notNull(),
    effectiveFrom: ts("effective_from").notNull(),
    /** Where the price was read, for the next person who checks it. */
    source: text("source"),
    createdAt: createdAt(),
  },
  (t) => [
    uniqueIndex("model_prices_version_key").on(t.provider, t.model, t.effectiveFrom),
    check(
      "model_prices_non_negative",
      sql`input_micros_per_mtok >= 0 AND output_micros_per_mtok >= 0 AND cache_read_micros_per_mtok >= 0 AND cache_write_micros_per_mtok >= 0`,
    ),
  ],
);

/** A tenant's own prices (negotiated rates, self-hosted models): they win over the catalogue. */
export const priceOverrides = pgTable(
  "price_overrides",
  {
    tenantId: tenantId().references(() => tenants.id, { onDelete: "cascade" }),
    id: text("id").notNull(),
    provider: text("provider").notNull(),
    model: text("model").notNull(),
    inputMicrosPerMtok: micros("input_micros_per_mtok").notNull(),
    outputMicrosPerMtok: micros("output_micros_per_mtok").notNull(),
    cacheReadMicrosPerMtok: micros("cache_read_micros_per_mtok").notNull(),
    cacheWriteMicrosPerMtok: micros("cache_write_micros_per_mtok").notNull(),
    effectiveFrom: ts("effective_from").notNull(),
    note: text("note"),
    createdByType: text("created_by_type").notNull(),
    createdById: text("created_by_id").notNull(),
    createdAt: createdAt(),
  },
  (t) => [
    primaryKey({ columns: [t.tenantId, t.id] }),
    uniqueIndex("price_overrides_version_key").on(t.tenantId, t.provider, t.model, t.effectiveFrom),
    check(
      "price_overrides_non_negative",
      sql`input_micros_per_mtok >= 0 AND output_micros_per_mtok >= 0 AND cache_read_micros_per_mtok >= 0 AND cache_write_micros_per_mtok >= 0`,
    ),
    tenantPolicy(),
  ],
).enableRLS();

/** Per-tenant cost settings; a tenant without a row has the defaults. */
export const costSettings = pgTable(
  "cost_settings",
  {
    tenantId: tenantId()
      .primaryKey()
      .references(() => tenants.id, { onDelete: "cascade" }),
    /** Let calls to models without a price through, flagged (cost unknown), instead of refusing them. */
    allowUnpricedModels: boolean("allow_unpriced_models").notNull().default(false),
    /** What a worker second costs, as micro-dollars per hour of worker time. */
    computeMicrosPerHour: micros("compute_micros_per_hour").notNull().default(50_000),
    /** Who gets budget alerts; empty means the tenant's owners and admins. */
    alertEmails: jsonb("alert_emails").notNull().default(sql`'[]'::jsonb`),
    updatedAt: updatedAt(),
  },
  () => [check("cost_settings_rate", sql`compute_micros_per_hour >= 0`), tenantPolicy()],
).enableRLS();

export const budgetScopes = ["tenant", "agent"] as const;
export const budgetMetrics = ["usd", "calls"] as const;
export const budgetWindowKinds = ["invocation", "hour", "day", "month"] as const;

/**
 * A spending limit: on the tenant or one agent, in micro-dollars (`usd`) or model calls
 * (`calls`), per invocation (one run) or per calendar hour, day or month in the tenant's
 * time zone. Hard budgets refuse a call whose worst case would pass the limit; soft ones
 * only alert. Budgets from an agent's descriptor (`source = 'descriptor'`) follow it.
 */
export const budgets = pgTable(
  "budgets",
  {
    tenantId: tenantId().references(() => tenants.id, { onDelete: "cascade" }),
    id: text("id").notNull(),
    scope: text("scope", { enum: budgetScopes }).notNull(),
    agentId: text("agent_id"),
    metric: text("metric", { enum: budgetMetrics }).notNull(),
    /** `window` is a reserved word in SQL, hence `period`. */
    period: text("period", { enum: budgetWindowKinds }).notNull(),
    /** Micro-dollars for `usd`, calls for `calls`. */
    limitValue: bigint("limit_value", { mode: "number" }).notNull(),
    enforcement: text("enforcement", { enum: ["hard", "soft"] }).notNull().default("hard"),
    /** Percentages of the limit that alert once per window each. */
    thresholds: jsonb("thresholds").$type<number[]>().notNull().default(sql`'[50, 80, 100]'::jsonb`),
    /** At 100 %: pause the agent(s) in scope, or only refuse new spend (hard budgets do that anyway). */
    onExhausted: text("on_exhausted", { enum: ["pause_agent", "refuse"] }).notNull().default("refuse"),
    source: text("source", { enum: ["api", "descriptor"] }).notNull().default("api"),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    primaryKey({ columns: [t.tenantId, t.id] }),
    foreignKey({ name: "budgets_agent_fk", columns: [t.tenantId, t.agentId], foreignColumns: [agents.tenantId, agents.id] }).onDelete("cascade"),
    index("budgets_agent_idx").on(t.tenantId, t.agentId),
    uniqueIndex("budgets_descriptor_key").on(t.tenantId, t.agentId, t.metric, t.period).where(sql`source = 'descriptor'`),
    check("budgets_scope_agent", sql`(scope = 'agent') = (agent_id IS NOT NULL)`),
    check("budgets_limit", sql`limit_value >= 0`),
    tenantPolicy(),
  ],
).enableRLS();

/**
 * One budget's usage in one window. `reserved` holds the worst case of calls in flight;
 * settling moves the actual cost to `spent` and releases the rest. A hard budget never
 * lets `spent + reserved` pass `limit_value`, which is copied from the budget at each
 * reservation (so a changed limit applies to the current window at once).
 */
export const budgetWindows = pgTable(
  "budget_windows",
  {
    tenantId: tenantId(),
    budgetId: text("budget_id").notNull(),
    /** The window's UTC start (ISO) for calendar windows, `run:<id>` for invocations. */
    windowKey: text("window_key").notNull(),
    windowStart: ts("window_start").notNull(),
    windowEnd: ts("window_end"),
    limitValue: bigint("limit_value", { mode: "number" }).notNull(),
    spent: bigint("spent", { mode: "number" }).notNull().default(0),
    reserved: bigint("reserved", { mode: "number" }).notNull().default(0),
    updatedAt: updatedAt(),
  },
  (t) => [
    primaryKey({ columns: [t.tenantId, t.budgetId, t.windowKey] }),
    foreignKey({ name: "budget_windows_budget_fk", columns: [t.tenantId, t.budgetId], foreignColumns: [budgets.tenantId, budgets.id] }).onDelete(
      "cascade",
    ),
    check("budget_windows_non_negative", sql`spent >= 0 AND reserved >= 0`),
    tenantPolicy(),
  ],
).enableRLS();

/**
 * What a call in flight holds on each budget window, until it is settled (with the
 * ledger row, in one transaction) or released. Rows older than their expiry belong to
 * dead workers; the sweeper releases them.
 */
export const budgetReservations = pgTable(
  "budget_reservations",
  {
    tenantId: tenantId(),
    id: text("id").notNull(),
    /** `run_id:seq` of the step the reservation is for. */
    key: text("key").notNull(),
    agentId: text("agent_id").notNull(),
    runId: text("run_id"),
    /** `[{ budgetId, windowKey, amount }]`, in lock order. */
    holds: jsonb("holds").notNull(),
    estimateMicros: micros("estimate_micros").notNull(),
    createdAt: createdAt(),
    expiresAt: ts("expires_at").notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.tenantId, t.id] }),
    uniqueIndex("budget_reservations_key").on(t.tenantId, t.key),
    index("budget_reservations_expiry_idx").on(t.expiresAt),
    tenantPolicy(),
  ],
).enableRLS();

export const chargeKinds = ["tokens", "action", "compute"] as const;

/**
 * The cost ledger: append-only (the application role may not UPDATE or DELETE it), one
 * row per charge, unique by idempotency key so a replayed step never charges twice.
 * `cost_micros` is NULL only for a call to an unpriced model that the tenant allowed
 * (`unpriced`): unknown, never $0. Token rows name the price they used (`price_id`),
 * compute rows their rate.
 *
 * Partitioned by month of the run's creation, like `steps` (see the migration): the
 * idempotency key is unique with `run_created_at`, which every charge of a run shares,
 * and retention drops a run's charges together with its trace.
 */
export const costLedger = pgTable(
  "cost_ledger",
  {
    tenantId: tenantId(),
    id: text("id").notNull(),
    runCreatedAt: ts("run_created_at").notNull(),
    idempotencyKey: text("idempotency_key").notNull(),
    kind: text("kind", { enum: chargeKinds }).notNull(),
    agentId: text("agent_id").notNull(),
    runId: text("run_id"),
    stepSeq: integer("step_seq"),
    taskId: text("task_id"),
    provider: text("provider"),
    model: text("model"),
    priceId: text("price_id"),
    inputTokens: bigint("input_tokens", { mode: "number" }).notNull().default(0),
    cacheReadTokens: bigint("cache_read_tokens", { mode: "number" }).notNull().default(0),
    cacheWriteTokens: bigint("cache_write_tokens", { mode: "number" }).notNull().default(0),
    outputTokens: bigint("output_tokens", { mode: "number" }).notNull().default(0),
    /** The provider's usage object as received. */
    rawUsage: jsonb("raw_usage"),
    computeMs: bigint("compute_ms", { mode: "number" }),
    rateMicrosPerHour: micros("rate_micros_per_hour"),
    /** The tool that declared an `action` fee, or what a charge was for. */
    description: text("description"),
    costMicros: micros("cost_micros"),
    unpriced: boolean("unpriced").notNull().default(false),
    /** The provider reported no usage: the charge is the reservation's worst case. */
    estimated: boolean("estimated").notNull().default(false),
    createdAt: createdAt(),
  },
  (t) => [
    primaryKey({ columns: [t.tenantId, t.id, t.runCreatedAt] }),
    uniqueIndex("cost_ledger_idempotency_key").on(t.tenantId, t.idempotencyKey, t.runCreatedAt),
    index("cost_ledger_time_idx").on(t.tenantId, t.createdAt),
    index("cost_ledger_agent_idx").on(t.tenantId, t.agentId, t.createdAt),
    check("cost_ledger_cost", sql`cost_micros >= 0 OR (cost_micros IS NULL AND unpriced)`),
    tenantPolicy(),
  ],
).enableRLS();

/**
 * Threshold crossings: one row per (budget, window, threshold), claimed by the settle that
 * crosses it, so each alert fires once; the same transaction enqueues `alert.send`.
 */
export const budgetAlerts = pgTable(
  "budget_alerts",
  {
    tenantId: tenantId().references(() => tenants.id, { onDelete: "cascade" }),
    id: text("id").notNull(),
    budgetId: text("budget_id").notNull(),
    windowKey: text("window_key").notNull(),
    threshold: integer("threshold").notNull(),
    agentId: text("agent_id"),
    windowStart: ts("window_start").notNull(),
    windowEnd: ts("window_end"),
    spent: bigint("spent", { mode: "number" }).notNull(),
    limitValue: bigint("limit_value", { mode: "number" }).notNull(),
    /** `pending` until mailed (`sent`); `unsent` when no SMTP server is configured. */
    status: text("status", { enum: ["pending", "sent", "unsent", "failed"] }).notNull().default("pending"),
    attempts: integer("attempts").notNull().default(0),
    lastError: text("last_error"),
    /** Set while one delivery attempt is in flight, so two cannot mail the same alert. */
    sendingUntil: ts("sending_until"),
    sentAt: ts("sent_at"),
    createdAt: createdAt(),
  },
  (t) => [
    primaryKey({ columns: [t.tenantId, t.id] }),
    uniqueIndex("budget_alerts_claim_key").on(t.tenantId, t.budgetId, t.windowKey, t.threshold),
    index("budget_alerts_time_idx").on(t.tenantId, t.createdAt),
    tenantPolicy(),
  ],
).enableRLS();

/**
 * Daily rollups of the ledger per tenant-local day, agent, kind, provider and model; kept
 * by the `costs.rollup` job (one writer at a time) and read by GET /v1/costs. Empty
 * strings stand for "none" (compute and action charges have no model).
 */
export const costDaily = pgTable(
  "cost_daily",
  {
    tenantId: tenantId(),
    day: date("day", { mode: "string" }).notNull(),
    agentId: text("agent_id").notNull(),
    kind: text("kind", { enum: chargeKinds }).notNull(),
    provider: text("provider").notNull(),
    model: text("model").notNull(),
    costMicros: micros("cost_micros").notNull(),
    charges: integer("charges").notNull(),
    unpricedCharges: integer("unpriced_charges").notNull(),
    inputTokens: bigint("input_tokens", { mode: "number" }).notNull(),
    cacheReadTokens: bigint("cache_read_tokens", { mode: "number" }).notNull(),
    cacheWriteTokens: bigint("cache_write_tokens", { mode: "number" }).notNull(),
    outputTokens: bigint("output_tokens", { mode: "number" }).notNull(),
    computeMs: bigint("compute_ms", { mode: "number" }).notNull(),
    updatedAt: updatedAt(),
  },
  (t) => [primaryKey({ columns: [t.tenantId, t.day, t.agentId, t.kind, t.provider, t.model] }), tenantPolicy()],
).enableRLS();

/** The rollup job's watermark (one row): ledger rows created before it are rolled up. */
export const costRollupState = pgTable("cost_rollup_state", {
  id: integer("id").primaryKey().default(1),
  rolledUpTo: ts("rolled_up_to").notNull(),
  updatedAt: updatedAt(),
});
