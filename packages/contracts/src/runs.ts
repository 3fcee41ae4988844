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
    trigger: z.enum(["task", "message", "schedule", "manual", "delegation", "external", "dream", "drive"]),
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
export const usageBodySchema = z
  .strictObject({
    provider: z.string().min(1).max(100).describe("`anthropic`, `openai`, `openai-compatible`, … (prices are looked up by provider and model)"),
    model: z.string().min(1).max(200).describe("the exact model id the provider reported"),
    inputTokens: tokens.optional().describe("uncached input tokens (required unless `usage` is given)"),
    outputTokens: tokens.optional().describe("required unless `usage` is given"),
    cacheReadTokens: tokens.optional().describe("default 0"),
    cacheWriteTokens: tokens.optional().describe("default 0"),
    usage: z
      .record(z.string(), z.unknown())
      .refine((u) => JSON.stringify(u).length <= 10_000, "at most 10 000 characters of JSON")
      .optional()
      .describe(
        "instead of the token fields: the provider's own `usage` object as it came (Anthropic: input_tokens excludes the cache; OpenAI: prompt_tokens includes cached_tokens); each cache token is counted once",
      ),
    reportId: z
      .string()
      .regex(/^[\x21-\x7e]{1,255}$/, "1 to 255 visible ASCII characters")
      .optional()
      .describe("the client's id for this report (or send an Idempotency-Key header): a report sent again under the same id is charged once"),
    latencyMs: z.number().int().min(0).max(86_400_000).optional(),
  })
  .superRefine((b, ctx) => {
    const counts = (["inputTokens", "outputTokens", "cacheReadTokens", "cacheWriteTokens"] as const).filter((k) => b[k] !== undefined);
    if (b.usage && counts.length) ctx.addIssue({ code: "custom", path: [counts[0]!], message: "give either `usage` or the token counts, not both" });
    if (!b.usage) {
      for (const k of ["inputTokens", "outputTokens"] as const) if (b[k] === undefined) ctx.addIssue({ code: "custom", path: [k], message: "required (or give `usage`)" });
    }
  });

export const finishRunBodySchema = z.strictObject({
  status: z.enum(["succeeded", "failed"]),
  result: z.unknown().optional(),
  error: z.string().max(10_000).optional(),
});

// Message schemas (sendMessageBodySchema, sentMessageSchema, …) live in ./memory.ts.
