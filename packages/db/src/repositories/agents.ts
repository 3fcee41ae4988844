import { and, asc, eq, gt, sql } from "drizzle-orm";
import type { Db } from "../client";
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

/** Agents ordered by name, after the cursor's name. */
export async function listAgents(
  db: Db,
  {
    tenantId,
    limit,
    afterName,
    status,
  }: { tenantId: string; limit: number; afterName?: string | undefined; status?: AgentRow["status"] | undefined },
): Promise<AgentRow[]> {
  return db
    .select()
    .from(agents)
    .where(
      and(
        eq(agents.tenantId, tenantId),
        afterName !== undefined ? gt(agents.name, afterName) : undefined,
        status ? eq(agents.status, status) : undefined,
      ),
    )
    .orderBy(asc(agents.name))
    .limit(limit);
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
