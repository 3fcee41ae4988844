import { sql } from "drizzle-orm";
import { check, foreignKey, index, integer, jsonb, pgTable, primaryKey, text } from "drizzle-orm/pg-core";
import { agents } from "./agents";
import { createdAt, tenantId, tenantPolicy, ts, updatedAt } from "./columns";
import { tenants } from "./tenants";

export const proposalStatuses = ["open", "approved", "rejected", "escalated"] as const;
export const proposalStances = ["support", "concern", "block"] as const;

/**
 * A cross-domain change put to the agents that own the domains it touches. `approve_at`
 * and `escalate_at` are fixed at creation from the tenant's windows; `due_at` is the next
 * moment the timer must look at an open proposal (null once decided or escalated), which
 * is what the evaluator's index serves. An approved proposal's action is applied in the
 * decision's own transaction: `applied_at` (or `action_error`) is written exactly once.
 */
export const proposals = pgTable(
  "proposals",
  {
    tenantId: tenantId().references(() => tenants.id, { onDelete: "cascade" }),
    id: text("id").notNull(),
    title: text("title").notNull(),
    body: text("body").notNull().default(""),
    /** Concrete domain paths the change touches (`finance/invoices`). */
    domains: jsonb("domains").$type<string[]>().notNull(),
    action: jsonb("action"),
    proposerType: text("proposer_type").notNull(),
    proposerId: text("proposer_id").notNull(),
    /** Set when an agent proposed (runtime tool or its own key). */
    proposerAgentId: text("proposer_agent_id"),
    status: text("status", { enum: proposalStatuses }).notNull().default("open"),
    approveAt: ts("approve_at").notNull(),
    escalateAt: ts("escalate_at").notNull(),
    dueAt: ts("due_at"),
    decidedAt: ts("decided_at"),
    decidedByType: text("decided_by_type"),
    decidedById: text("decided_by_id"),
    /** unanimous_support | no_objection | person */
    decisionReason: text("decision_reason"),
    decisionComment: text("decision_comment"),
    escalatedAt: ts("escalated_at"),
    appliedAt: ts("applied_at"),
    actionResult: jsonb("action_result"),
    actionError: text("action_error"),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    primaryKey({ columns: [t.tenantId, t.id] }),
    foreignKey({ name: "proposals_proposer_agent_fk", columns: [t.tenantId, t.proposerAgentId], foreignColumns: [agents.tenantId, agents.id] }),
    // The timer: open proposals whose next deadline has come, across tenants.
    index("proposals_due_idx").on(t.dueAt).where(sql`due_at IS NOT NULL`),
    index("proposals_status_idx").on(t.tenantId, t.status, t.id),
    check("proposals_windows_order", sql`approve_at <= escalate_at`),
    tenantPolicy(),
  ],
).enableRLS();

/**
 * The agents asked about a proposal, one row each, written at creation (the asked set does
 * not move when descriptors change later). `stance` is null until the agent responds; an
 * agent may change its response while the proposal is open.
 */
export const proposalResponses = pgTable(
  "proposal_responses",
  {
    tenantId: tenantId().references(() => tenants.id, { onDelete: "cascade" }),
    proposalId: text("proposal_id").notNull(),
    agentId: text("agent_id").notNull(),
    stance: text("stance", { enum: proposalStances }),
    comment: text("comment"),
    respondedAt: ts("responded_at"),
    createdAt: createdAt(),
  },
  (t) => [
    primaryKey({ columns: [t.tenantId, t.proposalId, t.agentId] }),
    foreignKey({ name: "proposal_responses_proposal_fk", columns: [t.tenantId, t.proposalId], foreignColumns: [proposals.tenantId, proposals.id] }).onDelete(
      "cascade",
    ),
    foreignKey({ name: "proposal_responses_agent_fk", columns: [t.tenantId, t.agentId], foreignColumns: [agents.tenantId, agents.id] }),
    tenantPolicy(),
  ],
).enableRLS();

/** A tenant's proposal windows; no row means the defaults (24 h to approve, 48 h to escalate). */
export const proposalSettings = pgTable(
  "proposal_settings",
  {
    tenantId: tenantId()
      .primaryKey()
      .references(() => tenants.id, { onDelete: "cascade" }),
    approveAfterSeconds: integer("approve_after_seconds").notNull(),
    escalateAfterSeconds: integer("escalate_after_seconds").notNull(),
    updatedAt: updatedAt(),
  },
  () => [check("proposal_settings_order", sql`approve_after_seconds > 0 AND approve_after_seconds <= escalate_after_seconds`), tenantPolicy()],
).enableRLS();
