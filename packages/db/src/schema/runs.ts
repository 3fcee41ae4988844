import { sql } from "drizzle-orm";
import { bigint, foreignKey, index, integer, jsonb, pgTable, primaryKey, text } from "drizzle-orm/pg-core";
import { agents } from "./agents";
import { createdAt, tenantId, tenantPolicy, ts } from "./columns";
import { tenants } from "./tenants";

/**
 * One session per agent holds the agent's lease: at most one worker runs the agent at a
 * time. `lease_epoch` rises with every acquisition and fences every write of the run.
 */
export const agentSessions = pgTable(
  "agent_sessions",
  {
    tenantId: tenantId().references(() => tenants.id, { onDelete: "cascade" }),
    agentId: text("agent_id").notNull(),
    leaseOwner: text("lease_owner"),
    leaseEpoch: bigint("lease_epoch", { mode: "number" }).notNull().default(0),
    leaseExpiresAt: ts("lease_expires_at"),
    /** Set when something arrives for the agent; cleared by the run that looks at it. */
    wakeRequestedAt: ts("wake_requested_at"),
    lastRunAt: ts("last_run_at"),
    idleCycles: bigint("idle_cycles", { mode: "number" }).notNull().default(0),
    createdAt: createdAt(),
  },
  (t) => [
    primaryKey({ columns: [t.tenantId, t.agentId] }),
    foreignKey({ name: "agent_sessions_agent_fk", columns: [t.tenantId, t.agentId], foreignColumns: [agents.tenantId, agents.id] }).onDelete("cascade"),
    index("agent_sessions_lease_idx").on(t.leaseExpiresAt).where(sql`lease_owner IS NOT NULL`),
    tenantPolicy(),
  ],
).enableRLS();

export const runStatuses = ["running", "waiting", "succeeded", "failed", "cancelled"] as const;

/** A run of an agent: the root of a trace. Child runs (delegation) point at parent and root. */
export const runs = pgTable(
  "runs",
  {
    tenantId: tenantId().references(() => tenants.id, { onDelete: "cascade" }),
    id: text("id").notNull(),
    agentId: text("agent_id").notNull(),
    taskId: text("task_id"),
    parentRunId: text("parent_run_id"),
    rootRunId: text("root_run_id").notNull(),
    traceparent: text("traceparent").notNull(),
    trigger: text("trigger", { enum: ["task", "message", "schedule", "manual", "delegation", "external"] }).notNull(),
    status: text("status", { enum: runStatuses }).notNull().default("running"),
    model: text("model"),
    stepCount: integer("step_count").notNull().default(0),
    inputTokens: bigint("input_tokens", { mode: "number" }).notNull().default(0),
    outputTokens: bigint("output_tokens", { mode: "number" }).notNull().default(0),
    limits: jsonb("limits").notNull(),
    input: jsonb("input"),
    result: jsonb("result"),
    error: jsonb("error"),
    createdAt: createdAt(),
    startedAt: ts("started_at"),
    endedAt: ts("ended_at"),
  },
  (t) => [
    primaryKey({ columns: [t.tenantId, t.id] }),
    foreignKey({ name: "runs_agent_fk", columns: [t.tenantId, t.agentId], foreignColumns: [agents.tenantId, agents.id] }),
    index("runs_agent_idx").on(t.tenantId, t.agentId, t.createdAt.desc()),
    index("runs_root_idx").on(t.tenantId, t.rootRunId),
    index("runs_active_idx").on(t.tenantId, t.agentId).where(sql`status IN ('running', 'waiting')`),
    tenantPolicy(),
  ],
).enableRLS();

/**
 * The trace: every model call, tool call, message, delegation and wait of a run, written
 * before the run moves on. `(run_id, seq)` is unique, which is what makes replay safe: a
 * step that exists is never executed again.
 *
 * Partitioned by month of the run's creation (`run_created_at`, see the migration): a
 * partitioned table's unique keys must contain the partition key, and every step of a
 * run shares its run's timestamp, so `(run_id, seq)` stays unique and retention drops
 * whole traces, never half of one.
 */
