import pg from "pg";
import type { Db } from "../client";
import { prepared } from "../tx";

/**
 * Policies, the approval gate (approval waitpoints) and the human inbox. Approvals are
 * waitpoints of kind `approval`: the run's suspension and the person's decision are one
 * row, so resolving it and waking the run cannot drift apart.
 */

export interface PolicyRow {
  tenantId: string;
  id: string;
  agentId: string | null;
  agentName: string | null;
  name: string;
  priority: number;
  toolPattern: string | null;
  sideEffect: "internal" | "external" | null;
  actionValueGtMicros: number | null;
  decision: "allow" | "deny" | "require_approval";
  approvalExpiresSeconds: number | null;
  description: string | null;
  createdAt: Date;
  updatedAt: Date;
}

const POLICY_COLUMNS = `p.tenant_id AS "tenantId", p.id, p.agent_id AS "agentId", a.name AS "agentName", p.name, p.priority,
  p.tool_pattern AS "toolPattern", p.side_effect AS "sideEffect", p.action_value_gt_micros::float8 AS "actionValueGtMicros",
  p.decision, p.approval_expires_seconds AS "approvalExpiresSeconds", p.description, p.created_at AS "createdAt", p.updated_at AS "updatedAt"`;
const POLICY_FROM = `policies p LEFT JOIN agents a ON a.tenant_id = p.tenant_id AND a.id = p.agent_id`;

export async function getPolicy(db: Db, { tenantId, id }: { tenantId: string; id: string }): Promise<PolicyRow | undefined> {
  const { rows } = await db.$client.query<PolicyRow>(`SELECT ${POLICY_COLUMNS} FROM ${POLICY_FROM} WHERE p.tenant_id = $1 AND p.id = $2`, [tenantId, id]);
  return rows[0];
}

export async function listPolicies(
  db: Db,
  q: { tenantId: string; limit: number; after?: string | undefined; agentId?: string | undefined },
): Promise<PolicyRow[]> {
  const values: unknown[] = [q.tenantId, q.limit];
  const where = ["p.tenant_id = $1"];
  if (q.after) where.push(`p.id > $${values.push(q.after)}`);
  if (q.agentId) where.push(`p.agent_id = $${values.push(q.agentId)}`);
  const { rows } = await db.$client.query<PolicyRow>(`SELECT ${POLICY_COLUMNS} FROM ${POLICY_FROM} WHERE ${where.join(" AND ")} ORDER BY p.id LIMIT $2`, values);
  return rows;
}

/**
 * The policies that apply to an agent's tool calls, the tenant's and the agent's own, as a
 * statement (escaped literals) sent with the tool call's BEGIN.
 */
export const policiesForAgentRead = (tenantId: string, agentId: string) =>
  prepared(
    "bosun_b_policies_for_agent",
    `SELECT ${POLICY_COLUMNS} FROM ${POLICY_FROM} WHERE p.tenant_id = $1 AND (p.agent_id IS NULL OR p.agent_id = $2) ORDER BY p.priority, p.name`,
    [pg.escapeLiteral(tenantId), pg.escapeLiteral(agentId)],
  );

export type PolicyWrite = Pick<
  PolicyRow,
  "name" | "agentId" | "priority" | "toolPattern" | "sideEffect" | "actionValueGtMicros" | "decision" | "approvalExpiresSeconds" | "description"
>;

/** Inserts a policy; false when the tenant already has one of that name. */
export async function insertPolicy(db: Db, p: PolicyWrite & { tenantId: string; id: string }): Promise<boolean> {
  const { rowCount } = await db.$client.query(
    `INSERT INTO policies (tenant_id, id, agent_id, name, priority, tool_pattern, side_effect, action_value_gt_micros, decision, approval_expires_seconds, description)
     VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11) ON CONFLICT (tenant_id, name) DO NOTHING`,
    [p.tenantId, p.id, p.agentId, p.name, p.priority, p.toolPattern, p.sideEffect, p.actionValueGtMicros, p.decision, p.approvalExpiresSeconds, p.description],
  );
  return rowCount === 1;
}

/** Replaces a policy's fields; false when another policy of the tenant has the new name. */
export async function updatePolicy(db: Db, p: PolicyWrite & { tenantId: string; id: string }): Promise<boolean> {
  await db.$client.query("SAVEPOINT policy_update");
  try {
    await db.$client.query(
      `UPDATE policies SET agent_id = $3, name = $4, priority = $5, tool_pattern = $6, side_effect = $7, action_value_gt_micros = $8,
         decision = $9, approval_expires_seconds = $10, description = $11, updated_at = now()
       WHERE tenant_id = $1 AND id = $2`,
      [p.tenantId, p.id, p.agentId, p.name, p.priority, p.toolPattern, p.sideEffect, p.actionValueGtMicros, p.decision, p.approvalExpiresSeconds, p.description],
    );
  } catch (err) {
    if ((err as { code?: string }).code !== "23505") throw err;
    await db.$client.query("ROLLBACK TO SAVEPOINT policy_update");
    return false;
  }
  return true;
}

