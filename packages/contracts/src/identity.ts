import { z } from "zod";
import { roleSchema, scopeSchema } from "./common";

const ianaZone = z
  .string()
  .max(64)
  .refine((tz) => {
    try {
      new Intl.DateTimeFormat("en", { timeZone: tz });
      return true;
    } catch {
      return false;
    }
  }, "must be an IANA time zone such as Europe/Paris");

export const emailSchema = z.email().max(254);
export const passwordSchema = z.string().min(10, "must be at least 10 characters").max(256);

export const signupBodySchema = z.strictObject({
  tenant: z.strictObject({
    name: z.string().min(1).max(200),
    timeZone: ianaZone.default("UTC"),
  }),
  owner: z.strictObject({
    email: emailSchema,
    password: passwordSchema,
    name: z.string().min(1).max(200).optional(),
  }),
});

export const tenantSchema = z
  .object({ id: z.string(), name: z.string(), timeZone: z.string(), createdAt: z.string() })
  .meta({ id: "Tenant" });

export const apiKeySchema = z
  .object({
    id: z.string(),
    name: z.string(),
    prefix: z.string().describe("the first characters of the key, to recognise it"),
    scopes: z.array(scopeSchema),
    agentId: z.string().nullable(),
    expiresAt: z.string().nullable(),
    revokedAt: z.string().nullable(),
    lastUsedAt: z.string().nullable(),
    createdAt: z.string(),
  })
  .meta({ id: "ApiKey" });

export const createdApiKeySchema = apiKeySchema
  .extend({
    key: z
      .string()
      .nullable()
      .describe("the secret, shown once; null when an Idempotency-Key replays the creation"),
  })
  .meta({ id: "CreatedApiKey" });

export const createApiKeyBodySchema = z.strictObject({
  name: z.string().min(1).max(200),
  scopes: z.array(scopeSchema).min(1).max(3),
  agent: z.string().min(1).max(63).optional().describe("bind the key to this agent (by name)"),
  expiresAt: z.iso.datetime({ offset: true }).optional(),
});

export const signupResultSchema = z.object({
  tenant: tenantSchema,
  user: z.object({ id: z.string(), email: z.string() }),
  apiKey: createdApiKeySchema,
});

export const loginBodySchema = z.strictObject({
  email: emailSchema,
  password: z.string().min(1).max(256),
  tenantId: z.string().max(64).optional(),
});

export const meSchema = z.object({
  actor: z.object({ type: z.string(), id: z.string() }),
  tenant: tenantSchema,
  scopes: z.array(scopeSchema),
  role: roleSchema.nullable(),
  agentId: z.string().nullable(),
  user: z.object({ id: z.string(), email: z.string(), name: z.string().nullable() }).nullable(),
  tenants: z.array(z.object({ id: z.string(), name: z.string(), role: roleSchema })),
});

export const updateTenantBodySchema = z.strictObject({
  name: z.string().min(1).max(200).optional(),
  timeZone: ianaZone.optional(),
});
