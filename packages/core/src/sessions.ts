import { type Database, repo } from "@bosun/db";
import { type Adapter, Lucia, TimeSpan } from "lucia";

/**
 * Console sessions with lucia. Sessions live in our own `sessions` table through this
 * adapter; the session carries the tenant the person is working in (the tenant switcher
 * changes it).
 */
export function createLucia(database: Database, opts: { secureCookies: boolean }) {
  const db = database.db;
  const adapter: Adapter = {
    async getSessionAndUser(sessionId) {
      const r = await repo.getSessionAndUser(db, sessionId);
      if (!r) return [null, null];
      return [
        {
          id: r.session.id,
          userId: r.session.userId,
          expiresAt: r.session.expiresAt,
          attributes: { activeTenantId: r.session.activeTenantId },
        },
        { id: r.user.id, attributes: { email: r.user.email, name: r.user.name } },
      ];
    },
    async getUserSessions(userId) {
      const rows = await repo.listUserSessions(db, userId);
      return rows.map((s) => ({
        id: s.id,
        userId: s.userId,
        expiresAt: s.expiresAt,
        attributes: { activeTenantId: s.activeTenantId },
      }));
    },
    async setSession(s) {
      await repo.insertSession(db, {
        id: s.id,
        userId: s.userId,
        expiresAt: s.expiresAt,
        activeTenantId: s.attributes.activeTenantId,
      });
    },
    updateSessionExpiration: (id, expiresAt) => repo.updateSessionExpiry(db, id, expiresAt),
    deleteSession: (id) => repo.deleteSession(db, id),
    deleteUserSessions: (userId) => repo.deleteUserSessions(db, userId),
    deleteExpiredSessions: () => repo.deleteExpiredSessions(db),
  };
  return new Lucia(adapter, {
    sessionExpiresIn: new TimeSpan(14, "d"),
    sessionCookie: {
      name: "bosun_session",
      attributes: { secure: opts.secureCookies, sameSite: "lax", path: "/" },
    },
    getSessionAttributes: (a) => ({ activeTenantId: a.activeTenantId }),
    getUserAttributes: (a) => ({ email: a.email, name: a.name }),
  });
}

export type BosunLucia = ReturnType<typeof createLucia>;

declare module "lucia" {
  interface Register {
    Lucia: BosunLucia;
    DatabaseSessionAttributes: { activeTenantId: string | null };
    DatabaseUserAttributes: { email: string; name: string | null };
  }
}
