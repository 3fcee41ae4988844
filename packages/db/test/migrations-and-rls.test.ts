import { createDatabase, repo, runMigrations, withTenant } from "@bosun/db";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEmptyDb, createTestDb, type TestDb } from "../../../test/helpers/db";

describe("migrations", () => {
  it("apply to an empty database, again as a no-op, and from three processes at once", async () => {
    const empty = await createEmptyDb();
    try {
      await Promise.all([runMigrations(empty.url), runMigrations(empty.url), runMigrations(empty.url)]);
      await runMigrations(empty.url);
      const c = new pg.Client({ connectionString: empty.url });
      await c.connect();
      const applied = await c.query("SELECT count(*)::int AS n FROM drizzle.__drizzle_migrations");
      const files = await import("node:fs").then((fs) =>
        JSON.parse(fs.readFileSync(new URL("../../../migrations/meta/_journal.json", import.meta.url), "utf8")),
      );
      expect(applied.rows[0].n).toBe(files.entries.length);
      const tables = await c.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1");
      expect(tables.rows.map((r) => r.tablename)).toEqual(
        expect.arrayContaining(["tenants", "users", "memberships", "sessions", "api_keys", "agents", "agent_revisions", "audit_events"]),
      );
      await c.end();
    } finally {
      await empty.drop();
    }
  });

  it("puts tenant_id in the primary key of every tenant-owned table and enables RLS on it", async () => {
    const db = await createTestDb();
    try {
      const { rows } = await db.database.pool.query<{ table: string; pk: string[]; rls: boolean }>(`
        SELECT c.relname AS table, c.relrowsecurity AS rls,
               array(SELECT a.attname FROM unnest(i.indkey) k JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k) AS pk
        FROM pg_class c
        JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND NOT c.relispartition AND EXISTS (
          SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)`);
      // Partitions are reached through their parent, whose policy applies.
      expect(rows.length).toBeGreaterThanOrEqual(12);
      for (const r of rows) {
        expect({ table: r.table, hasTenantInPk: r.pk.includes("tenant_id"), rls: r.rls }).toEqual({ table: r.table, hasTenantInPk: true, rls: true });
      }
      // Every unique index and foreign key on those tables includes tenant_id too.
      const uniques = await db.database.pool.query<{ index: string; cols: string[] }>(`
        SELECT ic.relname AS index, array(SELECT a.attname FROM unnest(i.indkey) k JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k) AS cols
        FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_class ic ON ic.oid = i.indexrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND i.indisunique AND c.relname = ANY($1)`, [rows.map((r) => r.table)]);
      for (const u of uniques.rows) {
        if (u.index === "tenants_pkey") continue;
        expect({ index: u.index, ok: u.cols.includes("tenant_id") }).toEqual({ index: u.index, ok: true });
      }
    } finally {
      await db.drop();
    }
  });
});

