import { z } from "zod";

export const auditListQuerySchema = z.object({
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().max(512).optional(),
  actorType: z.enum(["user", "api_key", "agent", "system"]).optional(),
  actorId: z.string().min(1).max(200).optional(),
  targetType: z.string().min(1).max(100).optional(),
  targetId: z.string().min(1).max(200).optional(),
  action: z
    .string()
    .min(1)
    .max(200)
    .regex(/^[a-z0-9_.]+\*?$/, "an action (task.create) or a prefix ending in * (task.*)")
    .optional()
    .describe("exact action, or a prefix ending in * (`task.*`)"),
  from: z.iso.datetime({ offset: true }).optional().describe("events at or after this time"),
  to: z.iso.datetime({ offset: true }).optional().describe("events before this time"),
});
export type AuditListQuery = z.output<typeof auditListQuerySchema>;

export const auditEventSchema = z
  .object({
    id: z.string(),
    seq: z.number().int(),
    actor: z.object({ type: z.string(), id: z.string() }),
    action: z.string(),
    target: z.object({ type: z.string(), id: z.string() }),
    before: z.unknown(),
    after: z.unknown(),
    requestId: z.string().nullable(),
    prevHash: z.string(),
    hash: z.string(),
    createdAt: z.string(),
  })
  .meta({ id: "AuditEvent" });

export const auditVerifySchema = z
  .object({
    ok: z.boolean(),
    checked: z.number().int().describe("events walked"),
    head: z.object({ seq: z.number().int(), hash: z.string() }),
    unsealed: z.number().int().describe("events committed but not yet chained when the walk began (sealed before it starts, so 0 unless written meanwhile)"),
    firstBroken: z
      .object({
        id: z.string().nullable().describe("the event at the break (null when the chain ends before its head)"),
        seq: z.number().int().describe("the position in the chain where the break is"),
        reason: z.enum(["hash_mismatch", "prev_hash_mismatch", "missing_event", "head_mismatch"]),
        expected: z.string(),
        actual: z.string(),
      })
      .nullable(),
  })
  .meta({ id: "AuditVerification" });
