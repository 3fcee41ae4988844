import { type Actor, auditService, systemActor } from "@bosun/core";
import { createDatabase, repo, withTenant } from "@bosun/db";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDb, type TestDb } from "../../../test/helpers/db";
import { audit, deferAudits } from "../src/audit";

/**
 * The audit chain sealed after commit: audited transactions insert their events unsealed
 * (no lock shared by the tenant), and sealers chain them afterwards under the head lock.
 * Concurrent writers and sealers leave every event sealed once, gapless per tenant; a late
 * commit is sealed next; the trigger lets an UPDATE do nothing but seal.
 */

let db: TestDb;
const A = "ten_0000000000sealaaaaaaaaaaaa";
const B = "ten_0000000000sealbbbbbbbbbbbb";
const C = "ten_0000000000sealcccccccccccc";
const q = async <T = Record<string, unknown>>(sql: string, values: unknown[] = []) => (await db.database.pool.query(sql, values)).rows as T[];
const admin = (tenantId: string): Actor => ({ type: "user", id: "usr_auditor", tenantId, scopes: ["admin"], role: "owner", agentId: null, keyId: null });
const event = (tenantId: string, n: number | string) => ({ action: "test.event", targetType: "tenant", targetId: tenantId, after: { n } });
const unsealed = async (tenantId: string) => (await q<{ n: number }>("SELECT count(*)::int AS n FROM audit_events WHERE tenant_id = $1 AND seq IS NULL", [tenantId]))[0]!.n;

/** The tenant's events in chain order, checked link by link: seq 1..N, each hash recomputed. */
async function expectChain(tenantId: string) {
  const list = await q<repo.AuditEventRow>(
    `SELECT tenant_id AS "tenantId", id, seq::int AS seq, actor_type AS "actorType", actor_id AS "actorId", action, target_type AS "targetType",
            target_id AS "targetId", before, after, request_id AS "requestId", prev_hash AS "prevHash", hash FROM audit_events WHERE tenant_id = $1 ORDER BY seq`,
    [tenantId],
  );
  expect(list.map((e) => e.seq)).toEqual(list.map((_, i) => i + 1));
  let prev = repo.GENESIS_HASH;
  for (const e of list) {
    expect(e.tenantId).toBe(tenantId);
    expect(e.prevHash).toBe(prev);
    expect(e.hash).toBe(repo.auditHash(prev, e));
    prev = e.hash!;
  }
  const [head] = await q<{ seq: number; hash: string }>("SELECT seq::int AS seq, hash FROM audit_heads WHERE tenant_id = $1", [tenantId]);
  // No head until the tenant's first seal.
  expect(head ?? { seq: 0, hash: repo.GENESIS_HASH }).toEqual({ seq: list.length, hash: prev });
  return list;
}

beforeAll(async () => {
  db = await createTestDb();
  for (const [id, name] of [[A, "A"], [B, "B"], [C, "C"]]) await q("INSERT INTO tenants (id, name) VALUES ($1, $2)", [id, name]);
});
afterAll(() => db?.drop());

