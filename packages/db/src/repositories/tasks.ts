import { and, asc, desc, eq, inArray, lt, notInArray, type SQL, sql } from "drizzle-orm";
import pg from "pg";
import type { Db } from "../client";
import { type PreparedStatement, prepared, queryBatch, textLiteral } from "../tx";
import { agents, taskDependencies, tasks } from "../schema/index";

export type TaskRow = typeof tasks.$inferSelect;
export type TaskStatus = TaskRow["status"];
/** Column values to set; SQL for database-side values (`now()`, a lease expiry). */
export type TaskPatch = { [K in keyof TaskRow]?: TaskRow[K] | SQL };

/**
 * A status check for a prepared statement that finds its row by key, as `(cond) IS TRUE`:
 * the same test, but the planner can neither use it as an index condition nor prove a partial
 * index's predicate from it, so the primary key is the only index that fits. Otherwise a
 * status index (tasks_status_idx, or the partial tasks_claim_order_idx, tasks_lease_idx,
 * runs_active_idx) can look as cheap as the key whenever the statistics say that hardly
 * any row has that status, as they do right after a burst of new tasks, until autovacuum
 * analyzes the table again; and taken, it reads every queued task of the tenant, or every
 * leased task of every tenant, for each claim or completion (test: key-lookups.test.ts).
 * Prepared statements are what is at risk: a connection plans them once, generically, for
 * any key; a one-off statement is planned for its actual key, and the key wins.
 */
export const keyedStatus = (cond: string) => `(${cond}) IS TRUE`;

/** Statuses in which a claimant holds a lease. */
export const LEASED_STATUSES = ["claimed", "in_progress"] as const satisfies TaskStatus[];
/** Statuses a task never leaves. */
export const FINISHED_STATUSES = ["done", "failed", "cancelled"] as const satisfies TaskStatus[];

/**
 * The glob `g.pattern` (from an agent's `spec.domains`) covers the SQL text expression
 * `domain`: `bosun_glob_covers` (migration 0017), a one-expression SQL function
 * that Postgres inlines, the rule's one text, shared with the wake candidates' SECURITY
 * DEFINER lookup. The glob is an anchored regular expression: regex metacharacters are
 * escaped first, then `**` matches any depth, `*` one path segment (no `/`) and `?` one
 * character of a segment. So `finance/*` covers `finance/invoices` but not
 * `finance/invoices/2026` nor `finance`; `finance/**` covers both deeper ones. Done in SQL
 * so that claims, idle checks and wake fan-out share one rule.
 *
 * The regular expression is built and compiled per row, and Postgres keeps only the 32 it
 * compiled last: asked of thousands of agents with dozens of different globs (a task's wake
 * among a big fleet), compiling took nearly all of the statement's time (~60 ms a create
 * with 5,000 agents). So the glob's literal head (everything before its first `*` or `?`)
 * is compared first, with `starts_with`; only a glob whose head begins `domain` gets to the
 * regex (a CASE fixes that order).
 */
const globCovers = (domain: string) => `bosun_glob_covers(g.pattern, ${domain})`;

/** True when some domain glob in `descriptor` (an agents.descriptor expression) covers `domain`. */
export const domainsCover = (descriptor: SQL, domain: SQL) =>
  sql`EXISTS (SELECT 1 FROM jsonb_array_elements_text(COALESCE(${descriptor} -> 'spec' -> 'domains', '[]'::jsonb)) AS g(pattern)
      WHERE bosun_glob_covers(g.pattern, ${domain}))`;

/** domainsCover over SQL text, for the hand-written statements: the agent `a` covers `domain`. */
const coversText = (domain: string) =>
  `EXISTS (SELECT 1 FROM jsonb_array_elements_text(COALESCE(a.descriptor -> 'spec' -> 'domains', '[]'::jsonb)) AS g(pattern) WHERE ${globCovers(domain)})`;

/**
 * The task (the row of `tasks` in the enclosing statement) is one `agentId` may work on:
 * assigned to it, or unassigned with a domain its descriptor covers; never a task it is
 * the reviewer of.
 */
const workableBy = (tenantId: string, agentId: string) => sql`(
  (${tasks.assigneeAgentId} = ${agentId} OR (${tasks.assigneeAgentId} IS NULL AND ${tasks.domain} IS NOT NULL AND EXISTS (
    SELECT 1 FROM jsonb_array_elements_text(COALESCE((SELECT a.descriptor -> 'spec' -> 'domains' FROM agents a WHERE a.tenant_id = ${tenantId} AND a.id = ${agentId}), '[]'::jsonb)) AS g(pattern)
    WHERE bosun_glob_covers(g.pattern, ${tasks.domain}))))
  AND ${tasks.reviewerAgentId} IS DISTINCT FROM ${agentId})`;

