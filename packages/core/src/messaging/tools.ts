import type { Tx } from "@bosun/db";
import type { Jobs } from "@bosun/jobs";
import type { ToolDef } from "@bosun/llm";
import { sendInTx } from "./service";

/** Messaging tools every agent has (internal). */
export const messagingTools: ToolDef[] = [
  {
    name: "send_message",
    description: "Send a direct message to another agent (by name); give thread_id to continue a thread.",
    inputSchema: {
      type: "object",
      properties: { to: { type: "string" }, body: { type: "string" }, thread_id: { type: "string" } },
      required: ["to", "body"],
    },
  },
  {
    name: "reply",
    description: "Answer a message (by its id): the answer goes to its sender, person or agent, in the same thread.",
    inputSchema: {
      type: "object",
      properties: { message_id: { type: "string" }, body: { type: "string" } },
      required: ["message_id", "body"],
    },
  },
  {
    name: "broadcast",
    description: "Send a message to every other active agent. Use sparingly: each one wakes to read it.",
    inputSchema: { type: "object", properties: { body: { type: "string" } }, required: ["body"] },
  },
];

const str = (v: unknown) => (typeof v === "string" ? v : undefined);

/** Runs a messaging tool in the run's transaction; a refused send throws AppError (a tool error). */
export async function messagingTool(tx: Tx, jobs: Pick<Jobs, "enqueue">, p: { tenantId: string; agentId: string }, name: string, a: Record<string, unknown>) {
  const body = (str(a.body) ?? "").slice(0, 100_000);
  if (!body.trim()) return { status: "error" as const, output: { content: "`body` must not be empty", isError: true } };
  const from = { type: "agent", id: p.agentId, agentId: p.agentId };
  const sent =
    name === "broadcast"
      ? await sendInTx(tx, jobs, p.tenantId, from, { broadcast: true, body })
      : name === "reply"
        ? await sendInTx(tx, jobs, p.tenantId, from, { reply_to: str(a.message_id) ?? "", body })
        : await sendInTx(tx, jobs, p.tenantId, from, { to: str(a.to) ?? "", body, thread_id: str(a.thread_id) });
  const content = sent.broadcast ? `broadcast ${sent.id} sent to ${sent.recipients} agents` : `message ${sent.id} sent to ${sent.to} (thread ${sent.threadId})`;
  return { status: "ok" as const, output: { content, messageId: sent.id, threadId: sent.threadId, recipients: sent.recipients } };
}
