import pg from "pg";
import type { Db } from "../client";
import { literalOf, type PreparedStatement, prepared } from "../tx";

/**
 * Agent memory (working items, the archive) and messaging queries. Plain SQL: the
 * working-memory limit depends on a lock and a sum being read in one place.
 */

export interface MemoryItemRow {
  id: string;
  agentId: string;
  layer: "working" | "archive";
  title: string;
  content: string;
  tokens: number;
  version: number;
  source: string;
  ref: string | null;
  createdAt: Date;
  updatedAt: Date;
  expiresAt: Date | null;
}

const ITEM_COLUMNS = `id, agent_id AS "agentId", layer, title, content, tokens, version, source, ref,
  created_at AS "createdAt", updated_at AS "updatedAt", expires_at AS "expiresAt"`;

/**
 * Serialises every working-memory write of one agent (the memory tool, operators, dream
 * cycles) for the rest of the transaction, so "sum of tokens + new item <= limit" cannot be
 * passed by two writers that each saw room for themselves.
 */
export async function lockAgentMemory(db: Db, { tenantId, agentId }: { tenantId: string; agentId: string }): Promise<void> {
  await db.$client.query(`SELECT pg_advisory_xact_lock(hashtextextended('bosun.memory:' || $1 || ':' || $2, 0))`, [tenantId, agentId]);
}

const ITEMS_LIMIT = 1000;

/** listItems's query, its parameters named by the caller (the prompt's combined read embeds it). */
const listItemsSql = (tenant: string, agent: string, layer: string, limit: string) =>
  `SELECT ${ITEM_COLUMNS} FROM memory_items WHERE tenant_id = ${tenant} AND agent_id = ${agent} AND layer = ${layer}
     AND (expires_at IS NULL OR expires_at > now()) ORDER BY created_at, id LIMIT ${limit}`;

export async function listItems(
  db: Db,
  { tenantId, agentId, layer, limit = ITEMS_LIMIT }: { tenantId: string; agentId: string; layer: "working" | "archive"; limit?: number },
): Promise<MemoryItemRow[]> {
  const { rows } = await db.$client.query<MemoryItemRow>(listItemsSql("$1", "$2", "$3", "$4"), [tenantId, agentId, layer, limit]);
  return rows;
}

export async function getItem(db: Db, { tenantId, agentId, id }: { tenantId: string; agentId: string; id: string }): Promise<MemoryItemRow | undefined> {
  const { rows } = await db.$client.query<MemoryItemRow>(
    `SELECT ${ITEM_COLUMNS} FROM memory_items WHERE tenant_id = $1 AND agent_id = $2 AND id = $3`,
    [tenantId, agentId, id],
  );
  return rows[0];
}

export async function usage(db: Db, { tenantId, agentId }: { tenantId: string; agentId: string }) {
  const { rows } = await db.$client.query<{ working_tokens: number; working_items: number; archive_items: number; archive_tokens: number }>(
    `SELECT coalesce(sum(tokens) FILTER (WHERE layer = 'working'), 0)::int AS working_tokens,
            count(*) FILTER (WHERE layer = 'working')::int AS working_items,
            count(*) FILTER (WHERE layer = 'archive')::int AS archive_items,
            coalesce(sum(tokens) FILTER (WHERE layer = 'archive'), 0)::int AS archive_tokens
     FROM memory_items WHERE tenant_id = $1 AND agent_id = $2 AND (expires_at IS NULL OR expires_at > now())`,
    [tenantId, agentId],
  );
  const r = rows[0]!;
  return { workingTokens: r.working_tokens, workingItems: r.working_items, archiveItems: r.archive_items, archiveTokens: r.archive_tokens };
}

export async function insertItem(db: Db, i: NewItem): Promise<MemoryItemRow> {
  const { rows } = await db.$client.query<MemoryItemRow>(`${ITEM_INSERT} RETURNING ${ITEM_COLUMNS}`, itemValues(i));
  return rows[0]!;
}

