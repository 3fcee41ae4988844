import { createHash } from "node:crypto";
import type pg from "pg";
import { and, asc, desc, eq, isNotNull, isNull, sql } from "drizzle-orm";
import type { Database, Db, Tx } from "../client";
import { AUDIT_POS_BLOCK, auditEvents, auditHeads } from "../schema/index";
import { commitWith, prepared, runQueued, takeCommitPrelude, withSystem } from "../tx";

/**
 * An audit event. `seq`, `prevHash` and `hash` are null until the sealer chains it; rows
 * read by seq (listAudit, searchAudit, auditChainSlice) are sealed ones.
 */
export type AuditEventRow = typeof auditEvents.$inferSelect;
export type SealedAuditEventRow = AuditEventRow & { seq: number; prevHash: string; hash: string };

/** Events sealed per transaction, and transactions per tenant in one sealPending pass. */
const SEAL_BATCH = 1000;
const SEAL_ROUNDS = 10;

export interface AuditInput {
  tenantId: string;
  id: string;
  actorType: string;
  actorId: string;
  action: string;
  targetType: string;
  targetId: string;
  before?: unknown;
  after?: unknown;
  requestId?: string | undefined;
}

export const GENESIS_HASH = "0".repeat(64);

/** JSON with object keys sorted, so the same event always hashes the same. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value ?? null);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  const obj = value as Record<string, unknown>;
  return `{${Object.keys(obj)
    .filter((k) => obj[k] !== undefined)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`)
    .join(",")}}`;
}

/** The fields a hash covers (not created_at, nor pos); `seq` is the one sealing assigns. */
export type AuditHashed = Pick<AuditEventRow, "tenantId" | "id" | "actorType" | "actorId" | "action" | "targetType" | "targetId" | "before" | "after" | "requestId"> & {
  seq: number | null;
};

export function auditHash(prevHash: string, e: AuditHashed): string {
  const body = canonicalJson({
    seq: e.seq,
    id: e.id,
    tenantId: e.tenantId,
    actor: [e.actorType, e.actorId],
    action: e.action,
    target: [e.targetType, e.targetId],
    before: e.before ?? null,
    after: e.after ?? null,
    requestId: e.requestId ?? null,
  });
  return createHash("sha256").update(prevHash).update(body).digest("hex");
}

/** The unsealed INSERT as a prepared statement (its plan made once per connection), for the COMMIT's batch. */
const insertUnsealedPrepared = (json: string) => prepared("bosun_b_audit_insert", insertUnsealed("$1"), [json]);

/**
 * The INSERT of a batch of unsealed events: one `pos` value for the batch (the sequence
 * steps by AUDIT_POS_BLOCK), its rows numbered from it, so they stay adjacent in the chain.
 * `json` is a parameter reference or an escaped literal.
 */
const insertUnsealed = (json: string) =>
  `WITH b AS MATERIALIZED (SELECT nextval('audit_events_pos_seq') AS base)
   INSERT INTO audit_events (tenant_id, id, actor_type, actor_id, action, target_type, target_id, before, after, request_id, pos)
   SELECT x.tenant_id, x.id, x.actor_type, x.actor_id, x.action, x.target_type, x.target_id, x.before, x.after, x.request_id, b.base + x.ordinality - 1
   FROM b, ROWS FROM (jsonb_to_recordset(${json}::jsonb) AS (tenant_id text, id text, actor_type text, actor_id text, action text, target_type text,
                                                           target_id text, before jsonb, after jsonb, request_id text)) WITH ORDINALITY AS x`;

function unsealedRow(input: AuditInput) {
  return {
    tenant_id: input.tenantId,
    id: input.id,
    actor_type: input.actorType,
    actor_id: input.actorId,
    action: input.action,
    target_type: input.targetType,
    target_id: input.targetId,
    // Absent keys are SQL NULL (a JSON null would be stored as the jsonb value null).
    ...(input.before === undefined || input.before === null ? {} : { before: input.before }),
    ...(input.after === undefined || input.after === null ? {} : { after: input.after }),
    ...(input.requestId == null ? {} : { request_id: input.requestId }),
  };
}

/** Writes what commitWith queued first: audit events keep their order in the transaction. */
async function flushQueued(db: Db) {
  const queued = takeCommitPrelude(db as unknown as Tx);
  if (queued) await runQueued(db.$client as pg.PoolClient, queued);
}

