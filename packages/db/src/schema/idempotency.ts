import { integer, jsonb, pgTable, primaryKey, text, index } from "drizzle-orm/pg-core";
import { createdAt, tenantId, tenantPolicy } from "./columns";
import { tenants } from "./tenants";

/**
 * Responses to creates made with an `Idempotency-Key`, kept 24 hours. The row is written
 * in the same transaction as the create, so a retry either sees the stored response or
 * waits on the first attempt's unique-key lock; it never creates twice.
 */
export const idempotencyKeys = pgTable(
  "idempotency_keys",
  {
    tenantId: tenantId().references(() => tenants.id, { onDelete: "cascade" }),
    key: text("key").notNull(),
    requestHash: text("request_hash").notNull(),
    statusCode: integer("status_code").notNull(),
    response: jsonb("response").notNull(),
    createdAt: createdAt(),
  },
  (t) => [primaryKey({ columns: [t.tenantId, t.key] }), index("idempotency_keys_created_idx").on(t.createdAt), tenantPolicy()],
).enableRLS();
