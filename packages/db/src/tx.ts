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
  const statements = opts.with ? (typeof opts.with.sql === "string" ? [opts.with.sql] : opts.with.sql) : [];
  return run(database, tenantBegin(tenantId), statements, fn, opts.with?.check);
}

export interface TenantTxOptions {
  /**
   * Statements sent with the BEGIN, in the same round trip (no parameters: literals escaped
   * by the caller, e.g. with pg's escapeLiteral). `check` sees their results, in order,
   * before `fn` runs, and may throw to roll the transaction back. For the statement every
   * transaction of a kind starts with (the runtime's lease fence): one round trip less each.
   */
  with?: { sql: string | BatchStatement[]; check: (results: pg.QueryResult[]) => void };
}

/**
 * A statement for a simple-protocol batch (with a BEGIN, or tenantStatements) that is
 * prepared once per connection (`PREPARE name AS text`, in the first batch that needs it)
 * and then run as `EXECUTE name(args)`: its plan is made once, as a named statement's is,
 * instead of for every batch (planning the runtime's batched statements cost more server
 * time than running them). `args`: escaped SQL literals, for `$1`, `$2`, ... in order.
 * Names share the connection's namespace with node-postgres's named statements: keep
 * them distinct (`bosun_b_...`).
 */
export interface PreparedStatement {
  name: string;
  text: string;
  args: string[];
}
export type BatchStatement = string | PreparedStatement;

export const prepared = (name: string, text: string, args: string[]): PreparedStatement => ({ name, text, args });

/** A prepared statement's text with its arguments in place: for a path too rare to prepare. */
export const inlinePrepared = (st: PreparedStatement): string =>
  st.text.replace(/\$(\d+)/g, (_, n: string) => {
    const arg = st.args[Number(n) - 1];
    if (arg === undefined) throw new Error(`${st.name}: no argument for $${n}`);
    return arg;
  });

/** What each connection has prepared (PREPARE lasts as long as the session, whatever its transaction does). */
const preparedOn = new WeakMap<object, Set<string>>();

/**
 * `statements` as SQL for `client`: the PREPAREs it still needs first (their results come
 * first too: `skip` of them), then each statement, EXECUTE for a prepared one. Call
 * `done` once the batch has run, so the names count as prepared; a batch that failed with
 * PREPAREs in it leaves the connection's state unknown: discard the connection.
 */
function renderBatch(client: object, statements: BatchStatement[]): { sql: string[]; skip: number; done: () => void } {
  const have = preparedOn.get(client) ?? new Set<string>();
  const prepares = new Map<string, string>();
  const sql = statements.map((st) => {
    if (typeof st === "string") return st;
    if (!have.has(st.name) && !prepares.has(st.name)) prepares.set(st.name, `PREPARE ${st.name} AS ${st.text}`);
    return `EXECUTE ${st.name}${st.args.length > 0 ? `(${st.args.join(", ")})` : ""}`;
  });
  return {
    sql: [...prepares.values(), ...sql],
    skip: prepares.size,
    done: () => {
      for (const name of prepares.keys()) have.add(name);
      preparedOn.set(client, have);
    },
  };
}

/** Runs `statements` on `client` in one round trip; their results, in order (PREPAREs left out). */
export async function queryBatch(client: pg.PoolClient, statements: BatchStatement[]): Promise<pg.QueryResult[]> {
  // What is prepared is kept per connection: a pool would hand each batch another one.
  if (client instanceof pg.Pool) throw new Error("queryBatch needs one connection (a transaction's client), not the pool");
  const b = renderBatch(client, statements);
  const r = (await client.query(b.sql.join(";\n"))) as unknown as pg.QueryResult | pg.QueryResult[];
  b.done();
  return (Array.isArray(r) ? r : [r]).slice(b.skip);
}

/** How many results a BEGIN of tenantBegin's (or a plain BEGIN) gives: BEGIN's, and the settings' if any. */
const beginResults = (begin: string) => begin.split(";").length;

