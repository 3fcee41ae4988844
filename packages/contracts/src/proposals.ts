import { z } from "zod";
import { agentNameSchema } from "./agents";
import { actorSchema } from "./common";
import { createTaskBodySchema, taskDomainSchema } from "./tasks";

export const proposalStatusSchema = z.enum(["open", "approved", "rejected", "escalated"]);
export type ProposalStatus = z.infer<typeof proposalStatusSchema>;

export const proposalStanceSchema = z.enum(["support", "concern", "block"]);
export type ProposalStance = z.infer<typeof proposalStanceSchema>;

/** What an approved proposal does, once, in the transaction that approves it. */
export const proposalActionSchema = z
  .discriminatedUnion("type", [
    z.strictObject({
      type: z.literal("create_tasks"),
      tasks: z.array(createTaskBodySchema).min(1).max(20).describe("tasks as POST /v1/tasks takes them"),
    }),
    z.strictObject({
      type: z.literal("set_agent_domains"),
      agent: agentNameSchema,
      domains: z.array(z.string().min(1).max(200)).max(200).describe("the agent's new spec.domains (globs); a new descriptor revision"),
    }),
  ])
  .meta({ id: "ProposalAction" });
export type ProposalAction = z.output<typeof proposalActionSchema>;

export const createProposalBodySchema = z.strictObject({
  title: z.string().min(1).max(500),
  body: z.string().max(100_000).default(""),
  domains: z
    .array(taskDomainSchema)
    .min(1)
    .max(20)
    .describe("the domain paths the change touches; the agents whose spec.domains cover any of them are asked"),
  action: proposalActionSchema.optional(),
});
export type CreateProposalBody = z.output<typeof createProposalBodySchema>;

export const respondProposalBodySchema = z.strictObject({
  stance: proposalStanceSchema,
  comment: z.string().min(1).max(10_000).optional(),
});
export type RespondProposalBody = z.output<typeof respondProposalBodySchema>;

export const decideProposalBodySchema = z.strictObject({
  decision: z.enum(["approve", "reject"]),
  comment: z.string().min(1).max(10_000).optional(),
});
export type DecideProposalBody = z.output<typeof decideProposalBodySchema>;

export const proposalListQuerySchema = z.object({
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().max(512).optional(),
  status: proposalStatusSchema.optional(),
  asked: agentNameSchema.optional().describe("only proposals this agent (by name) was asked about"),
});

const seconds = z
  .number()
  .int()
  .min(60)
  .max(30 * 86_400);

export const proposalSettingsSchema = z
  .object({
    approveAfterSeconds: z.number().int().describe("silence this long (no block) approves"),
    escalateAfterSeconds: z.number().int().describe("undecided this long escalates to people"),
  })
  .meta({ id: "ProposalSettings" });

export const updateProposalSettingsBodySchema = z
  .strictObject({ approveAfterSeconds: seconds.optional(), escalateAfterSeconds: seconds.optional() })
  .refine((b) => b.approveAfterSeconds !== undefined || b.escalateAfterSeconds !== undefined, "give approveAfterSeconds, escalateAfterSeconds or both");

export const proposalResponseSchema = z
  .object({
    agentId: z.string(),
    agent: z.string(),
    stance: proposalStanceSchema.nullable().describe("null: asked, no response yet"),
    comment: z.string().nullable(),
    respondedAt: z.string().nullable(),
  })
  .meta({ id: "ProposalResponse" });

export const proposalSchema = z
  .object({
    id: z.string(),
    title: z.string(),
    body: z.string(),
    domains: z.array(z.string()),
    action: proposalActionSchema.nullable(),
    proposer: actorSchema,
    status: proposalStatusSchema,
    approveAt: z.string().describe("without a block by then, the proposal is approved"),
    escalateAt: z.string().describe("still undecided by then, it goes to people"),
    decidedAt: z.string().nullable(),
    decidedBy: actorSchema.nullable(),
    decisionReason: z.enum(["unanimous_support", "no_objection", "person"]).nullable(),
    decisionComment: z.string().nullable(),
    escalatedAt: z.string().nullable(),
    appliedAt: z.string().nullable().describe("when the action was applied (once)"),
    actionResult: z.unknown(),
    actionError: z.string().nullable().describe("why an approved action could not be applied"),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .meta({ id: "Proposal" });

export const proposalDetailSchema = proposalSchema.extend({ responses: z.array(proposalResponseSchema) }).meta({ id: "ProposalDetail" });
