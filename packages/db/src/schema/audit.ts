import { bigint, jsonb, pgTable, primaryKey, text, uniqueIndex, index } from "drizzle-orm/pg-core";
import { createdAt, tenantId, tenantPolicy } from "./columns";
import { tenants } from "./tenants";

/**
 * Append-only audit trail, hash-chained per tenant: `hash = sha256(prevHash + canonical
 * event)`, `seq` gapless per tenant. The app role is granted INSERT and SELECT only.
 */
export const auditEvents = pgTable(
  "audit_events",
  {
    tenantId: tenantId().references(() => tenants.id, { onDelete: "cascade" }),
    id: text("id").notNull(),
    seq: bigint("seq", { mode: "number" }).notNull(),
    actorType: text("actor_type").notNull(),
    actorId: text("actor_id").notNull(),
    action: text("action").notNull(),
    targetType: text("target_type").notNull(),
    targetId: text("target_id").notNull(),
    before: jsonb("before"),
    after: jsonb("after"),
    requestId: text("request_id"),
    prevHash: text("prev_hash").notNull(),
    hash: text("hash").notNull(),
    createdAt: createdAt(),
  },
  (t) => [
    primaryKey({ columns: [t.tenantId, t.id] }),
    uniqueIndex("audit_events_seq_key").on(t.tenantId, t.seq),
    index("audit_events_target_idx").on(t.tenantId, t.targetType, t.targetId),
    tenantPolicy(),
  ],
).enableRLS();

/** The head of each tenant's chain; locked while an event is appended. */
export const auditHeads = pgTable(
  "audit_heads",
  {
    tenantId: tenantId()
      .primaryKey()
      .references(() => tenants.id, { onDelete: "cascade" }),
    seq: bigint("seq", { mode: "number" }).notNull(),
    hash: text("hash").notNull(),
  },
  () => [tenantPolicy()],
).enableRLS();
