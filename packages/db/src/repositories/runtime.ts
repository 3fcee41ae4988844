import pg from "pg";
import type { Db } from "../client";
import { type BatchStatement, inlinePrepared, literalOf, type PreparedStatement, prepared, textLiteral } from "../tx";
import { claimableTaskExists, claimableWhere, keyedStatus } from "./tasks";

/**
 * The agent runtime's queries: session leases, runs, steps, waitpoints and messages.
 * Plain SQL: these statements are the execution plane's hot path and their locking is
 * the point, so they are spelled out rather than built. The busiest are named (prepared
 * once per connection): planning them each time cost as much as running them. Those sent
 * in one round trip with a BEGIN (`...Statements`, `...With`, `...Read`) carry escaped
 * literals instead, as a simple-protocol query must.
 */

export interface Fence {
  tenantId: string;
  agentId: string;
  owner: string;
  epoch: number;
}

export class LeaseLostError extends Error {
  constructor(f: Fence) {
    super(`lease on agent ${f.agentId} (epoch ${f.epoch}) is no longer held by ${f.owner}`);
    this.name = "LeaseLostError";
  }
}

/**
 * Takes the agent's session lease if it is free or expired, in one statement; otherwise
 * marks the session as wanted, so that the holder, when it releases, sees the mark and
 * wakes the agent again. One statement matters: "try, then mark" as two could let the
 * holder release in between and lose the wake-up. (The INSERT before it creates the
 * session on first use.) Escaped literals: sent in one round trip with tenantStatements;
 * `acquiredEpoch` reads the UPDATE's result.
 */
export function acquireOrMarkStatements({ tenantId, agentId, owner, ttlSeconds }: { tenantId: string; agentId: string; owner: string; ttlSeconds: number }): PreparedStatement[] {
  const [t, a] = [pg.escapeLiteral(tenantId), pg.escapeLiteral(agentId)];
  return [
    prepared("bosun_b_session_ensure", "INSERT INTO agent_sessions (tenant_id, agent_id) VALUES ($1, $2) ON CONFLICT DO NOTHING", [t, a]),
    prepared(
      "bosun_b_session_acquire_or_mark",
      `UPDATE agent_sessions s SET
        lease_owner      = CASE WHEN f.free THEN $3::text ELSE s.lease_owner END,
        lease_epoch      = CASE WHEN f.free THEN s.lease_epoch + 1 ELSE s.lease_epoch END,
        lease_expires_at = CASE WHEN f.free THEN now() + make_interval(secs => $4::float8) ELSE s.lease_expires_at END,
        wake_requested_at = CASE WHEN f.free THEN NULL ELSE now() END
     FROM (SELECT tenant_id, agent_id, (lease_owner IS NULL OR lease_expires_at < now()) AS free
           FROM agent_sessions WHERE tenant_id = $1 AND agent_id = $2 FOR UPDATE) f
     WHERE s.tenant_id = f.tenant_id AND s.agent_id = f.agent_id
     RETURNING f.free AS acquired, s.lease_epoch`,
      [t, a, pg.escapeLiteral(owner), `'${Number(ttlSeconds)}'`],
    ),
  ];
}

/** The epoch acquireOrMark's UPDATE took, or null when the lease was held (and the session marked). */
export function acquiredEpoch(r: pg.QueryResult | undefined): number | null {
  const row = r?.rows[0] as { acquired?: boolean; lease_epoch?: string } | undefined;
  return row?.acquired ? Number(row.lease_epoch) : null;
}

/**
 * The fence at the start of every write of a run: it checks the lease is still ours,
 * row-locks the session until the transaction ends, so no one can take the lease while
 * this write is in flight, and extends the lease when a sixth of its time or more has gone
 * by since it was last extended; `check` throws LeaseLostError if the lease is not ours.
 * Sent with the transaction's BEGIN (withTenant's `with`): one round trip less for every
 * write of a run. The values are escaped literals.
 *
 * Why not extend it every time: a run writes a few times a second, and an extension is an
 * UPDATE of `lease_expires_at`, which the lease index holds, so each one wrote a new row
 * version and two index entries. A lock alone writes neither. The heartbeat (every third
 * of the TTL) still always extends, so a lease held by a working run never has less than
 * two thirds of its TTL left, as before.
 */
