import { and, desc, eq, lt, sql } from "drizzle-orm";
import type { Db } from "../client";
import { apiKeys } from "../schema/index";

export type ApiKeyRow = typeof apiKeys.$inferSelect;

export async function insertApiKey(db: Db, row: typeof apiKeys.$inferInsert): Promise<ApiKeyRow> {
  const [k] = await db.insert(apiKeys).values(row).returning();
  return k!;
}

/** Authentication: every key with this lookup part, across tenants. System access only. */
export async function findApiKeysByLookup(db: Db, lookup: string): Promise<ApiKeyRow[]> {
  return db.select().from(apiKeys).where(eq(apiKeys.lookup, lookup)).limit(4);
}

/**
 * Records use at most once a minute per key, so authentication does not turn every read
 * into a write.
 */
export async function touchApiKey(db: Db, { tenantId, keyId }: { tenantId: string; keyId: string }): Promise<void> {
  await db
    .update(apiKeys)
    .set({ lastUsedAt: sql`now()` })
    .where(
      and(
        eq(apiKeys.tenantId, tenantId),
        eq(apiKeys.id, keyId),
        sql`(${apiKeys.lastUsedAt} IS NULL OR ${apiKeys.lastUsedAt} < now() - interval '1 minute')`,
      ),
    );
}

export async function listApiKeys(
  db: Db,
  { tenantId, limit, before }: { tenantId: string; limit: number; before?: string | undefined },
): Promise<ApiKeyRow[]> {
  return db
    .select()
    .from(apiKeys)
    .where(and(eq(apiKeys.tenantId, tenantId), before ? lt(apiKeys.id, before) : undefined))
    .orderBy(desc(apiKeys.id))
    .limit(limit);
}

export async function getApiKey(db: Db, { tenantId, keyId }: { tenantId: string; keyId: string }) {
  const [k] = await db
    .select()
    .from(apiKeys)
    .where(and(eq(apiKeys.tenantId, tenantId), eq(apiKeys.id, keyId)));
  return k;
}

export async function revokeApiKey(db: Db, { tenantId, keyId }: { tenantId: string; keyId: string }) {
  const [k] = await db
    .update(apiKeys)
    .set({ revokedAt: sql`coalesce(${apiKeys.revokedAt}, now())` })
    .where(and(eq(apiKeys.tenantId, tenantId), eq(apiKeys.id, keyId)))
    .returning();
  return k;
}
