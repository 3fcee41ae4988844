import { and, asc, desc, eq, inArray, isNotNull, lt, lte, ne, type SQL, sql } from "drizzle-orm";
import type { Db } from "../client";
import { agents, proposalResponses, proposalSettings, proposals } from "../schema/index";
import { domainsCover } from "./tasks";

export type ProposalRow = typeof proposals.$inferSelect;
export type ProposalStatus = ProposalRow["status"];
export type ProposalStance = NonNullable<(typeof proposalResponses.$inferSelect)["stance"]>;
export type ProposalPatch = { [K in keyof ProposalRow]?: ProposalRow[K] | SQL };

export interface ResponseRow {
  agentId: string;
  agentName: string;
  stance: ProposalStance | null;
  comment: string | null;
  respondedAt: Date | null;
}

export async function insertProposal(db: Db, row: typeof proposals.$inferInsert): Promise<ProposalRow> {
  const [p] = await db.insert(proposals).values(row).returning();
  return p!;
}

export async function getProposal(
  db: Db,
  { tenantId, proposalId, forUpdate = false }: { tenantId: string; proposalId: string; forUpdate?: boolean },
): Promise<ProposalRow | undefined> {
  const q = db
    .select()
    .from(proposals)
    .where(and(eq(proposals.tenantId, tenantId), eq(proposals.id, proposalId)));
  const [p] = forUpdate ? await q.for("update") : await q;
  return p;
}

/** Newest first (ids sort by creation time), after the cursor's id. */
export async function listProposals(
  db: Db,
  {
    tenantId,
    limit,
    before,
    status,
    askedAgentId,
  }: { tenantId: string; limit: number; before?: string | undefined; status?: ProposalStatus | undefined; askedAgentId?: string | undefined },
): Promise<ProposalRow[]> {
  return db
    .select()
    .from(proposals)
    .where(
      and(
        eq(proposals.tenantId, tenantId),
        before !== undefined ? lt(proposals.id, before) : undefined,
        status !== undefined ? eq(proposals.status, status) : undefined,
        askedAgentId !== undefined
          ? sql`EXISTS (SELECT 1 FROM proposal_responses r WHERE r.tenant_id = ${proposals.tenantId} AND r.proposal_id = ${proposals.id} AND r.agent_id = ${askedAgentId})`
          : undefined,
      ),
    )
    .orderBy(desc(proposals.id))
    .limit(limit);
}

export async function updateProposal(db: Db, { tenantId, proposalId, patch }: { tenantId: string; proposalId: string; patch: ProposalPatch }) {
  const [p] = await db
    .update(proposals)
    .set({ ...patch, updatedAt: sql`now()` })
    .where(and(eq(proposals.tenantId, tenantId), eq(proposals.id, proposalId)))
    .returning();
  return p;
}

/**
 * The agents (not retired) whose `spec.domains` globs cover at least one of `domains`, by
 * id: the same glob rule as task claims. At most `limit`.
 */
export async function agentsCoveringAny(db: Db, { tenantId, domains, limit }: { tenantId: string; domains: string[]; limit: number }): Promise<string[]> {
  if (domains.length === 0) return [];
  const rows = await db
    .select({ id: agents.id })
    .from(agents)
    .where(
      and(
        eq(agents.tenantId, tenantId),
        ne(agents.status, "retired"),
        sql`EXISTS (SELECT 1 FROM unnest(ARRAY[${sql.join(
          domains.map((d) => sql`${d}`),
          sql`, `,
        )}]::text[]) AS pd(domain) WHERE ${domainsCover(sql`${agents.descriptor}`, sql`pd.domain`)})`,
      ),
    )
    .orderBy(asc(agents.id))
    .limit(limit);
  return rows.map((r) => r.id);
}