/**
 * insertItem as a prepared statement whose result nobody reads: for a write that goes
 * with the transaction's COMMIT (deferWrite) rather than costing a round trip.
 */
export const insertItemStatement = (i: NewItem): PreparedStatement =>
  prepared("bosun_b_memory_item_insert", ITEM_INSERT, itemValues(i).map((v) => literalOf(v)));

type NewItem = Pick<MemoryItemRow, "id" | "agentId" | "layer" | "title" | "content" | "tokens" | "source" | "ref"> & { tenantId: string; retentionDays: number | null };

const ITEM_INSERT = `INSERT INTO memory_items (tenant_id, id, agent_id, layer, title, content, tokens, source, ref, expires_at)
     VALUES ($1::text, $2::text, $3::text, $4::text, $5::text, $6::text, $7::int, $8::text, $9::text,
             CASE WHEN $10::int IS NULL THEN NULL ELSE now() + make_interval(days => $10::int) END)`;

const itemValues = (i: NewItem) => [i.tenantId, i.id, i.agentId, i.layer, i.title, i.content, i.tokens, i.source, i.ref, i.retentionDays];

/** Replaces an item's text if it is still at `version`; undefined when it moved on or is gone. */
export async function replaceItem(
  db: Db,
  p: { tenantId: string; agentId: string; id: string; version: number; title: string; content: string; tokens: number; source: string },
): Promise<MemoryItemRow | undefined> {
  const { rows } = await db.$client.query<MemoryItemRow>(
    `UPDATE memory_items SET title = $5, content = $6, tokens = $7, source = $8, version = version + 1, updated_at = now()
     WHERE tenant_id = $1 AND agent_id = $2 AND id = $3 AND version = $4 AND layer = 'working' RETURNING ${ITEM_COLUMNS}`,
    [p.tenantId, p.agentId, p.id, p.version, p.title, p.content, p.tokens, p.source],
  );
  return rows[0];
}

/** Moves a working item to the archive (retired, searchable until it expires), if still at `version`. */
export async function archiveItem(
  db: Db,
  p: { tenantId: string; agentId: string; id: string; version: number; retentionDays: number },
): Promise<MemoryItemRow | undefined> {
  const { rows } = await db.$client.query<MemoryItemRow>(
    `UPDATE memory_items SET layer = 'archive', version = version + 1, updated_at = now(), expires_at = now() + make_interval(days => $5::int)
     WHERE tenant_id = $1 AND agent_id = $2 AND id = $3 AND version = $4 AND layer = 'working' RETURNING ${ITEM_COLUMNS}`,
    [p.tenantId, p.agentId, p.id, p.version, p.retentionDays],
  );
  return rows[0];
}

/** Deletes an item if still at `version`. */
export async function deleteItem(db: Db, p: { tenantId: string; agentId: string; id: string; version: number }): Promise<boolean> {
  const { rowCount } = await db.$client.query(`DELETE FROM memory_items WHERE tenant_id = $1 AND agent_id = $2 AND id = $3 AND version = $4`, [
    p.tenantId,
    p.agentId,
    p.id,
    p.version,
  ]);
  return rowCount === 1;
}

export interface SearchHit extends MemoryItemRow {
  rank: number;
}

/**
 * searchArchive's query, its parameters named by the caller. It reads the agent's archive
 * by memory_items_agent_idx and matches each item's stored `search` vector: in the
 * tenant's transaction (row-level security) Postgres takes only leakproof operators as
 * index conditions, and `@@` is not one, so a full-text index could not serve it (there
 * is none: migration 0019).
 */
export const searchArchiveSql = (tenant: string, agent: string, query: string, limit: string) =>
  `SELECT ${ITEM_COLUMNS}, ts_rank(search, q)::float8 AS rank
   FROM memory_items, websearch_to_tsquery('english', ${query}) q
   WHERE tenant_id = ${tenant} AND agent_id = ${agent} AND layer = 'archive' AND search @@ q AND (expires_at IS NULL OR expires_at > now())
   ORDER BY rank DESC, created_at DESC LIMIT ${limit}`;