/** Every dependency of the task (the row of `tasks` in the enclosing statement) is done. */
const dependenciesDone = sql`NOT EXISTS (
  SELECT 1 FROM task_dependencies d JOIN tasks dt ON dt.tenant_id = d.tenant_id AND dt.id = d.depends_on_id
  WHERE d.tenant_id = ${tasks.tenantId} AND d.task_id = ${tasks.id} AND dt.status <> 'done')`;

export async function insertTask(db: Db, row: typeof tasks.$inferInsert): Promise<TaskRow> {
  const [t] = await db.insert(tasks).values(row).returning();
  return t!;
}

/** What a new task needs (insertTaskStatement); the rest takes the columns' defaults. */
export type NewTask = {
  tenantId: string;
  id: string;
  title: string;
  body: string;
  priority: number;
  assigneeAgentId: string | null;
  domain: string | null;
  requiresReview: boolean;
  reviewerAgentId: string | null;
  maxAttempts: number;
  createdByType: string;
  createdById: string;
};

/**
 * insertTask as a prepared statement returning the row (TaskRow's fields), for a batch
 * (queryBatch): a create sends it with its BEGIN and the choice of the agent to wake.
 */
export function insertTaskStatement(t: NewTask): PreparedStatement {
  const lit = (v: string | null) => (v === null ? "NULL" : textLiteral(v));
  return prepared(
    "bosun_b_task_insert",
    `INSERT INTO tasks (tenant_id, id, title, body, priority, assignee_agent_id, domain, requires_review, reviewer_agent_id, max_attempts, created_by_type, created_by_id)
     VALUES ($1::text, $2::text, $3::text, $4::text, $5::int, $6::text, $7::text, $8::boolean, $9::text, $10::int, $11::text, $12::text)
     RETURNING ${TASK_COLUMNS}`,
    [
      lit(t.tenantId),
      lit(t.id),
      lit(t.title),
      lit(t.body),
      `'${Math.trunc(t.priority)}'`,
      lit(t.assigneeAgentId),
      lit(t.domain),
      t.requiresReview ? "true" : "false",
      lit(t.reviewerAgentId),
      `'${Math.trunc(t.maxAttempts)}'`,
      lit(t.createdByType),
      lit(t.createdById),
    ],
  );
}

/** Every column of `tasks` as TaskRow's fields, for hand-written statements. */
const TASK_COLUMNS = `tenant_id AS "tenantId", id, title, body, priority, status, assignee_agent_id AS "assigneeAgentId", domain,
  requires_review AS "requiresReview", reviewer_agent_id AS "reviewerAgentId", max_attempts AS "maxAttempts", attempts,
  claimed_by_agent_id AS "claimedByAgentId", lease_owner AS "leaseOwner", lease_epoch::float8 AS "leaseEpoch",
  lease_expires_at AS "leaseExpiresAt", run_id AS "runId", result, failure, review_comment AS "reviewComment",
  created_by_type AS "createdByType", created_by_id AS "createdById", created_at AS "createdAt", updated_at AS "updatedAt",
  completed_at AS "completedAt"`;

/**
 * A lease holder's task, locked for its write (NO KEY UPDATE, as getTask's forUpdate), and
 * whether any task depends on it (none: a completion need not look for tasks it
 * unblocks). Prepared and sent as a simple query (EXECUTE), so that a statement queued to go
 * ahead of it (the tool's savepoint) shares its round trip, or with a BEGIN
 * (lockTaskForWriteStatement, its row read by lockedTaskFrom).
 */
export async function lockTaskForWrite(db: Db, p: { tenantId: string; taskId: string }): Promise<LockedTaskRow | undefined> {
  const [r] = await queryBatch(db.$client as pg.PoolClient, [lockTaskForWriteStatement(p)]);
  return lockedTaskFrom(r!);
}

export type LockedTaskRow = TaskRow & { hasDependents: boolean };

export const lockTaskForWriteStatement = ({ tenantId, taskId }: { tenantId: string; taskId: string }): PreparedStatement =>
  prepared(
    "bosun_b_task_for_write",
    `SELECT ${TASK_COLUMNS}, EXISTS (SELECT 1 FROM task_dependencies d WHERE d.tenant_id = $1 AND d.depends_on_id = $2) AS "hasDependents"
     FROM tasks WHERE tenant_id = $1 AND id = $2 FOR NO KEY UPDATE`,
    [textLiteral(tenantId), textLiteral(taskId)],
  );

export const lockedTaskFrom = (r: pg.QueryResult): LockedTaskRow | undefined => r.rows[0] as LockedTaskRow | undefined;