function tenantBegin(tenantId: string): string {
  if (!TENANT_ID.test(tenantId)) throw new Error(`withTenant: malformed tenant id ${JSON.stringify(tenantId)}`);
  // SET LOCAL rather than a SELECT of set_config(): the same settings, but two utility
  // commands return no rows, so the transaction's first round trip carries no result set
  // to describe, send and parse (three times a task in the runtime).
  return `BEGIN; SET LOCAL role bosun_app; SET LOCAL bosun.tenant_id = '${tenantId}'`;
}

/**
 * A short transaction in one round trip: BEGIN as the tenant (RLS applies), the statements,
 * COMMIT, all in one simple-protocol query (literals escaped by the caller). Returns each
 * statement's result, in order. For a hot path's reads, or writes that need no decision
 * between them, that would otherwise cost a round trip each.
 */
export async function tenantStatements(database: Database, tenantId: string, statements: BatchStatement[]): Promise<pg.QueryResult[]> {
  const begin = tenantBegin(tenantId);
  const client: pg.PoolClient = await database.pool.connect();
  const b = renderBatch(client, statements);
  let broken = false;
  try {
    // The PREPAREs, BEGIN, the two settings, ..., COMMIT: the statements' results sit between them.
    const results = (await client.query([...b.sql.slice(0, b.skip), begin, ...b.sql.slice(b.skip), "COMMIT"].join(";\n"))) as unknown as pg.QueryResult[];
    b.done();
    const at = b.skip + beginResults(begin);
    return results.slice(at, at + statements.length);
  } catch (err) {
    // A failed statement leaves the transaction aborted: end it before the client goes back.
    await client.query("ROLLBACK").catch(() => {
      broken = true;
    });
    if (b.skip > 0) broken = true;
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
  return run(database, "BEGIN", [], fn);
}

/** A statement queued to go with the COMMIT, and who wants its result. */
export interface CommitStatement {
  sql: BatchStatement;
  onResult?: ((result: pg.QueryResult) => void) | undefined;
}

/** Statements to send with the COMMIT, in one round trip (see commitWith), by connection. */
const preludes = new WeakMap<object, CommitStatement[]>();

/**
 * Sends `sql` (no parameters: literals escaped by the caller) together with this
 * transaction's COMMIT, in one round trip, after everything else the transaction does.
 * For writes that nothing later in the transaction depends on (its audit events, the
 * run's last step): one round trip less. `onResult` gets the statement's result once it
 * has run, before the transaction's caller gets control back (it is not called if the
 * transaction fails). Only for transactions run by withTenant / withSystem.
 */
export function commitWith(tx: Tx, sql: BatchStatement, onResult?: (result: pg.QueryResult) => void): void {
  const prev = preludes.get(tx.$client);
  if (prev) prev.push({ sql, onResult });
  else preludes.set(tx.$client, [{ sql, onResult }]);
}

/** Takes back what commitWith queued (to run it now, before work that must come after it). */
export function takeCommitPrelude(tx: Tx): CommitStatement[] | undefined {
  const prelude = preludes.get(tx.$client);
  preludes.delete(tx.$client);
  return prelude;
}

/**
 * Runs queued statements (takeCommitPrelude's) on `client` in one round trip, then hands
 * each its result. `before`: SQL to send ahead of them (a held-back BEGIN: its results,
 * one per statement in it, are left out); `after`: statements to send after them.
 */
export async function runQueued(client: pg.PoolClient, queued: CommitStatement[], opts: { before?: string; after?: BatchStatement[] } = {}): Promise<void> {
  const ahead = opts.before === undefined ? [] : [opts.before];
  const results = await queryBatch(client, [...ahead, ...queued.map((q) => q.sql), ...(opts.after ?? [])]);
  const skip = opts.before === undefined ? 0 : beginResults(opts.before);
  for (const [i, q] of queued.entries()) q.onResult?.(results[skip + i]!);
}

async function run<T>(database: Database, begin: string, statements: BatchStatement[], fn: (tx: Tx) => Promise<T>, check?: (results: pg.QueryResult[]) => void): Promise<T> {
  const client: pg.PoolClient = await database.pool.connect();
  let broken = false;
  const lazy = statements.length === 0 ? lazyBegin(client, begin) : null;
  try {
    if (statements.length > 0) {
      // The PREPAREs the statements need, BEGIN and its settings, the statements: one round
      // trip; theirs are the results after BEGIN's and its settings'.
      const b = renderBatch(client, statements);
      let begun: pg.QueryResult[];
      try {
        begun = (await client.query([...b.sql.slice(0, b.skip), begin, ...b.sql.slice(b.skip)].join(";\n"))) as unknown as pg.QueryResult[];
      } catch (err) {
        if (b.skip > 0) broken = true;
        throw err;
      }
      b.done();
      check?.(begun.slice(b.skip + beginResults(begin)));
    }
    const result = await fn(bindClient(client));
    const unsent = lazy?.end() ?? null;
    const prelude = preludes.get(client);
    preludes.delete(client);
    // A failing prelude aborts the transaction before the COMMIT runs: the catch rolls back
    // (and a connection that was preparing statements is discarded).
    if (prelude) {
      try {
        await runQueued(client, prelude, { ...(unsent === null ? {} : { before: unsent }), after: ["COMMIT"] });
      } catch (err) {
        broken = true;
        throw err;
      }
    } else if (unsent === null) await client.query("COMMIT");
    // (A transaction that ran no statement has nothing to commit: its BEGIN was never sent.)
    return result;
  } catch (err) {
    preludes.delete(client);
    // A BEGIN still held back was never sent: there is nothing to roll back.
    const begun = lazy === null || lazy.end() === null;
    if (begun) {
      try {
        await client.query("ROLLBACK");
      } catch {
        broken = true;
      }
    }
    throw err;
  } finally {
    client.release(broken);
  }
}

/**
 * Holds a transaction's BEGIN back until its first statement, and sends it in that
 * statement's round trip when that is a simple query (text, no parameters): one round
 * trip less for a transaction that opens with one (a prepared statement's EXECUTE), else
 * just ahead of it. `end()` stops holding and returns the BEGIN if it was never sent.
 */
function lazyBegin(client: pg.PoolClient, begin: string) {
  const target = client as unknown as { query: (...args: unknown[]) => unknown };
  const own = Object.hasOwn(target, "query");
  const query = target.query;
  const count = beginResults(begin);
  let pending: string | null = begin;
  target.query = function (this: unknown, ...args: unknown[]) {
    if (pending === null) return query.apply(this, args);
    const b = pending;
    pending = null;
    const q = args[0];
    if (typeof q === "string" && args.length === 1) {
      return (query.call(this, `${b};\n${q}`) as Promise<unknown>).then((r) => {
        const rest = (Array.isArray(r) ? r : [r]).slice(count);
        return rest.length === 1 ? rest[0] : rest;
      });
    }
    // Its error, if any, aborts the transaction: the next statement reports it.
    (query.call(this, b) as Promise<unknown>).catch(() => {});
    return query.apply(this, args);
  };
  let ended = false;
  let unsent: string | null = null;
  return {
    end(): string | null {
      if (!ended) {
        ended = true;
        unsent = pending;
        pending = null;
        if (own) target.query = query;
        else delete (target as { query?: unknown }).query;
      }
      return unsent;
    },
  };
}

/**
 * A string as an escaped SQL literal. A NUL byte, which no Postgres text can hold, fails as
 * it would have as a parameter (SQLSTATE 22021): the API answers 422, not 500.
 */
export function textLiteral(s: string): string {
  if (s.includes("\u0000")) throw Object.assign(new Error('invalid byte sequence for encoding "UTF8": 0x00'), { code: "22021" });
  return escapeLiteral(s);
}

/**
 * A parameter value as an escaped SQL literal, for a prepared statement's arguments:
 * strings, numbers, booleans, null, dates, and objects (as JSON).
 */
export function literalOf(v: unknown, what = "value"): string {
  if (v === null || v === undefined) return "NULL";
  if (typeof v === "number") {
    if (!Number.isFinite(v)) throw new Error(`literalOf: ${what} is not a finite number`);
    return `'${v}'`;
  }
  if (typeof v === "boolean") return v ? "'true'" : "'false'";
  if (typeof v === "string") return textLiteral(v);
  if (v instanceof Date) return escapeLiteral(v.toISOString());
  if (typeof v === "object") return escapeLiteral(JSON.stringify(v));
  throw new Error(`literalOf: ${what} is a ${typeof v}`);
}
