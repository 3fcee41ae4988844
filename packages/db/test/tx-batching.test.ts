import { commitWith, createDatabase, inlinePrepared, literalOf, prepared, repo, tenantStatements, withSystem, withTenant } from "@bosun/db";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDb, type TestDb } from "../../../test/helpers/db";
import { recordQueries } from "../../../test/helpers/queries";

// Statements sent with BEGIN (withTenant's `with`) and whole short transactions in one round
// trip (tenantStatements): the runtime's lease fence, acquire and release ride on them.
describe("one-round-trip transactions", () => {
  let db: TestDb;
  const A = "ten_0000000000aaaaaaaaaaaaaaaa";
  const B = "ten_0000000000bbbbbbbbbbbbbbbb";
  const agent = "agt_0000000000aaaaaaaaaaaaaaaa";
  beforeAll(async () => {
    db = await createTestDb();
    await db.database.pool.query(`INSERT INTO tenants (id, name) VALUES ($1, 'A'), ($2, 'B')`, [A, B]);
    for (const t of [A, B]) {
      await db.database.pool.query(
        `INSERT INTO agents (tenant_id, id, name, owner, revision, spec_hash, descriptor) VALUES ($1, $2, 'a', 'o', 1, 'h', '{}')`,
        [t, agent],
      );
    }
  });
  afterAll(() => db.drop());

  it("runs statements as the tenant (RLS applies) and returns each one's result in order", async () => {
    const [count, one] = await tenantStatements(db.database, A, ["SELECT count(*)::int AS n FROM agents", "SELECT current_setting('bosun.tenant_id') AS t"]);
    expect(count!.rows[0].n).toBe(1);
    expect(one!.rows[0].t).toBe(A);
  });

  it("rolls back every statement when one fails, and leaves the connection usable", async () => {
    const single = { ...db.database, pool: new pg.Pool({ connectionString: db.url, max: 1 }) };
    try {
      await expect(
        tenantStatements(single, A, [`UPDATE agents SET owner = 'changed' WHERE tenant_id = '${A}'`, "SELECT 1/0"]),
      ).rejects.toThrow(/division by zero/);
      const { rows } = await db.database.pool.query(`SELECT owner FROM agents WHERE tenant_id = $1`, [A]);
      expect(rows[0].owner).toBe("o");
      // The pool's only connection is not left inside an aborted transaction.
      const [again] = await tenantStatements(single, A, ["SELECT count(*)::int AS n FROM agents"]);
      expect(again!.rows[0].n).toBe(1);
    } finally {
      await single.pool.end();
    }
  });

  it("refuses malformed tenant ids before sending anything", async () => {
    await expect(tenantStatements(db.database, "ten_x'; DROP TABLE agents; --", ["SELECT 1"])).rejects.toThrow(/malformed tenant id/);
  });

  it("fences a transaction with its BEGIN: a stale epoch writes nothing and throws LeaseLostError", async () => {
    const took = await tenantStatements(db.database, A, repo.runtime.acquireOrMarkStatements({ tenantId: A, agentId: agent, owner: "w'1", ttlSeconds: 30 }));
    const epoch = repo.runtime.acquiredEpoch(took[1]);
    expect(epoch).toBeGreaterThan(0);
    // Held: a second acquire marks the session instead of taking it.
    const again = await tenantStatements(db.database, A, repo.runtime.acquireOrMarkStatements({ tenantId: A, agentId: agent, owner: "w2", ttlSeconds: 30 }));
    expect(repo.runtime.acquiredEpoch(again[1])).toBeNull();
    const fence = { tenantId: A, agentId: agent, owner: "w'1", epoch: epoch! };
    const wrote = await withTenant(db.database, A, (tx) => tx.$client.query(`UPDATE agents SET owner = 'fenced' WHERE tenant_id = $1`, [A]), {
      with: repo.runtime.fenceWith(fence, 30),
    });
    expect(wrote.rowCount).toBe(1);
    let ran = false;
    await expect(
      withTenant(
        db.database,
        A,
        async (tx) => {
          ran = true;
          await tx.$client.query(`UPDATE agents SET owner = 'late' WHERE tenant_id = $1`, [A]);
        },
        { with: repo.runtime.fenceWith({ ...fence, epoch: epoch! - 1 }, 30) },
      ),
    ).rejects.toBeInstanceOf(repo.runtime.LeaseLostError);
    expect(ran).toBe(false);
    expect((await db.database.pool.query(`SELECT owner FROM agents WHERE tenant_id = $1`, [A])).rows[0].owner).toBe("fenced");
    // Another tenant's session of the same agent id is not this fence's.
    await expect(withTenant(db.database, B, async () => 1, { with: repo.runtime.fenceWith({ ...fence, tenantId: B }, 30) })).rejects.toBeInstanceOf(
      repo.runtime.LeaseLostError,
    );
    // Release with the statement form: the mark left by the second acquire is reported.
    const [released] = await tenantStatements(db.database, A, [repo.runtime.releaseLeaseStatement(fence)]);
    expect(repo.runtime.released(released)).toEqual({ released: true, wakeRequested: true });
    const [twice] = await tenantStatements(db.database, A, [repo.runtime.releaseLeaseStatement(fence)]);
    expect(repo.runtime.released(twice)).toEqual({ released: false, wakeRequested: false });
  });

  it("fences with a row lock, and extends the lease only once a sixth of its TTL has gone by", async () => {
    const agentB = "agt_0000000000bbbbbbbbbbbbbbbb";
    await db.database.pool.query(
      `INSERT INTO agents (tenant_id, id, name, owner, revision, spec_hash, descriptor) VALUES ($1, $2, 'b', 'o', 1, 'h', '{}')`,
      [A, agentB],
    );
    const took = await tenantStatements(db.database, A, repo.runtime.acquireOrMarkStatements({ tenantId: A, agentId: agentB, owner: "w1", ttlSeconds: 60 }));
    const fence = { tenantId: A, agentId: agentB, owner: "w1", epoch: repo.runtime.acquiredEpoch(took[1])! };
    const session = async () =>
      (
        await db.database.pool.query<{ ctid: string; ahead: number }>(
          `SELECT ctid::text, extract(epoch FROM lease_expires_at - now())::float8 AS ahead FROM agent_sessions WHERE tenant_id = $1 AND agent_id = $2`,
          [A, agentB],
        )
      ).rows[0]!;
    const fresh = await session();
    // Just taken: the fence locks the row and writes no new version of it.
    await withTenant(db.database, A, async () => 1, { with: repo.runtime.fenceWith(fence, 60) });
    expect((await session()).ctid).toBe(fresh.ctid);
    // While the fenced transaction is open, no one else can take or mark the session.
    const other = new pg.Client({ connectionString: db.url });
    await other.connect();
    try {
      await withTenant(
        db.database,
        A,
        async () => {
          await other.query(`SET lock_timeout = '200ms'`);
          await expect(other.query(`UPDATE agent_sessions SET wake_requested_at = now() WHERE tenant_id = $1 AND agent_id = $2`, [A, agentB])).rejects.toThrow(
            /lock timeout/,
          );
        },
        { with: repo.runtime.fenceWith(fence, 60) },
      );
    } finally {
      await other.end();
    }
    // Twenty seconds left of sixty: the fence extends it to the whole TTL again.
    await db.database.pool.query(`UPDATE agent_sessions SET lease_expires_at = now() + interval '20 seconds' WHERE tenant_id = $1 AND agent_id = $2`, [A, agentB]);
    await withTenant(db.database, A, async () => 1, { with: repo.runtime.fenceWith(fence, 60) });
    expect((await session()).ahead).toBeGreaterThan(55);
    // A stale epoch is refused whether or not the lease is due.
    await expect(withTenant(db.database, A, async () => 1, { with: repo.runtime.fenceWith({ ...fence, epoch: fence.epoch + 1 }, 60) })).rejects.toBeInstanceOf(
      repo.runtime.LeaseLostError,
    );
  });

  it("writes a task's completion with the COMMIT, and fails the whole transaction if its fence no longer holds (bosun_expect_one)", async () => {
    const task = "tsk_0000000000aaaaaaaaaaaaaaaa";
    await db.database.pool.query(
      `INSERT INTO tasks (tenant_id, id, title, status, lease_owner, lease_epoch, created_by_type, created_by_id) VALUES ($1, $2, 'probe', 'in_progress', 'run:r1', 3, 'user', 'u')`,
      [A, task],
    );
    const complete = (epoch: number, result: unknown) => repo.completeTaskStatement({ tenantId: A, taskId: task, epoch, owner: "run:r1", status: "done", result });
    // A stale epoch: the update matches nothing, so the COMMIT's batch fails, and the
    // transaction's other write goes with it.
    await expect(
      withTenant(db.database, A, async (tx) => {
        await tx.$client.query(`UPDATE agents SET owner = 'with a stale completion' WHERE tenant_id = $1`, [A]);
        commitWith(tx, complete(2, { ok: "stale" }));
      }),
    ).rejects.toMatchObject({ code: "40001", message: `lease lost: task ${task} is no longer leased under epoch 2` });
    expect((await db.database.pool.query(`SELECT owner FROM agents WHERE tenant_id = $1`, [A])).rows[0].owner).not.toBe("with a stale completion");
    expect((await db.database.pool.query(`SELECT status, result FROM tasks WHERE id = $1`, [task])).rows[0]).toEqual({ status: "in_progress", result: null });
    // The lease's own epoch and owner: done, with its result (a JSON string stays a string) and a completion time.
    await withTenant(db.database, A, async (tx) => commitWith(tx, complete(3, "it's done")));
    const [row] = (await db.database.pool.query(`SELECT status, result, lease_owner, completed_at FROM tasks WHERE id = $1`, [task])).rows;
    expect(row).toMatchObject({ status: "done", result: "it's done", lease_owner: null });
    expect(row.completed_at).toBeInstanceOf(Date);
    // Done is not leased: the same completion again fails.
    await expect(withTenant(db.database, A, async (tx) => commitWith(tx, complete(3, "again")))).rejects.toMatchObject({ code: "40001" });
  });
});

