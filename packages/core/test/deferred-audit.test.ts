import { systemActor } from "@bosun/core";
import { createDatabase, repo, withTenant } from "@bosun/db";
import { createJobs, type Jobs, wakeKey } from "@bosun/jobs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDb, type TestDb } from "../../../test/helpers/db";
import type pg from "pg";
import { atCommitClient, audit, deferAudits, deferWrite, sendWithNext } from "../src/audit";
import { recordQueries } from "../../../test/helpers/queries";

/**
 * Audit events held to the end of a transaction (the runtime's fenced writes): the same
 * chain as appending them in place, none for work rolled back to a savepoint, and gapless
 * under concurrent transactions mixing both ways of appending.
 */

let db: TestDb;
const T = "ten_0000000000eeeeeeeeeeeeeeee";
const actor = systemActor(T, "test");
const event = (n: number | string) => ({ action: "test.event", targetType: "tenant", targetId: T, after: { n } });
/** The chain, once the sealer has chained what was committed (events are written unsealed). */
const events = async () => {
  await repo.sealAudit(db.database, T);
  return withTenant(db.database, T, (tx) => repo.listAudit(tx, { tenantId: T, afterSeq: 0, limit: 1000 }));
};

function expectChain(list: Awaited<ReturnType<typeof events>>) {
  expect(list.map((e) => e.seq)).toEqual(list.map((_, i) => i + 1));
  let prev = repo.GENESIS_HASH;
  for (const e of list) {
    expect(e.prevHash).toBe(prev);
    expect(e.hash).toBe(repo.auditHash(prev, e));
    prev = e.hash;
  }
}

beforeAll(async () => {
  db = await createTestDb();
  await db.database.pool.query(`INSERT INTO tenants (id, name) VALUES ($1, 'E')`, [T]);
});
afterAll(() => db?.drop());

