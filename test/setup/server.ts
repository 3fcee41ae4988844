import path from "node:path";
import { startEmbeddedPostgres } from "@bosun/db";
import pg from "pg";

/**
 * The Postgres server the tests use, in this order: TEST_DATABASE_URL (a URL to any
 * database on the server, used to create and drop test databases), the machine's
 * Postgres on 127.0.0.1:5432, or an embedded Postgres started for the run.
 */
export async function testServer(): Promise<{ adminUrl: string; stop: () => Promise<void>; kind: string }> {
  const candidates = [process.env.TEST_DATABASE_URL, "postgres://postgres@127.0.0.1:5432/postgres"].filter(Boolean) as string[];
  for (const url of candidates) {
    const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
    try {
      await c.connect();
      await c.query("SELECT 1");
      await c.end();
      return { adminUrl: url, stop: async () => {}, kind: url === process.env.TEST_DATABASE_URL ? "TEST_DATABASE_URL" : "local Postgres on 5432" };
    } catch {
      await c.end().catch(() => {});
    }
  }
  const dir = path.resolve(import.meta.dirname, "../../.data/test-pg");
  const h = await startEmbeddedPostgres({ dir, port: 54339, database: "postgres" });
  return { adminUrl: h.adminUrl, stop: h.stop, kind: "embedded Postgres" };
}