/**
 * A lease holder's completion (done, or in_review), fenced like updateTask, as a statement
 * to send with the COMMIT: for a caller that holds the task's row lock (lockTaskForWrite)
 * and has checked its lease, so that it cannot miss; should it all the same, it fails,
 * and the transaction with it (bosun_expect_one), rather than leave the rest committed.
 */
export const completeTaskStatement = (p: { tenantId: string; taskId: string; epoch: number; owner: string; status: "done" | "in_review"; result: unknown }): PreparedStatement =>
  prepared(
    "bosun_b_complete_task",
    `WITH u AS (
       UPDATE tasks SET status = $3, result = $4::jsonb, lease_owner = NULL, lease_expires_at = NULL,
              completed_at = CASE WHEN $3 = 'done' THEN now() END, updated_at = now()
       WHERE tenant_id = $1 AND id = $2 AND lease_epoch = $5 AND lease_owner = $6 AND ${keyedStatus(`status IN (${LEASED_STATUSES.map((x) => `'${x}'`).join(", ")})`)}
       RETURNING 1)
     SELECT bosun_expect_one((SELECT count(*) FROM u), $7)`,
    [
      textLiteral(p.tenantId),
      textLiteral(p.taskId),
      textLiteral(p.status),
      textLiteral(JSON.stringify(p.result)),
      `'${Math.trunc(p.epoch)}'`,
      textLiteral(p.owner),
      textLiteral(`lease lost: task ${p.taskId} is no longer leased under epoch ${p.epoch}`),
    ],
  );

export async function getTask(
  db: Db,
  { tenantId, taskId, forUpdate = false }: { tenantId: string; taskId: string; forUpdate?: boolean },
): Promise<TaskRow | undefined> {
  const q = db
    .select()
    .from(tasks)
    .where(and(eq(tasks.tenantId, tenantId), eq(tasks.id, taskId)));
  // NO KEY UPDATE: enough to exclude other writers of the row, without blocking the KEY
  // SHARE locks that inserting a dependency on this task takes.
  const [t] = forUpdate ? await q.for("no key update") : await q;
  return t;
}

export async function getTasksByIds(db: Db, { tenantId, ids }: { tenantId: string; ids: string[] }) {
  if (ids.length === 0) return [];
  return db
    .select({ id: tasks.id, title: tasks.title, status: tasks.status })
    .from(tasks)
    .where(and(eq(tasks.tenantId, tenantId), inArray(tasks.id, ids)));
}

/** Tasks newest first (ids sort by creation time), after the cursor's id. */
export async function listTasks(
  db: Db,
  {
    tenantId,
    limit,
    before,
    status,
    assigneeAgentId,
  }: { tenantId: string; limit: number; before?: string | undefined; status?: TaskStatus | undefined; assigneeAgentId?: string | undefined },
): Promise<TaskRow[]> {
  return db
    .select()
    .from(tasks)
    .where(
      and(
        eq(tasks.tenantId, tenantId),
        before !== undefined ? lt(tasks.id, before) : undefined,
        status !== undefined ? eq(tasks.status, status) : undefined,
        assigneeAgentId !== undefined ? eq(tasks.assigneeAgentId, assigneeAgentId) : undefined,
      ),
    )
    .orderBy(desc(tasks.id))
    .limit(limit);
}

/**
 * Updates a task. With `fence`, only while the caller still holds the lease it was given:
 * the same epoch, the same owner and a leased status. Returns undefined when the fence
 * (or the tenant and id) matched nothing.
 */
export async function updateTask(
  db: Db,
  {
    tenantId,
    taskId,
    patch,
    fence,
  }: {
    tenantId: string;
    taskId: string;
    patch: TaskPatch;
    fence?: { epoch: number; owner: string };
  },
): Promise<TaskRow | undefined> {
  const [t] = await db
    .update(tasks)
    .set({ ...patch, updatedAt: sql`now()` })
    .where(
      and(
        eq(tasks.tenantId, tenantId),
        eq(tasks.id, taskId),
        fence ? eq(tasks.leaseEpoch, fence.epoch) : undefined,
        fence ? eq(tasks.leaseOwner, fence.owner) : undefined,
        fence ? inArray(tasks.status, LEASED_STATUSES) : undefined,
      ),
    )
    .returning();
  return t;
}

/** `now() + ttl seconds`, for lease expiries: the database's clock, like every other timestamp. */
export const leaseUntil = (ttlSeconds: number) => sql`now() + make_interval(secs => ${ttlSeconds})`;
export const dbNow = () => sql`now()`;