describe("sealing the audit chain", () => {
  it("seals every event exactly once, gapless per tenant, with 40 audited transactions and 3 sealers at once", async () => {
    const writers = createDatabase(db.url, { max: 12 });
    const sealers = createDatabase(db.url, { max: 6 });
    let writing = true;
    let sealedBySealers = 0;
    // Each sealer keeps passing while the writers write, then until it finds nothing left
    // unsealed (so the sealers seal something however fast the writes went).
    const sealer = async () => {
      for (;;) {
        const done = !writing;
        const pass = await repo.sealPending(sealers, { limit: 7 });
        sealedBySealers += pass.sealed;
        if (done && pass.tenants === 0) return;
        await new Promise((r) => setTimeout(r, 5));
      }
    };
    try {
      const running = [sealer(), sealer(), sealer()];
      // A: 40 transactions, half with held (deferred) events, half in place; B: 10 more.
      const tx = (tenantId: string, i: number) =>
        withTenant(writers, tenantId, async (t) => {
          const actor = systemActor(tenantId, "test");
          if (i % 2) return audit(t, actor, event(tenantId, i));
          return deferAudits(t, async () => {
            await audit(t, actor, event(tenantId, i));
            await audit(t, actor, event(tenantId, `${i}b`));
          });
        });
      await Promise.all([...Array.from({ length: 40 }, (_, i) => tx(A, i)), ...Array.from({ length: 10 }, (_, i) => tx(B, i))]);
      writing = false;
      await Promise.all(running);
      // What the sealers had not reached yet.
      const rest = (await repo.sealPending(sealers)).sealed;
      expect(sealedBySealers).toBeGreaterThan(0);
      // Each event counted once: what the sealers report sealing is every event written.
      expect(sealedBySealers + rest).toBe(60 + 15);
    } finally {
      await writers.close();
      await sealers.close();
    }
    expect(await unsealed(A)).toBe(0);
    expect(await unsealed(B)).toBe(0);
    const a = await expectChain(A);
    const b = await expectChain(B);
    expect(a).toHaveLength(60);
    expect(b).toHaveLength(15);
    // A transaction's held events are adjacent in the chain.
    for (let i = 0; i < 40; i += 2) {
      const at = a.findIndex((e) => (e.after as { n: unknown }).n === i);
      expect((a[at + 1]!.after as { n: unknown }).n).toBe(`${i}b`);
    }
    const audits = auditService({ database: db.database });
    expect(await audits.verify(admin(A))).toMatchObject({ ok: true, checked: 60, unsealed: 0, head: { seq: 60 } });
    expect(await audits.verify(admin(B))).toMatchObject({ ok: true, checked: 15, unsealed: 0, head: { seq: 15 } });
  });

  it("leaves no event for a rolled-back transaction, and seals a late commit next, with the higher seq", async () => {
    const before = (await expectChain(C)).length;
    await expect(
      withTenant(db.database, C, async (t) => {
        await audit(t, systemActor(C, "test"), event(C, "rolled back"));
        throw new Error("boom");
      }),
    ).rejects.toThrow("boom");
    expect(await unsealed(C)).toBe(0);

    // The early event takes its pos first but commits last: the later one is sealed first.
    let commitEarly!: () => void;
    const held = new Promise<void>((r) => {
      commitEarly = r;
    });
    let inserted!: () => void;
    const insertedEarly = new Promise<void>((r) => {
      inserted = r;
    });
    const early = withTenant(db.database, C, async (t) => {
      await audit(t, systemActor(C, "test"), event(C, "early"));
      inserted();
      await held;
    });
    await insertedEarly;
    await withTenant(db.database, C, (t) => audit(t, systemActor(C, "test"), event(C, "late")));
    const pos = await q<{ n: string; pos: string }>("SELECT after->>'n' AS n, pos::text FROM audit_events WHERE tenant_id = $1 ORDER BY pos", [C]);
    expect(pos.map((p) => p.n)).toEqual(["late"]); // the early one is not committed yet
    expect(await repo.sealAudit(db.database, C)).toBe(1);
    commitEarly();
    await early;
    const [e, l] = await q<{ pos: string }>("SELECT pos::text FROM audit_events WHERE tenant_id = $1 AND after->>'n' IN ('early', 'late') ORDER BY after->>'n'", [C]);
    expect(BigInt(e!.pos)).toBeLessThan(BigInt(l!.pos));
    expect(await repo.sealAudit(db.database, C)).toBe(1);
    const list = await expectChain(C);
    expect(list.slice(before).map((x) => (x.after as { n: unknown }).n)).toEqual(["late", "early"]);
    expect(list.some((x) => (x.after as { n: unknown }).n === "rolled back")).toBe(false);
    expect(await auditService({ database: db.database }).verify(admin(C))).toMatchObject({ ok: true, checked: list.length, unsealed: 0 });
  });

  it("skips a tenant whose head another sealer holds instead of queueing, and seals the others", async () => {
    await withTenant(db.database, A, (t) => audit(t, systemActor(A, "test"), event(A, "while locked")));
    await withTenant(db.database, B, (t) => audit(t, systemActor(B, "test"), event(B, "while locked")));
    const c = await db.database.pool.connect();
    try {
      await c.query("BEGIN");
      await c.query("SELECT 1 FROM audit_heads WHERE tenant_id = $1 FOR UPDATE", [A]);
      const pass = await repo.sealPending(db.database);
      expect(pass).toEqual({ tenants: 2, sealed: 1 });
      expect(await unsealed(A)).toBe(1);
      expect(await unsealed(B)).toBe(0);
    } finally {
      await c.query("ROLLBACK");
      c.release();
    }
    expect(await repo.sealPending(db.database)).toEqual({ tenants: 1, sealed: 1 });
    await expectChain(A);
    await expectChain(B);
  });

  it("creates a tenant's head at its first seal, and seals in batches of `limit` without cutting one INSERT's events", async () => {
    const D = "ten_0000000000sealdddddddddddd";
    await q("INSERT INTO tenants (id, name) VALUES ($1, 'D')", [D]);
    const row = (i: number) => ({ tenantId: D, id: `aud_seal_d${i}`, actorType: "system", actorId: "test", ...event(D, i) });
    // Five transactions of one event each, then one of five events.
    for (let i = 0; i < 5; i++) await withTenant(db.database, D, (t) => repo.appendAudits(t, [row(i)]));
    await withTenant(db.database, D, (t) => repo.appendAudits(t, Array.from({ length: 5 }, (_, i) => row(5 + i))));
    expect(await q("SELECT 1 FROM audit_heads WHERE tenant_id = $1", [D])).toEqual([]);
    expect(await repo.sealAudit(db.database, D, { limit: 3 })).toBe(3);
    // The limit falls inside the five-event INSERT: all of it comes in the same pass.
    expect(await repo.sealAudit(db.database, D, { limit: 3 })).toBe(7);
    expect(await repo.sealAudit(db.database, D, { limit: 3 })).toBe(0);
    expect((await expectChain(D)).map((e) => e.id)).toEqual(Array.from({ length: 10 }, (_, i) => `aud_seal_d${i}`));
  });
});