export function fenceWith(f: Fence, ttlSeconds: number): { sql: BatchStatement[]; check: (results: pg.QueryResult[]) => void } {
  const lit = pg.escapeLiteral;
  return {
    sql: [
      prepared(
        "bosun_b_fence",
        `WITH s AS (
           SELECT tenant_id, agent_id, lease_expires_at < now() + make_interval(secs => $5::float8 * 5 / 6) AS due FROM agent_sessions
           WHERE tenant_id = $1 AND agent_id = $2 AND lease_owner = $3 AND lease_epoch = $4::bigint FOR NO KEY UPDATE),
         extended AS (
           UPDATE agent_sessions a SET lease_expires_at = greatest(a.lease_expires_at, now() + make_interval(secs => $5::float8))
           FROM s WHERE s.due AND a.tenant_id = s.tenant_id AND a.agent_id = s.agent_id)
         SELECT 1 AS held FROM s`,
        [lit(f.tenantId), lit(f.agentId), lit(f.owner), `'${Math.trunc(f.epoch)}'`, `'${Number(ttlSeconds)}'`],
      ),
    ],
    check: (results) => {
      if (results[0]?.rowCount !== 1) throw new LeaseLostError(f);
    },
  };
}

/**
 * What a run's next turn is decided from, in one round trip: its step log from step
 * `fromSeq` on (the caller has the ones before: steps are never changed once written), the
 * run row (an operator may have cancelled it) and its waitpoints, read as the tenant.
 */
export function runStateReads({ tenantId, runId, fromSeq = 0 }: { tenantId: string; runId: string; fromSeq?: number }): BatchStatement[] {
  const args = [pg.escapeLiteral(tenantId), pg.escapeLiteral(runId)];
  return [
    prepared("bosun_b_run_steps", `SELECT ${STEP_COLUMNS} FROM steps WHERE tenant_id = $1 AND run_id = $2 AND seq >= $3::int ORDER BY seq`, [
      ...args,
      `'${Math.trunc(fromSeq)}'`,
    ]),
    prepared("bosun_b_run", `SELECT ${RUN_COLUMNS} FROM runs WHERE tenant_id = $1 AND id = $2`, args),
    prepared("bosun_b_run_waitpoints", `SELECT ${WP_COLUMNS} FROM waitpoints WHERE tenant_id = $1 AND run_id = $2 ORDER BY created_at`, args),
  ];
}

/** A run's status, as a statement (escaped literals) returning `status`. */
export const runStatusRead = (tenantId: string, runId: string) =>
  prepared("bosun_b_run_status", "SELECT status FROM runs WHERE tenant_id = $1 AND id = $2", [pg.escapeLiteral(tenantId), pg.escapeLiteral(runId)]);

/** Releases the lease; returns whether something asked for the agent meanwhile. */
export async function releaseLease(db: Db, f: Fence): Promise<{ released: boolean; wakeRequested: boolean }> {
  return released(await db.$client.query(inlinePrepared(releaseLeaseStatement(f))));
}

/** releaseLease as a statement (escaped literals), to send with a transaction's BEGIN. */
export function releaseLeaseStatement(f: Fence): PreparedStatement {
  const lit = pg.escapeLiteral;
  // The locking subquery reads the newest version of the row (a plain subquery would read
  // the statement's snapshot and could miss a mark committed while we waited for the lock).
  return prepared(
    "bosun_b_release_lease",
    `UPDATE agent_sessions s SET lease_owner = NULL, lease_expires_at = NULL, wake_requested_at = NULL, last_run_at = now()
     FROM (SELECT tenant_id, agent_id, wake_requested_at FROM agent_sessions
           WHERE tenant_id = $1 AND agent_id = $2 AND lease_owner = $3 AND lease_epoch = $4::bigint FOR UPDATE) old
     WHERE s.tenant_id = old.tenant_id AND s.agent_id = old.agent_id
     RETURNING old.wake_requested_at IS NOT NULL AS wake`,
    [lit(f.tenantId), lit(f.agentId), lit(f.owner), `'${Math.trunc(f.epoch)}'`],
  );
}

export function released(r: pg.QueryResult | undefined): { released: boolean; wakeRequested: boolean } {
  const row = r?.rows[0] as { wake: boolean } | undefined;
  return row ? { released: true, wakeRequested: row.wake } : { released: false, wakeRequested: false };
}

export interface RunRow {
  tenantId: string;
  id: string;
  agentId: string;
  taskId: string | null;
  parentRunId: string | null;
  rootRunId: string;
  traceparent: string;
  trigger: string;
  status: "running" | "waiting" | "succeeded" | "failed" | "cancelled";
  model: string | null;
  stepCount: number;
  inputTokens: number;
  outputTokens: number;
  limits: { maxSteps: number; maxTokens: number; maxWallMs: number };
  input: unknown;
  result: unknown;
  error: unknown;
  createdAt: Date;
  startedAt: Date | null;
  endedAt: Date | null;
}