export async function insertDependencies(db: Db, { tenantId, taskId, dependsOn }: { tenantId: string; taskId: string; dependsOn: string[] }) {
  if (dependsOn.length === 0) return;
  await db
    .insert(taskDependencies)
    .values(dependsOn.map((dependsOnId) => ({ tenantId, taskId, dependsOnId })))
    .onConflictDoNothing();
}

export async function listDependencies(db: Db, { tenantId, taskId }: { tenantId: string; taskId: string }) {
  return db
    .select({ id: tasks.id, title: tasks.title, status: tasks.status })
    .from(taskDependencies)
    .innerJoin(tasks, and(eq(tasks.tenantId, taskDependencies.tenantId), eq(tasks.id, taskDependencies.dependsOnId)))
    .where(and(eq(taskDependencies.tenantId, tenantId), eq(taskDependencies.taskId, taskId)))
    .orderBy(asc(tasks.id));
}

/** Ids of the task's dependencies that are not done yet. */
export async function unfinishedDependencies(db: Db, { tenantId, taskId }: { tenantId: string; taskId: string }): Promise<string[]> {
  const rows = await db
    .select({ id: tasks.id })
    .from(taskDependencies)
    .innerJoin(tasks, and(eq(tasks.tenantId, taskDependencies.tenantId), eq(tasks.id, taskDependencies.dependsOnId)))
    .where(and(eq(taskDependencies.tenantId, tenantId), eq(taskDependencies.taskId, taskId), sql`${tasks.status} <> 'done'`))
    .orderBy(asc(tasks.id));
  return rows.map((r) => r.id);
}

/**
 * Serialises changes to a tenant's dependency graph for the rest of the transaction. Two
 * transactions that each add one edge of a cycle would otherwise both pass the cycle check,
 * each blind to the other's uncommitted edge.
 */
export async function lockDependencyGraph(db: Db, { tenantId }: { tenantId: string }): Promise<void> {
  await db.execute(sql`SELECT pg_advisory_xact_lock(hashtextextended(${`bosun.task_dependencies:${tenantId}`}, 0))`);
}

/**
 * The cycle that adding edges `taskId → dependsOn[i]` would close, as ids in order
 * (`[taskId, …, taskId]`), or null. A recursive CTE walks every edge reachable from the
 * new ones (UNION keeps it finite and linear in the edges); only when the walk comes back
 * to `taskId` are the edges returned, and the shortest way round is found here.
 */
export async function findDependencyCycle(
  db: Db,
  { tenantId, taskId, dependsOn }: { tenantId: string; taskId: string; dependsOn: string[] },
): Promise<string[] | null> {
  if (dependsOn.length === 0) return null;
  const { rows } = await db.execute<{ task_id: string; depends_on_id: string }>(sql`
    WITH RECURSIVE reach(task_id, depends_on_id) AS (
      SELECT ${taskId}::text, d FROM unnest(ARRAY[${sql.join(
        dependsOn.map((d) => sql`${d}`),
        sql`, `,
      )}]::text[]) AS d
      UNION
      SELECT e.task_id, e.depends_on_id
      FROM reach r JOIN task_dependencies e ON e.tenant_id = ${tenantId} AND e.task_id = r.depends_on_id
    )
    SELECT task_id, depends_on_id FROM reach
    WHERE EXISTS (SELECT 1 FROM reach WHERE depends_on_id = ${taskId})`);
  if (rows.length === 0) return null;
  const next = new Map<string, string[]>();
  for (const r of rows) next.set(r.task_id, [...(next.get(r.task_id) ?? []), r.depends_on_id].sort());
  // Breadth first from taskId back to itself: the shortest cycle, deterministically.
  const cameFrom = new Map<string, string>();
  const queue = [taskId];
  while (queue.length > 0) {
    const at = queue.shift()!;
    for (const to of next.get(at) ?? []) {
      if (to === taskId) {
        const path = [taskId];
        for (let n: string | undefined = at; n !== undefined && n !== taskId; n = cameFrom.get(n)) path.splice(1, 0, n);
        return [...path, taskId];
      }
      if (!cameFrom.has(to)) {
        cameFrom.set(to, at);
        queue.push(to);
      }
    }
  }
  return null;
}

/**
 * The next task `agentId` may claim, locked: queued, workable by the agent, every
 * dependency done; highest priority, then oldest. `FOR NO KEY UPDATE SKIP LOCKED` (the row
 * lock an UPDATE takes), so concurrent claimers each take a different task instead of
 * queueing behind one row.
 */
