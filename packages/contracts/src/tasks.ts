import { z } from "zod";
import { agentNameSchema } from "./agents";
import { actorSchema } from "./common";

export const taskStatusSchema = z.enum(["backlog", "queued", "claimed", "in_progress", "in_review", "done", "failed", "cancelled", "escalated"]);
export type TaskStatus = z.infer<typeof taskStatusSchema>;

export const taskIdSchema = z
  .string()
  .max(64)
  .regex(/^tsk_[0-9a-z]{26}$/, "must be an id starting with tsk_");

/** A concrete domain path (`finance/invoices`); agents cover domains with globs (`finance/*`). */
export const taskDomainSchema = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*(\/[A-Za-z0-9][A-Za-z0-9._-]*)*$/, "must be a domain path such as finance/invoices");

const MAX_JSON_DEPTH = 32;

function jsonDepth(v: unknown, depth = 0): number {
  if (depth > MAX_JSON_DEPTH || v === null || typeof v !== "object") return depth;
  let max = depth + 1;
  for (const x of Array.isArray(v) ? v : Object.values(v)) {
    max = Math.max(max, jsonDepth(x, depth + 1));
    if (max > MAX_JSON_DEPTH) break;
  }
  return max;
}

/** `done` needs a result: null, a blank string, `{}` and `[]` are no result. */
export const isEmptyJson = (v: unknown) =>
  v === undefined ||
  v === null ||
  (typeof v === "string" && v.trim() === "") ||
  (Array.isArray(v) ? v.length === 0 : typeof v === "object" && Object.keys(v).length === 0);

/** Any JSON value up to 32 levels deep (deeper documents are refused before Postgres sees them). */
const jsonValue = z.unknown().refine((v) => jsonDepth(v) <= MAX_JSON_DEPTH, `must be nested at most ${MAX_JSON_DEPTH} levels deep`);

const epoch = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).describe("the lease epoch returned by the claim");
const ttlSeconds = z.number().int().min(1).max(3600);
const title = z.string().min(1).max(500);
const body = z.string().max(100_000);
const priority = z.number().int().min(0).max(100);

export const createTaskBodySchema = z
  .strictObject({
    title,
    body: body.default(""),
    priority: priority.default(50).describe("0 to 100; higher is claimed first"),
    assignee: agentNameSchema.optional().describe("the agent (by name) that must do it"),
    domain: taskDomainSchema.optional().describe("instead of an assignee: any agent whose spec.domains cover it"),
    depends_on: z.array(taskIdSchema).max(100).default([]).describe("tasks that must be done before this one can be claimed"),
    requires_review: z.boolean().default(false),
    reviewer: agentNameSchema.nullable().optional().describe("the reviewing agent (by name); null or absent: a person reviews"),
    max_attempts: z.number().int().min(1).max(100).default(3),
  })
  .superRefine((b, ctx) => {
    if ((b.assignee === undefined) === (b.domain === undefined)) {
      ctx.addIssue({ code: "custom", path: ["assignee"], message: "give either an assignee or a domain, not both and not neither" });
    }
    if (b.reviewer && !b.requires_review) {
      ctx.addIssue({ code: "custom", path: ["reviewer"], message: "a reviewer needs requires_review: true" });
    }
  });
export type CreateTaskBody = z.output<typeof createTaskBodySchema>;

export const updateTaskBodySchema = z
  .strictObject({
    title: title.optional(),
    body: body.optional(),
    priority: priority.optional(),
    add_depends_on: z.array(taskIdSchema).min(1).max(100).optional().describe("more tasks this one waits for (only while queued)"),
  })
  .refine((b) => Object.values(b).some((v) => v !== undefined), "give at least one of title, body, priority, add_depends_on");
export type UpdateTaskBody = z.output<typeof updateTaskBodySchema>;

export const claimTaskBodySchema = z
  .strictObject({ ttlSeconds: ttlSeconds.default(300).describe("lease length; heartbeat before it runs out") })
  .default({ ttlSeconds: 300 });

export const startTaskBodySchema = z.strictObject({ epoch });

export const heartbeatTaskBodySchema = z.strictObject({ epoch, ttlSeconds: ttlSeconds.default(300) });

export const completeTaskBodySchema = z.strictObject({
  epoch,
  result: jsonValue.refine((v) => !isEmptyJson(v), "done needs a result: a non-empty JSON value"),
});

export const failTaskBodySchema = z.strictObject({
  epoch,
  error: z.string().min(1).max(10_000),
  retry: z.boolean().default(false).describe("back to the queue if attempts remain; otherwise the task fails"),
});

export const reviewTaskBodySchema = z
  .strictObject({
    decision: z.enum(["approve", "request_changes"]),
    comment: z.string().min(1).max(10_000).optional(),
  })
  .refine((b) => b.decision === "approve" || b.comment !== undefined, { path: ["comment"], message: "say what to change" });

export const taskListQuerySchema = z.object({
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().max(512).optional(),
  status: taskStatusSchema.optional(),
  assignee: agentNameSchema.optional().describe("tasks assigned to this agent (by name)"),
});

export const taskSchema = z
  .object({
    id: z.string(),
    title: z.string(),
    body: z.string(),
    priority: z.number().int(),
    status: taskStatusSchema,
    assigneeAgentId: z.string().nullable(),
    domain: z.string().nullable(),
    requiresReview: z.boolean(),
    reviewerAgentId: z.string().nullable(),
    maxAttempts: z.number().int(),
    attempts: z.number().int(),
    claimedByAgentId: z.string().nullable(),
    leaseEpoch: z.number().int().describe("rises with every claim; send it back on heartbeat, start, complete and fail"),
    leaseExpiresAt: z.string().nullable(),
    runId: z.string().nullable(),
    result: z.unknown(),
    failure: z.unknown(),
    reviewComment: z.string().nullable(),
    createdBy: actorSchema,
    createdAt: z.string(),
    updatedAt: z.string(),
    completedAt: z.string().nullable(),
  })
  .meta({ id: "Task" });

export const taskDetailSchema = taskSchema
  .extend({
    dependencies: z.array(z.object({ id: z.string(), title: z.string(), status: taskStatusSchema })),
  })
  .meta({ id: "TaskDetail" });