const RUN_COLUMNS = `tenant_id AS "tenantId", id, agent_id AS "agentId", task_id AS "taskId", parent_run_id AS "parentRunId",
  root_run_id AS "rootRunId", traceparent, trigger, status, model, step_count AS "stepCount",
  input_tokens::float8 AS "inputTokens", output_tokens::float8 AS "outputTokens", limits, input, result, error,
  created_at AS "createdAt", started_at AS "startedAt", ended_at AS "endedAt"`;

export async function insertRun(
  db: Db,
  r: Pick<RunRow, "tenantId" | "id" | "agentId" | "taskId" | "parentRunId" | "rootRunId" | "traceparent" | "trigger" | "limits" | "input"> & {
    status?: RunRow["status"];
    /** A run the caller starts executing now (rather than one queued for a wake). */
    started?: boolean;
  },
): Promise<RunRow> {
  const { rows } = await db.$client.query<RunRow>(
    `INSERT INTO runs (tenant_id, id, agent_id, task_id, parent_run_id, root_run_id, traceparent, trigger, status, limits, input, started_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, CASE WHEN $12 THEN now() END) RETURNING ${RUN_COLUMNS}`,
    [r.tenantId, r.id, r.agentId, r.taskId, r.parentRunId, r.rootRunId, r.traceparent, r.trigger, r.status ?? "running", r.limits, JSON.stringify(r.input ?? null), r.started ?? false],
  );
  return rows[0]!;
}

export async function getRun(db: Db, { tenantId, runId }: { tenantId: string; runId: string }): Promise<RunRow | undefined> {
  const { rows } = await db.$client.query<RunRow>(`SELECT ${RUN_COLUMNS} FROM runs WHERE tenant_id = $1 AND id = $2`, [tenantId, runId]);
  return rows[0];
}

export async function listRuns(
  db: Db,
  q: { tenantId: string; limit: number; before?: string | undefined; agentId?: string | undefined; status?: string | undefined; rootRunId?: string | undefined },
): Promise<RunRow[]> {
  const where = ["tenant_id = $1"];
  const values: unknown[] = [q.tenantId, q.limit];
  if (q.before) where.push(`id < $${values.push(q.before)}`);
  if (q.agentId) where.push(`agent_id = $${values.push(q.agentId)}`);
  if (q.status) where.push(`status = $${values.push(q.status)}`);
  if (q.rootRunId) where.push(`root_run_id = $${values.push(q.rootRunId)}`);
  const { rows } = await db.$client.query<RunRow>(
    `SELECT ${RUN_COLUMNS} FROM runs WHERE ${where.join(" AND ")} ORDER BY id DESC LIMIT $2`,
    values,
  );
  return rows;
}

/** The agent's oldest run to resume (running, or waiting with nothing pending), as a statement (escaped literals). */
export function resumableRunRead(tenantId: string, agentId: string): PreparedStatement {
  return prepared("bosun_b_resumable_run", `SELECT ${RUN_COLUMNS} FROM runs r WHERE ${resumableWhere("$1", "$2")} ORDER BY r.created_at LIMIT 1`, [
    pg.escapeLiteral(tenantId),
    pg.escapeLiteral(agentId),
  ]);
}

const resumableWhere = (t: string, a: string) => `r.tenant_id = ${t} AND r.agent_id = ${a} AND r.trigger <> 'external' AND (
       r.status = 'running'
       OR (r.status = 'waiting' AND NOT EXISTS (
             SELECT 1 FROM waitpoints w WHERE w.tenant_id = r.tenant_id AND w.run_id = r.id AND w.status = 'pending')))`;

/**
 * The runtime's claim of the agent's next task, as statements (escaped literals) that go
 * in the one round trip that is `nextRun`'s whole transaction (tenantStatements), with the
 * fence and the reads it decides on; the claim took four round trips of its own before.
 *  1. Locks the next task the agent may claim (the rule of `claimableWhere`, in the claim
 *     index's order, SKIP LOCKED), only while the agent is active, has no run to resume
 *     (which comes first) and `fence` still holds its session's lease, and notes its id in
 *     the transaction (`bosun.claim`).
 *  2. In a statement of its own, so that its snapshot includes a dependency added after
 *     the lock's (claimTask's rule), claims and starts that task: a new lease epoch,
 *     `in_progress`, `run_id`; and inserts the task's run.
 *  3. Reads the run back.
 * The transaction commits whatever the fence found: with the lease lost, the lock (1)
 * finds nothing, so nothing is written. `claimedRun` reads the results.
 */
