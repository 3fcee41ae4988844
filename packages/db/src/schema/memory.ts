import { type SQL, sql } from "drizzle-orm";
import { bigint, check, customType, date, foreignKey, index, integer, pgTable, primaryKey, text } from "drizzle-orm/pg-core";
import { agents } from "./agents";
import { createdAt, tenantId, tenantPolicy, ts, updatedAt } from "./columns";
import { tenants } from "./tenants";

const tsvector = customType<{ data: string }>({ dataType: () => "tsvector" });

/**
 * An agent's memory beyond its soul: `working` items are loaded into every prompt and
 * bounded by `memory.working_tokens` (counted with a real tokenizer, stored in `tokens`);
 * `archive` items (past results, retired memories) are only searched on demand, with full
 * text search over `search`, and expire at `expires_at` (`memory.retention_days`).
 * `version` rises with every edit: writers and dream cycles say which version they saw,
 * so nobody overwrites an edit they did not see.
 */
export const memoryItems = pgTable(
  "memory_items",
  {
    tenantId: tenantId().references(() => tenants.id, { onDelete: "cascade" }),
    id: text("id").notNull(),
    agentId: text("agent_id").notNull(),
    layer: text("layer", { enum: ["working", "archive"] }).notNull(),
    title: text("title").notNull().default(""),
    content: text("content").notNull(),
    tokens: integer("tokens").notNull(),
    version: integer("version").notNull().default(1),
    /** Who wrote it: `agent` (memory tool), `operator`, `dream`, `task_result`. */
    source: text("source").notNull(),
    /** The run (or task) it came from, if any. */
    ref: text("ref"),
    search: tsvector("search")
      .notNull()
      .generatedAlwaysAs((): SQL => sql`to_tsvector('english', coalesce(title, '') || ' ' || content)`),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
    expiresAt: ts("expires_at"),
  },
  (t) => [
    primaryKey({ columns: [t.tenantId, t.id] }),
    foreignKey({ name: "memory_items_agent_fk", columns: [t.tenantId, t.agentId], foreignColumns: [agents.tenantId, agents.id] }).onDelete("cascade"),
    index("memory_items_agent_idx").on(t.tenantId, t.agentId, t.layer, t.createdAt),
    index("memory_items_expiry_idx").on(t.expiresAt).where(sql`expires_at IS NOT NULL`),
    check("memory_items_tokens_nonneg", sql`tokens >= 0 AND version >= 1`),
    tenantPolicy(),
  ],
).enableRLS();

/**
 * Per-agent memory bookkeeping: when it last dreamt, how much changed since (the dream's
 * "debt"), and the dream lease (`dream_epoch`, `dream_until`) that keeps two workers from
 * dreaming for one agent at once.
 */
export const agentMemory = pgTable(
  "agent_memory",
  {
    tenantId: tenantId().references(() => tenants.id, { onDelete: "cascade" }),
    agentId: text("agent_id").notNull(),
    /** Working-memory writes since the last dream; 0 means a dream has nothing to do. */
    changesSinceDream: integer("changes_since_dream").notNull().default(0),
    lastDreamAt: ts("last_dream_at"),
    lastDreamRunId: text("last_dream_run_id"),
    nextDreamAt: ts("next_dream_at"),
    dreamEpoch: bigint("dream_epoch", { mode: "number" }).notNull().default(0),
    dreamUntil: ts("dream_until"),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    primaryKey({ columns: [t.tenantId, t.agentId] }),
    foreignKey({ name: "agent_memory_agent_fk", columns: [t.tenantId, t.agentId], foreignColumns: [agents.tenantId, agents.id] }).onDelete("cascade"),
    index("agent_memory_dream_due_idx").on(t.nextDreamAt),
    tenantPolicy(),
  ],
).enableRLS();

/** When each of an agent's drives (descriptor `spec.drives`) is next due for a consultation. */
export const agentDrives = pgTable(
  "agent_drives",
  {
    tenantId: tenantId().references(() => tenants.id, { onDelete: "cascade" }),
    agentId: text("agent_id").notNull(),
    name: text("name").notNull(),
    nextDueAt: ts("next_due_at").notNull(),
    lastConsultedAt: ts("last_consulted_at"),
    lastRunId: text("last_run_id"),
    createdAt: createdAt(),
  },
  (t) => [
    primaryKey({ columns: [t.tenantId, t.agentId, t.name] }),
    foreignKey({ name: "agent_drives_agent_fk", columns: [t.tenantId, t.agentId], foreignColumns: [agents.tenantId, agents.id] }).onDelete("cascade"),
    tenantPolicy(),
  ],
).enableRLS();

/**
 * Tasks an agent created on its own initiative (drive consultations) per tenant-local day:
 * the counter `autonomy.tasks_per_day` is checked against, in the same statement that
 * counts, so concurrent runs cannot pass it.
 */
export const autonomyDays = pgTable(
  "autonomy_days",
  {
    tenantId: tenantId().references(() => tenants.id, { onDelete: "cascade" }),
    agentId: text("agent_id").notNull(),
    day: date("day").notNull(),
    tasksCreated: integer("tasks_created").notNull().default(0),
  },
  (t) => [
    primaryKey({ columns: [t.tenantId, t.agentId, t.day] }),
    foreignKey({ name: "autonomy_days_agent_fk", columns: [t.tenantId, t.agentId], foreignColumns: [agents.tenantId, agents.id] }).onDelete("cascade"),
    tenantPolicy(),
  ],
).enableRLS();