/**
 * Inserts one event, unsealed, inside the caller's transaction (see appendAudits), and
 * returns it. Tests and scripts; the services go through appendAudits.
 */
export async function appendAudit(db: Db, input: AuditInput): Promise<AuditEventRow> {
  await flushQueued(db);
  const [ev] = await db
    .insert(auditEvents)
    .values({
      tenantId: input.tenantId,
      id: input.id,
      actorType: input.actorType,
      actorId: input.actorId,
      action: input.action,
      targetType: input.targetType,
      targetId: input.targetId,
      before: input.before ?? null,
      after: input.after ?? null,
      requestId: input.requestId ?? null,
    })
    .returning();
  return ev!;
}

/**
 * Writes a transaction's events, in order, UNSEALED: one multi-row INSERT, no lock shared
 * with the tenant's other transactions, so audited commits no longer take turns. The
 * events exist iff the transaction commits; the sealer (sealAudit / sealPending) chains
 * them afterwards, in `pos` order, under the head lock. With `atCommit` the INSERT is sent
 * with the COMMIT (commitWith): one round trip.
 */
export async function appendAudits(db: Db, inputs: AuditInput[], opts: { atCommit?: boolean } = {}): Promise<void> {
  if (inputs.length === 0) return;
  // Events queued for this transaction's commit were written first: they go in first (with
  // the COMMIT, they are simply queued after them).
  if (!opts.atCommit) await flushQueued(db);
  for (let i = 0; i < inputs.length; i += AUDIT_POS_BLOCK) {
    const json = JSON.stringify(inputs.slice(i, i + AUDIT_POS_BLOCK).map(unsealedRow));
    if (opts.atCommit) {
      // No parameters with the COMMIT: the JSON is an escaped literal.
      const client = db.$client as unknown as { escapeLiteral(s: string): string };
      commitWith(db as unknown as Tx, insertUnsealedPrepared(client.escapeLiteral(json)));
    } else {
      await db.$client.query(insertUnsealed("$1"), [json]);
    }
  }
}

/**
 * Seals up to `limit` of the tenant's unsealed events in one transaction on the owner
 * connection (the app role cannot UPDATE audit rows; the trigger lets this UPDATE only
 * seal): locks the tenant's head (created if missing), reads the unsealed events in `pos`
 * order, chains them from the head (seq gapless, hash as auditHash, computed from the rows
 * as stored, exactly as verify recomputes them), writes them and moves the head in one
 * statement. The lock comes first, in its own statement, so the read sees every event
 * committed before it was granted and none another sealer already chained. `seq` is thus
 * the sealing order: insertion order, except that an event committed after a later one was
 * sealed is sealed next, with a higher seq. With `skipLocked`, a head another sealer holds
 * is skipped (null) rather than waited for. Returns how many it sealed.
 */