/** Full text search over the agent's archive (websearch syntax: words, "phrases", -not, or). */
export async function searchArchive(db: Db, p: { tenantId: string; agentId: string; query: string; limit: number }): Promise<SearchHit[]> {
  const { rows } = await db.$client.query<SearchHit>(searchArchiveSql("$1", "$2", "$3", "$4"), [p.tenantId, p.agentId, p.query, p.limit]);
  return rows;
}

/**
 * Counts a working-memory change toward the next dream (its "debt") and, if none is set,
 * schedules the nightly dream: the next `memory.dream.hour` (default 3) o'clock in the
 * tenant's time zone, computed by Postgres so daylight-saving days come out right.
 */
export async function noteChange(db: Db, { tenantId, agentId }: { tenantId: string; agentId: string }): Promise<void> {
  await db.$client.query(
    `WITH p AS (
       SELECT t.time_zone AS tz, coalesce((a.descriptor->'spec'->'memory'->'dream'->>'hour')::int, 3) AS h
       FROM agents a JOIN tenants t ON t.id = a.tenant_id WHERE a.tenant_id = $1 AND a.id = $2)
     INSERT INTO agent_memory (tenant_id, agent_id, changes_since_dream, next_dream_at)
     SELECT $1, $2, 1, (date_trunc('day', now() AT TIME ZONE p.tz - make_interval(hours => p.h)) + interval '1 day' + make_interval(hours => p.h)) AT TIME ZONE p.tz FROM p
     ON CONFLICT (tenant_id, agent_id) DO UPDATE SET changes_since_dream = agent_memory.changes_since_dream + 1,
       next_dream_at = coalesce(agent_memory.next_dream_at, excluded.next_dream_at), updated_at = now()`,
    [tenantId, agentId],
  );
}

export interface AgentMemoryRow {
  changesSinceDream: number;
  lastDreamAt: Date | null;
  lastDreamRunId: string | null;
  nextDreamAt: Date | null;
}

export async function getAgentMemory(db: Db, { tenantId, agentId }: { tenantId: string; agentId: string }): Promise<AgentMemoryRow | undefined> {
  const { rows } = await db.$client.query<AgentMemoryRow>(
    `SELECT changes_since_dream AS "changesSinceDream", last_dream_at AS "lastDreamAt", last_dream_run_id AS "lastDreamRunId", next_dream_at AS "nextDreamAt"
     FROM agent_memory WHERE tenant_id = $1 AND agent_id = $2`,
    [tenantId, agentId],
  );
  return rows[0];
}

/** Deletes expired archive items across tenants (system sweep), in batches. */
export async function deleteExpired(db: Db, limit: number): Promise<number> {
  const { rowCount } = await db.$client.query(
    `DELETE FROM memory_items m USING (SELECT tenant_id, id FROM memory_items WHERE expires_at <= now() LIMIT $1 FOR UPDATE SKIP LOCKED) x
     WHERE m.tenant_id = x.tenant_id AND m.id = x.id`,
    [limit],
  );
  return rowCount ?? 0;
}

// ---------------------------------------------------------------------------------------
// Messaging

export interface MessageRow {
  id: string;
  toAgentId: string | null;
  toType: string;
  toId: string | null;
  fromType: string;
  fromId: string;
  body: string;
  threadId: string | null;
  replyTo: string | null;
  broadcastId: string | null;
  readAt: Date | null;
  createdAt: Date;
}

const MSG_COLUMNS = `id, to_agent_id AS "toAgentId", to_type AS "toType", to_id AS "toId", from_type AS "fromType", from_id AS "fromId", body,
  thread_id AS "threadId", reply_to AS "replyTo", broadcast_id AS "broadcastId", read_at AS "readAt", created_at AS "createdAt"`;