export async function deletePolicy(db: Db, { tenantId, id }: { tenantId: string; id: string }): Promise<void> {
  await db.$client.query(`DELETE FROM policies WHERE tenant_id = $1 AND id = $2`, [tenantId, id]);
}

/** An approval: an `approval` waitpoint, with its agent's name and its run's status. */
export interface ApprovalRow {
  tenantId: string;
  id: string;
  runId: string;
  agentId: string;
  agentName: string | null;
  runStatus: string | null;
  status: "pending" | "resolved" | "expired" | "cancelled";
  expiresAt: Date | null;
  payload: unknown;
  resolution: unknown;
  createdAt: Date;
  resolvedAt: Date | null;
}

const APPROVAL_COLUMNS = `w.tenant_id AS "tenantId", w.id, w.run_id AS "runId", w.agent_id AS "agentId", a.name AS "agentName", r.status AS "runStatus",
  w.status, w.expires_at AS "expiresAt", w.payload, w.resolution, w.created_at AS "createdAt", w.resolved_at AS "resolvedAt"`;
const APPROVAL_FROM = `waitpoints w
  LEFT JOIN agents a ON a.tenant_id = w.tenant_id AND a.id = w.agent_id
  LEFT JOIN runs r ON r.tenant_id = w.tenant_id AND r.id = w.run_id`;

/** The approval's status as people see it: a resolved one was approved or denied. */
export const APPROVAL_STATUS_SQL = `CASE WHEN w.status = 'resolved' THEN coalesce(w.resolution->>'decision', 'approved') ELSE w.status END`;

export async function getApproval(db: Db, { tenantId, id }: { tenantId: string; id: string }): Promise<ApprovalRow | undefined> {
  const { rows } = await db.$client.query<ApprovalRow>(
    `SELECT ${APPROVAL_COLUMNS} FROM ${APPROVAL_FROM} WHERE w.tenant_id = $1 AND w.id = $2 AND w.kind = 'approval'`,
    [tenantId, id],
  );
  return rows[0];
}

/** Approvals newest first; `status` is the people's status (pending, approved, denied, expired, cancelled). */
export async function listApprovals(
  db: Db,
  q: { tenantId: string; limit: number; before?: string | undefined; agentId?: string | undefined; status?: string | undefined },
): Promise<ApprovalRow[]> {
  const values: unknown[] = [q.tenantId, q.limit];
  const where = ["w.tenant_id = $1", "w.kind = 'approval'"];
  if (q.before) where.push(`w.id < $${values.push(q.before)}`);
  if (q.agentId) where.push(`w.agent_id = $${values.push(q.agentId)}`);
  if (q.status) where.push(`${APPROVAL_STATUS_SQL} = $${values.push(q.status)}`);
  const { rows } = await db.$client.query<ApprovalRow>(
    `SELECT ${APPROVAL_COLUMNS} FROM ${APPROVAL_FROM} WHERE ${where.join(" AND ")} ORDER BY w.id DESC LIMIT $2`,
    values,
  );
  return rows;
}

/**
 * Decides a pending, unexpired approval, once: the row lock and `status = 'pending'` make a
 * second decision (the same request twice, or two people at once) find nothing.
 */
export async function decideApproval(db: Db, { tenantId, id, resolution }: { tenantId: string; id: string; resolution: unknown }): Promise<boolean> {
  const { rowCount } = await db.$client.query(
    `UPDATE waitpoints SET status = 'resolved', resolution = $3, resolved_at = now()
     WHERE tenant_id = $1 AND id = $2 AND kind = 'approval' AND status = 'pending' AND (expires_at IS NULL OR expires_at > now())`,
    [tenantId, id, JSON.stringify(resolution)],
  );
  return rowCount === 1;
}

/** Expires pending approvals past their expiry, across tenants (system sweep); returns them. */
export async function expireDueApprovals(db: Db, limit: number): Promise<{ tenantId: string; id: string; agentId: string }[]> {
  const { rows } = await db.$client.query<{ tenantId: string; id: string; agentId: string }>(
    `UPDATE waitpoints w SET status = 'expired', resolved_at = now(),
       resolution = jsonb_build_object('decision', 'expired', 'comment', null, 'by', null, 'at', now())
     FROM (SELECT tenant_id, id FROM waitpoints WHERE status = 'pending' AND kind = 'approval' AND expires_at <= now()
           ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED) due
     WHERE w.tenant_id = due.tenant_id AND w.id = due.id
     RETURNING w.tenant_id AS "tenantId", w.id, w.agent_id AS "agentId"`,
    [limit],
  );
  return rows;
}