export function claimNextRunStatements(p: {
  tenantId: string;
  agentId: string;
  /** The session lease the claim is made under: with another holder, nothing is locked. */
  fence: { owner: string; epoch: number };
  leaseOwner: string;
  ttlSeconds: number;
  run: { id: string; traceparent: string; limits: RunRow["limits"] };
}): PreparedStatement[] {
  const lit = pg.escapeLiteral;
  const [t, a, r] = [lit(p.tenantId), lit(p.agentId), lit(p.run.id)];
  return [
    prepared(
      "bosun_b_claim_lock",
      `SELECT set_config('bosun.claim', coalesce((
         SELECT t.id FROM tasks t
         WHERE ${claimableWhere("$1::text", "$2::text")}
           AND EXISTS (SELECT 1 FROM agents ag WHERE ag.tenant_id = $1::text AND ag.id = $2::text AND ag.status = 'active')
           AND EXISTS (SELECT 1 FROM agent_sessions s WHERE s.tenant_id = $1::text AND s.agent_id = $2::text AND s.lease_owner = $3::text AND s.lease_epoch = $4::bigint)
           AND NOT EXISTS (SELECT 1 FROM runs r WHERE ${resumableWhere("$1::text", "$2::text")})
         ORDER BY t.priority DESC, t.created_at, t.id
         LIMIT 1 FOR NO KEY UPDATE OF t SKIP LOCKED), ''), true) AS locked`,
      [t, a, lit(p.fence.owner), `'${Math.trunc(p.fence.epoch)}'`],
    ),
    prepared(
      "bosun_b_claim_start",
      `WITH c AS (
         UPDATE tasks t SET status = 'in_progress', claimed_by_agent_id = $2::text, lease_owner = $3::text, lease_epoch = t.lease_epoch + 1,
                lease_expires_at = now() + make_interval(secs => $4::float8), updated_at = now(), run_id = $5::text
         WHERE t.tenant_id = $1::text AND t.id = current_setting('bosun.claim') AND ${keyedStatus("t.status = 'queued'")}
           AND NOT EXISTS (SELECT 1 FROM task_dependencies d JOIN tasks dt ON dt.tenant_id = d.tenant_id AND dt.id = d.depends_on_id
                           WHERE d.tenant_id = t.tenant_id AND d.task_id = t.id AND dt.status <> 'done')
         RETURNING t.id, t.title, t.body, t.status, t.claimed_by_agent_id, t.lease_epoch, t.lease_expires_at
       ), run AS (
         INSERT INTO runs (tenant_id, id, agent_id, task_id, parent_run_id, root_run_id, traceparent, trigger, status, limits, input, started_at)
         SELECT $1::text, $5::text, $2::text, c.id, NULL, $5::text, $6::text, 'task', 'running', $7::jsonb,
                jsonb_build_object('kind', 'task', 'text', regexp_replace('Task ' || c.id || ': ' || c.title || E'\\n\\n' || c.body, '\\s+$', ''),
                                   'task', jsonb_build_object('id', c.id, 'epoch', c.lease_epoch, 'leaseOwner', $3::text)),
                now()
         FROM c
       )
       SELECT c.id, c.title, c.status, c.claimed_by_agent_id AS "claimedByAgentId", c.lease_epoch::float8 AS "leaseEpoch", c.lease_expires_at AS "leaseExpiresAt" FROM c`,
      [t, a, lit(p.leaseOwner), `'${Math.trunc(p.ttlSeconds)}'`, r, lit(p.run.traceparent), lit(JSON.stringify(p.run.limits))],
    ),
    prepared("bosun_b_claimed_run", `SELECT ${RUN_COLUMNS} FROM runs WHERE tenant_id = $1 AND id = $2 AND ${keyedStatus("status = 'running'")}`, [t, r]),
  ];
}

/**
 * The `task.claim` audit event of the task claimNextRunStatements claimed for run `runId`
 * (none if it claimed none), inserted unsealed as appendAudits does, with the same content
 * as the tasks service's claimAndStartInTx (its `leaseExpiresAt` as JavaScript's
 * toISOString writes it): for a claim whose transaction is that one round trip. The task
 * went from queued to in_progress in one statement, so one event records both: the
 * claimed state in between was never visible to anyone.
 */
