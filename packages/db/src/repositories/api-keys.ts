import { and, desc, eq, lt, sql } from "drizzle-orm";
import type { Db } from "../client";
import { apiKeys } from "../schema/index";

export type ApiKeyRow = typeof apiKeys.$inferSelect;

export async function insertApiKey(db: Db, row: typeof apiKeys.$inferInsert): Promise<ApiKeyRow> {
  const [k] = await db.insert(apiKeys).values(row).returning();
  return k!;
}

/**
 * Authentication: every key with this lookup part, across tenants. System access only.
 * On the hot path of every request, so it is a named (server-side prepared) statement
 * in plain SQL rather than a query built by drizzle each time.
 */
export async function findApiKeysByLookup(db: Db, lookup: string): Promise<AuthKeyRow[]> {
  const { rows } = await db.$client.query<AuthKeyRow>({
    name: "bosun_api_key_by_lookup",
    text: `SELECT tenant_id AS "tenantId", id, secret_hash AS "secretHash", scopes, agent_id AS "agentId",
                  expires_at AS "expiresAt", revoked_at AS "revokedAt", last_used_at AS "lastUsedAt"
           FROM api_keys WHERE lookup = $1 LIMIT 4`,
    values: [lookup],
  });
  return rows;
}

export type AuthKeyRow = Pick<ApiKeyRow, "tenantId" | "id" | "secretHash" | "scopes" | "agentId" | "expiresAt" | "revokedAt" | "lastUsedAt">;

/** Tells every API process that a key was revoked, when the revoking transaction commits. */
export async function notifyKeyRevoked(db: Db, keyId: string): Promise<void> {
  await db.$client.query("SELECT pg_notify('bosun_api_key_revoked', $1)", [keyId]);
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

export async function getApiKey(db: Db, { tenantId, keyId, forUpdate = false }: { tenantId: string; keyId: string; forUpdate?: boolean }) {
  const q = db
    .select()
    .from(apiKeys)
    .where(and(eq(apiKeys.tenantId, tenantId), eq(apiKeys.id, keyId)));
  const [k] = forUpdate ? await q.for("update") : await q;
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