export async function lockNextClaimable(
  db: Db,
  { tenantId, agentId, exclude = [] }: { tenantId: string; agentId: string; exclude?: string[] },
): Promise<TaskRow | undefined> {
  const [t] = await db
    .select()
    .from(tasks)
    .where(
      and(
        eq(tasks.tenantId, tenantId),
        eq(tasks.status, "queued"),
        exclude.length > 0 ? notInArray(tasks.id, exclude) : undefined,
        workableBy(tenantId, agentId),
        dependenciesDone,
      ),
    )
    .orderBy(desc(tasks.priority), asc(tasks.createdAt), asc(tasks.id))
    .limit(1)
    .for("no key update", { skipLocked: true });
  return t;
}

/**
 * Claims a queued task whose dependencies are all done: a new lease epoch, the owner and
 * an expiry. Run it after locking the row, as its own statement: its snapshot then
 * includes any dependency added (under the row lock) since the row was picked.
 */
export async function claimTask(
  db: Db,
  {
    tenantId,
    taskId,
    agentId,
    leaseOwner,
    ttlSeconds,
    start,
  }: {
    tenantId: string;
    taskId: string;
    agentId: string;
    leaseOwner: string;
    ttlSeconds: number;
    /** The runtime claims and starts at once: straight to in_progress, worked on by this run. */
    start?: { runId: string } | undefined;
  },
): Promise<TaskRow | undefined> {
  const [t] = await db
    .update(tasks)
    .set({
      status: start ? "in_progress" : "claimed",
      claimedByAgentId: agentId,
      leaseOwner,
      leaseEpoch: sql`${tasks.leaseEpoch} + 1`,
      leaseExpiresAt: leaseUntil(ttlSeconds),
      updatedAt: sql`now()`,
      ...(start ? { runId: start.runId } : {}),
    })
    .where(and(eq(tasks.tenantId, tenantId), eq(tasks.id, taskId), eq(tasks.status, "queued"), dependenciesDone))
    .returning();
  return t;
}

/** The task `t` waits for no unfinished dependency. */
const DEPENDENCIES_DONE = `NOT EXISTS (SELECT 1 FROM task_dependencies d JOIN tasks dt ON dt.tenant_id = d.tenant_id AND dt.id = d.depends_on_id
                    WHERE d.tenant_id = t.tenant_id AND d.task_id = t.id AND dt.status <> 'done')`;

/**
 * The agent's domain globs as the rows `g(pattern)`. Its descriptor is read by a scalar
 * subquery, a primary-key lookup of its own: joined instead, the planner chose to scan
 * `agents` for the row in these correlated subqueries (fast-start for an EXISTS), once per
 * task or agent asked about, which in a tenant of 10,000 agents cost ~1 ms each time.
 */
const agentGlobs = (tenant: string, agent: string) =>
  `jsonb_array_elements_text(COALESCE((SELECT ca.descriptor -> 'spec' -> 'domains' FROM agents ca WHERE ca.tenant_id = ${tenant} AND ca.id = ${agent}), '[]'::jsonb)) AS g(pattern)`;

/** The literal head of the glob `g.pattern`: everything before its first `*` or `?`. */
const GLOB_HEAD = `split_part(split_part(g.pattern, '*', 1), '?', 1)`;

/**
 * The claim rule above (queued, workable by the agent, every dependency done) as an
 * EXISTS over SQL expressions, for statements that ask it of many agents at once (the
 * schedule tick) or inside the runtime's own queries. `tenant` and `agent` are SQL
 * expressions (`$1`, `a.id`); the agent's descriptor is read from `agents`. Keep it in step
 * with `workableBy`, `claimableWhere` and `dependenciesDone`: the tests of all run against
 * the same cases.
 *
 * It looks only where such a task can be, never along the whole queue: the agent's own
 * queued tasks (tasks_queued_assignee_idx), and for each of its globs the unassigned queued
 * tasks whose domain starts with the glob's literal head (tasks_queued_domain_idx, in byte
 * order: every domain that starts with `head` lies between `head` and `head` || U+10FFFF,
 * task domains being ASCII paths). The glob itself is then matched as everywhere else.
 * The range's bounds are computed in a subquery of their own (OFFSET 0 keeps it apart), so
 * that the index condition holds only leakproof operators: under row-level security (a
 * tenant's transaction) Postgres uses no other as an index condition, and the check went
 * back to reading the tenant's whole queue.
 */