describe("the seal-only trigger", () => {
  const T = "ten_0000000000sealtttttttttttt";
  beforeAll(async () => {
    await q("INSERT INTO tenants (id, name) VALUES ($1, 'T')", [T]);
  });

  it("refuses any UPDATE of a sealed row, as the owner too", async () => {
    await withTenant(db.database, T, (t) => audit(t, systemActor(T, "test"), event(T, "sealed")));
    await repo.sealAudit(db.database, T);
    const [row] = await q<{ id: string; hash: string }>("SELECT id, hash FROM audit_events WHERE tenant_id = $1 AND seq = 1", [T]);
    await expect(q("UPDATE audit_events SET action = 'forged' WHERE tenant_id = $1 AND id = $2", [T, row!.id])).rejects.toThrow(/sealed/);
    await expect(q("UPDATE audit_events SET seq = 9, prev_hash = 'x', hash = 'y' WHERE tenant_id = $1 AND id = $2", [T, row!.id])).rejects.toThrow(/sealed/);
    await expect(q("UPDATE audit_events SET seq = NULL, prev_hash = NULL, hash = NULL WHERE tenant_id = $1 AND id = $2", [T, row!.id])).rejects.toThrow(/sealed/);
    expect((await q<{ hash: string }>("SELECT hash FROM audit_events WHERE tenant_id = $1 AND id = $2", [T, row!.id]))[0]!.hash).toBe(row!.hash);
  });

  it("lets an unsealed row only be sealed: content columns, or a partial seal, are refused", async () => {
    await withTenant(db.database, T, (t) => audit(t, systemActor(T, "test"), event(T, "pending")));
    const [row] = await q<{ id: string }>("SELECT id FROM audit_events WHERE tenant_id = $1 AND seq IS NULL", [T]);
    const where = "WHERE tenant_id = $1 AND id = $2";
    await expect(q(`UPDATE audit_events SET after = '{"n":"forged"}' ${where}`, [T, row!.id])).rejects.toThrow(/only seal/);
    await expect(q(`UPDATE audit_events SET actor_id = 'someone', seq = 2, prev_hash = 'x', hash = 'y' ${where}`, [T, row!.id])).rejects.toThrow(/only seq, prev_hash and hash/);
    await expect(q(`UPDATE audit_events SET pos = pos + 1, seq = 2, prev_hash = 'x', hash = 'y' ${where}`, [T, row!.id])).rejects.toThrow(/only seq, prev_hash and hash/);
    await expect(q(`UPDATE audit_events SET created_at = now() - interval '1 day', seq = 2, prev_hash = 'x', hash = 'y' ${where}`, [T, row!.id])).rejects.toThrow(/only seq, prev_hash and hash/);
    await expect(q(`UPDATE audit_events SET seq = 2 ${where}`, [T, row!.id])).rejects.toThrow(/only seal/);
    // The sealer's own UPDATE goes through, and the chain is whole.
    expect(await repo.sealAudit(db.database, T)).toBe(1);
    await expectChain(T);
  });

  it("gives the app role no UPDATE or DELETE, sealed or not", async () => {
    await withTenant(db.database, T, (t) => audit(t, systemActor(T, "test"), event(T, "app")));
    for (const sql of [
      "UPDATE audit_events SET seq = 99, prev_hash = 'x', hash = 'y' WHERE seq IS NULL",
      "UPDATE audit_events SET action = 'forged' WHERE seq = 1",
      "DELETE FROM audit_events WHERE seq IS NULL",
      "DELETE FROM audit_events WHERE seq = 1",
    ]) {
      await expect(withTenant(db.database, T, (t) => t.$client.query(sql)), sql).rejects.toThrow(/permission denied/);
    }
    expect(await repo.sealAudit(db.database, T)).toBe(1);
    await expectChain(T);
  });
});
