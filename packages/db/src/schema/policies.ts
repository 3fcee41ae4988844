import { sql } from "drizzle-orm";
import { bigint, check, foreignKey, index, integer, pgTable, primaryKey, text, uniqueIndex } from "drizzle-orm/pg-core";
import { agents } from "./agents";
import { createdAt, tenantId, tenantPolicy, updatedAt } from "./columns";
import { tenants } from "./tenants";

export const policyDecisions = ["allow", "deny", "require_approval"] as const;

/**
 * Tool-call policies of a tenant, or of one agent when `agent_id` is set. A policy matches
 * a call when every condition it sets holds (tool pattern, side effect, action value over
 * a threshold); the runtime combines every matching policy with the agent's descriptor
 * rules (see packages/core/src/governance/policy.ts for the precedence).
 */
export const policies = pgTable(
  "policies",
  {
    tenantId: tenantId().references(() => tenants.id, { onDelete: "cascade" }),
    id: text("id").notNull(),
    agentId: text("agent_id"),
    name: text("name").notNull(),
    /** Lower first, when several policies with the same decision match. */
    priority: integer("priority").notNull().default(100),
    /** Glob on the tool's ref (`create_task`, `mcp://gateway/github/*`); null matches every tool. */
    toolPattern: text("tool_pattern"),
    sideEffect: text("side_effect", { enum: ["internal", "external"] }),
    /** Matches calls that declare an action value above this, in micro-dollars. */
    actionValueGtMicros: bigint("action_value_gt_micros", { mode: "number" }),
    decision: text("decision", { enum: policyDecisions }).notNull(),
    /** How long an approval this policy requires stays open; null: the runtime's default. */
    approvalExpiresSeconds: integer("approval_expires_seconds"),
    description: text("description"),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    primaryKey({ columns: [t.tenantId, t.id] }),
    uniqueIndex("policies_tenant_name_key").on(t.tenantId, t.name),
    foreignKey({ name: "policies_agent_fk", columns: [t.tenantId, t.agentId], foreignColumns: [agents.tenantId, agents.id] }).onDelete("cascade"),
    index("policies_agent_idx").on(t.tenantId, t.agentId),
    check("policies_expiry_check", sql`approval_expires_seconds IS NULL OR approval_expires_seconds > 0`),
    tenantPolicy(),
  ],
).enableRLS();