export const claimableTaskExists = (tenant: string, agent: string) => `(EXISTS (
  SELECT 1 FROM tasks t
  WHERE t.tenant_id = ${tenant} AND t.status = 'queued' AND t.assignee_agent_id IS NOT NULL AND t.assignee_agent_id = ${agent}
    AND t.reviewer_agent_id IS DISTINCT FROM ${agent} AND ${DEPENDENCIES_DONE})
 OR EXISTS (
  SELECT 1 FROM (SELECT g.pattern, ${GLOB_HEAD} AS lo, ${GLOB_HEAD} || chr(1114111) AS hi FROM ${agentGlobs(tenant, agent)} OFFSET 0) g
  JOIN tasks t ON t.tenant_id = ${tenant} AND t.status = 'queued' AND t.assignee_agent_id IS NULL AND t.domain IS NOT NULL
    AND t.domain ~>=~ g.lo AND t.domain ~<=~ g.hi
  WHERE ${globCovers("t.domain")}
    AND t.reviewer_agent_id IS DISTINCT FROM ${agent} AND ${DEPENDENCIES_DONE}))`;

/** The claim rule on the row `t` of `tasks`, for the claim, which walks the queue in its claim order. */
export const claimableWhere = (tenant: string, agent: string) => `t.tenant_id = ${tenant} AND t.status = 'queued'
    AND (t.assignee_agent_id = ${agent} OR (t.assignee_agent_id IS NULL AND t.domain IS NOT NULL AND EXISTS (
          SELECT 1 FROM ${agentGlobs(tenant, agent)} WHERE ${globCovers("t.domain")})))
    AND t.reviewer_agent_id IS DISTINCT FROM ${agent}
    AND ${DEPENDENCIES_DONE}`;

/** Whether `agentId` has a task it could claim now (claimableTaskExists): for idle checks. */
export async function hasClaimableTask(db: Db, { tenantId, agentId }: { tenantId: string; agentId: string }): Promise<boolean> {
  const { rows } = await db.$client.query<{ yes: boolean }>(`SELECT ${claimableTaskExists("$1", "$2")} AS yes`, [tenantId, agentId]);
  return rows[0]?.yes === true;
}

/** Whether the agent's descriptor covers `domain` with one of its `spec.domains` globs. */
export async function agentCoversDomain(db: Db, { tenantId, agentId, domain }: { tenantId: string; agentId: string; domain: string }): Promise<boolean> {
  const [r] = await db
    .select({ yes: sql<number>`1` })
    .from(agents)
    .where(and(eq(agents.tenantId, tenantId), eq(agents.id, agentId), domainsCover(sql`${agents.descriptor}`, sql`${domain}::text`)));
  return r !== undefined;
}

/** Of these agent ids, the active ones. */
export async function activeAgentIds(db: Db, { tenantId, ids }: { tenantId: string; ids: string[] }): Promise<string[]> {
  if (ids.length === 0) return [];
  const rows = await db
    .select({ id: agents.id })
    .from(agents)
    .where(and(eq(agents.tenantId, tenantId), inArray(agents.id, ids), eq(agents.status, "active")));
  return rows.map((r) => r.id);
}

/**
 * The queued tasks that depend on `taskId` and have no unfinished dependency left, for
 * waking their agents once `taskId` is done. The dependents are locked (in id order) by a
 * first statement and checked by a second: when two dependencies of one task finish at
 * once, the second transaction waits for the first and then sees both done, so one of the
 * two always wakes the agent.
 */
export async function unblockedDependents(db: Db, { tenantId, taskId }: { tenantId: string; taskId: string }): Promise<TaskRow[]> {
  const dependents = db
    .select({ id: taskDependencies.taskId })
    .from(taskDependencies)
    .where(and(eq(taskDependencies.tenantId, tenantId), eq(taskDependencies.dependsOnId, taskId)));
  const locked = await db
    .select({ id: tasks.id })
    .from(tasks)
    .where(and(eq(tasks.tenantId, tenantId), inArray(tasks.id, dependents), eq(tasks.status, "queued")))
    .orderBy(asc(tasks.id))
    .for("no key update");
  if (locked.length === 0) return [];
  return db
    .select()
    .from(tasks)
    .where(
      and(
        eq(tasks.tenantId, tenantId),
        inArray(
          tasks.id,
          locked.map((r) => r.id),
        ),
        eq(tasks.status, "queued"),
        dependenciesDone,
      ),
    )
    .orderBy(asc(tasks.id));
}

/** System sweep, across tenants: the tenants that have tasks whose lease ran out before `now`. */
export async function tenantsWithExpiredLeases(db: Db, { now, limit }: { now: Date; limit: number }): Promise<string[]> {
  const rows = await db
    .selectDistinct({ tenantId: tasks.tenantId })
    .from(tasks)
    .where(and(inArray(tasks.status, LEASED_STATUSES), lt(tasks.leaseExpiresAt, now)))
    .limit(limit);
  return rows.map((r) => r.tenantId);
}