export function claimAuditStatement(p: { tenantId: string; agentId: string; runId: string; id: string }): PreparedStatement {
  return prepared(
    "bosun_b_claim_audit",
    `INSERT INTO audit_events (tenant_id, id, actor_type, actor_id, action, target_type, target_id, before, after)
     SELECT $1, $4, 'agent', $2, 'task.claim', 'task', t.id,
            jsonb_build_object('status', 'queued', 'leaseEpoch', t.lease_epoch - 1),
            jsonb_build_object('status', t.status, 'leaseEpoch', t.lease_epoch, 'claimedByAgentId', t.claimed_by_agent_id,
              'leaseExpiresAt', to_char(t.lease_expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), 'runId', t.run_id)
     FROM tasks t
     WHERE t.tenant_id = $1 AND t.id = current_setting('bosun.claim', true) AND t.run_id = $3`,
    [p.tenantId, p.agentId, p.runId, p.id].map((v) => textLiteral(v)),
  );
}

/** Whether the agent has an unread message, read only when claimNextRunStatements locked no task (`unread`). */
export const unreadIfNoClaimRead = (tenantId: string, agentId: string): PreparedStatement =>
  prepared(
    "bosun_b_unread_if_no_claim",
    `SELECT current_setting('bosun.claim', true) = '' AND EXISTS (
       SELECT 1 FROM messages WHERE tenant_id = $1 AND to_agent_id = $2 AND read_at IS NULL) AS unread`,
    [textLiteral(tenantId), textLiteral(agentId)],
  );

/** SQL: true after claimNextRunStatements, in the same transaction, when it locked a task. */
export const CLAIM_LOCKED = { name: "claim_locked", sql: "current_setting('bosun.claim', true) <> ''" };

/** What the task the runtime claimed with claimNextRunStatements looks like afterwards. */
export interface ClaimedTaskRow {
  id: string;
  title: string;
  status: string;
  claimedByAgentId: string;
  leaseEpoch: number;
  leaseExpiresAt: Date;
}

/**
 * claimNextRunStatements's results: the task locked (null: none to claim), the task as
 * claimed and its run (null when the locked task gained an unfinished dependency
 * meanwhile: the caller claims another).
 */
export function claimedRun(results: pg.QueryResult[]): { locked: string | null; task: ClaimedTaskRow | null; run: RunRow | null } {
  const locked = (results[0]?.rows[0] as { locked?: string } | undefined)?.locked || null;
  const task = (results[1]?.rows[0] as ClaimedTaskRow | undefined) ?? null;
  const run = (results[2]?.rows[0] as RunRow | undefined) ?? null;
  return { locked, task: task && run ? task : null, run: task ? run : null };
}

export type RunPatch = Partial<Pick<RunRow, "status" | "model" | "result" | "error">> & {
  addSteps?: number;
  addInput?: number;
  addOutput?: number;
  started?: boolean;
  ended?: boolean;
};

/** The UPDATE of a run's patch, its parameters numbered from `from` ($from = tenant, $from+1 = run). */
function runUpdate(from: number): string {
  const p = (i: number) => `$${from + i}`;
  return `UPDATE runs SET
       status = coalesce(${p(2)}, status), model = coalesce(${p(3)}, model),
       result = CASE WHEN ${p(4)}::boolean THEN ${p(5)}::jsonb ELSE result END,
       error = CASE WHEN ${p(6)}::boolean THEN ${p(7)}::jsonb ELSE error END,
       step_count = step_count + ${p(8)}, input_tokens = input_tokens + ${p(9)}, output_tokens = output_tokens + ${p(10)},
       started_at = CASE WHEN ${p(11)} THEN coalesce(started_at, now()) ELSE started_at END,
       ended_at = CASE WHEN ${p(12)} THEN now() ELSE ended_at END
     WHERE tenant_id = ${p(0)} AND id = ${p(1)}`;
}

function runUpdateValues(tenantId: string, runId: string, patch: RunPatch): unknown[] {
  return [
    tenantId,
    runId,
    patch.status ?? null,
    patch.model ?? null,
    "result" in patch,
    JSON.stringify(patch.result ?? null),
    "error" in patch,
    JSON.stringify(patch.error ?? null),
    patch.addSteps ?? 0,
    patch.addInput ?? 0,
    patch.addOutput ?? 0,
    patch.started ?? false,
    patch.ended ?? false,
  ];
}

export async function updateRun(db: Db, { tenantId, runId, patch }: { tenantId: string; runId: string; patch: RunPatch }): Promise<void> {
  await db.$client.query({ name: "bosun_runtime_update_run", text: runUpdate(1), values: runUpdateValues(tenantId, runId, patch) });
}

export interface StepRow {
  tenantId: string;
  runId: string;
  runCreatedAt: Date;
  seq: number;
  kind: "llm" | "tool" | "message" | "delegate" | "wait" | "idle" | "usage" | "approval" | "memory" | "policy" | "proposal" | "dream" | "drive";
  name: string | null;
  status: "ok" | "error";
  input: unknown;
  output: unknown;
  provider: string | null;
  model: string | null;
  inputTokens: number;
  cacheReadTokens: number;
  cacheWriteTokens: number;
  outputTokens: number;
  latencyMs: number | null;
  leaseEpoch: number | null;
  createdAt: Date;
}