export async function insertMessage(
  db: Db,
  m: { tenantId: string; id: string; toAgentId: string | null; toType: string; toId: string; fromType: string; fromId: string; body: string; threadId: string; replyTo: string | null },
): Promise<MessageRow> {
  const { rows } = await db.$client.query<MessageRow>(
    `INSERT INTO messages (tenant_id, id, to_agent_id, to_type, to_id, from_type, from_id, body, thread_id, reply_to)
     VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) RETURNING ${MSG_COLUMNS}`,
    [m.tenantId, m.id, m.toAgentId, m.toType, m.toId, m.fromType, m.fromId, m.body, m.threadId, m.replyTo],
  );
  return rows[0]!;
}

/** Active agents a broadcast goes to (all but the sender), at most `limit` + 1 to detect too many. */
export async function broadcastRecipients(db: Db, { tenantId, excludeAgentId, limit }: { tenantId: string; excludeAgentId: string | null; limit: number }) {
  const { rows } = await db.$client.query<{ id: string }>(
    `SELECT id FROM agents WHERE tenant_id = $1 AND status = 'active' AND id IS DISTINCT FROM $2 ORDER BY id LIMIT $3`,
    [tenantId, excludeAgentId, limit + 1],
  );
  return rows.map((r) => r.id);
}

/**
 * A broadcast: one row per recipient, each with its own unread state, sharing
 * `broadcast_id`, all in the broadcast's thread (thread id = the broadcast id).
 */
export async function insertBroadcast(
  db: Db,
  m: { tenantId: string; broadcastId: string; ids: string[]; agentIds: string[]; fromType: string; fromId: string; body: string },
): Promise<void> {
  await db.$client.query(
    `INSERT INTO messages (tenant_id, id, to_agent_id, to_type, to_id, from_type, from_id, body, thread_id, broadcast_id)
     SELECT $1, x.id, x.agent, 'agent', x.agent, $4, $5, $6, $7, $7 FROM unnest($2::text[], $3::text[]) AS x(id, agent)`,
    [m.tenantId, m.ids, m.agentIds, m.fromType, m.fromId, m.body, m.broadcastId],
  );
}

export async function getMessage(db: Db, { tenantId, id }: { tenantId: string; id: string }): Promise<MessageRow | undefined> {
  const { rows } = await db.$client.query<MessageRow>(`SELECT ${MSG_COLUMNS} FROM messages WHERE tenant_id = $1 AND id = $2`, [tenantId, id]);
  return rows[0];
}

export async function listMessages(
  db: Db,
  q: { tenantId: string; limit: number; before?: string | undefined; agentId?: string | undefined; threadId?: string | undefined; unread?: boolean | undefined },
): Promise<MessageRow[]> {
  const where = ["tenant_id = $1"];
  const values: unknown[] = [q.tenantId, q.limit];
  if (q.before) where.push(`id < $${values.push(q.before)}`);
  if (q.agentId) {
    const i = values.push(q.agentId);
    where.push(`(to_agent_id = $${i} OR (from_type = 'agent' AND from_id = $${i}))`);
  }
  if (q.threadId) where.push(`thread_id = $${values.push(q.threadId)}`);
  if (q.unread) where.push(`read_at IS NULL AND to_agent_id IS NOT NULL`);
  const { rows } = await db.$client.query<MessageRow>(
    `SELECT ${MSG_COLUMNS} FROM messages WHERE ${where.join(" AND ")} ORDER BY id DESC LIMIT $2`,
    values,
  );
  return rows;
}

/** A thread's messages in order (a broadcast's copies count once: the first copy). */
export async function threadMessages(db: Db, { tenantId, threadId, limit }: { tenantId: string; threadId: string; limit: number }): Promise<MessageRow[]> {
  const { rows } = await db.$client.query<MessageRow>(
    `SELECT ${MSG_COLUMNS} FROM (
       SELECT DISTINCT ON (coalesce(broadcast_id, id)) * FROM messages WHERE tenant_id = $1 AND thread_id = $2
       ORDER BY coalesce(broadcast_id, id), id) m
     ORDER BY created_at, id LIMIT $3`,
    [tenantId, threadId, limit],
  );
  return rows;
}