describe("literal arguments (literalOf)", () => {
  const inlineParams = (text: string, values: unknown[]) => inlinePrepared(prepared("t", text, values.map((v, i) => literalOf(v, `$${i + 1}`))));
  let db: TestDb;
  beforeAll(async () => {
    db = await createTestDb();
  });
  afterAll(() => db.drop());

  it("gives the same values as the parameterised statement, for each kind of value", async () => {
    const text = `SELECT $1::text AS s, $2::int AS i, $3::float8 AS f, $4::boolean AS b, $5::jsonb AS j, $6::timestamptz AS t, $7::text AS n, $8::int + $9::int AS sum, $10::text AS ten, $1 || '' AS again`;
    const values = ["it's a \\ back'slash", 42, -1.5, false, { a: ["x", 1, null], "k'": "v" }, new Date("2026-11-21T10:00:00.123Z"), null, "8", "9", "tenth"];
    const c = await db.database.pool.connect();
    try {
      const withParams = await c.query(text, values);
      const inlined = await c.query(inlineParams(text, values));
      expect(inlined.rows).toEqual(withParams.rows);
      expect(inlined.rows[0]).toMatchObject({ s: "it's a \\ back'slash", i: 42, b: false, n: null, sum: 17, ten: "tenth", j: { a: ["x", 1, null], "k'": "v" } });
    } finally {
      c.release();
    }
    expect(() => inlineParams("SELECT $2", ["one"])).toThrow(/no argument for \$2/);
    expect(() => inlineParams("SELECT $1", [Number.NaN])).toThrow(/finite/);
    expect(() => inlineParams("SELECT $1", [Symbol("x")])).toThrow(/symbol/);
    // No Postgres text holds a NUL byte: refused as Postgres refuses the parameter (22021).
    let nul: unknown;
    try {
      inlineParams("SELECT $1", ["a\u0000b"]);
    } catch (err) {
      nul = err;
    }
    expect(nul).toMatchObject({ code: "22021" });
  });
});

