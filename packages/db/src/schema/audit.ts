import { sql } from "drizzle-orm";
import { bigint, index, jsonb, pgSequence, pgTable, primaryKey, text, uniqueIndex } from "drizzle-orm/pg-core";
import { createdAt, tenantId, tenantPolicy } from "./columns";
import { tenants } from "./tenants";

/**
 * Insertion order of audit events, global. It steps by AUDIT_POS_BLOCK so that one
 * multi-row INSERT takes one value and numbers its rows base, base+1, … (a transaction's
 * events stay adjacent in the chain); a row inserted alone takes the default.
 */
export const AUDIT_POS_BLOCK = 1024;
export const auditEventsPosSeq = pgSequence("audit_events_pos_seq", { increment: AUDIT_POS_BLOCK });

/**
 * Append-only audit trail, hash-chained per tenant: `hash = sha256(prevHash + canonical
 * event)`, `seq` gapless per tenant. Events are inserted unsealed (seq, prev_hash and hash
 * NULL) by the mutation's own transaction, and the sealer chains them afterwards in `pos`
 * order (repositories/audit.ts). The app role is granted INSERT and SELECT only; a trigger
 * lets an UPDATE do nothing but seal an unsealed row (migration 0010).
 */
export const auditEvents = pgTable(
  "audit_events",
  {
    tenantId: tenantId().references(() => tenants.id, { onDelete: "cascade" }),
    id: text("id").notNull(),
    /** NULL until sealed. */
    seq: bigint("seq", { mode: "number" }),
    actorType: text("actor_type").notNull(),
    actorId: text("actor_id").notNull(),
    action: text("action").notNull(),
    targetType: text("target_type").notNull(),
    targetId: text("target_id").notNull(),
    before: jsonb("before"),
    after: jsonb("after"),
    requestId: text("request_id"),
    prevHash: text("prev_hash"),
    hash: text("hash"),
    createdAt: createdAt(),
    pos: bigint("pos", { mode: "number" })
      .notNull()
      .default(sql`nextval('audit_events_pos_seq')`),
  },
  (t) => [
    primaryKey({ columns: [t.tenantId, t.id] }),
    // Sealed events only: an unsealed one (seq NULL) would add an entry the seal replaces.
    uniqueIndex("audit_events_seq_key").on(t.tenantId, t.seq).where(sql`seq IS NOT NULL`),
    index("audit_events_target_idx").on(t.tenantId, t.targetType, t.targetId),
    // What the sealer reads: the unsealed events, per tenant, in insertion order.
    index("audit_events_unsealed_idx").on(t.tenantId, t.pos).where(sql`seq IS NULL`),
    tenantPolicy(),
  ],
).enableRLS();

/** The head of each tenant's chain (the last sealed event); locked while a batch is sealed. */
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