const STEP_COLUMNS = `tenant_id AS "tenantId", run_id AS "runId", run_created_at AS "runCreatedAt", seq, kind, name, status, input, output,
  provider, model, input_tokens AS "inputTokens", cache_read_tokens AS "cacheReadTokens", cache_write_tokens AS "cacheWriteTokens",
  output_tokens AS "outputTokens", latency_ms AS "latencyMs", lease_epoch::float8 AS "leaseEpoch", created_at AS "createdAt"`;

const stepInsert = (returning: string) => `INSERT INTO steps (tenant_id, run_id, run_created_at, seq, kind, name, status, input, output, provider, model,
                        input_tokens, cache_read_tokens, cache_write_tokens, output_tokens, latency_ms, lease_epoch)
     VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17) RETURNING ${returning}`;
const STEP_INSERT = stepInsert(STEP_COLUMNS);

const stepValues = (s: Omit<StepRow, "createdAt">) => [
  s.tenantId, s.runId, s.runCreatedAt, s.seq, s.kind, s.name, s.status, JSON.stringify(s.input ?? null), JSON.stringify(s.output ?? null),
  s.provider, s.model, s.inputTokens, s.cacheReadTokens, s.cacheWriteTokens, s.outputTokens, s.latencyMs, s.leaseEpoch,
];

/** Inserts a step; the (run, seq) key makes a replayed step a conflict, never a duplicate. */
export async function insertStep(db: Db, s: Omit<StepRow, "createdAt">): Promise<StepRow> {
  const { rows } = await db.$client.query<StepRow>({ name: "bosun_runtime_insert_step", text: STEP_INSERT, values: stepValues(s) });
  return rows[0]!;
}

/**
 * Inserts a step and applies `patch` to its run (its count, tokens, model...) in ONE
 * statement: a data-modifying WITH runs whether or not the outer query reads it, and both
 * happen or neither (a replayed step's conflict fails the statement, so nothing is counted).
 */
export async function insertStepAndUpdateRun(db: Db, s: Omit<StepRow, "createdAt">, patch: RunPatch): Promise<StepRow> {
  const { rows } = await db.$client.query<StepRow>({
    name: "bosun_runtime_insert_step_update_run",
    text: INSERT_STEP_UPDATE_RUN,
    values: [...stepValues(s), ...runUpdateValues(s.tenantId, s.runId, patch)],
  });
  return rows[0]!;
}
const INSERT_STEP_UPDATE_RUN = `WITH step AS (${STEP_INSERT}), run AS (${runUpdate(18)}) SELECT * FROM step`;

/**
 * What the runtime's own step writes (the model's step, a tool's step with the COMMIT)
 * return: the one column the database fills in. The caller has every other value
 * (`writtenStep` puts them together); echoing them back made Postgres serialize and Node
 * parse each step's input, which for a model's step is the whole prompt it was sent.
 */
const STEP_WRITTEN = `created_at AS "createdAt"`;

/** The step `s` as written, from a STEP_WRITTEN result (null when nothing was written: a lost lease). */
export function writtenStep(s: Omit<StepRow, "createdAt">, r: pg.QueryResult | undefined): StepRow | null {
  const row = r?.rows[0] as { createdAt: Date } | undefined;
  // Absent input or output is stored as JSON null (stepValues), and read back as null.
  return row ? { ...s, input: s.input ?? null, output: s.output ?? null, createdAt: row.createdAt } : null;
}

/**
 * insertStepAndUpdateRun as a prepared statement, for a transaction whose fence is held
 * (its session row locked since the BEGIN): to send with its COMMIT (a run's last step).
 */
export const insertStepAndUpdateRunPrepared = (s: Omit<StepRow, "createdAt">, patch: RunPatch): PreparedStatement =>
  prepared(
    "bosun_b_insert_step_update_run_held",
    `WITH step AS (${stepInsert(STEP_WRITTEN)}), run AS (${runUpdate(18)}) SELECT * FROM step`,
    [...stepValues(s), ...runUpdateValues(s.tenantId, s.runId, patch)].map((v) => literalOf(v)),
  );

/**
 * insertStepAndUpdateRun as a prepared statement, to send with a transaction's BEGIN after
 * its fence (the model's step, whose values are known before its transaction starts): it
 * writes only while `f`'s lease holds, so a worker that lost the lease writes nothing and
 * learns it from the fence (LeaseLostError) rather than from the new holder's step. Its
 * result is STEP_WRITTEN's (`writtenStep` makes the step of it; none when the lease was lost).
 */