/** A tenant's tasks whose lease ran out before `now`, locked; rows another transaction holds are skipped. */
export async function lockExpiredLeases(db: Db, { tenantId, now, limit }: { tenantId: string; now: Date; limit: number }): Promise<TaskRow[]> {
  return db
    .select()
    .from(tasks)
    .where(and(eq(tasks.tenantId, tenantId), inArray(tasks.status, LEASED_STATUSES), lt(tasks.leaseExpiresAt, now)))
    .orderBy(asc(tasks.leaseExpiresAt), asc(tasks.id))
    .limit(limit)
    .for("no key update", { skipLocked: true });
}

/**
 * The agent has a wake queued (`tenant`, `agent` are SQL expressions; the row `j` of
 * pgboss.job): the row pg-boss's singleton index `job_i1` holds for the key `wakeKey`
 * builds, so one index probe. The condition, for an EXISTS (wakeQueued) or a scalar lookup.
 */
const WAKE_QUEUED_WHERE = (tenant: string, agent: string) =>
  `j.name = 'agent.wake' AND j.state = 'created' AND j.policy = 'short' AND COALESCE(j.singleton_key, '') = ${tenant} || ':' || ${agent}`;
const wakeQueued = (tenant: string, agent: string) => `EXISTS (SELECT 1 FROM pgboss.job j WHERE ${WAKE_QUEUED_WHERE(tenant, agent)})`;

/** A session `s` (LEFT JOINed: no row is idle too) with no live lease. */
const SESSION_IDLE = `(s.lease_owner IS NULL OR s.lease_expires_at < now())`;

/**
 * Whom to wake for these unassigned domain tasks: ONE agent per task, chosen in one
 * statement among the active agents covering its domain (never the task's reviewer, who
 * may not claim it). Preferred, in tiers: idle (no live session lease, or no session yet)
 * with no wake queued; idle with one queued; busy (it re-checks when it releases) without;
 * busy with. Within a tier the candidates are taken in rotation from an offset, `seed` plus
 * the task's place in the list: one batch's tasks go to consecutive, distinct agents, and
 * concurrent single-task creates (seeds from their own ids) scatter rather than all taking
 * the lowest id. Returns the chosen agent ids, one per task that has a candidate.
 */
export async function agentsToWake(
  db: Db,
  { tenantId, tasks: list, seed }: { tenantId: string; tasks: { id: string; domain: string; reviewerAgentId: string | null }[]; seed: number },
): Promise<string[]> {
  if (list.length === 0) return [];
  const { rows } = await db.$client.query<{ agent_id: string }>({
    name: "bosun_tasks_agents_to_wake",
    text: AGENTS_TO_WAKE_SQL,
    values: [tenantId, list.map((t) => t.id), list.map((t) => t.domain), list.map((t) => t.reviewerAgentId), seed],
  });
  return agentsToWakeFrom(rows);
}

/** agentsToWake as a prepared statement, for a batch; `agentsToWakeFrom` reads its rows. */
export function agentsToWakeStatement({ tenantId, tasks: list, seed }: { tenantId: string; tasks: { id: string; domain: string; reviewerAgentId: string | null }[]; seed: number }): PreparedStatement {
  return prepared("bosun_b_agents_to_wake", AGENTS_TO_WAKE_SQL, [
    pg.escapeLiteral(tenantId),
    textArray(list.map((t) => t.id)),
    textArray(list.map((t) => t.domain)),
    textArray(list.map((t) => t.reviewerAgentId)),
    `'${Math.trunc(seed)}'`,
  ]);
}

export const agentsToWakeFrom = (rows: { agent_id: string }[]): string[] => rows.map((r) => r.agent_id);