const peekUnreadSql = (tenant: string, agent: string, limit: string) =>
  `SELECT ${MSG_COLUMNS} FROM messages WHERE tenant_id = ${tenant} AND to_agent_id = ${agent} AND read_at IS NULL ORDER BY created_at, id LIMIT ${limit}`;

/** Unread messages of an agent, oldest first, without marking them read. */
export async function peekUnread(db: Db, { tenantId, agentId, limit }: { tenantId: string; agentId: string; limit: number }): Promise<MessageRow[]> {
  const { rows } = await db.$client.query<MessageRow>(peekUnreadSql("$1", "$2", "$3"), [tenantId, agentId, limit]);
  return rows;
}

/**
 * Open threads of an agent: threads of the last `days` days that it received a message in
 * and whose newest message is not its own (someone is waiting on it), newest first. A
 * thread whose newest message is still unread for the agent is left out: the active
 * context lists it among the unread messages already.
 */
export async function openThreads(db: Db, { tenantId, agentId, days, limit }: { tenantId: string; agentId: string; days: number; limit: number }) {
  const { rows } = await db.$client.query<{ threadId: string; last: MessageRow }>(openThreadsSql("$1", "$2", "$3", "$4"), [tenantId, agentId, days, limit]);
  return rows.map(openThread);
}

/**
 * openThreads's query. Threads whose last messages share a timestamp (one transaction's
 * messages do) are ordered by thread id, so the order and the LIMIT's cut are the same
 * wherever the query is embedded.
 */
const openThreadsSql = (tenant: string, agent: string, days: string, limit: string) =>
  `SELECT t.thread_id AS "threadId", row_to_json(last) AS last FROM (
     SELECT DISTINCT thread_id FROM messages
     WHERE tenant_id = ${tenant} AND to_agent_id = ${agent} AND thread_id IS NOT NULL AND created_at > now() - make_interval(days => ${days}::int)) t
   CROSS JOIN LATERAL (
     SELECT id, from_type AS "fromType", from_id AS "fromId", body, created_at AS "createdAt", to_agent_id, read_at FROM messages m
     WHERE m.tenant_id = ${tenant} AND m.thread_id = t.thread_id ORDER BY created_at DESC, id DESC LIMIT 1) last
   WHERE NOT (last."fromType" = 'agent' AND last."fromId" = ${agent}) AND NOT (last.to_agent_id = ${agent} AND last.read_at IS NULL)
   ORDER BY last."createdAt" DESC, t.thread_id DESC LIMIT ${limit}`;

const openThread = (r: { threadId: string; last: MessageRow }) => ({
  threadId: r.threadId,
  last: { ...r.last, createdAt: new Date(r.last.createdAt as unknown as string) },
});

export interface PendingProposal {
  id: string;
  title: string;
  /** The agent was asked and has taken a stance. */
  responded: boolean;
}

/**
 * Open proposals an agent was asked about or made, newest first, marked when it has
 * answered (an asked agent has a response row from the start, with no stance until it
 * responds).
 */
export async function pendingProposals(db: Db, { tenantId, agentId, limit }: { tenantId: string; agentId: string; limit: number }): Promise<PendingProposal[]> {
  const { rows } = await db.$client.query<PendingProposal>(pendingProposalsSql("$1", "$2", "$3"), [tenantId, agentId, limit]);
  return rows;
}

const pendingProposalsSql = (tenant: string, agent: string, limit: string) =>
  `SELECT p.id, p.title, coalesce(r.stance IS NOT NULL, false) AS responded
   FROM proposals p
   LEFT JOIN proposal_responses r ON r.tenant_id = p.tenant_id AND r.proposal_id = p.id AND r.agent_id = ${agent}
   WHERE p.tenant_id = ${tenant} AND p.status = 'open' AND (r.agent_id IS NOT NULL OR p.proposer_agent_id = ${agent})
   ORDER BY p.id DESC LIMIT ${limit}`;

