import { type Database, repo, type Tx, withTenant } from "@bosun/db";
import { type Jobs, wakeKey } from "@bosun/jobs";
import { type Actor, requireScope } from "../actor";
import { audit } from "../audit";
import { notFound, validation } from "../errors";
import { newId } from "../ids";
import { decodeCursor, isString, page } from "../pagination";

const mem = repo.memory;
type MessageRow = repo.memory.MessageRow;

/**
 * A broadcast writes one row per active agent and wakes each one in its transaction; past
 * this many recipients it is refused (send to a domain's agents by name instead, or raise
 * the bound knowingly: the transaction and the wake fan-out grow with it).
 */
export const MAX_BROADCAST_RECIPIENTS = 500;

export interface SendInput {
  to?: string | undefined;
  body: string;
  thread_id?: string | undefined;
  reply_to?: string | undefined;
  broadcast?: boolean | undefined;
}

export interface Sent {
  id: string;
  to: string;
  threadId: string;
  replyTo: string | null;
  broadcast: boolean;
  recipients: number;
  createdAt: string;
}

/** Who sends: a person, a key or an agent (`agentId` set when the sender is an agent). */
export interface Sender {
  type: string;
  id: string;
  agentId: string | null;
}

/**
 * Sends a message inside the caller's transaction and enqueues the recipients' wakes in
 * it: the message and its wake-up commit together or not at all. Used by the API and by
 * the runtime's `send_message` / `reply` / `broadcast` tools.
 */
export async function sendInTx(tx: Tx, jobs: Pick<Jobs, "enqueue">, tenantId: string, from: Sender, m: SendInput): Promise<Sent> {
  const wake = (agentId: string) => jobs.enqueue(tx, "agent.wake", { tenantId, agentId, reason: "message" }, { singletonKey: wakeKey(tenantId, agentId) });
  const createdAt = new Date().toISOString();
  if (m.broadcast) {
    const recipients = await mem.broadcastRecipients(tx, { tenantId, excludeAgentId: from.agentId, limit: MAX_BROADCAST_RECIPIENTS });
    if (recipients.length > MAX_BROADCAST_RECIPIENTS) {
      throw validation(`a broadcast reaches at most ${MAX_BROADCAST_RECIPIENTS} agents`, [{ path: "broadcast", message: "too many active agents" }]);
    }
    const broadcastId = newId("brd");
    await mem.insertBroadcast(tx, {
      tenantId,
      broadcastId,
      ids: recipients.map(() => newId("msg")),
      agentIds: recipients,
      fromType: from.type,
      fromId: from.id,
      body: m.body,
    });
    for (const a of recipients) await wake(a);
    return { id: broadcastId, to: "*", threadId: broadcastId, replyTo: null, broadcast: true, recipients: recipients.length, createdAt };
  }
  const id = newId("msg");
  if (m.reply_to) {
    const orig = await mem.getMessage(tx, { tenantId, id: m.reply_to });
    // An agent may answer only what it received or sent.
    const visible = orig && (!from.agentId || orig.toAgentId === from.agentId || (orig.fromType === "agent" && orig.fromId === from.agentId));
    if (!orig || !visible) throw validation(`message ${m.reply_to} does not exist`, [{ path: "reply_to", message: "no such message" }]);
    const threadId = orig.threadId ?? orig.id;
    // The answer goes to the original's sender; answering one's own message continues it to
    // its recipient.
    const own = from.agentId ? orig.fromType === "agent" && orig.fromId === from.agentId : orig.fromType === from.type && orig.fromId === from.id;
    const target = own ? { type: orig.toType, id: orig.toId ?? orig.toAgentId } : { type: orig.fromType, id: orig.fromId };
    const toAgent = target.type === "agent" && target.id ? await repo.getAgentById(tx, { tenantId, agentId: target.id }) : undefined;
    if (!target.id) throw validation(`message ${m.reply_to} has no one to answer`, [{ path: "reply_to", message: "no sender to answer" }]);
    await mem.insertMessage(tx, {
      tenantId,
      id,
      toAgentId: toAgent?.id ?? null,
      toType: target.type,
      toId: target.id,
      fromType: from.type,
      fromId: from.id,
      body: m.body,
      threadId,
      replyTo: orig.id,
    });
    if (toAgent) await wake(toAgent.id);
    return { id, to: toAgent?.name ?? target.id, threadId, replyTo: orig.id, broadcast: false, recipients: 1, createdAt };
  }
  const to = await repo.getAgentByName(tx, { tenantId, name: m.to ?? "" });
  if (!to) throw validation(`agent '${m.to}' does not exist`, [{ path: "to", message: "no such agent" }]);
  let threadId = id;
  if (m.thread_id) {
    const t = await mem.listMessages(tx, { tenantId, limit: 1, threadId: m.thread_id });
    if (!t.length) throw validation(`thread ${m.thread_id} does not exist`, [{ path: "thread_id", message: "no such thread" }]);
    threadId = m.thread_id;
  }
  await mem.insertMessage(tx, { tenantId, id, toAgentId: to.id, toType: "agent", toId: to.id, fromType: from.type, fromId: from.id, body: m.body, threadId, replyTo: null });
  await wake(to.id);
  return { id, to: to.name, threadId, replyTo: null, broadcast: false, recipients: 1, createdAt };
}

