import { sql } from "drizzle-orm";
import { foreignKey, index, integer, jsonb, pgTable, primaryKey, text, uniqueIndex } from "drizzle-orm/pg-core";
import { createdAt, tenantId, tenantPolicy, ts, updatedAt } from "./columns";
import { tenants } from "./tenants";

export const agents = pgTable(
  "agents",
  {
    tenantId: tenantId().references(() => tenants.id, { onDelete: "cascade" }),
    id: text("id").notNull(),
    name: text("name").notNull(),
    owner: text("owner").notNull(),
    status: text("status", { enum: ["active", "paused", "retired", "shadow"] })
      .notNull()
      .default("active"),
    revision: integer("revision").notNull(),
    specHash: text("spec_hash").notNull(),
    /** The current revision's descriptor, denormalised so reads need one row. */
    descriptor: jsonb("descriptor").notNull(),
    /** When the scheduler should wake this agent next; kept by the worker. */
    nextWakeAt: ts("next_wake_at"),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    primaryKey({ columns: [t.tenantId, t.id] }),
    uniqueIndex("agents_tenant_name_key").on(t.tenantId, t.name),
    index("agents_next_wake_idx").on(t.nextWakeAt),
    // A task's wake choice takes a tenant's active agents in this order, from a point its
    // seed gives, and stops at WAKE_CANDIDATES covering ones (repositories/tasks.ts).
    index("agents_wake_order_idx").on(t.tenantId, sql`hashtext(${t.id})`).where(sql`status = 'active'`),
    // ... and finds the few that may cover a domain by their globs' literal heads, with the
    // tenant's id in front (migration 0017 defines bosun_glob_heads).
    index("agents_glob_heads_idx").using("gin", sql`bosun_glob_heads(${t.tenantId}, ${t.descriptor})`).where(sql`status = 'active'`),
    tenantPolicy(),
  ],
).enableRLS();

/** Immutable history: one row per distinct descriptor ever applied to an agent. */
export const agentRevisions = pgTable(
  "agent_revisions",
  {
    tenantId: tenantId(),
    agentId: text("agent_id").notNull(),
    revision: integer("revision").notNull(),
    specHash: text("spec_hash").notNull(),
    descriptor: jsonb("descriptor").notNull(),
    createdByType: text("created_by_type").notNull(),
    createdById: text("created_by_id").notNull(),
    createdAt: createdAt(),
  },
  (t) => [
    primaryKey({ columns: [t.tenantId, t.agentId, t.revision] }),
    foreignKey({ name: "agent_revisions_agent_fk", columns: [t.tenantId, t.agentId], foreignColumns: [agents.tenantId, agents.id] }).onDelete(
      "cascade",
    ),
    tenantPolicy(),
  ],
).enableRLS();
