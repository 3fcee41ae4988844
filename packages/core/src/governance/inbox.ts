import { type Database, repo, withTenant } from "@bosun/db";
import { type Actor, requireScope } from "../actor";
import { forbidden } from "../errors";
import { decodeCursor, page } from "../pagination";

type InboxRow = repo.governance.InboxRow;
type Kind = InboxRow["kind"];
const KINDS: Kind[] = ["approval", "task", "agent", "proposal"];

/** A cursor is [created_at as Postgres prints it, kind, id]; anything else is refused before SQL sees it. */
const PG_TIMESTAMP = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,6})?[+-]\d{2}(:\d{2})?$/;
const isCursor = (v: unknown): v is [string, string, string] =>
  Array.isArray(v) && v.length === 3 && v.every((x) => typeof x === "string" && x.length <= 100) && PG_TIMESTAMP.test(v[0] as string);

export function inboxItemView(r: InboxRow) {
  const links: Record<string, string> = {};
  if (r.kind === "approval") links.approvalId = r.id;
  if (r.kind === "proposal") links.proposalId = r.id;
  if (r.taskId) links.taskId = r.taskId;
  if (r.runId) links.runId = r.runId;
  if (r.agentId) links.agentId = r.agentId;
  return { kind: r.kind, id: r.id, title: r.title, summary: r.summary, agent: r.agentName, createdAt: r.createdAt.toISOString(), links };
}

/**
 * GET /v1/inbox: one list of what waits for a person — pending approvals, escalated
 * tasks, agents a budget paused, escalated proposals — newest first. The sources are SQL
 * in packages/db (repo.governance.inboxSources); a new kind is one more source.
 */
export const inboxService = (deps: { database: Database }) => ({
  async list(actor: Actor, q: { limit: number; cursor?: string | undefined; kind?: Kind | undefined }) {
    requireScope(actor, "read");
    if (actor.agentId) throw forbidden("the inbox is for people; an agent's key cannot read it");
    const before = decodeCursor(q.cursor, isCursor);
    return withTenant(deps.database, actor.tenantId, async (tx) => {
      const rows = await repo.governance.listInbox(tx, { tenantId: actor.tenantId, limit: q.limit + 1, before, kinds: q.kind ? [q.kind] : KINDS });
      const p = page(rows, q.limit, (r) => [r.cursorAt, r.kind, r.id]);
      return { items: p.items.map(inboxItemView), nextCursor: p.nextCursor };
    });
  },
});

export type InboxService = ReturnType<typeof inboxService>;
