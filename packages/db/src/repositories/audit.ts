import { createHash } from "node:crypto";
import { and, asc, desc, eq, sql } from "drizzle-orm";
import type { Db, Tx } from "../client";
import { commitWith, takeCommitPrelude } from "../tx";
import { auditEvents, auditHeads } from "../schema/index";

export type AuditEventRow = typeof auditEvents.$inferSelect;

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

export function auditHash(prevHash: string, e: Omit<AuditEventRow, "hash" | "prevHash" | "createdAt">): string {
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

/**
 * Appends an event to the tenant's hash chain inside the caller's transaction. The head
 * row is locked until that transaction ends, which orders a tenant's audited mutations;
 * call this last in a transaction so the lock is held briefly.
 */
export async function appendAudit(db: Db, input: AuditInput): Promise<AuditEventRow> {
  await db.insert(auditHeads).values({ tenantId: input.tenantId, seq: 0, hash: GENESIS_HASH }).onConflictDoNothing();
  const [head] = await db
    .select()
    .from(auditHeads)
    .where(eq(auditHeads.tenantId, input.tenantId))
    .for("update");
  const seq = head!.seq + 1;
  // Round-trip through JSON so the hash covers exactly what jsonb will store.
  const before = input.before === undefined ? null : JSON.parse(JSON.stringify(input.before));
  const after = input.after === undefined ? null : JSON.parse(JSON.stringify(input.after));
  const row = {
    tenantId: input.tenantId,
    id: input.id,
    seq,
    actorType: input.actorType,
    actorId: input.actorId,
    action: input.action,
    targetType: input.targetType,
    targetId: input.targetId,
    before,
    after,
    requestId: input.requestId ?? null,
  };
  const hash = auditHash(head!.hash, row);
  const [ev] = await db
    .insert(auditEvents)
    .values({ ...row, prevHash: head!.hash, hash })
    .returning();
  await db.update(auditHeads).set({ seq, hash }).where(eq(auditHeads.tenantId, input.tenantId));
  return ev!;
}

/**
 * Appends a transaction's events to the tenant's chain at once, in order: the head is
 * locked first (created if the tenant has none), then ONE statement inserts every event
 * and moves the head. The lock is held from there to the commit, so two statements rather
 * than four per event; the chain is the same as appending them one by one.
 */
export async function appendAudits(db: Db, inputs: AuditInput[], opts: { atCommit?: boolean } = {}): Promise<void> {
  const tenantId = inputs[0]?.tenantId;
  if (tenantId === undefined) return;
  // Events queued for this transaction's commit go first, so the head read below is current.
  const queued = takeCommitPrelude(db as unknown as Tx);
  if (queued) await db.$client.query(queued);
  if (inputs.some((i) => i.tenantId !== tenantId)) {
    for (const i of inputs) await appendAudit(db, i);
    return;
  }
  const lockHead = () => db.$client.query<{ seq: string; hash: string }>(`SELECT seq, hash FROM audit_heads WHERE tenant_id = $1 FOR UPDATE`, [tenantId]);
  let head = (await lockHead()).rows[0];
  if (!head) {
    await db.$client.query(`INSERT INTO audit_heads (tenant_id, seq, hash) VALUES ($1, 0, $2) ON CONFLICT DO NOTHING`, [tenantId, GENESIS_HASH]);
    head = (await lockHead()).rows[0]!;
  }
  let seq = Number(head.seq);
  let prev = head.hash;
  const events = inputs.map((input) => {
    seq += 1;
    // Round-trip through JSON so the hash covers exactly what jsonb will store.
    const before = input.before === undefined ? null : JSON.parse(JSON.stringify(input.before));
    const after = input.after === undefined ? null : JSON.parse(JSON.stringify(input.after));
    const row = {
      tenantId,
      id: input.id,
      seq,
      actorType: input.actorType,
      actorId: input.actorId,
      action: input.action,
      targetType: input.targetType,
      targetId: input.targetId,
      before,
      after,
      requestId: input.requestId ?? null,
    };
    const hash = auditHash(prev, row);
    const e = {
      id: row.id,
      seq,
      actor_type: row.actorType,
      actor_id: row.actorId,
      action: row.action,
      target_type: row.targetType,
      target_id: row.targetId,
      prev_hash: prev,
      hash,
      // Absent keys are SQL NULL (a JSON null would be stored as the jsonb value null).
      ...(before === null ? {} : { before }),
      ...(after === null ? {} : { after }),
      ...(row.requestId === null ? {} : { request_id: row.requestId }),
    };
    prev = hash;
    return e;
  });
  const insert = (json: string, newSeq: string, newHash: string, tenant: string) =>
    `WITH e AS (
       INSERT INTO audit_events (tenant_id, id, seq, actor_type, actor_id, action, target_type, target_id, before, after, request_id, prev_hash, hash)
       SELECT ${tenant}, id, seq, actor_type, actor_id, action, target_type, target_id, before, after, request_id, prev_hash, hash
       FROM jsonb_to_recordset(${json}::jsonb) AS x(id text, seq bigint, actor_type text, actor_id text, action text, target_type text, target_id text,
                                               before jsonb, after jsonb, request_id text, prev_hash text, hash text))
     UPDATE audit_heads SET seq = ${newSeq}::bigint, hash = ${newHash} WHERE tenant_id = ${tenant}`;
  if (opts.atCommit) {
    // Sent with the COMMIT, in one round trip: the head stays locked one round trip less.
    // No parameters there, so every value is an escaped literal (seq is an integer).
    const client = db.$client as unknown as { escapeLiteral(s: string): string };
    commitWith(db as unknown as Tx, insert(client.escapeLiteral(JSON.stringify(events)), String(seq), client.escapeLiteral(prev), client.escapeLiteral(tenantId)));
    return;
  }
  await db.$client.query(insert("$1", "$2", "$3", "$4"), [JSON.stringify(events), seq, prev, tenantId]);
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
    .orderBy(asc(auditEvents.seq));
}

export async function listAudit(db: Db, { tenantId, afterSeq, limit }: { tenantId: string; afterSeq: number; limit: number }) {
  return db
    .select()
    .from(auditEvents)
    .where(and(eq(auditEvents.tenantId, tenantId), sql`${auditEvents.seq} > ${afterSeq}`))
    .orderBy(asc(auditEvents.seq))
    .limit(limit);
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

/** The tenant's audit events matching every given filter, newest first. */
export async function searchAudit(db: Db, q: AuditSearch): Promise<AuditEventRow[]> {
  const escapeLike = (s: string) => s.replace(/[\\%_]/g, (c) => `\\${c}`);
  return db
    .select()
    .from(auditEvents)
    .where(
      and(
        eq(auditEvents.tenantId, q.tenantId),
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
}

export async function getAuditHead(db: Db, { tenantId }: { tenantId: string }) {
  const [h] = await db.select().from(auditHeads).where(eq(auditHeads.tenantId, tenantId));
  return h;
}

/** A slice of the chain in order: events with `afterSeq < seq <= upToSeq`, at most `limit`. */
export async function auditChainSlice(db: Db, { tenantId, afterSeq, upToSeq, limit }: { tenantId: string; afterSeq: number; upToSeq: number; limit: number }) {
  return db
    .select()
    .from(auditEvents)
    .where(and(eq(auditEvents.tenantId, tenantId), sql`${auditEvents.seq} > ${afterSeq}`, sql`${auditEvents.seq} <= ${upToSeq}`))
    .orderBy(asc(auditEvents.seq))
    .limit(limit);
}
