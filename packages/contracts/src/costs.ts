import { z } from "zod";
import { agentNameSchema } from "./agents";

/*
 * Cost governance over HTTP. Money leaves the server as integer micro-dollars
 * (`…Micros`, $1 = 1,000,000), never as floats; requests may give dollars (`limitUsd`,
 * at most six decimal places), which the server converts exactly.
 */

const micros = z.number().int().describe("micro-dollars ($1 = 1,000,000)");
const usdAmount = z
  .number()
  .finite()
  .min(0)
  .max(1_000_000_000)
  .refine((n) => Math.abs(n * 1e6 - Math.round(n * 1e6)) < 1e-3, "at most 6 decimal places (micro-dollars)");
const isoDate = z.iso.date().describe("a day, YYYY-MM-DD, in the tenant's time zone");

export const budgetScopeSchema = z.enum(["tenant", "agent"]);
export const budgetMetricSchema = z.enum(["usd", "calls"]);
export const budgetWindowSchema = z.enum(["invocation", "hour", "day", "month"]);
const thresholdsSchema = z
  .array(z.number().int().min(1).max(1000))
  .min(1)
  .max(10)
  .refine((t) => new Set(t).size === t.length, "thresholds must be distinct")
  .describe("percentages of the limit that alert once per window each");

export const createBudgetBodySchema = z
  .strictObject({
    scope: budgetScopeSchema,
    agent: agentNameSchema.optional().describe("the agent, for scope agent"),
    metric: budgetMetricSchema.default("usd"),
    window: budgetWindowSchema.describe("one run (invocation), or a calendar hour, day or month in the tenant's time zone"),
    limitUsd: usdAmount.optional().describe("for metric usd: the limit in dollars"),
    limitCalls: z.number().int().min(0).max(1_000_000_000).optional().describe("for metric calls: model calls per window"),
    enforcement: z.enum(["hard", "soft"]).default("hard").describe("hard refuses a call whose worst case would pass the limit; soft only alerts"),
    thresholds: thresholdsSchema.default([50, 80, 100]),
    onExhausted: z.enum(["pause_agent", "refuse"]).default("refuse").describe("at 100 %: pause the agents in scope, or only refuse new spend"),
  })
  .superRefine((b, ctx) => {
    if ((b.scope === "agent") !== (b.agent !== undefined)) {
      ctx.addIssue({ code: "custom", path: ["agent"], message: "an agent budget names its agent; a tenant budget names none" });
    }
    if (b.metric === "usd" && (b.limitUsd === undefined || b.limitCalls !== undefined)) {
      ctx.addIssue({ code: "custom", path: ["limitUsd"], message: "a usd budget takes limitUsd (and no limitCalls)" });
    }
    if (b.metric === "calls" && (b.limitCalls === undefined || b.limitUsd !== undefined)) {
      ctx.addIssue({ code: "custom", path: ["limitCalls"], message: "a calls budget takes limitCalls (and no limitUsd)" });
    }
  });
export type CreateBudgetBody = z.output<typeof createBudgetBodySchema>;

export const updateBudgetBodySchema = z
  .strictObject({
    limitUsd: usdAmount.optional(),
    limitCalls: z.number().int().min(0).max(1_000_000_000).optional(),
    enforcement: z.enum(["hard", "soft"]).optional(),
    thresholds: thresholdsSchema.optional(),
    onExhausted: z.enum(["pause_agent", "refuse"]).optional(),
  })
  .refine((b) => Object.values(b).some((v) => v !== undefined), "give at least one field to change")
  .refine((b) => b.limitUsd === undefined || b.limitCalls === undefined, "give limitUsd or limitCalls, not both");
export type UpdateBudgetBody = z.output<typeof updateBudgetBodySchema>;