async function sealTenant(tx: Tx, tenantId: string, limit: number, skipLocked: boolean): Promise<number | null> {
  const c = tx.$client;
  const lock = () => c.query<{ seq: string; hash: string }>(`SELECT seq, hash FROM audit_heads WHERE tenant_id = $1 FOR UPDATE${skipLocked ? " SKIP LOCKED" : ""}`, [tenantId]);
  let head = (await lock()).rows[0];
  if (!head) {
    head = (await c.query<{ seq: string; hash: string }>(`INSERT INTO audit_heads (tenant_id, seq, hash) VALUES ($1, 0, $2) ON CONFLICT DO NOTHING RETURNING seq, hash`, [tenantId, GENESIS_HASH])).rows[0];
    if (!head) {
      // It exists: under SKIP LOCKED, another sealer holds it.
      if (skipLocked) return null;
      head = (await lock()).rows[0]!;
    }
  }
  const rows = await tx
    .select()
    .from(auditEvents)
    .where(and(eq(auditEvents.tenantId, tenantId), isNull(auditEvents.seq)))
    .orderBy(asc(auditEvents.pos))
    .limit(limit);
  if (rows.length === 0) return 0;
  if (rows.length === limit) {
    // The limit must not cut one INSERT's events in two: another transaction's event with a
    // lower pos, committed between two passes, would be sealed between them. The rest of
    // the last row's block comes in this pass too.
    const last = rows[rows.length - 1]!.pos;
    rows.push(
      ...(await tx
        .select()
        .from(auditEvents)
        .where(
          and(
            eq(auditEvents.tenantId, tenantId),
            isNull(auditEvents.seq),
            sql`${auditEvents.pos} > ${last}`,
            sql`(${auditEvents.pos} - 1) / ${AUDIT_POS_BLOCK} = (${last}::bigint - 1) / ${AUDIT_POS_BLOCK}`,
          ),
        )
        .orderBy(asc(auditEvents.pos))),
    );
  }
  let seq = Number(head.seq);
  let prev = head.hash;
  const sealed = rows.map((e) => {
    seq += 1;
    const hash = auditHash(prev, { ...e, seq });
    const s = { id: e.id, seq, prev_hash: prev, hash };
    prev = hash;
    return s;
  });
  const { rows: moved } = await c.query<{ n: number }>(
    `WITH s AS (
       UPDATE audit_events e SET seq = x.seq, prev_hash = x.prev_hash, hash = x.hash
       FROM jsonb_to_recordset($2::jsonb) AS x(id text, seq bigint, prev_hash text, hash text)
       WHERE e.tenant_id = $1 AND e.id = x.id AND e.seq IS NULL
       RETURNING 1)
     UPDATE audit_heads SET seq = $3, hash = $4 WHERE tenant_id = $1 RETURNING (SELECT count(*)::int FROM s) AS n`,
    [tenantId, JSON.stringify(sealed), seq, prev],
  );
  // Every sealer holds the head lock, so nothing else sealed them meanwhile; if something
  // did, throwing rolls this batch back rather than leave a gap.
  if (moved[0]?.n !== sealed.length) throw new Error(`sealAudit: sealed ${moved[0]?.n ?? 0} of ${sealed.length} events of ${tenantId}`);
  return sealed.length;
}

/**
 * Seals up to `limit` of the tenant's unsealed events (sealTenant), waiting for the head
 * lock: once it returns, every event committed before the call is sealed if it returned
 * less than `limit`. Readers call it first (GET /v1/audit, verify). A tenant with nothing
 * unsealed costs one read: what that read does not see was committed after the call began.
 */
export async function sealAudit(database: Database, tenantId: string, opts: { limit?: number } = {}): Promise<number> {
  const { rowCount } = await database.pool.query(`SELECT 1 FROM audit_events WHERE tenant_id = $1 AND seq IS NULL LIMIT 1`, [tenantId]);
  if (!rowCount) return 0;
  return (await withSystem(database, (tx) => sealTenant(tx, tenantId, opts.limit ?? SEAL_BATCH, false))) ?? 0;
}

/**
 * The sealer's pass (the worker's tick): up to `tenantLimit` tenants with unsealed events
 * (the partial index; picked at random, so a busy few cannot starve the rest), each sealed
 * in transactions of up to `limit` events until drained (at most SEAL_ROUNDS of them),
 * skipping a tenant whose head another sealer (a worker, a reader) holds rather than
 * queueing behind it. One tenant's failure does not stop the others; it is thrown at the end.
 */
export async function sealPending(database: Database, opts: { tenantLimit?: number; limit?: number } = {}): Promise<{ tenants: number; sealed: number }> {
  const { rows } = await database.pool.query<{ tenant_id: string }>(
    `SELECT tenant_id FROM (SELECT DISTINCT tenant_id FROM audit_events WHERE seq IS NULL) t ORDER BY random() LIMIT $1`,
    [opts.tenantLimit ?? 100],
  );
  const limit = opts.limit ?? SEAL_BATCH;
  let sealed = 0;
  const errors: unknown[] = [];
  for (const { tenant_id } of rows) {
    try {
      for (let round = 0; round < SEAL_ROUNDS; round++) {
        const n = await withSystem(database, (tx) => sealTenant(tx, tenant_id, limit, true));
        sealed += n ?? 0;
        if (n === null || n < limit) break;
      }
    } catch (err) {
      errors.push(err);
    }
  }
  if (errors.length === 1) throw errors[0];
  if (errors.length) throw new AggregateError(errors, `sealPending: ${errors.length} tenants failed`);
  return { tenants: rows.length, sealed };
}

