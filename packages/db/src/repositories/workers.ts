import { desc, eq, sql } from "drizzle-orm";
import type { Db } from "../client";
import { workers } from "../schema/index";

export type WorkerRow = typeof workers.$inferSelect;

/** Insert or refresh a worker's row; last_seen_at is the database's clock, like the staleness check. */
export async function upsertWorker(db: Db, row: Omit<typeof workers.$inferInsert, "lastSeenAt" | "stoppedAt">): Promise<void> {
  await db
    .insert(workers)
    .values({ ...row, lastSeenAt: sql`now()` })
    .onConflictDoUpdate({
      target: workers.id,
      set: { host: row.host, pid: row.pid, version: row.version, smtp: row.smtp, providers: row.providers, lastSeenAt: sql`now()`, stoppedAt: null },
    });
}

/** Deletes the rows of workers not seen for `days` days (a restarted worker is a new row). */
export async function pruneWorkers(db: Db, { days }: { days: number }): Promise<number> {
  const r = await db.$client.query(`DELETE FROM workers WHERE last_seen_at < now() - make_interval(days => $1)`, [days]);
  return r.rowCount ?? 0;
}

export async function markWorkerStopped(db: Db, { id }: { id: string }): Promise<void> {
  await db.update(workers).set({ stoppedAt: sql`now()` }).where(eq(workers.id, id));
}

/**
 * The most recently seen workers, with whether each is online (seen within `onlineSeconds`
 * by the database's clock, and not stopped). Stopped and long-gone rows are listed for a
 * day, and deleted after a week (pruneWorkers, with each worker's report).
 */
export async function listWorkers(db: Db, { onlineSeconds, limit }: { onlineSeconds: number; limit: number }) {
  return db
    .select({
      row: workers,
      online: sql<boolean>`(${workers.stoppedAt} IS NULL AND ${workers.lastSeenAt} > now() - make_interval(secs => ${onlineSeconds}))`,
    })
    .from(workers)
    .where(sql`${workers.lastSeenAt} > now() - interval '1 day'`)
    .orderBy(desc(workers.lastSeenAt), desc(workers.id))
    .limit(limit);
}
