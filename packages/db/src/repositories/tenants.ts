import { and, eq, sql } from "drizzle-orm";
import type { Db } from "../client";
import { memberships, sessions, tenants, users } from "../schema/index";

export type TenantRow = typeof tenants.$inferSelect;
export type UserRow = typeof users.$inferSelect;
export type Role = (typeof memberships.$inferSelect)["role"];

export async function insertTenant(db: Db, row: typeof tenants.$inferInsert): Promise<TenantRow> {
  const [t] = await db.insert(tenants).values(row).returning();
  return t!;
}

export async function getTenant(db: Db, { tenantId }: { tenantId: string }): Promise<TenantRow | undefined> {
  const [t] = await db.select().from(tenants).where(eq(tenants.id, tenantId));
  return t;
}

export async function updateTenant(
  db: Db,
  { tenantId, patch }: { tenantId: string; patch: Partial<Pick<TenantRow, "name" | "timeZone">> },
): Promise<TenantRow | undefined> {
  const [t] = await db
    .update(tenants)
    .set({ ...patch, updatedAt: sql`now()` })
    .where(eq(tenants.id, tenantId))
    .returning();
  return t;
}

export async function countTenants(db: Db): Promise<number> {
  const [r] = await db.select({ n: sql<number>`count(*)::int` }).from(tenants);
  return r!.n;
}

export async function insertUser(db: Db, row: typeof users.$inferInsert): Promise<UserRow | undefined> {
  const [u] = await db.insert(users).values(row).onConflictDoNothing().returning();
  return u;
}

export async function findUserByEmail(db: Db, email: string): Promise<UserRow | undefined> {
  const [u] = await db
    .select()
    .from(users)
    .where(sql`lower(${users.email}) = lower(${email})`);
  return u;
}

export async function getUser(db: Db, userId: string): Promise<UserRow | undefined> {
  const [u] = await db.select().from(users).where(eq(users.id, userId));
  return u;
}

export async function insertMembership(db: Db, row: typeof memberships.$inferInsert): Promise<void> {
  await db.insert(memberships).values(row);
}

/** Every tenant a user belongs to, across tenants: system access only. */
export async function listUserTenants(db: Db, userId: string) {
  return db
    .select({ id: tenants.id, name: tenants.name, role: memberships.role })
    .from(memberships)
    .innerJoin(tenants, eq(tenants.id, memberships.tenantId))
    .where(eq(memberships.userId, userId))
    .orderBy(tenants.createdAt);
}

export async function getMembership(db: Db, { tenantId, userId }: { tenantId: string; userId: string }) {
  const [m] = await db
    .select()
    .from(memberships)
    .where(and(eq(memberships.tenantId, tenantId), eq(memberships.userId, userId)));
  return m;
}

// Console sessions (lucia's storage). Global, like users.
export type SessionRow = typeof sessions.$inferSelect;

export async function insertSession(db: Db, row: typeof sessions.$inferInsert): Promise<void> {
  await db.insert(sessions).values(row);
}

export async function getSessionAndUser(db: Db, sessionId: string) {
  const [r] = await db
    .select({ session: sessions, user: { id: users.id, email: users.email, name: users.name } })
    .from(sessions)
    .innerJoin(users, eq(users.id, sessions.userId))
    .where(eq(sessions.id, sessionId));
  return r;
}

export async function listUserSessions(db: Db, userId: string): Promise<SessionRow[]> {
  return db.select().from(sessions).where(eq(sessions.userId, userId));
}

export async function updateSessionExpiry(db: Db, sessionId: string, expiresAt: Date): Promise<void> {
  await db.update(sessions).set({ expiresAt }).where(eq(sessions.id, sessionId));
}

export async function setSessionTenant(db: Db, sessionId: string, tenantId: string): Promise<void> {
  await db.update(sessions).set({ activeTenantId: tenantId }).where(eq(sessions.id, sessionId));
}

export async function deleteSession(db: Db, sessionId: string): Promise<void> {
  await db.delete(sessions).where(eq(sessions.id, sessionId));
}

export async function deleteUserSessions(db: Db, userId: string): Promise<void> {
  await db.delete(sessions).where(eq(sessions.userId, userId));
}

export async function deleteExpiredSessions(db: Db): Promise<void> {
  await db.delete(sessions).where(sql`${sessions.expiresAt} <= now()`);
}