export function insertStepAndUpdateRunStatement(s: Omit<StepRow, "createdAt">, patch: RunPatch, f: Fence): PreparedStatement {
  return prepared(
    "bosun_b_insert_step_update_run",
    `WITH step AS (
       INSERT INTO steps (tenant_id, run_id, run_created_at, seq, kind, name, status, input, output, provider, model,
                          input_tokens, cache_read_tokens, cache_write_tokens, output_tokens, latency_ms, lease_epoch)
       SELECT $1::text, $2::text, $3::timestamptz, $4::int, $5::text, $6::text, $7::text, $8::jsonb, $9::jsonb, $10::text, $11::text,
              $12::bigint, $13::bigint, $14::bigint, $15::bigint, $16::bigint, $17::bigint
       WHERE EXISTS (SELECT 1 FROM agent_sessions WHERE tenant_id = $1::text AND agent_id = $31::text AND lease_owner = $32::text AND lease_epoch = $33::bigint)
       RETURNING ${STEP_WRITTEN}),
     run AS (${runUpdate(18)} AND EXISTS (SELECT 1 FROM step))
     SELECT * FROM step`,
    [...stepValues(s), ...runUpdateValues(s.tenantId, s.runId, patch), f.agentId, f.owner, Math.trunc(f.epoch)].map((v) => literalOf(v)),
  );
}

export async function listSteps(db: Db, { tenantId, runId, afterSeq = -1, limit = 1000 }: { tenantId: string; runId: string; afterSeq?: number; limit?: number }): Promise<StepRow[]> {
  const { rows } = await db.$client.query<StepRow>(
    `SELECT ${STEP_COLUMNS} FROM steps WHERE tenant_id = $1 AND run_id = $2 AND seq > $3 ORDER BY seq LIMIT $4`,
    [tenantId, runId, afterSeq, limit],
  );
  return rows;
}

export interface WaitpointRow {
  tenantId: string;
  id: string;
  runId: string;
  agentId: string;
  kind: "approval" | "child_run" | "timer" | "event";
  status: "pending" | "resolved" | "expired" | "cancelled";
  ref: string | null;
  resumeAt: Date | null;
  expiresAt: Date | null;
  payload: unknown;
  resolution: unknown;
  consumedAt: Date | null;
}

const WP_COLUMNS = `tenant_id AS "tenantId", id, run_id AS "runId", agent_id AS "agentId", kind, status, ref, resume_at AS "resumeAt",
  expires_at AS "expiresAt", payload, resolution, consumed_at AS "consumedAt"`;

export async function insertWaitpoint(
  db: Db,
  w: Pick<WaitpointRow, "tenantId" | "id" | "runId" | "agentId" | "kind" | "ref" | "resumeAt" | "expiresAt" | "payload">,
): Promise<void> {
  await db.$client.query(
    `INSERT INTO waitpoints (tenant_id, id, run_id, agent_id, kind, ref, resume_at, expires_at, payload) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)`,
    [w.tenantId, w.id, w.runId, w.agentId, w.kind, w.ref, w.resumeAt, w.expiresAt, JSON.stringify(w.payload ?? null)],
  );
}

export async function getWaitpoint(db: Db, { tenantId, id }: { tenantId: string; id: string }): Promise<WaitpointRow | undefined> {
  const { rows } = await db.$client.query<WaitpointRow>(`SELECT ${WP_COLUMNS} FROM waitpoints WHERE tenant_id = $1 AND id = $2`, [tenantId, id]);
  return rows[0];
}

/** Resolves a pending waitpoint once; returns it, or undefined if it was not pending. */
export async function resolveWaitpoint(
  db: Db,
  { tenantId, id, status, resolution }: { tenantId: string; id: string; status: "resolved" | "expired" | "cancelled"; resolution: unknown },
): Promise<WaitpointRow | undefined> {
  const { rows } = await db.$client.query<WaitpointRow>(
    `UPDATE waitpoints SET status = $3, resolution = $4, resolved_at = now()
     WHERE tenant_id = $1 AND id = $2 AND status = 'pending' RETURNING ${WP_COLUMNS}`,
    [tenantId, id, status, JSON.stringify(resolution ?? null)],
  );
  return rows[0];
}

export async function consumeWaitpoints(db: Db, { tenantId, runId }: { tenantId: string; runId: string }): Promise<void> {
  await db.$client.query(
    `UPDATE waitpoints SET consumed_at = now() WHERE tenant_id = $1 AND run_id = $2 AND status <> 'pending' AND consumed_at IS NULL`,
    [tenantId, runId],
  );
}

