import { z } from "zod";

export const problemSchema = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    code: z.string(),
    detail: z.string().optional(),
    instance: z.string().optional(),
    requestId: z.string().optional(),
    errors: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
  })
  .meta({ id: "Problem" });

export const scopeSchema = z.enum(["read", "write", "admin"]);
export type Scope = z.infer<typeof scopeSchema>;

export const roleSchema = z.enum(["owner", "admin", "operator", "viewer"]);
export type Role = z.infer<typeof roleSchema>;

/** Cursor pagination: `limit` items after the opaque `cursor` of a previous page. */
export const pageQuerySchema = z.object({
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().max(512).optional(),
});

export const pageOf = <T extends z.ZodType>(item: T) =>
  z.object({ items: z.array(item), nextCursor: z.string().nullable() });

export const idParam = (prefix: string) =>
  z.object({
    id: z
      .string()
      .max(64)
      .regex(new RegExp(`^${prefix}_[0-9a-z]{26}$`), `must be an id starting with ${prefix}_`),
  });

export const actorSchema = z.object({
  type: z.enum(["user", "api_key", "agent", "system"]),
  id: z.string(),
});