describe("prepared statements in batches", () => {
  let db: TestDb;
  const T = "ten_0000000000cccccccccccccccc";
  beforeAll(async () => {
    db = await createTestDb();
    await db.database.pool.query(`INSERT INTO tenants (id, name) VALUES ($1, 'C')`, [T]);
  });
  afterAll(() => db.drop());

  it("are prepared once per connection, then executed; their results come back in order without the PREPARE's", async () => {
    const one = createDatabase(db.url, { max: 1 });
    const recording = recordQueries();
    const sent = recording.sent;
    try {
      const st = (n: number) => prepared("bosun_b_test_add", "SELECT $1::int + $2::int AS n, current_setting('bosun.tenant_id') AS t", [`'${n}'`, "'1'"]);
      for (let i = 0; i < 3; i++) {
        const [a, plain, b] = await tenantStatements(one, T, [st(i), "SELECT 'plain' AS p", st(10 + i)]);
        expect([a!.rows[0], plain!.rows[0], b!.rows[0]]).toEqual([{ n: i + 1, t: T }, { p: "plain" }, { n: 11 + i, t: T }]);
      }
      const got = await withTenant(one, T, async () => "body ran", {
        with: { sql: [st(41)], check: ([r]) => expect(r!.rows[0]).toEqual({ n: 42, t: T }) },
      });
      expect(got).toBe("body ran");
      expect(sent.filter((s) => s.includes("PREPARE bosun_b_test_add AS"))).toHaveLength(1);
      expect(sent.filter((s) => s.includes("EXECUTE bosun_b_test_add('2', '1')"))).toHaveLength(1);

      // A batch that fails after its PREPARE discards its connection: the next one prepares anew.
      const bad = prepared("bosun_b_test_bad", "SELECT 1 / $1::int AS n", ["'0'"]);
      await expect(tenantStatements(one, T, [bad])).rejects.toThrow(/division by zero/);
      const [ok] = await tenantStatements(one, T, [prepared("bosun_b_test_bad", "SELECT 1 / $1::int AS n", ["'1'"])]);
      expect(ok!.rows).toEqual([{ n: 1 }]);
      expect(sent.filter((s) => s.includes("PREPARE bosun_b_test_bad AS"))).toHaveLength(2);
      // The text with its arguments in place, for rare paths.
      expect(inlinePrepared(st(5))).toBe("SELECT '5'::int + '1'::int AS n, current_setting('bosun.tenant_id') AS t");
    } finally {
      recording.stop();
      await one.close();
    }
  });
});