export const budgetSchema = z
  .object({
    id: z.string(),
    scope: budgetScopeSchema,
    agent: z.string().nullable(),
    metric: budgetMetricSchema,
    window: budgetWindowSchema,
    limit: z.number().int().describe("in `unit`"),
    unit: z.enum(["usd_micros", "calls"]),
    enforcement: z.enum(["hard", "soft"]),
    thresholds: z.array(z.number().int()),
    onExhausted: z.enum(["pause_agent", "refuse"]),
    source: z.enum(["api", "descriptor"]).describe("descriptor budgets follow the agent's descriptor; change them there"),
    current: z
      .object({
        windowStart: z.string(),
        windowEnd: z.string().nullable(),
        spent: z.number().int().describe("in `unit`"),
        reserved: z.number().int().describe("held by calls in flight, in `unit`"),
      })
      .nullable()
      .describe("the window containing now; null for per-invocation budgets"),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .meta({ id: "Budget" });

export const budgetListQuerySchema = z.object({
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().max(512).optional(),
  agent: agentNameSchema.optional(),
});

export const alertSchema = z
  .object({
    id: z.string(),
    budgetId: z.string(),
    agent: z.string().nullable(),
    threshold: z.number().int().describe("percent of the limit"),
    windowStart: z.string(),
    windowEnd: z.string().nullable(),
    spent: z.number().int().describe("in the budget's unit, when the threshold was crossed"),
    limit: z.number().int(),
    status: z.enum(["pending", "sent", "unsent", "failed"]).describe("unsent: no SMTP server is configured (SMTP_URL)"),
    attempts: z.number().int(),
    lastError: z.string().nullable(),
    sentAt: z.string().nullable(),
    createdAt: z.string(),
  })
  .meta({ id: "BudgetAlert" });

export const alertListQuerySchema = z.object({
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().max(512).optional(),
  budget: z
    .string()
    .max(64)
    .regex(/^bud_[0-9a-z]{26}$/, "must be a budget id")
    .optional(),
  agent: agentNameSchema.optional(),
});

export const costGroupSchema = z.enum(["agent", "model", "day", "kind"]);

export const costsQuerySchema = z
  .object({
    from: isoDate,
    to: isoDate.describe("the last day included"),
    groupBy: costGroupSchema.default("agent"),
    agent: agentNameSchema.optional(),
  })
  .refine((q) => q.from <= q.to, { path: ["to"], message: "must not be before from" });

const costGroupRowSchema = z.object({
  key: z.string(),
  label: z.string(),
  costMicros: micros,
  tokensMicros: micros,
  actionsMicros: micros,
  computeMicros: micros,
  charges: z.number().int(),
  unpricedCharges: z.number().int().describe("calls to unpriced models the tenant allowed: cost unknown, not zero"),
  inputTokens: z.number().int(),
  cacheReadTokens: z.number().int(),
  cacheWriteTokens: z.number().int(),
  outputTokens: z.number().int(),
  computeMs: z.number().int(),
});

export const costsSchema = z
  .object({
    from: z.string(),
    to: z.string(),
    groupBy: costGroupSchema,
    timeZone: z.string(),
    asOf: z.string().nullable().describe("the rollups include the ledger up to about this time"),
    totalMicros: micros,
    groups: z.array(costGroupRowSchema),
  })
  .meta({ id: "Costs" });

export const costExportQuerySchema = z
  .object({
    from: isoDate,
    to: isoDate.describe("the last day included"),
    rows: z.enum(["ledger", "rollups"]).default("ledger"),
  })
  .refine((q) => q.from <= q.to, { path: ["to"], message: "must not be before from" });

const perMtok = z.number().int().min(0).max(1_000_000_000_000).describe("micro-dollars per million tokens");

export const priceSchema = z
  .object({
    id: z.string(),
    source: z.enum(["catalogue", "tenant"]),
    provider: z.string(),
    model: z.string().describe("the exact model id, or * for any model of the provider"),
    inputMicrosPerMtok: z.number().int(),
    outputMicrosPerMtok: z.number().int(),
    cacheReadMicrosPerMtok: z.number().int(),
    cacheWriteMicrosPerMtok: z.number().int(),
    effectiveFrom: z.string(),
    note: z.string().nullable(),
  })
  .meta({ id: "Price" });

export const priceListQuerySchema = z.object({
  limit: z.coerce.number().int().min(1).max(200).default(100),
  cursor: z.string().max(1024).optional(),
  provider: z.string().min(1).max(100).optional(),
});

export const createPriceBodySchema = z.strictObject({
  provider: z.string().min(1).max(100).regex(/^[a-z0-9][a-z0-9._-]*$/, "must be a provider name such as anthropic"),
  model: z
    .string()
    .min(1)
    .max(200)
    .regex(/^(\*|[A-Za-z0-9][A-Za-z0-9._:/@[\]-]*)$/, "must be a model id, or *"),
  inputMicrosPerMtok: perMtok,
  outputMicrosPerMtok: perMtok,
  cacheReadMicrosPerMtok: perMtok.optional().describe("defaults to the input price"),
  cacheWriteMicrosPerMtok: perMtok.optional().describe("defaults to the input price"),
  effectiveFrom: z.iso.datetime({ offset: true }).optional().describe("defaults to now"),
  note: z.string().max(1000).optional(),
});

export const costSettingsSchema = z
  .object({
    allowUnpricedModels: z.boolean().describe("let calls to models without a price through, flagged with an unknown cost"),
    computeMicrosPerHour: z.number().int().describe("what an hour of worker time costs"),
    alertEmails: z.array(z.string()).describe("who gets budget alerts; empty: the tenant's owners and admins"),
    timeZone: z.string().describe("budget windows and daily totals follow the tenant's time zone (PATCH /v1/tenant)"),
  })
  .meta({ id: "CostSettings" });

export const updateCostSettingsBodySchema = z
  .strictObject({
    allowUnpricedModels: z.boolean().optional(),
    computeMicrosPerHour: z.number().int().min(0).max(1_000_000_000_000).optional(),
    alertEmails: z.array(z.email().max(254)).max(50).optional(),
  })
  .refine((b) => Object.values(b).some((v) => v !== undefined), "give at least one field to change");