describe("row-level security", () => {
  let db: TestDb;
  const A = "ten_0000000000aaaaaaaaaaaaaaaa";
  const B = "ten_0000000000bbbbbbbbbbbbbbbb";
  beforeAll(async () => {
    db = await createTestDb();
    await db.database.pool.query(`INSERT INTO tenants (id, name) VALUES ($1, 'A'), ($2, 'B')`, [A, B]);
    for (const [t, id, name] of [
      [A, "agt_0000000000aaaaaaaaaaaaaaaa", "alpha"],
      [B, "agt_0000000000bbbbbbbbbbbbbbbb", "beta"],
    ]) {
      await db.database.pool.query(
        `INSERT INTO agents (tenant_id, id, name, owner, revision, spec_hash, descriptor) VALUES ($1, $2, $3, 'o', 1, 'h', '{}')`,
        [t, id, name],
      );
    }
  });
  afterAll(() => db.drop());

  it("shows a tenant transaction only its own rows, even without a tenant filter", async () => {
    const names = await withTenant(db.database, A, async (tx) => (await tx.$client.query("SELECT name FROM agents")).rows.map((r) => r.name));
    expect(names).toEqual(["alpha"]);
    const tenants = await withTenant(db.database, B, async (tx) => (await tx.$client.query("SELECT id FROM tenants")).rows.map((r) => r.id));
    expect(tenants).toEqual([B]);
  });

  it("refuses to write another tenant's rows", async () => {
    await expect(
      withTenant(db.database, A, (tx) =>
        tx.$client.query(
          `INSERT INTO agents (tenant_id, id, name, owner, revision, spec_hash, descriptor) VALUES ($1, 'agt_0000000000cccccccccccccccc', 'x', 'o', 1, 'h', '{}')`,
          [B],
        ),
      ),
    ).rejects.toThrow(/row-level security/);
    const updated = await withTenant(db.database, A, async (tx) => (await tx.$client.query(`UPDATE agents SET owner = 'evil' WHERE tenant_id = $1`, [B])).rowCount);
    expect(updated).toBe(0);
    const { rows } = await db.database.pool.query(`SELECT owner FROM agents WHERE tenant_id = $1`, [B]);
    expect(rows[0].owner).toBe("o");
  });

  it("sees nothing when the tenant setting is missing, and refuses malformed tenant ids", async () => {
    const client = await db.database.pool.connect();
    try {
      await client.query("BEGIN; SET LOCAL ROLE bosun_app");
      expect((await client.query("SELECT count(*)::int AS n FROM agents")).rows[0].n).toBe(0);
      await client.query("ROLLBACK");
    } finally {
      client.release();
    }
    await expect(withTenant(db.database, "ten_x'; DROP TABLE agents; --", async () => 1)).rejects.toThrow(/malformed tenant id/);
  });

  it("keeps the audit trail append-only for the application role", async () => {
    await withTenant(db.database, A, (tx) =>
      repo.appendAudit(tx, {
        tenantId: A,
        id: "aud_0000000000aaaaaaaaaaaaaaaa",
        actorType: "system",
        actorId: "test",
        action: "test.event",
        targetType: "tenant",
        targetId: A,
        after: { n: 1 },
      }),
    );
    await expect(withTenant(db.database, A, (tx) => tx.$client.query(`UPDATE audit_events SET action = 'forged'`))).rejects.toThrow(/permission denied/);
    await expect(withTenant(db.database, A, (tx) => tx.$client.query(`DELETE FROM audit_events`))).rejects.toThrow(/permission denied/);
  });
});

describe("audit hash chain", () => {
  it("chains events per tenant with gapless sequence numbers under concurrent appends", async () => {
    const db = await createTestDb();
    const T = "ten_0000000000dddddddddddddddd";
    try {
      await db.database.pool.query(`INSERT INTO tenants (id, name) VALUES ($1, 'D')`, [T]);
      const many = createDatabase(db.url, { max: 8 });
      await Promise.all(
        Array.from({ length: 24 }, (_, i) =>
          withTenant(many, T, (tx) =>
            repo.appendAudit(tx, {
              tenantId: T,
              id: `aud_0000000000${String(i).padStart(16, "0")}`,
              actorType: "system",
              actorId: "test",
              action: "test.event",
              targetType: "tenant",
              targetId: T,
              after: { i },
            }),
          ),
        ),
      );
      await many.close();
      // Appended unsealed; the sealer chains them.
      expect(await repo.sealAudit(db.database, T)).toBe(24);
      const events = await withTenant(db.database, T, (tx) => repo.listAudit(tx, { tenantId: T, afterSeq: 0, limit: 100 }));
      expect(events.map((e) => e.seq)).toEqual(Array.from({ length: 24 }, (_, i) => i + 1));
      let prev = repo.GENESIS_HASH;
      for (const e of events) {
        expect(e.prevHash).toBe(prev);
        expect(e.hash).toBe(repo.auditHash(prev, e));
        prev = e.hash;
      }
      // The chain's index holds sealed events only (0014), and still keeps seq unique.
      const { rows: idx } = await db.database.pool.query(`SELECT indexdef FROM pg_indexes WHERE indexname = 'audit_events_seq_key'`);
      expect(idx[0].indexdef).toMatch(/UNIQUE INDEX .*\(tenant_id, seq\) WHERE \(seq IS NOT NULL\)/);
      await expect(
        db.database.pool.query(
          `INSERT INTO audit_events (tenant_id, id, actor_type, actor_id, action, target_type, target_id, seq, prev_hash, hash)
           VALUES ($1, 'aud_dup', 'system', 'test', 'test.event', 'tenant', $1, 3, 'x', 'y')`,
          [T],
        ),
      ).rejects.toThrow(/audit_events_seq_key/);
    } finally {
      await db.drop();
    }
  });
});