describe("the BEGIN held back to the first statement", () => {
  let db: TestDb;
  const T = "ten_0000000000dddddddddddddddd";
  beforeAll(async () => {
    db = await createTestDb();
    await db.database.pool.query(`INSERT INTO tenants (id, name) VALUES ($1, 'D')`, [T]);
  });
  afterAll(() => db.drop());

  it("goes in the first statement's round trip when that is a simple query, else just ahead of it; a transaction that runs nothing sends nothing", async () => {
    const recording = recordQueries();
    const sent = recording.sent;
    // (SET LOCAL lasts for the transaction: seeing the settings, the statement ran in it.)
    const tenantOf = "SELECT current_setting('bosun.tenant_id') AS t, current_user AS u";
    try {
      const simple = await withTenant(db.database, T, (tx) => tx.$client.query(tenantOf));
      expect(simple.rows).toEqual([{ t: T, u: "bosun_app" }]);
      expect(sent.splice(0)).toEqual([expect.stringMatching(/^BEGIN; SET LOCAL role bosun_app; SET LOCAL bosun\.tenant_id = '[^']+';\n/), "COMMIT"]);
      expect(sent.length).toBe(0);

      const params = await withTenant(db.database, T, (tx) => tx.$client.query(`${tenantOf}, $1::int AS p`, [7]));
      expect(params.rows).toEqual([{ t: T, u: "bosun_app", p: 7 }]);
      expect(sent.splice(0).map((s) => s.slice(0, 9))).toEqual(["BEGIN; SE", "SELECT cu", "COMMIT"]);

      // Two statements in one query: both results come back, without BEGIN's.
      const two = (await withTenant(db.database, T, (tx) => tx.$client.query("SELECT 1 AS a; SELECT 2 AS b"))) as unknown as pg.QueryResult[];
      expect(two.map((r) => r.rows[0])).toEqual([{ a: 1 }, { b: 2 }]);
      sent.length = 0;

      expect(await withTenant(db.database, T, async () => "nothing")).toBe("nothing");
      expect(sent).toEqual([]);
      await expect(
        withTenant(db.database, T, async () => {
          throw new Error("before any statement");
        }),
      ).rejects.toThrow("before any statement");
      expect(sent).toEqual([]);
      // The same holds for withSystem; and a failing first statement still rolls back.
      await expect(withTenant(db.database, T, (tx) => tx.$client.query("SELECT 1 / 0"))).rejects.toThrow(/division by zero/);
      expect(sent.splice(0).map((s) => s.slice(0, 8))).toEqual(["BEGIN; S", "ROLLBACK"]);
      const sys = await withSystem(db.database, (tx) => tx.$client.query("SELECT current_user AS u"));
      expect(sys.rows[0].u).not.toBe("bosun_app");
      expect(sent.splice(0)).toEqual(["BEGIN;\nSELECT current_user AS u", "COMMIT"]);
    } finally {
      recording.stop();
    }
  });
});
