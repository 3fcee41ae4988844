import { and, eq, sql } from "drizzle-orm";
import type { Db } from "../client";
import { idempotencyKeys } from "../schema/index";

export type IdempotencyRow = typeof idempotencyKeys.$inferSelect;

/**
 * Claims the key inside the create's transaction. A concurrent request with the same key
 * blocks on the unique index until the first commits, then sees its row; if the first
 * rolls back, the second proceeds as the creator.
 */
export async function claimIdempotencyKey(
  db: Db,
  row: { tenantId: string; key: string; requestHash: string },
): Promise<{ claimed: true } | { claimed: false; existing: IdempotencyRow }> {
  const inserted = await db
    .insert(idempotencyKeys)
    .values({ ...row, statusCode: 0, response: {} })
    .onConflictDoNothing()
    .returning({ key: idempotencyKeys.key });
  if (inserted.length === 1) return { claimed: true };
  const [existing] = await db
    .select()
    .from(idempotencyKeys)
    .where(and(eq(idempotencyKeys.tenantId, row.tenantId), eq(idempotencyKeys.key, row.key)));
  return { claimed: false, existing: existing! };
}

export async function storeIdempotentResponse(
  db: Db,
  { tenantId, key, statusCode, response }: { tenantId: string; key: string; statusCode: number; response: unknown },
): Promise<void> {
  await db
    .update(idempotencyKeys)
    .set({ statusCode, response })
    .where(and(eq(idempotencyKeys.tenantId, tenantId), eq(idempotencyKeys.key, key)));
}

export async function deleteExpiredIdempotencyKeys(db: Db, olderThanHours = 24): Promise<number> {
  const r = await db
    .delete(idempotencyKeys)
    .where(sql`${idempotencyKeys.createdAt} < now() - make_interval(hours => ${olderThanHours})`)
    .returning({ key: idempotencyKeys.key });
  return r.length;
}