/** A text[] as an escaped literal: `'{"a","b",NULL}'`. */
const textArray = (values: (string | null)[]) =>
  pg.escapeLiteral(`{${values.map((v) => (v === null ? "NULL" : `"${v.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`)).join(",")}}`);

/**
 * How many covering agents one task's wake choice looks at, at most. A tenant of no more
 * active agents than this has them all read by the statement itself. A bigger one asks
 * bosun_wake_candidates (migration 0017): its covering agents, found by their globs'
 * heads, when there are no more than this; else this many of them, taken in the order of
 * the hash of their id from a point the seed gives (wrapping around). The tiers and the
 * rotation then apply among the candidates. So a create costs about the same in a fleet of
 * 10,000 as in one of 100 (~60 ms a create when all 10,000 covered it: every one's session
 * and queued wake were looked at and sorted). The cost: an idle agent outside the window
 * is not preferred to a busy one inside it. The busy one re-checks when it releases its
 * lease, and the worker's tick wakes idle covering agents for tasks left queued
 * (idleAgentsForStaleTasks).
 */
export const WAKE_CANDIDATES = 64;

const AGENTS_TO_WAKE_SQL = `WITH t AS (
       SELECT x.id, x.domain, x.reviewer, x.k FROM unnest($2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS x(id, domain, reviewer, k)),
     fleet AS (
       SELECT count(*) <= ${WAKE_CANDIDATES} AS small FROM (SELECT 1 FROM agents WHERE tenant_id = $1 AND status = 'active' LIMIT ${WAKE_CANDIDATES + 1}) x),
     c AS (
       SELECT t.id AS task_id, t.k, w.id AS agent_id, w.tier
       -- The candidates: every covering agent, read here when the tenant has no more than
       -- WAKE_CANDIDATES active agents (the common case, and the cheapest); in a bigger
       -- fleet, every covering agent or WAKE_CANDIDATES of them (bosun_wake_candidates,
       -- migration 0017). Each one's session and queued wake are then scalar
       -- subqueries, one index lookup each: as EXISTS, Postgres hashed every session (or
       -- queued wake) of the tenant instead.
       FROM t CROSS JOIN LATERAL (
         SELECT w.id,
                CASE WHEN (SELECT ${SESSION_IDLE} IS NOT TRUE FROM agent_sessions s WHERE s.tenant_id = $1 AND s.agent_id = w.id) THEN 2 ELSE 0 END
                + CASE WHEN (SELECT true FROM pgboss.job j WHERE ${WAKE_QUEUED_WHERE("$1", "w.id")} LIMIT 1) THEN 1 ELSE 0 END AS tier
         FROM (
           SELECT a.id FROM agents a
           WHERE a.tenant_id = $1 AND a.status = 'active' AND a.id IS DISTINCT FROM t.reviewer AND ${coversText("t.domain")}
             AND (SELECT small FROM fleet)
           UNION ALL
           SELECT f.id FROM bosun_wake_candidates($1, t.domain, t.reviewer, $5::bigint, ${WAKE_CANDIDATES}) AS f(id)
           WHERE NOT (SELECT small FROM fleet)) w) w),
     r AS (
       SELECT task_id, agent_id, tier, k,
              row_number() OVER (PARTITION BY task_id, tier ORDER BY agent_id) AS i,
              count(*) OVER (PARTITION BY task_id, tier) AS m
       FROM c)
     SELECT DISTINCT ON (task_id) agent_id FROM r ORDER BY task_id, tier, (i + $5::bigint + k) % m`;

/**
 * The wake backstop's statement (the worker's tick, across tenants): agents to wake for
 * queued, claimable (every dependency done), unassigned domain tasks that have not changed
 * for `graceSeconds` although an idle covering agent with no wake queued could take them.
 * Per (tenant, domain, reviewer) group of n such tasks, the group's first n idle covering
 * agents, those with a wake queued first (they will claim without help), then the least
 * recently run; of these, the ones with no wake queued are returned. So a group that already
 * has a wake coming for each of its tasks gets none. At most `limit` in all.
 */
export async function idleAgentsForStaleTasks(db: Db, { graceSeconds, limit }: { graceSeconds: number; limit: number }): Promise<{ tenantId: string; agentId: string }[]> {
  const { rows } = await db.$client.query<{ tenantId: string; agentId: string }>(
    `WITH stale AS (
       SELECT t.tenant_id, t.domain, t.reviewer_agent_id AS reviewer, count(*) AS n FROM tasks t
       WHERE t.status = 'queued' AND t.assignee_agent_id IS NULL AND t.domain IS NOT NULL
         AND t.updated_at < now() - make_interval(secs => $1)
         AND NOT EXISTS (SELECT 1 FROM task_dependencies d JOIN tasks dt ON dt.tenant_id = d.tenant_id AND dt.id = d.depends_on_id
                         WHERE d.tenant_id = t.tenant_id AND d.task_id = t.id AND dt.status <> 'done')
       GROUP BY t.tenant_id, t.domain, t.reviewer_agent_id)
     SELECT DISTINCT st.tenant_id AS "tenantId", p.id AS "agentId"
     FROM stale st CROSS JOIN LATERAL (
       SELECT a.id, ${wakeQueued("a.tenant_id", "a.id")} AS queued
       FROM agents a LEFT JOIN agent_sessions s ON s.tenant_id = a.tenant_id AND s.agent_id = a.id
       WHERE a.tenant_id = st.tenant_id AND a.status = 'active' AND a.id IS DISTINCT FROM st.reviewer
         AND ${SESSION_IDLE} AND ${coversText("st.domain")}
       ORDER BY queued DESC, s.last_run_at NULLS FIRST, a.id
       LIMIT least(st.n, $2)) p
     WHERE NOT p.queued
     ORDER BY 1, 2
     LIMIT $2`,
    [graceSeconds, limit],
  );
  return rows;
}
