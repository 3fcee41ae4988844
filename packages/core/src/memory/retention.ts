import { type Database, repo, withSystem } from "@bosun/db";

/**
 * Retention: archive items past `expires_at` (`memory.retention_days` after they were
 * archived) are deleted, in batches, across tenants. Reads already hide expired items, so
 * the sweep's pace only bounds the table's size, never what an agent can find.
 */
export async function memorySweep(database: Database, opts: { batch?: number; maxBatches?: number } = {}) {
  let deleted = 0;
  for (let i = 0; i < (opts.maxBatches ?? 20); i++) {
    const n = await withSystem(database, (tx) => repo.memory.deleteExpired(tx, opts.batch ?? 1000));
    deleted += n;
    if (n < (opts.batch ?? 1000)) break;
  }
  return { deleted };
}
