import { z } from "zod";
import { actorSchema } from "./common";

/** A duration such as `30s`, `15m`, `6h` or `1d`. */
export const durationSchema = z
  .string()
  .regex(/^[1-9][0-9]{0,5}(s|m|h|d)$/, "must be a duration such as 30s, 15m, 6h or 1d");

const usd = z.number().finite().nonnegative().max(1_000_000);
const slug = z
  .string()
  .min(1)
  .max(63)
  .regex(/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/, "must be lowercase letters, digits and dashes");

export const agentNameSchema = slug;

export const modelSpecSchema = z.strictObject({
  provider: z.enum(["anthropic", "openai", "openai-compatible", "scripted"]),
  name: z.string().min(1).max(200),
  pinned_revision: z.string().min(1).max(100).optional(),
  base_url: z.url({ protocol: /^https?$/, error: "must be an http or https URL" }).max(2000).optional(),
  max_tokens: z.number().int().min(1).max(200_000).optional(),
  /**
   * Complexity routing: `name` is tried first; when it fails (or stops at max_tokens or
   * refuses), the run escalates to this model. Both attempts are recorded as steps.
   */
  escalate_to: z
    .strictObject({
      provider: z.enum(["anthropic", "openai", "openai-compatible", "scripted"]).optional(),
      name: z.string().min(1).max(200),
      pinned_revision: z.string().min(1).max(100).optional(),
      base_url: z.url({ protocol: /^https?$/, error: "must be an http or https URL" }).max(2000).optional(),
    })
    .optional(),
  /** For the offline `scripted` provider: tool calls (or text) to make, in order. */
  script: z
    .array(
      z.union([
        z.strictObject({ call: z.string().min(1).max(200), input: z.record(z.string(), z.unknown()).optional() }),
        z.strictObject({ say: z.string().max(10_000) }),
      ]),
    )
    .max(200)
    .optional(),
});

export const descriptorSchema = z
  .strictObject({
    apiVersion: z.literal("agent.os/v1"),
    kind: z.literal("Agent"),
    metadata: z.strictObject({
      name: slug,
      owner: z.string().min(1).max(200),
      description: z.string().max(2000).optional(),
      labels: z
        .record(z.string().max(63), z.string().max(200))
        .refine((r) => Object.keys(r).length <= 64, "at most 64 labels")
        .optional(),
    }),
    spec: z.strictObject({
      model: modelSpecSchema,
      soul: z.string().max(8000).default(""),
      drives: z
        .array(
          z.strictObject({
            name: slug,
            question: z.string().min(1).max(2000),
            every: durationSchema.optional(),
          }),
        )
        .max(50)
        .default([]),
      memory: z
        .strictObject({
          type: z.enum(["persistent", "ephemeral"]).default("persistent"),
          retention_days: z.number().int().min(1).max(3650).default(90),
          working_tokens: z.number().int().min(100).max(200_000).default(2000),
          /**
           * Dream cycles (memory consolidation): nightly at `hour` in the tenant's time zone,
           * or earlier when working memory fills up; each with its own output and USD caps.
           * `script` is for the offline scripted provider (what the dream's model answers).
           */
          dream: z
            .strictObject({
              hour: z.number().int().min(0).max(23).default(3),
              max_tokens: z.number().int().min(256).max(32_000).default(2048),
              usd_per_invocation: usd.optional(),
              script: z
                .array(
                  z.union([
                    z.strictObject({ call: z.string().min(1).max(200), input: z.record(z.string(), z.unknown()).optional() }),
                    z.strictObject({ say: z.string().max(10_000) }),
                  ]),
                )
                .max(20)
                .optional(),
            })
            .optional(),
        })
        .default({ type: "persistent", retention_days: 90, working_tokens: 2000 }),
      /**
       * What the agent may do on its own initiative (drive consultations): `none` (drives are
       * not consulted), `propose` (tasks it creates wait in the backlog for a person to
       * promote) or `act` (tasks are queued), at most `tasks_per_day` per tenant-local day.
       * Absent: `propose`, 3 a day.
       */
      autonomy: z
        .strictObject({
          level: z.enum(["none", "propose", "act"]).default("propose"),
          tasks_per_day: z.number().int().min(0).max(1000).default(3),
        })
        .optional(),
      tools: z.array(z.string().min(1).max(500)).max(200).default([]),
      domains: z.array(z.string().min(1).max(200)).max(200).default([]),
      schedule: z.strictObject({ every: durationSchema }).optional(),
      budgets: z
        .strictObject({
          calls_per_hour: z.number().int().min(1).max(1_000_000).optional(),
          usd_per_invocation: usd.optional(),
          usd_per_day: usd.optional(),
          usd_per_month: usd.optional(),
        })
        .optional(),
      approval: z
        .strictObject({
          on_action_value_usd_gt: usd.optional(),
          tools: z.array(z.string().min(1).max(500)).max(200).optional(),
        })
        .optional(),
    }),
  })
  .meta({ id: "AgentDescriptor" });

export type AgentDescriptor = z.infer<typeof descriptorSchema>;
export type AgentDescriptorInput = z.input<typeof descriptorSchema>;

export const agentStatusSchema = z.enum(["active", "paused", "retired", "shadow"]);
export type AgentStatus = z.infer<typeof agentStatusSchema>;

export const agentSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    owner: z.string(),
    status: agentStatusSchema,
    revision: z.number().int(),
    specHash: z.string(),
    descriptor: descriptorSchema,
    nextWakeAt: z.string().nullable(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .meta({ id: "Agent" });

export const agentApplyResultSchema = agentSchema.extend({
  changed: z.boolean().describe("false when the descriptor matched the current revision"),
});

export const revisionSchema = z
  .object({
    revision: z.number().int(),
    specHash: z.string(),
    descriptor: descriptorSchema,
    createdBy: actorSchema,
    createdAt: z.string(),
  })
  .meta({ id: "AgentRevision" });

export const diffEntrySchema = z.object({
  path: z.string(),
  op: z.enum(["add", "remove", "replace"]),
  from: z.unknown().optional(),
  to: z.unknown().optional(),
});

export const revisionDiffSchema = z.object({
  from: z.number().int(),
  to: z.number().int(),
  changes: z.array(diffEntrySchema),
});

export const agentListQuerySchema = z.object({
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().max(512).optional(),
  status: agentStatusSchema.optional(),
});
