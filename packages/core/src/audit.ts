import { createHash } from "node:crypto";
import { type BatchStatement, type CommitStatement, commitWith, type Db, inlinePrepared, literalOf, prepared, type QueryResult, repo, type Tx } from "@bosun/db";
import { type Actor, auditActor } from "./actor";
import { newId } from "./ids";

export interface AuditEntry {
  action: string;
  targetType: string;
  targetId: string;
  before?: unknown;
  after?: unknown;
}

/**
 * Writes the audit event for a mutation, in the mutation's own transaction (unsealed: the
 * sealer chains it after the commit, see repo.sealAudit).
 */
export async function audit(tx: Db, actor: Actor, entry: AuditEntry, requestId?: string): Promise<void> {
  const input = { tenantId: actor.tenantId, id: newId("aud"), ...auditActor(actor), ...entry, requestId };
  const held = deferred.get(tx.$client);
  if (held) held.inputs.push(input);
  else await repo.appendAudits(tx, [input]);
}

/**
 * Audit events held back to the end of their transaction (see deferAudits), by connection,
 * with the count at each savepoint so a rollback to it drops the events written since.
 */
interface Held {
  inputs: repo.AuditInput[];
  writes: CommitStatement[];
  /** Statements to send ahead of the transaction's next one (sendWithNext). */
  withNext: string[];
  marks: Map<string, { inputs: number; writes: number }>;
}
const deferred = new WeakMap<object, Held>();

/** A SAVEPOINT notes how much is held; a ROLLBACK TO one drops what was held since. */
function markSavepoint(held: Held, text: string) {
  const m = SAVEPOINT.exec(text);
  if (!m) return;
  const name = m[2]!.replaceAll('"', "");
  const mark = held.marks.get(name);
  if (m[1]) {
    if (mark) {
      held.inputs.length = Math.min(held.inputs.length, mark.inputs);
      held.writes.length = Math.min(held.writes.length, mark.writes);
    }
  } else held.marks.set(name, { inputs: held.inputs.length, writes: held.writes.length });
}
const SAVEPOINT = /^\s*(rollback\s+to\s+)?savepoint\s+("?[\w$]+"?)\s*;?\s*$/i;

/**
 * Runs `fn` (the body of a transaction on `tx`, from withTenant or withSystem) and writes
 * the audit events it made at its end, in order, in one INSERT sent with the COMMIT
 * (`commitWith`): one round trip, and the events are adjacent in the chain. They are
 * written unsealed (no lock shared with the tenant's other transactions); the sealer
 * chains them after the commit (repo.sealAudit / sealPending). The events are the same, in
 * the same order, in the same transaction.
 */
export async function deferAudits<T>(tx: Db, fn: () => Promise<T>): Promise<T> {
  const client = tx.$client as unknown as { query: (...args: unknown[]) => unknown };
  if (deferred.has(client)) return fn();
  const held: Held = { inputs: [], writes: [], withNext: [], marks: new Map() };
  const own = Object.hasOwn(client, "query");
  const query = client.query;
  client.query = function (this: unknown, ...args: unknown[]) {
    const q = args[0] as string | { text?: unknown } | undefined;
    const text = typeof q === "string" ? q : typeof q?.text === "string" ? q.text : "";
    if (text.length < 200) markSavepoint(held, text);
    if (held.withNext.length === 0) return query.apply(this, args);
    // Statements queued by sendWithNext go first: in the same round trip when this is a
    // simple query (text, no parameters), else just ahead of it (the client keeps order).
    const ahead = held.withNext.splice(0);
    if (typeof q === "string" && args.length === 1) {
      return (query.call(this, `${ahead.join(";\n")};\n${q}`) as Promise<unknown>).then((r) => {
        const rest = (Array.isArray(r) ? r : [r]).slice(ahead.length);
        return rest.length === 1 ? rest[0] : rest;
      });
    }
    // Its error, if any, aborts the transaction: the next statement reports it.
    (query.call(this, ahead.join(";\n")) as Promise<unknown>).catch(() => {});
    return query.apply(this, args);
  };
  deferred.set(client, held);
  const restore = () => {
    deferred.delete(client);
    if (own) client.query = query;
    else delete (client as { query?: unknown }).query;
  };
  let result: T;
  try {
    result = await fn();
  } finally {
    restore();
  }
  // Nothing came after them: they open what goes with the COMMIT.
  for (const s of held.withNext.splice(0)) commitWith(tx as Tx, s);
  // Sent with the COMMIT: no round trip of its own.
  await repo.appendAudits(tx, held.inputs, { atCommit: true });
  for (const w of held.writes) commitWith(tx as Tx, w.sql, w.onResult);
  return result;
}

/** A name for a pg-boss statement's text (it differs by queue), hashed once per text. */
const jobStatementNames = new Map<string, string>();
function jobStatementName(text: string): string {
  let name = jobStatementNames.get(text);
  if (!name) {
    name = `bosun_b_job_${createHash("sha1").update(text).digest("hex").slice(0, 16)}`;
    jobStatementNames.set(text, name);
  }
  return name;
}

/**
 * A client for `jobs.enqueue` (pg-boss's insert) whose statement, inside deferAudits, goes
 * with the COMMIT (deferWrite): a wake costs no round trip of its own, and is dropped with
 * the work a rollback to an earlier savepoint undoes. Such a statement reports no rows,
 * so enqueue returns null rather than the job's id. Elsewhere: the transaction's client.
 */
export function atCommitClient(tx: Db): { $client: { query(text: string, values?: unknown[]): Promise<{ rows: never[] }> } } {
  return {
    $client: {
      query: async (text: string, values?: unknown[]) => {
        if (!deferred.has(tx.$client)) return (await tx.$client.query(text, values)) as unknown as { rows: never[] };
        // Prepared (its plan made once per connection), named by its text: pg-boss's SQL
        // differs by queue.
        await deferWrite(tx, prepared(jobStatementName(text), text, (values ?? []).map((v) => literalOf(v))));
        return { rows: [] };
      },
    },
  };
}

/**
 * A statement with no result to read (a SAVEPOINT), sent ahead of the transaction's next
 * statement, in its round trip when that is a simple query (see deferAudits), or with
 * the COMMIT when none comes; outside deferAudits it runs now.
 */
export async function sendWithNext(tx: Db, sql: string): Promise<void> {
  const held = deferred.get(tx.$client);
  if (!held) {
    await tx.$client.query(sql);
    return;
  }
  markSavepoint(held, sql);
  held.withNext.push(sql);
}

/**
 * A write that nothing later in the transaction reads back (an archived task result, a
 * run's last step): inside deferAudits it goes with the COMMIT, like the audit events (a
 * rollback to a savepoint taken before it drops it, as it would the row); elsewhere it
 * runs now. `onResult` gets its result once it has run (with the COMMIT: before the
 * transaction's caller goes on; never, if the transaction fails). `sql` carries escaped
 * literals.
 */
export async function deferWrite(tx: Db, sql: BatchStatement, onResult?: (result: QueryResult) => void): Promise<void> {
  const held = deferred.get(tx.$client);
  if (held) held.writes.push({ sql, onResult });
  else {
    const r = (await tx.$client.query(typeof sql === "string" ? sql : inlinePrepared(sql))) as unknown as QueryResult;
    onResult?.(r);
  }
}