export const steps = pgTable(
  "steps",
  {
    tenantId: tenantId(),
    runId: text("run_id").notNull(),
    runCreatedAt: ts("run_created_at").notNull(),
    seq: integer("seq").notNull(),
    kind: text("kind", { enum: ["llm", "tool", "message", "delegate", "wait", "idle", "usage", "approval", "memory", "policy", "proposal", "dream", "drive"] }).notNull(),
    name: text("name"),
    status: text("status", { enum: ["ok", "error"] }).notNull(),
    input: jsonb("input"),
    output: jsonb("output"),
    provider: text("provider"),
    model: text("model"),
    inputTokens: integer("input_tokens").notNull().default(0),
    cacheReadTokens: integer("cache_read_tokens").notNull().default(0),
    cacheWriteTokens: integer("cache_write_tokens").notNull().default(0),
    outputTokens: integer("output_tokens").notNull().default(0),
    latencyMs: integer("latency_ms"),
    leaseEpoch: bigint("lease_epoch", { mode: "number" }),
    createdAt: createdAt(),
  },
  (t) => [primaryKey({ columns: [t.tenantId, t.runId, t.seq, t.runCreatedAt] }), tenantPolicy()],
).enableRLS();

/** What a suspended run waits for. Resolving one wakes the agent; the run resumes once. */
export const waitpoints = pgTable(
  "waitpoints",
  {
    tenantId: tenantId().references(() => tenants.id, { onDelete: "cascade" }),
    id: text("id").notNull(),
    runId: text("run_id").notNull(),
    agentId: text("agent_id").notNull(),
    kind: text("kind", { enum: ["approval", "child_run", "timer", "event"] }).notNull(),
    status: text("status", { enum: ["pending", "resolved", "expired", "cancelled"] }).notNull().default("pending"),
    /** For `child_run`: the child; for `event`: the event name. */
    ref: text("ref"),
    resumeAt: ts("resume_at"),
    expiresAt: ts("expires_at"),
    payload: jsonb("payload"),
    resolution: jsonb("resolution"),
    /** Set by the run that consumed the resolution: a resolution is delivered once. */
    consumedAt: ts("consumed_at"),
    createdAt: createdAt(),
    resolvedAt: ts("resolved_at"),
  },
  (t) => [
    primaryKey({ columns: [t.tenantId, t.id] }),
    index("waitpoints_run_idx").on(t.tenantId, t.runId),
    index("waitpoints_due_idx").on(t.resumeAt).where(sql`status = 'pending' AND resume_at IS NOT NULL`),
    tenantPolicy(),
  ],
).enableRLS();

/**
 * Messages: direct (to one agent), broadcast (one row per active agent, sharing
 * `broadcast_id`, so each agent has its own unread state) and replies to people (no
 * `to_agent_id`; `to_type`/`to_id` name the user or key). `thread_id` is the first
 * message's id; `reply_to` the message answered.
 */
export const messages = pgTable(
  "messages",
  {
    tenantId: tenantId().references(() => tenants.id, { onDelete: "cascade" }),
    id: text("id").notNull(),
    toAgentId: text("to_agent_id"),
    toType: text("to_type").notNull().default("agent"),
    toId: text("to_id"),
    fromType: text("from_type").notNull(),
    fromId: text("from_id").notNull(),
    body: text("body").notNull(),
    threadId: text("thread_id"),
    replyTo: text("reply_to"),
    broadcastId: text("broadcast_id"),
    readAt: ts("read_at"),
    readByRunId: text("read_by_run_id"),
    createdAt: createdAt(),
  },
  (t) => [
    primaryKey({ columns: [t.tenantId, t.id] }),
    foreignKey({ name: "messages_to_fk", columns: [t.tenantId, t.toAgentId], foreignColumns: [agents.tenantId, agents.id] }),
    index("messages_unread_idx").on(t.tenantId, t.toAgentId, t.createdAt).where(sql`read_at IS NULL`),
    index("messages_thread_idx").on(t.tenantId, t.threadId, t.createdAt),
    tenantPolicy(),
  ],
).enableRLS();