export async function insertAsked(db: Db, { tenantId, proposalId, agentIds }: { tenantId: string; proposalId: string; agentIds: string[] }) {
  if (agentIds.length === 0) return;
  await db
    .insert(proposalResponses)
    .values(agentIds.map((agentId) => ({ tenantId, proposalId, agentId })))
    .onConflictDoNothing();
}

export async function listResponses(db: Db, { tenantId, proposalId }: { tenantId: string; proposalId: string }): Promise<ResponseRow[]> {
  return db
    .select({
      agentId: proposalResponses.agentId,
      agentName: agents.name,
      stance: proposalResponses.stance,
      comment: proposalResponses.comment,
      respondedAt: proposalResponses.respondedAt,
    })
    .from(proposalResponses)
    .innerJoin(agents, and(eq(agents.tenantId, proposalResponses.tenantId), eq(agents.id, proposalResponses.agentId)))
    .where(and(eq(proposalResponses.tenantId, tenantId), eq(proposalResponses.proposalId, proposalId)))
    .orderBy(asc(agents.name));
}

/** Records (or changes) an asked agent's response; undefined when the agent was not asked. */
export async function setResponse(
  db: Db,
  p: { tenantId: string; proposalId: string; agentId: string; stance: ProposalStance; comment: string | null },
) {
  const [r] = await db
    .update(proposalResponses)
    .set({ stance: p.stance, comment: p.comment, respondedAt: sql`now()` })
    .where(and(eq(proposalResponses.tenantId, p.tenantId), eq(proposalResponses.proposalId, p.proposalId), eq(proposalResponses.agentId, p.agentId)))
    .returning();
  return r;
}

/** System timer, across tenants: tenants with an open proposal whose next deadline is at or before `now`. */
export async function tenantsWithDueProposals(db: Db, { now, limit }: { now: Date; limit: number }): Promise<string[]> {
  const rows = await db
    .selectDistinct({ tenantId: proposals.tenantId })
    .from(proposals)
    .where(and(isNotNull(proposals.dueAt), lte(proposals.dueAt, now)))
    .limit(limit);
  return rows.map((r) => r.tenantId);
}

/**
 * A tenant's due open proposals, locked. `SKIP LOCKED`: two evaluators (or an evaluator and
 * a response or a person's decision in flight) never work on the same proposal at once;
 * the one that waits would see it decided anyway.
 */
export async function lockDueProposals(db: Db, { tenantId, now, limit }: { tenantId: string; now: Date; limit: number }): Promise<ProposalRow[]> {
  return db
    .select()
    .from(proposals)
    .where(and(eq(proposals.tenantId, tenantId), eq(proposals.status, "open"), isNotNull(proposals.dueAt), lte(proposals.dueAt, now)))
    .orderBy(asc(proposals.dueAt), asc(proposals.id))
    .limit(limit)
    .for("update", { skipLocked: true });
}

export async function getProposalSettings(db: Db, { tenantId }: { tenantId: string }) {
  const [s] = await db.select().from(proposalSettings).where(eq(proposalSettings.tenantId, tenantId));
  return s;
}

export async function upsertProposalSettings(db: Db, row: { tenantId: string; approveAfterSeconds: number; escalateAfterSeconds: number }) {
  const [s] = await db
    .insert(proposalSettings)
    .values(row)
    .onConflictDoUpdate({
      target: proposalSettings.tenantId,
      set: { approveAfterSeconds: row.approveAfterSeconds, escalateAfterSeconds: row.escalateAfterSeconds, updatedAt: sql`now()` },
    })
    .returning();
  return s!;
}

/** Of these agent ids, the names, for views. */
export async function agentNames(db: Db, { tenantId, ids }: { tenantId: string; ids: string[] }): Promise<Map<string, string>> {
  if (ids.length === 0) return new Map();
  const rows = await db
    .select({ id: agents.id, name: agents.name })
    .from(agents)
    .where(and(eq(agents.tenantId, tenantId), inArray(agents.id, ids)));
  return new Map(rows.map((r) => [r.id, r.name]));
}
