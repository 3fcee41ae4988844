import { createHash } from "node:crypto";
import { and, asc, eq, sql } from "drizzle-orm";
import type { Db } from "../client";
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