describe("deferred audit events", () => {
  it("appends them at the end of the transaction, in order, dropping those of work rolled back to a savepoint", async () => {
    await withTenant(db.database, T, (tx) =>
      deferAudits(tx, async () => {
        await audit(tx, actor, event("first"));
        await tx.$client.query("SAVEPOINT tool_effect");
        await audit(tx, actor, event("rolled back"));
        await tx.$client.query("ROLLBACK TO SAVEPOINT tool_effect");
        await tx.$client.query("SAVEPOINT task_write");
        await audit(tx, actor, event("kept after a savepoint"));
        await audit(tx, actor, event(null as unknown as number));
        // Nothing is written before the end.
        const { rows } = await tx.$client.query(`SELECT count(*)::int AS n FROM audit_events WHERE tenant_id = $1`, [T]);
        expect(rows[0].n).toBe(0);
      }),
    );
    const list = await events();
    expect(list.map((e) => (e.after as { n: unknown }).n)).toEqual(["first", "kept after a savepoint", null]);
    expect(list.every((e) => e.before === null && e.requestId === null)).toBe(true);
    expectChain(list);
  });

  it("holds deferred writes to the COMMIT too, dropping those rolled back to a savepoint; outside deferAudits they run at once", async () => {
    await db.database.pool.query(`CREATE TABLE deferred_probe (v text NOT NULL); GRANT SELECT, INSERT ON deferred_probe TO bosun_app`);
    const probe = async () => (await db.database.pool.query<{ v: string }>(`SELECT v FROM deferred_probe ORDER BY v`)).rows.map((r) => r.v);
    await withTenant(db.database, T, (tx) =>
      deferAudits(tx, async () => {
        await deferWrite(tx, `INSERT INTO deferred_probe VALUES ('a kept')`);
        await tx.$client.query("SAVEPOINT tool_in_turn");
        await deferWrite(tx, `INSERT INTO deferred_probe VALUES ('b rolled back')`);
        await audit(tx, actor, event("rolled back with it"));
        await tx.$client.query("ROLLBACK TO SAVEPOINT tool_in_turn");
        await deferWrite(tx, `INSERT INTO deferred_probe VALUES ('c kept')`);
        const { rows } = await tx.$client.query(`SELECT count(*)::int AS n FROM deferred_probe`);
        expect(rows[0].n).toBe(0);
      }),
    );
    expect(await probe()).toEqual(["a kept", "c kept"]);
    // A failing deferred write fails the COMMIT: nothing of the transaction stays.
    await expect(
      withTenant(db.database, T, (tx) =>
        deferAudits(tx, async () => {
          await audit(tx, actor, event("with a failed write"));
          await deferWrite(tx, `INSERT INTO deferred_probe VALUES (NULL)`);
        }),
      ),
    ).rejects.toThrow(/null value/);
    expect((await events()).some((e) => (e.after as { n: unknown }).n === "with a failed write")).toBe(false);
    await withTenant(db.database, T, async (tx) => {
      await deferWrite(tx, `INSERT INTO deferred_probe VALUES ('d in place')`);
      const { rows } = await tx.$client.query(`SELECT count(*)::int AS n FROM deferred_probe`);
      expect(rows[0].n).toBe(3);
    });
    expect(await probe()).toEqual(["a kept", "c kept", "d in place"]);
    expect((await events()).some((e) => (e.after as { n: unknown }).n === "rolled back with it")).toBe(false);
  });

  it("hands a deferred write its result once the COMMIT has run, and never when the transaction fails", async () => {
    const got: string[] = [];
    const during: number[] = [];
    await withTenant(db.database, T, (tx) =>
      deferAudits(tx, async () => {
        await deferWrite(tx, `INSERT INTO deferred_probe VALUES ('e with result') RETURNING v`, (r) => got.push(r.rows[0].v));
        await deferWrite(tx, `INSERT INTO deferred_probe VALUES ('f with result') RETURNING upper(v) AS v`, (r) => got.push(r.rows[0].v));
        during.push(got.length);
      }),
    );
    expect(during).toEqual([0]);
    expect(got).toEqual(["e with result", "F WITH RESULT"]);
    const lost: string[] = [];
    await expect(
      withTenant(db.database, T, (tx) =>
        deferAudits(tx, async () => {
          await deferWrite(tx, `INSERT INTO deferred_probe VALUES ('g lost') RETURNING v`, (r) => lost.push(r.rows[0].v));
          await deferWrite(tx, `INSERT INTO deferred_probe VALUES (NULL)`);
        }),
      ),
    ).rejects.toThrow(/null value/);
    expect(lost).toEqual([]);
    // Outside deferAudits it runs at once, and so does its callback.
    await withTenant(db.database, T, async (tx) => {
      await deferWrite(tx, `SELECT 'in place' AS v`, (r) => lost.push(r.rows[0].v));
      expect(lost).toEqual(["in place"]);
    });
  });

  it("sends a queued statement ahead of the next one: in its round trip when that is a simple query", async () => {
    const recording = recordQueries();
    const sent = recording.sent;
    try {
      await withTenant(db.database, T, (tx) =>
        deferAudits(tx, async () => {
          await sendWithNext(tx, "SAVEPOINT first");
          // One round trip, and the caller gets its own statement's result.
          const one = await tx.$client.query("SELECT 41 + 1 AS n");
          expect(one.rows).toEqual([{ n: 42 }]);
          await sendWithNext(tx, "SAVEPOINT second");
          await audit(tx, actor, event("dropped with the savepoint"));
          // Ahead of a statement with parameters, on its own.
          const two = await tx.$client.query("SELECT $1::int AS n", [7]);
          expect(two.rows).toEqual([{ n: 7 }]);
          await tx.$client.query("ROLLBACK TO SAVEPOINT second");
          // Several ahead of a query of several statements: only the query's results come back.
          await sendWithNext(tx, "SAVEPOINT third");
          await sendWithNext(tx, "RELEASE SAVEPOINT third");
          const many = (await tx.$client.query("SELECT 1 AS a; SELECT 2 AS b")) as unknown as pg.QueryResult[];
          expect(many.map((r) => r.rows[0])).toEqual([{ a: 1 }, { b: 2 }]);
          // Left at the end: sent with the COMMIT.
          await sendWithNext(tx, "SAVEPOINT last");
        }),
      );
    } finally {
      recording.stop();
    }
    // The transaction's BEGIN went with its first statement too (withTenant holds it back).
    expect(sent[0]).toMatch(/^BEGIN; SET LOCAL role bosun_app; SET LOCAL bosun\.tenant_id = '[^']+';\nSAVEPOINT first;\nSELECT 41 \+ 1 AS n$/);
    expect(sent.slice(1, 5)).toEqual([
      "SAVEPOINT second",
      "SELECT $1::int AS n",
      "ROLLBACK TO SAVEPOINT second",
      "SAVEPOINT third;\nRELEASE SAVEPOINT third;\nSELECT 1 AS a; SELECT 2 AS b",
    ]);
    expect(sent.slice(5)).toEqual(["SAVEPOINT last;\nCOMMIT"]);
    expect((await events()).some((e) => (e.after as { n: unknown }).n === "dropped with the savepoint")).toBe(false);
  });

  it("writes nothing when the transaction fails, and outside deferAudits appends in place", async () => {
    const before = (await events()).length;
    await expect(
      withTenant(db.database, T, (tx) =>
        deferAudits(tx, async () => {
          await audit(tx, actor, event("lost"));
          throw new Error("boom");
        }),
      ),
    ).rejects.toThrow("boom");
    expect(await events()).toHaveLength(before);
    await withTenant(db.database, T, async (tx) => {
      await audit(tx, actor, event("in place"));
      const { rows } = await tx.$client.query(`SELECT count(*)::int AS n FROM audit_events WHERE tenant_id = $1`, [T]);
      expect(rows[0].n).toBe(before + 1);
    });
    // The connection's query method is its own again once deferAudits is done.
    const client = await db.database.pool.connect();
    try {
      expect(Object.hasOwn(client, "query")).toBe(false);
    } finally {
      client.release();
    }
  });

  it("sends the held events with the COMMIT, and writes them first if the transaction audits again in place", async () => {
    const before = (await events()).length;
    await withTenant(db.database, T, async (tx) => {
      await deferAudits(tx, () => audit(tx, actor, event("held")));
      await audit(tx, actor, event("then in place"));
    });
    const list = await events();
    expect(list.slice(before).map((e) => (e.after as { n: unknown }).n)).toEqual(["held", "then in place"]);
    expectChain(list);
  });

  it("keeps the chain gapless under concurrent deferred and in-place appends", async () => {
    const many = createDatabase(db.url, { max: 8 });
    try {
      await Promise.all(
        Array.from({ length: 24 }, (_, i) =>
          withTenant(many, T, async (tx) => {
            if (i % 2) return audit(tx, actor, event(i));
            return deferAudits(tx, async () => {
              await audit(tx, actor, event(i));
              await audit(tx, actor, event(`${i}b`));
            });
          }),
        ),
      );
    } finally {
      await many.close();
    }
    const list = await events();
    expect(list.length).toBeGreaterThanOrEqual(36);
    expectChain(list);
    // A transaction's deferred events are adjacent in the chain.
    for (let i = 0; i < 24; i += 2) {
      const at = list.findIndex((e) => (e.after as { n: unknown }).n === i);
      expect((list[at + 1]!.after as { n: unknown }).n).toBe(`${i}b`);
    }
  });
});

