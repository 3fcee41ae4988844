import pg from "pg";
import { and, asc, eq, gt, sql } from "drizzle-orm";
import type { Db } from "../client";
import { prepared } from "../tx";
import { agentRevisions, agents } from "../schema/index";

export type AgentRow = typeof agents.$inferSelect;
export type AgentRevisionRow = typeof agentRevisions.$inferSelect;

export async function getAgentByName(
  db: Db,
  { tenantId, name, forUpdate = false }: { tenantId: string; name: string; forUpdate?: boolean },
): Promise<AgentRow | undefined> {
  const q = db
    .select()
    .from(agents)
    .where(and(eq(agents.tenantId, tenantId), eq(agents.name, name)));
  const [a] = forUpdate ? await q.for("update") : await q;
  return a;
}

export async function getAgentById(db: Db, { tenantId, agentId }: { tenantId: string; agentId: string }) {
  const [a] = await db
    .select()
    .from(agents)
    .where(and(eq(agents.tenantId, tenantId), eq(agents.id, agentId)));
  return a;
}

const AGENT_COLUMNS = `tenant_id AS "tenantId", id, name, owner, status, revision, spec_hash AS "specHash", descriptor,
  next_wake_at AS "nextWakeAt", created_at AS "createdAt", updated_at AS "updatedAt"`;

/** getAgentById as a prepared statement, for a batch sent in one round trip. */
export const agentByIdRead = (tenantId: string, agentId: string) =>
  prepared("bosun_b_agent_by_id", `SELECT ${AGENT_COLUMNS} FROM agents WHERE tenant_id = $1 AND id = $2`, [pg.escapeLiteral(tenantId), pg.escapeLiteral(agentId)]);

/**
 * Agents ordered by name, after the cursor's name. The busiest read of the API, so it is
 * plain SQL as named (server-side prepared) statements, one per filter combination.
 */
export async function listAgents(
  db: Db,
  {
    tenantId,
    limit,
    afterName,
    status,
  }: { tenantId: string; limit: number; afterName?: string | undefined; status?: AgentRow["status"] | undefined },
): Promise<AgentRow[]> {
  const where = ["tenant_id = $1"];
  const values: unknown[] = [tenantId, limit];
  if (afterName !== undefined) where.push(`name > $${values.push(afterName)}`);
  if (status !== undefined) where.push(`status = $${values.push(status)}`);
  const { rows } = await db.$client.query<AgentRow>({
    name: `bosun_agents_list_${afterName !== undefined ? "a" : ""}${status !== undefined ? "s" : ""}`,
    text: `SELECT ${AGENT_COLUMNS} FROM agents WHERE ${where.join(" AND ")} ORDER BY name LIMIT $2`,
    values,
  });
  return rows;
}

/**
 * Inserts the agent unless one with this name exists; returns undefined on a clash so
 * that concurrent first applies of one name resolve to a single agent.
 */
export async function insertAgent(db: Db, row: typeof agents.$inferInsert): Promise<AgentRow | undefined> {
  const [a] = await db.insert(agents).values(row).onConflictDoNothing().returning();
  return a;
}

export async function updateAgent(
  db: Db,
  {
    tenantId,
    agentId,
    patch,
  }: {
    tenantId: string;
    agentId: string;
    patch: Partial<Pick<AgentRow, "owner" | "status" | "revision" | "specHash" | "descriptor" | "nextWakeAt">>;
  },
): Promise<AgentRow> {
  const [a] = await db
    .update(agents)
    .set({ ...patch, updatedAt: sql`now()` })
    .where(and(eq(agents.tenantId, tenantId), eq(agents.id, agentId)))
    .returning();
  return a!;
}

export async function insertRevision(db: Db, row: typeof agentRevisions.$inferInsert): Promise<void> {
  await db.insert(agentRevisions).values(row);
}

export async function listRevisions(
  db: Db,
  { tenantId, agentId, limit, after }: { tenantId: string; agentId: string; limit: number; after?: number | undefined },
): Promise<AgentRevisionRow[]> {
  return db
    .select()
    .from(agentRevisions)
    .where(
      and(
        eq(agentRevisions.tenantId, tenantId),
        eq(agentRevisions.agentId, agentId),
        after !== undefined ? gt(agentRevisions.revision, after) : undefined,
      ),
    )
    .orderBy(asc(agentRevisions.revision))
    .limit(limit);
}

export async function getRevision(
  db: Db,
  { tenantId, agentId, revision }: { tenantId: string; agentId: string; revision: number },
): Promise<AgentRevisionRow | undefined> {
  const [r] = await db
    .select()
    .from(agentRevisions)
    .where(
      and(
        eq(agentRevisions.tenantId, tenantId),
        eq(agentRevisions.agentId, agentId),
        eq(agentRevisions.revision, revision),
      ),
    );
  return r;
}

/** Arms the scheduler, unless a newer revision has been applied meanwhile. */
export async function setNextWake(
  db: Db,
  { tenantId, agentId, revision, at }: { tenantId: string; agentId: string; revision: number; at: Date | null },
): Promise<boolean> {
  const r = await db
    .update(agents)
    .set({ nextWakeAt: at })
    .where(and(eq(agents.tenantId, tenantId), eq(agents.id, agentId), eq(agents.revision, revision)))
    .returning({ id: agents.id });
  return r.length === 1;
}
