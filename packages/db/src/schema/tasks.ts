import { sql } from "drizzle-orm";
import { bigint, boolean, check, foreignKey, index, integer, jsonb, pgTable, primaryKey, text } from "drizzle-orm/pg-core";
import { agents } from "./agents";
import { createdAt, tenantId, tenantPolicy, ts, updatedAt } from "./columns";
import { tenants } from "./tenants";

/** `backlog`: created by an agent's drive under autonomy `propose`; a person promotes it to `queued`. */
export const taskStatuses = ["backlog", "queued", "claimed", "in_progress", "in_review", "done", "failed", "cancelled", "escalated"] as const;

/**
 * Work for agents. A task is claimed with a lease (`lease_epoch` rises with every claim),
 * and every later write by the claimant is fenced by that epoch, so a claimant whose lease
 * expired cannot complete or fail the task after someone else took it.
 */
export const tasks = pgTable(
  "tasks",
  {
    tenantId: tenantId().references(() => tenants.id, { onDelete: "cascade" }),
    id: text("id").notNull(),
    title: text("title").notNull(),
    body: text("body").notNull().default(""),
    priority: integer("priority").notNull().default(50),
    status: text("status", { enum: taskStatuses }).notNull().default("queued"),
    /** The agent that must do it, or null for any agent whose domains cover `domain`. */
    assigneeAgentId: text("assignee_agent_id"),
    domain: text("domain"),
    requiresReview: boolean("requires_review").notNull().default(false),
    /** Reviewing agent; null means a person reviews. */
    reviewerAgentId: text("reviewer_agent_id"),
    maxAttempts: integer("max_attempts").notNull().default(3),
    attempts: integer("attempts").notNull().default(0),
    claimedByAgentId: text("claimed_by_agent_id"),
    leaseOwner: text("lease_owner"),
    leaseEpoch: bigint("lease_epoch", { mode: "number" }).notNull().default(0),
    leaseExpiresAt: ts("lease_expires_at"),
    runId: text("run_id"),
    result: jsonb("result"),
    failure: jsonb("failure"),
    reviewComment: text("review_comment"),
    createdByType: text("created_by_type").notNull(),
    createdById: text("created_by_id").notNull(),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
    completedAt: ts("completed_at"),
  },
  (t) => [
    primaryKey({ columns: [t.tenantId, t.id] }),
    foreignKey({ name: "tasks_assignee_fk", columns: [t.tenantId, t.assigneeAgentId], foreignColumns: [agents.tenantId, agents.id] }),
    foreignKey({ name: "tasks_reviewer_fk", columns: [t.tenantId, t.reviewerAgentId], foreignColumns: [agents.tenantId, agents.id] }),
    // The claim query: queued tasks of a tenant by priority, then age, then id — exactly its
    // ORDER BY, so the claim walks the index and stops at the first task it may take and
    // lock. (Without `id` it filtered and sorted the whole queue: a cost that grew with the
    // backlog, 5 ms per claim with 50 tasks queued.)
    index("tasks_claim_order_idx").on(t.tenantId, t.priority.desc().nullsFirst(), t.createdAt, t.id).where(sql`status = 'queued'`),
    // The lease sweeper: claimed or running tasks whose lease has run out.
    index("tasks_lease_idx").on(t.leaseExpiresAt).where(sql`status IN ('claimed', 'in_progress')`),
    index("tasks_status_idx").on(t.tenantId, t.status),
    // Whether an agent has a task it may claim (the schedule tick's idle check, a wake's
    // last look): its queued tasks, and the unassigned queued ones under each of its globs'
    // literal heads, a prefix range (text_pattern_ops: byte order, so `head` up to `head` ||
    // U+10FFFF holds every domain that starts with it). Without them the check walked the
    // tenant's whole queue: ~12 ms an agent with 5,000 tasks queued in other domains.
    index("tasks_queued_assignee_idx").on(t.tenantId, t.assigneeAgentId).where(sql`status = 'queued' AND assignee_agent_id IS NOT NULL`),
    index("tasks_queued_domain_idx").on(t.tenantId, t.domain.op("text_pattern_ops")).where(sql`status = 'queued' AND assignee_agent_id IS NULL AND domain IS NOT NULL`),
    check("tasks_priority_range", sql`priority BETWEEN 0 AND 100`),
    check("tasks_attempts_range", sql`max_attempts BETWEEN 1 AND 100 AND attempts >= 0`),
    tenantPolicy(),
  ],
).enableRLS();

/** `task_id` may be claimed only once every task it depends on is done. */
export const taskDependencies = pgTable(
  "task_dependencies",
  {
    tenantId: tenantId(),
    taskId: text("task_id").notNull(),
    dependsOnId: text("depends_on_id").notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.tenantId, t.taskId, t.dependsOnId] }),
    foreignKey({ name: "task_deps_task_fk", columns: [t.tenantId, t.taskId], foreignColumns: [tasks.tenantId, tasks.id] }).onDelete("cascade"),
    foreignKey({ name: "task_deps_on_fk", columns: [t.tenantId, t.dependsOnId], foreignColumns: [tasks.tenantId, tasks.id] }).onDelete("cascade"),
    index("task_deps_on_idx").on(t.tenantId, t.dependsOnId),
    check("task_deps_not_self", sql`task_id <> depends_on_id`),
    tenantPolicy(),
  ],
).enableRLS();