export interface PromptReads {
  working: MemoryItemRow[];
  unread: MessageRow[];
  threads: ReturnType<typeof openThread>[];
  proposals: PendingProposal[];
}

/**
 * Everything a run's prompt reads, in one round trip: working memory (listItems), and
 * with `withContext` the active context's unread messages (peekUnread), open threads
 * (openThreads) and pending proposals (pendingProposals). Each layer is the same query as
 * its own function, aggregated to json in the same order; without `withContext` only
 * working memory is read (the other layers' subqueries sit in CASE branches not taken).
 */
export async function promptReads(
  db: Db,
  p: PromptReadsParams,
): Promise<PromptReads> {
  const { rows } = await db.$client.query<PromptReadsRow>({
    name: "bosun_memory_prompt_reads",
    text: promptReadsSql(["$1", "$2", "$3", "$4", "$5", "$6", "$7"]),
    values: [p.tenantId, p.agentId, p.withContext, p.unreadLimit, p.threadDays, p.threadLimit, p.proposalLimit],
  });
  return promptReadsRow(rows[0]!);
}

/**
 * promptReads as a prepared statement, to send with a transaction's BEGIN; promptReadsFrom
 * reads its result. `onlyIf`: an SQL condition (named, for the statement's name); when
 * false, no row (and nothing read).
 */
export function promptReadsRead(p: PromptReadsParams, onlyIf?: { name: string; sql: string }): PreparedStatement {
  const n = (v: number) => `'${Math.trunc(v)}'`;
  return prepared(
    `bosun_b_memory_prompt_reads${onlyIf ? `_if_${onlyIf.name}` : ""}`,
    promptReadsSql(["$1::text", "$2::text", "$3", "$4::int", "$5::int", "$6::int", "$7::int"]) + (onlyIf ? `\n     WHERE ${onlyIf.sql}` : ""),
    [pg.escapeLiteral(p.tenantId), pg.escapeLiteral(p.agentId), p.withContext ? "true" : "false", n(p.unreadLimit), n(p.threadDays), n(p.threadLimit), n(p.proposalLimit)],
  );
}

export const promptReadsFrom = (r: pg.QueryResult): PromptReads => promptReadsRow(r.rows[0] as PromptReadsRow);

interface PromptReadsParams {
  tenantId: string;
  agentId: string;
  withContext: boolean;
  unreadLimit: number;
  threadDays: number;
  threadLimit: number;
  proposalLimit: number;
}
type PromptReadsRow = { working: Json[]; unread: Json[]; threads: { threadId: string; last: MessageRow }[]; proposals: PendingProposal[] };

/** `a`: SQL expressions for the tenant, the agent, withContext and the four limits, in that order. */
function promptReadsSql(a: string[]): string {
  const [tenant, agent, withContext, unreadLimit, threadDays, threadLimit, proposalLimit] = a as [string, string, string, string, string, string, string];
  const layer = (sql: string, order: string) => `(SELECT coalesce(json_agg(x ORDER BY ${order}), '[]') FROM (${sql}) x)`;
  const context = (sql: string) => `CASE WHEN ${withContext}::boolean THEN ${sql} ELSE '[]'::json END`;
  return `SELECT ${layer(listItemsSql(tenant, agent, "'working'", String(ITEMS_LIMIT)), `x."createdAt", x.id`)} AS working,
            ${context(layer(peekUnreadSql(tenant, agent, unreadLimit), `x."createdAt", x.id`))} AS unread,
            ${context(layer(openThreadsSql(tenant, agent, threadDays, threadLimit), `(x.last->>'createdAt')::timestamptz DESC, x."threadId" DESC`))} AS threads,
            ${context(layer(pendingProposalsSql(tenant, agent, proposalLimit), "x.id DESC"))} AS proposals`;
}

