import pg from "pg";
import { bindClient, type Database, type Tx } from "./client";

const { escapeLiteral } = pg;

const TENANT_ID = /^ten_[0-9a-z]{26}$/;

/**
 * Runs `fn` in one transaction as the `bosun_app` role with `bosun.tenant_id` set, so
 * row-level security confines every statement to that tenant even if a query forgot
 * its `tenant_id` filter. Repositories still filter by tenant explicitly: RLS is the
 * second wall, not the first.
 *
 * BEGIN and both settings travel in one simple-protocol round trip; the tenant id is
 * checked against the id format first, which is what makes inlining it safe.
 */
export async function withTenant<T>(database: Database, tenantId: string, fn: (tx: Tx) => Promise<T>, opts: TenantTxOptions = {}): Promise<T> {
  return run(database, tenantBegin(tenantId) + (opts.with ? `;\n${opts.with.sql}` : ""), fn, opts.with?.check);
}

export interface TenantTxOptions {
  /**
   * Statements sent with the BEGIN, in the same round trip (no parameters: literals escaped
   * by the caller, e.g. with pg's escapeLiteral). `check` sees their results, in order,
   * before `fn` runs, and may throw to roll the transaction back. For the statement every
   * transaction of a kind starts with (the runtime's lease fence): one round trip less each.
   */
  with?: { sql: string; check: (results: pg.QueryResult[]) => void };
}

function tenantBegin(tenantId: string): string {
  if (!TENANT_ID.test(tenantId)) throw new Error(`withTenant: malformed tenant id ${JSON.stringify(tenantId)}`);
  return `BEGIN; SELECT set_config('role', 'bosun_app', true), set_config('bosun.tenant_id', '${tenantId}', true)`;
}

/**
 * A short transaction in one round trip: BEGIN as the tenant (RLS applies), the statements,
 * COMMIT, all in one simple-protocol query (literals escaped by the caller). Returns each
 * statement's result, in order. For a hot path's reads, or writes that need no decision
 * between them, that would otherwise cost a round trip each.
 */
export async function tenantStatements(database: Database, tenantId: string, statements: string[]): Promise<pg.QueryResult[]> {
  const client: pg.PoolClient = await database.pool.connect();
  let broken = false;
  try {
    const results = (await client.query(`${tenantBegin(tenantId)};\n${statements.join(";\n")};\nCOMMIT`)) as unknown as pg.QueryResult[];
    // BEGIN, the settings, ..., COMMIT: the statements' results sit between them.
    return results.slice(2, 2 + statements.length);
  } catch (err) {
    // A failed statement leaves the transaction aborted: end it before the client goes back.
    await client.query("ROLLBACK").catch(() => {
      broken = true;
    });
    throw err;
  } finally {
    client.release(broken);
  }
}

/**
 * Runs `fn` in one transaction as the connecting role, across tenants. Only for system
 * work: authentication lookups, signup, bootstrap, sweepers.
 */
export async function withSystem<T>(database: Database, fn: (tx: Tx) => Promise<T>): Promise<T> {
  return run(database, "BEGIN", fn);
}

/** A statement to send with the COMMIT, in one round trip (see commitWith), by connection. */
const preludes = new WeakMap<object, string>();

/**
 * Sends `sql` (no parameters: literals escaped by the caller) together with this
 * transaction's COMMIT, in one round trip, after everything else the transaction does.
 * For writes that need nothing back and can go last (the transaction's audit events):
 * one round trip less. Only for transactions run by withTenant / withSystem.
 */
export function commitWith(tx: Tx, sql: string): void {
  const prev = preludes.get(tx.$client);
  preludes.set(tx.$client, prev ? `${prev};\n${sql}` : sql);
}

/** Takes back what commitWith queued (to run it now, before work that must come after it). */
export function takeCommitPrelude(tx: Tx): string | undefined {
  const prelude = preludes.get(tx.$client);
  preludes.delete(tx.$client);
  return prelude;
}

async function run<T>(database: Database, begin: string, fn: (tx: Tx) => Promise<T>, check?: (results: pg.QueryResult[]) => void): Promise<T> {
  const client: pg.PoolClient = await database.pool.connect();
  let broken = false;
  try {
    const begun = (await client.query(begin)) as unknown as pg.QueryResult[];
    // With statements after BEGIN and the settings: theirs are the results from the third on.
    check?.(begun.slice(2));
    const result = await fn(bindClient(client));
    const prelude = preludes.get(client);
    preludes.delete(client);
    // A failing prelude aborts the transaction before the COMMIT runs: the catch rolls back.
    await client.query(prelude ? `${prelude};\nCOMMIT` : "COMMIT");
    return result;
  } catch (err) {
    preludes.delete(client);
    try {
      await client.query("ROLLBACK");
    } catch {
      broken = true;
    }
    throw err;
  } finally {
    client.release(broken);
  }
}

/**
 * `text` with its `$n` parameters replaced by escaped literals, for a statement that goes
 * in a simple-protocol batch (with a BEGIN or a COMMIT). Values: strings, numbers,
 * booleans, null, and objects (as JSON). The text must hold `$n` only as parameters (no
 * such characters inside its own string literals).
 */
export function inlineParams(text: string, values: readonly unknown[] = []): string {
  return text.replace(/\$(\d+)/g, (_, n: string) => {
    const i = Number(n) - 1;
    if (i < 0 || i >= values.length) throw new Error(`inlineParams: no value for $${n}`);
    const v = values[i];
    if (v === null || v === undefined) return "NULL";
    if (typeof v === "number") {
      if (!Number.isFinite(v)) throw new Error(`inlineParams: $${n} is not a finite number`);
      return `'${v}'`;
    }
    if (typeof v === "boolean") return v ? "'true'" : "'false'";
    if (typeof v === "string") return escapeLiteral(v);
    if (v instanceof Date) return escapeLiteral(v.toISOString());
    if (typeof v === "object") return escapeLiteral(JSON.stringify(v));
    throw new Error(`inlineParams: $${n} is a ${typeof v}`);
  });
}