describe("a wake sent with the COMMIT (atCommitClient)", () => {
  let jobs: Jobs;
  beforeAll(async () => {
    jobs = createJobs({ connectionString: db.url, role: "producer", max: 2 });
    await jobs.start();
  });
  afterAll(() => jobs?.stop({ graceful: false, timeout: 1000 }));

  const wakes = async (agent: string) =>
    (await db.database.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM pgboss.job WHERE name = 'agent.wake' AND state = 'created' AND data->>'agentId' = $1`, [agent])).rows[0]!.n;
  const enqueue = (tx: Parameters<typeof atCommitClient>[0], agent: string) =>
    jobs.enqueue(atCommitClient(tx), "agent.wake", { tenantId: T, agentId: agent, reason: "task" }, { singletonKey: wakeKey(T, agent) });

  it("inside deferAudits is inserted with the COMMIT (none before it, none after a rollback to an earlier savepoint); elsewhere at once, with its id", async () => {
    await withTenant(db.database, T, (tx) =>
      deferAudits(tx, async () => {
        expect(await enqueue(tx, "agt_commit_kept_000000000000000")).toBeNull();
        expect(await wakes("agt_commit_kept_000000000000000")).toBe(0);
        await tx.$client.query("SAVEPOINT before_wake");
        await enqueue(tx, "agt_commit_dropped_0000000000000");
        await tx.$client.query("ROLLBACK TO SAVEPOINT before_wake");
      }),
    );
    expect(await wakes("agt_commit_kept_000000000000000")).toBe(1);
    expect(await wakes("agt_commit_dropped_0000000000000")).toBe(0);
    // Not deferred: inserted in place, and enqueue gets the job's id.
    await withTenant(db.database, T, async (tx) => {
      const id = await enqueue(tx, "agt_commit_inplace_000000000000");
      expect(id).toMatch(/^[0-9a-f-]{36}$/);
      expect((await tx.$client.query(`SELECT count(*)::int AS n FROM pgboss.job WHERE id = $1`, [id])).rows[0].n).toBe(1);
    });
    // The singleton key still coalesces: a second wake for the kept agent adds none.
    await withTenant(db.database, T, (tx) => deferAudits(tx, () => enqueue(tx, "agt_commit_kept_000000000000000")));
    expect(await wakes("agt_commit_kept_000000000000000")).toBe(1);
  });
});