/** How many of the tenant's events are not sealed yet. */
export async function countUnsealed(db: Db, { tenantId }: { tenantId: string }): Promise<number> {
  const { rows } = await db.$client.query<{ n: number }>(`SELECT count(*)::int AS n FROM audit_events WHERE tenant_id = $1 AND seq IS NULL`, [tenantId]);
  return rows[0]!.n;
}

export async function listAuditForTarget(
  db: Db,
  { tenantId, targetType, targetId }: { tenantId: string; targetType: string; targetId: string },
): Promise<AuditEventRow[]> {
  return db
    .select()
    .from(auditEvents)
    .where(
      and(eq(auditEvents.tenantId, tenantId), eq(auditEvents.targetType, targetType), eq(auditEvents.targetId, targetId)),
    )
    // The chain's order, then the events not sealed yet in insertion order.
    .orderBy(sql`${auditEvents.seq} NULLS LAST`, asc(auditEvents.pos));
}

/** The tenant's sealed events after `afterSeq`, in chain order. */
export async function listAudit(db: Db, { tenantId, afterSeq, limit }: { tenantId: string; afterSeq: number; limit: number }): Promise<SealedAuditEventRow[]> {
  const rows = await db
    .select()
    .from(auditEvents)
    .where(and(eq(auditEvents.tenantId, tenantId), sql`${auditEvents.seq} > ${afterSeq}`))
    .orderBy(asc(auditEvents.seq))
    .limit(limit);
  return rows as SealedAuditEventRow[];
}

export interface AuditSearch {
  tenantId: string;
  limit: number;
  /** Newest first: events with a lower seq than this. */
  beforeSeq?: number | undefined;
  actorType?: string | undefined;
  actorId?: string | undefined;
  targetType?: string | undefined;
  targetId?: string | undefined;
  /** Exact action, or a prefix (`task.`) when `actionPrefix`. */
  action?: string | undefined;
  actionPrefix?: boolean;
  from?: Date | undefined;
  to?: Date | undefined;
}

/** The tenant's sealed audit events matching every given filter, newest first. */
export async function searchAudit(db: Db, q: AuditSearch): Promise<SealedAuditEventRow[]> {
  const escapeLike = (s: string) => s.replace(/[\\%_]/g, (c) => `\\${c}`);
  const rows = await db
    .select()
    .from(auditEvents)
    .where(
      and(
        eq(auditEvents.tenantId, q.tenantId),
        isNotNull(auditEvents.seq),
        q.beforeSeq !== undefined ? sql`${auditEvents.seq} < ${q.beforeSeq}` : undefined,
        q.actorType !== undefined ? eq(auditEvents.actorType, q.actorType) : undefined,
        q.actorId !== undefined ? eq(auditEvents.actorId, q.actorId) : undefined,
        q.targetType !== undefined ? eq(auditEvents.targetType, q.targetType) : undefined,
        q.targetId !== undefined ? eq(auditEvents.targetId, q.targetId) : undefined,
        q.action !== undefined
          ? q.actionPrefix
            ? sql`${auditEvents.action} LIKE ${`${escapeLike(q.action)}%`}`
            : eq(auditEvents.action, q.action)
          : undefined,
        q.from !== undefined ? sql`${auditEvents.createdAt} >= ${q.from}` : undefined,
        q.to !== undefined ? sql`${auditEvents.createdAt} < ${q.to}` : undefined,
      ),
    )
    .orderBy(desc(auditEvents.seq))
    .limit(q.limit);
  return rows as SealedAuditEventRow[];
}

export async function getAuditHead(db: Db, { tenantId }: { tenantId: string }) {
  const [h] = await db.select().from(auditHeads).where(eq(auditHeads.tenantId, tenantId));
  return h;
}

/** A slice of the chain in order: events with `afterSeq < seq <= upToSeq`, at most `limit`. */
export async function auditChainSlice(db: Db, { tenantId, afterSeq, upToSeq, limit }: { tenantId: string; afterSeq: number; upToSeq: number; limit: number }): Promise<SealedAuditEventRow[]> {
  const rows = await db
    .select()
    .from(auditEvents)
    .where(and(eq(auditEvents.tenantId, tenantId), sql`${auditEvents.seq} > ${afterSeq}`, sql`${auditEvents.seq} <= ${upToSeq}`))
    .orderBy(asc(auditEvents.seq))
    .limit(limit);
  // seq is set: the rest of a sealed row is, too (the trigger seals all three at once).
  return rows as SealedAuditEventRow[];
}
