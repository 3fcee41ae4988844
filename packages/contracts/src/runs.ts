import { z } from "zod";

export const runStatusSchema = z.enum(["running", "waiting", "succeeded", "failed", "cancelled"]);

export const runSchema = z
  .object({
    id: z.string(),
    agentId: z.string(),
    agent: z.string().nullable(),
    taskId: z.string().nullable(),
    parentRunId: z.string().nullable(),
    rootRunId: z.string(),
    traceparent: z.string().describe("W3C trace context shared by the whole tree"),
    trigger: z.enum(["task", "message", "schedule", "manual", "delegation", "external"]),
    status: runStatusSchema,
    model: z.string().nullable().describe("the exact model id the provider reported"),
    stepCount: z.number().int(),
    inputTokens: z.number().int(),
    outputTokens: z.number().int(),
    result: z.unknown(),
    error: z.unknown(),
    createdAt: z.string(),
    startedAt: z.string().nullable(),
    endedAt: z.string().nullable(),
  })
  .meta({ id: "Run" });

export const runDetailSchema = runSchema.extend({ tree: z.array(runSchema).describe("every run sharing this run's root, oldest first") });

export const stepSchema = z
  .object({
    runId: z.string(),
    seq: z.number().int(),
    kind: z.enum(["llm", "tool", "message", "delegate", "wait", "idle", "usage", "approval", "memory", "policy", "proposal", "dream", "drive"]),
    name: z.string().nullable(),
    status: z.enum(["ok", "error"]),
    provider: z.string().nullable(),
    model: z.string().nullable(),
    inputTokens: z.number().int(),
    cacheReadTokens: z.number().int(),
    cacheWriteTokens: z.number().int(),
    outputTokens: z.number().int(),
    latencyMs: z.number().int().nullable(),
    input: z.unknown().describe("secrets redacted"),
    output: z.unknown().describe("secrets redacted"),
    createdAt: z.string(),
  })
  .meta({ id: "Step" });

export const runListQuerySchema = z.object({
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().max(512).optional(),
  agent: z.string().max(63).optional(),
  status: runStatusSchema.optional(),
  root: z.string().max(64).optional(),
});

export const startRunBodySchema = z.strictObject({ input: z.string().min(1).max(100_000) });

const tokens = z.number().int().min(0).max(100_000_000);
export const usageBodySchema = z.strictObject({
  provider: z.string().min(1).max(100),
  model: z.string().min(1).max(200).describe("the exact model id the provider reported"),
  inputTokens: tokens.describe("uncached input tokens"),
  outputTokens: tokens,
  cacheReadTokens: tokens.default(0),
  cacheWriteTokens: tokens.default(0),
  latencyMs: z.number().int().min(0).max(86_400_000).optional(),
});

export const finishRunBodySchema = z.strictObject({
  status: z.enum(["succeeded", "failed"]),
  result: z.unknown().optional(),
  error: z.string().max(10_000).optional(),
});

export const sendMessageBodySchema = z.strictObject({ to: z.string().min(1).max(63), body: z.string().min(1).max(100_000) });
export const sentMessageSchema = z.object({ id: z.string(), to: z.string(), createdAt: z.string() });
