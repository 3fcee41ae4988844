import { z } from "zod";
import { agentNameSchema, durationSchema } from "./agents";
import { actorSchema, pageQuerySchema } from "./common";

/** Policies, approvals and the human inbox. */

export const policyDecisionSchema = z.enum(["allow", "deny", "require_approval"]);

const policyName = z
  .string()
  .min(1)
  .max(100)
  .regex(/^[a-z0-9]([a-z0-9._-]*[a-z0-9])?$/, "must be lowercase letters, digits, dots, dashes and underscores");

/** A glob on tool refs: `*` within one path segment, `**` across segments, `?` one character. */
export const toolPatternSchema = z
  .string()
  .min(1)
  .max(500)
  .regex(/^[\x21-\x7e]+$/, "must be printable ASCII without spaces")
  .describe("glob on the tool's ref: `create_task`, `mcp://gateway/github/*`, `**`");

export const policyMatchSchema = z.strictObject({
  tool: toolPatternSchema.optional(),
  sideEffect: z.enum(["internal", "external"]).optional().describe("external: the tool acts outside Bosun"),
  actionValueUsdGt: z
    .number()
    .finite()
    .nonnegative()
    .max(1_000_000_000)
    .refine((n) => Math.abs(n * 1e6 - Math.round(n * 1e6)) < 1e-3, "at most 6 decimal places (micro-dollars)")
    .optional().describe("matches calls declaring an action value above this, in USD"),
});

const policyFields = {
  name: policyName,
  agent: agentNameSchema.nullable().optional().describe("the agent it applies to; absent or null: every agent of the tenant"),
  priority: z.number().int().min(0).max(10_000).describe("lower first among policies with the same decision"),
  match: policyMatchSchema.describe("every condition set must hold; an empty match covers every tool call"),
  decision: policyDecisionSchema,
  approvalExpiresIn: durationSchema.nullable().optional().describe("require_approval only: how long the approval stays open (default 24h)"),
  description: z.string().max(2000).nullable().optional(),
};

const expiryOnlyForApproval = (b: { decision?: string | undefined; approvalExpiresIn?: string | null | undefined }, ctx: z.RefinementCtx) => {
  if (b.approvalExpiresIn != null && b.decision !== undefined && b.decision !== "require_approval") {
    ctx.addIssue({ code: "custom", path: ["approvalExpiresIn"], message: "only a require_approval policy has an approval expiry" });
  }
};

export const createPolicyBodySchema = z
  .strictObject({ ...policyFields, priority: policyFields.priority.default(100), match: policyFields.match.default({}) })
  .superRefine(expiryOnlyForApproval);
export type CreatePolicyBody = z.output<typeof createPolicyBodySchema>;

export const updatePolicyBodySchema = z
  .strictObject({
    name: policyFields.name.optional(),
    agent: policyFields.agent,
    priority: policyFields.priority.optional(),
    match: policyFields.match.optional(),
    decision: policyFields.decision.optional(),
    approvalExpiresIn: policyFields.approvalExpiresIn,
    description: policyFields.description,
  })
  .superRefine(expiryOnlyForApproval);
export type UpdatePolicyBody = z.output<typeof updatePolicyBodySchema>;

export const policySchema = z
  .object({
    id: z.string(),
    name: z.string(),
    scope: z.enum(["tenant", "agent"]),
    agent: z.string().nullable(),
    priority: z.number().int(),
    match: z.object({
      tool: z.string().nullable(),
      sideEffect: z.enum(["internal", "external"]).nullable(),
      actionValueUsdGt: z.number().nullable(),
    }),
    decision: policyDecisionSchema,
    approvalExpiresSeconds: z.number().int().nullable(),
    description: z.string().nullable(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .meta({ id: "Policy" });

export const policyListQuerySchema = pageQuerySchema.extend({ agent: agentNameSchema.optional() });

export const approvalStatusSchema = z.enum(["pending", "approved", "denied", "expired", "cancelled"]);

export const approvalSchema = z
  .object({
    id: z.string(),
    status: approvalStatusSchema,
    agent: z.string().nullable(),
    agentId: z.string(),
    runId: z.string(),
    runStatus: z.string().nullable(),
    tool: z.string().describe("the tool name the model called"),
    ref: z.string().describe("the tool's canonical ref, as policies match it"),
    input: z.unknown().describe("the call's input, as the tool would receive it"),
    reason: z.string(),
    rule: z.object({ source: z.string(), id: z.string().nullable(), name: z.string() }).nullable().describe("the rule that required the approval"),
    actionValueUsd: z.number().nullable(),
    expiresAt: z.string().nullable(),
    createdAt: z.string(),
    decidedAt: z.string().nullable(),
    comment: z.string().nullable(),
    decidedBy: actorSchema.nullable(),
  })
  .meta({ id: "Approval" });

export const approvalListQuerySchema = pageQuerySchema.extend({
  status: approvalStatusSchema.optional(),
  agent: agentNameSchema.optional(),
});

/** `{}` decides without a comment. */
export const decideApprovalBodySchema = z.strictObject({ comment: z.string().min(1).max(10_000).optional() });
export type DecideApprovalBody = z.output<typeof decideApprovalBodySchema>;

export const inboxKindSchema = z.enum(["approval", "task", "agent", "proposal"]);

export const inboxItemSchema = z
  .object({
    kind: inboxKindSchema.describe("approval: a pending approval; task: an escalated task; agent: an agent paused by a budget; proposal: an escalated proposal"),
    id: z.string().describe("the approval's, task's, agent's or proposal's id"),
    title: z.string(),
    summary: z.string().nullable(),
    agent: z.string().nullable(),
    createdAt: z.string().describe("when it started waiting for a person"),
    links: z.object({
      approvalId: z.string().optional(),
      taskId: z.string().optional(),
      runId: z.string().optional(),
      agentId: z.string().optional(),
      proposalId: z.string().optional(),
    }),
  })
  .meta({ id: "InboxItem" });

export const inboxQuerySchema = pageQuerySchema.extend({ kind: inboxKindSchema.optional() });