export const messageService = (deps: { database: Database; jobs: Pick<Jobs, "enqueue"> }) => {
  const { database, jobs } = deps;

  async function names(tx: Tx, tenantId: string, rows: MessageRow[]) {
    const ids = [...new Set(rows.flatMap((r) => [r.toAgentId, r.fromType === "agent" ? r.fromId : null]).filter((x): x is string => !!x))];
    if (!ids.length) return new Map<string, string>();
    const { rows: a } = await tx.$client.query<{ id: string; name: string }>(`SELECT id, name FROM agents WHERE tenant_id = $1 AND id = ANY($2)`, [tenantId, ids]);
    return new Map(a.map((r) => [r.id, r.name]));
  }

  const view = (m: MessageRow, n: Map<string, string>) => ({
    id: m.id,
    to: { type: m.toType, id: m.toId ?? m.toAgentId, agent: m.toAgentId ? (n.get(m.toAgentId) ?? null) : null },
    from: { type: m.fromType, id: m.fromId, agent: m.fromType === "agent" ? (n.get(m.fromId) ?? null) : null },
    body: m.body,
    threadId: m.threadId,
    replyTo: m.replyTo,
    broadcastId: m.broadcastId,
    readAt: m.readAt?.toISOString() ?? null,
    createdAt: m.createdAt.toISOString(),
  });

  /** An agent's key sees only its own messages (to or from it); people see the tenant's. */
  const visibleTo = (actor: Actor, m: MessageRow) => !actor.agentId || m.toAgentId === actor.agentId || (m.fromType === "agent" && m.fromId === actor.agentId);

  return {
    async send(actor: Actor, body: SendInput, requestId?: string): Promise<Sent> {
      requireScope(actor, "write");
      return withTenant(database, actor.tenantId, async (tx) => {
        const sent = await sendInTx(tx, jobs, actor.tenantId, { type: actor.agentId ? "agent" : actor.type, id: actor.agentId ?? actor.id, agentId: actor.agentId ?? null }, body);
        await audit(
          tx,
          actor,
          { action: sent.broadcast ? "message.broadcast" : "message.send", targetType: "message", targetId: sent.id, after: { to: sent.to, threadId: sent.threadId, recipients: sent.recipients } },
          requestId,
        );
        return sent;
      });
    },

    async list(actor: Actor, q: { limit: number; cursor?: string | undefined; agent?: string | undefined; thread?: string | undefined; unread?: boolean | undefined }) {
      requireScope(actor, "read");
      const before = decodeCursor(q.cursor, isString);
      return withTenant(database, actor.tenantId, async (tx) => {
        let agentId = actor.agentId ?? undefined;
        if (q.agent) {
          const a = await repo.getAgentByName(tx, { tenantId: actor.tenantId, name: q.agent });
          if (!a || (actor.agentId && a.id !== actor.agentId)) throw notFound(`agent '${q.agent}'`);
          agentId = a.id;
        }
        const rows = await mem.listMessages(tx, { tenantId: actor.tenantId, limit: q.limit + 1, before, agentId, threadId: q.thread, unread: q.unread });
        const p = page(rows, q.limit, (r) => r.id);
        const n = await names(tx, actor.tenantId, p.items);
        return { items: p.items.map((m) => view(m, n)), nextCursor: p.nextCursor };
      });
    },

    async get(actor: Actor, id: string) {
      requireScope(actor, "read");
      return withTenant(database, actor.tenantId, async (tx) => {
        const m = await mem.getMessage(tx, { tenantId: actor.tenantId, id });
        if (!m || !visibleTo(actor, m)) throw notFound(`message ${id}`);
        return view(m, await names(tx, actor.tenantId, [m]));
      });
    },

    /** A thread in order; an agent sees it if it took part in it. */
    async thread(actor: Actor, threadId: string) {
      requireScope(actor, "read");
      return withTenant(database, actor.tenantId, async (tx) => {
        const rows = await mem.threadMessages(tx, { tenantId: actor.tenantId, threadId, limit: 1000 });
        if (!rows.length) throw notFound(`thread ${threadId}`);
        if (actor.agentId) {
          // A broadcast thread's rows are deduplicated to one copy: check the agent's own.
          const own = await tx.$client.query(
            `SELECT 1 FROM messages WHERE tenant_id = $1 AND thread_id = $2 AND (to_agent_id = $3 OR (from_type = 'agent' AND from_id = $3)) LIMIT 1`,
            [actor.tenantId, threadId, actor.agentId],
          );
          if (!own.rows.length) throw notFound(`thread ${threadId}`);
        }
        const n = await names(tx, actor.tenantId, rows);
        return { threadId, messages: rows.map((m) => view(m, n)) };
      });
    },
  };
};

export type MessageService = ReturnType<typeof messageService>;