export async function pendingChildWaitpoints(db: Db, { tenantId, childRunId }: { tenantId: string; childRunId: string }): Promise<WaitpointRow[]> {
  const { rows } = await db.$client.query<WaitpointRow>(
    `SELECT ${WP_COLUMNS} FROM waitpoints WHERE tenant_id = $1 AND kind = 'child_run' AND ref = $2 AND status = 'pending'`,
    [tenantId, childRunId],
  );
  return rows;
}

/** Timer waitpoints that are due, across tenants (system sweep). */
export async function dueTimers(db: Db, limit: number): Promise<WaitpointRow[]> {
  const { rows } = await db.$client.query<WaitpointRow>(
    `SELECT ${WP_COLUMNS} FROM waitpoints WHERE status = 'pending' AND resume_at IS NOT NULL AND resume_at <= now()
     ORDER BY resume_at LIMIT $1 FOR UPDATE SKIP LOCKED`,
    [limit],
  );
  return rows;
}

export interface MessageRow {
  id: string;
  fromType: string;
  fromId: string;
  body: string;
  createdAt: Date;
}

export async function insertMessage(
  db: Db,
  m: { tenantId: string; id: string; toAgentId: string; fromType: string; fromId: string; body: string },
): Promise<void> {
  await db.$client.query(
    `INSERT INTO messages (tenant_id, id, to_agent_id, from_type, from_id, body) VALUES ($1,$2,$3,$4,$5,$6)`,
    [m.tenantId, m.id, m.toAgentId, m.fromType, m.fromId, m.body],
  );
}

/** Takes every unread message of an agent for one run (they coalesce into it). */
export async function takeUnreadMessages(db: Db, { tenantId, agentId, runId, limit }: { tenantId: string; agentId: string; runId: string; limit: number }): Promise<MessageRow[]> {
  const { rows } = await db.$client.query<MessageRow>(
    `UPDATE messages m SET read_at = now(), read_by_run_id = $3
     FROM (SELECT id FROM messages WHERE tenant_id = $1 AND to_agent_id = $2 AND read_at IS NULL ORDER BY created_at LIMIT $4 FOR UPDATE) u
     WHERE m.tenant_id = $1 AND m.id = u.id
     RETURNING m.id, m.from_type AS "fromType", m.from_id AS "fromId", m.body, m.created_at AS "createdAt"`,
    [tenantId, agentId, runId, limit],
  );
  return rows.sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime());
}

export async function hasUnreadMessages(db: Db, { tenantId, agentId }: { tenantId: string; agentId: string }): Promise<boolean> {
  const { rows } = await db.$client.query(
    `SELECT 1 FROM messages WHERE tenant_id = $1 AND to_agent_id = $2 AND read_at IS NULL LIMIT 1`,
    [tenantId, agentId],
  );
  return rows.length > 0;
}

/** Session leases held past their expiry, across tenants (system sweep). */
export async function expiredSessions(db: Db, limit: number): Promise<{ tenantId: string; agentId: string }[]> {
  const { rows } = await db.$client.query<{ tenantId: string; agentId: string }>(
    `SELECT tenant_id AS "tenantId", agent_id AS "agentId" FROM agent_sessions
     WHERE lease_owner IS NOT NULL AND lease_expires_at < now() ORDER BY lease_expires_at LIMIT $1`,
    [limit],
  );
  return rows;
}

/** Whether the agent has anything to do, as a statement (escaped literals) returning `work`. */
export function hasWorkStatement(tenantId: string, agentId: string): PreparedStatement {
  const [t, a] = ["$1", "$2"];
  // A paused or retired agent has no work, whatever waits for it: otherwise its queued
  // tasks would wake it, it would find it may not run, and wake itself again, forever.
  return prepared("bosun_b_has_work", `SELECT (SELECT status FROM agents WHERE tenant_id = ${t} AND id = ${a}) = 'active' AND (
             EXISTS (SELECT 1 FROM messages WHERE tenant_id = ${t} AND to_agent_id = ${a} AND read_at IS NULL)
           OR EXISTS (SELECT 1 FROM runs r WHERE r.tenant_id = ${t} AND r.agent_id = ${a} AND (r.status = 'running' OR (r.status = 'waiting'
                AND NOT EXISTS (SELECT 1 FROM waitpoints w WHERE w.tenant_id = r.tenant_id AND w.run_id = r.id AND w.status = 'pending'))))
           OR ${claimableTaskExists(t, a)}) AS work`, [pg.escapeLiteral(tenantId), pg.escapeLiteral(agentId)]);
}