export interface InboxRow {
  kind: "approval" | "task" | "agent" | "proposal";
  id: string;
  title: string;
  summary: string | null;
  agentId: string | null;
  agentName: string | null;
  runId: string | null;
  taskId: string | null;
  createdAt: Date;
  /** created_at as Postgres prints it (microseconds kept), for the cursor. */
  cursorAt: string;
}

/**
 * One source of the inbox: a SELECT of the InboxRow columns (kind, id, title, summary,
 * agent_id, agent_name, run_id, task_id, created_at) over tenant `$1`. A new kind of work
 * for people is one more entry of this list.
 */
export const inboxSources: Record<InboxRow["kind"], string> = {
  approval: `SELECT 'approval' AS kind, w.id, 'Approve ' || coalesce(w.payload->>'tool', 'a tool call') AS title,
       coalesce(w.payload->>'reason', '') AS summary, w.agent_id, a.name AS agent_name, w.run_id, NULL::text AS task_id, w.created_at
     FROM waitpoints w LEFT JOIN agents a ON a.tenant_id = w.tenant_id AND a.id = w.agent_id
     WHERE w.tenant_id = $1 AND w.kind = 'approval' AND w.status = 'pending'`,
  task: `SELECT 'task', t.id, t.title, 'escalated after ' || t.attempts || ' attempts', t.claimed_by_agent_id, a.name, t.run_id, t.id, t.updated_at
     FROM tasks t LEFT JOIN agents a ON a.tenant_id = t.tenant_id AND a.id = t.claimed_by_agent_id
     WHERE t.tenant_id = $1 AND t.status = 'escalated'
     UNION ALL
     -- A queued task that waits on a task which will never be done: nothing would ever run
     -- it. Once per blocked task, naming every such dependency; it leaves the inbox when it
     -- is cancelled.
     SELECT 'task', t.id, t.title, 'blocked: ' || string_agg(dt.id || ' is ' || dt.status, ', ' ORDER BY dt.id), NULL, NULL, NULL, t.id,
            max(coalesce(dt.completed_at, dt.updated_at))
     FROM tasks t
     JOIN task_dependencies d ON d.tenant_id = t.tenant_id AND d.task_id = t.id
     JOIN tasks dt ON dt.tenant_id = d.tenant_id AND dt.id = d.depends_on_id
     WHERE t.tenant_id = $1 AND t.status = 'queued' AND dt.status IN ('failed', 'cancelled', 'escalated')
     GROUP BY t.id, t.title`,
  // An agent a budget paused (onExhausted: pause_agent), by the latest pause of it in the audit trail.
  agent: `SELECT 'agent', a.id, 'Agent ' || a.name || ' paused by a budget', e.after->>'reason', a.id, a.name, NULL, NULL, e.created_at
     FROM agents a
     JOIN LATERAL (SELECT actor_type, actor_id, after, created_at FROM audit_events ae
                   WHERE ae.tenant_id = a.tenant_id AND ae.target_type = 'agent' AND ae.target_id = a.id AND ae.action = 'agent.pause'
                   ORDER BY ae.seq DESC NULLS FIRST, ae.pos DESC LIMIT 1) e ON e.actor_type = 'system' AND e.actor_id = 'budget'
     WHERE a.tenant_id = $1 AND a.status = 'paused'`,
  proposal: `SELECT 'proposal', p.id, p.title, 'escalated: the agents asked did not settle it in time', p.proposer_agent_id, a.name, NULL, NULL,
       coalesce(p.escalated_at, p.updated_at)
     FROM proposals p LEFT JOIN agents a ON a.tenant_id = p.tenant_id AND a.id = p.proposer_agent_id
     WHERE p.tenant_id = $1 AND p.status = 'escalated'`,
};

/** Everything that waits for a person, newest first, keyset-paged on (created_at, kind, id). */
export async function listInbox(
  db: Db,
  q: { tenantId: string; limit: number; before?: [string, string, string] | undefined; kinds: InboxRow["kind"][] },
): Promise<InboxRow[]> {
  const sources = q.kinds.map((k) => inboxSources[k]).filter(Boolean);
  if (sources.length === 0) return [];
  const values: unknown[] = [q.tenantId, q.limit];
  const where = q.before ? `WHERE (created_at, kind, id) < ($${values.push(q.before[0])}::timestamptz, $${values.push(q.before[1])}, $${values.push(q.before[2])})` : "";
  const { rows } = await db.$client.query<InboxRow>(
    `SELECT kind, id, title, nullif(summary, '') AS summary, agent_id AS "agentId", agent_name AS "agentName", run_id AS "runId", task_id AS "taskId", created_at AS "createdAt", created_at::text AS "cursorAt"
     FROM (${sources.map((s) => `(${s})`).join(" UNION ALL ")}) AS x (kind, id, title, summary, agent_id, agent_name, run_id, task_id, created_at)
     ${where} ORDER BY created_at DESC, kind DESC, id DESC LIMIT $2`,
    values,
  );
  return rows;
}