function promptReadsRow(r: PromptReadsRow): PromptReads {
  const date = (v: unknown) => (v === null ? null : new Date(v as string));
  return {
    working: r.working.map((i) => ({ ...i, createdAt: date(i.createdAt), updatedAt: date(i.updatedAt), expiresAt: date(i.expiresAt) }) as MemoryItemRow),
    unread: r.unread.map((m) => ({ ...m, readAt: date(m.readAt), createdAt: date(m.createdAt) }) as MessageRow),
    threads: r.threads.map(openThread),
    proposals: r.proposals,
  };
}

type Json = Record<string, unknown>;

// ---------------------------------------------------------------------------------------
// Drives and autonomy

/**
 * SQL: does the agent (row alias `a`, with its descriptor) have a drive due? A drive is due
 * when it has no state row yet or its `next_due_at` has come; autonomy `none` never is.
 */
export const driveDueExists = (agent: string) => `(coalesce(${agent}.descriptor->'spec'->'autonomy'->>'level', 'propose') <> 'none' AND EXISTS (
  SELECT 1 FROM jsonb_array_elements(coalesce(${agent}.descriptor->'spec'->'drives', '[]'::jsonb)) d
  WHERE NOT EXISTS (SELECT 1 FROM agent_drives s WHERE s.tenant_id = ${agent}.tenant_id AND s.agent_id = ${agent}.id
                      AND s.name = d->>'name' AND s.next_due_at > now())))`;

/** Drives of an agent that are not due (their next consultation is still ahead). */
export async function drivesNotDue(db: Db, { tenantId, agentId }: { tenantId: string; agentId: string }): Promise<Set<string>> {
  const { rows } = await db.$client.query<{ name: string }>(
    `SELECT name FROM agent_drives WHERE tenant_id = $1 AND agent_id = $2 AND next_due_at > now()`,
    [tenantId, agentId],
  );
  return new Set(rows.map((r) => r.name));
}

/** Claims a due drive for a consultation (moving it `everySeconds` ahead); false if someone else did. */
export async function claimDrive(db: Db, p: { tenantId: string; agentId: string; name: string; everySeconds: number; runId: string }): Promise<boolean> {
  const { rowCount } = await db.$client.query(
    `INSERT INTO agent_drives (tenant_id, agent_id, name, next_due_at, last_consulted_at, last_run_id)
     VALUES ($1, $2, $3, now() + make_interval(secs => $4), now(), $5)
     ON CONFLICT (tenant_id, agent_id, name) DO UPDATE SET next_due_at = excluded.next_due_at, last_consulted_at = now(), last_run_id = $5
       WHERE agent_drives.next_due_at <= now()`,
    [p.tenantId, p.agentId, p.name, p.everySeconds, p.runId],
  );
  return rowCount === 1;
}

/**
 * Counts one self-initiated task toward today's cap (the tenant's local day) if there is
 * room, in one statement: the conflicting row is locked and the cap re-checked on its newest
 * version, so concurrent runs can never pass `cap`. Returns the new count, or null when full.
 */
export async function takeTaskAllowance(db: Db, p: { tenantId: string; agentId: string; cap: number }): Promise<number | null> {
  const { rows } = await db.$client.query<{ n: number }>(
    `INSERT INTO autonomy_days (tenant_id, agent_id, day, tasks_created)
     SELECT $1, $2, (now() AT TIME ZONE t.time_zone)::date, 1 FROM tenants t WHERE t.id = $1 AND $3::int > 0
     ON CONFLICT (tenant_id, agent_id, day) DO UPDATE SET tasks_created = autonomy_days.tasks_created + 1
       WHERE autonomy_days.tasks_created < $3::int
     RETURNING tasks_created AS n`,
    [p.tenantId, p.agentId, p.cap],
  );
  return rows[0]?.n ?? null;
}
