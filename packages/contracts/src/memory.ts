import { z } from "zod";
import { agentNameSchema } from "./agents";
import { pageQuerySchema } from "./common";

const messageId = z
  .string()
  .max(64)
  .regex(/^msg_[0-9a-z]{26}$/, "must be a message id starting with msg_");
const threadId = z
  .string()
  .max(64)
  .regex(/^(msg|brd)_[0-9a-z]{26}$/, "must be a thread id (msg_… or brd_…)");

/**
 * POST /v1/messages: exactly one of `to` (a direct message, optionally continuing
 * `thread_id`), `reply_to` (answer a message: it goes to that message's sender, in its
 * thread) or `broadcast: true` (every active agent).
 */
export const sendMessageBodySchema = z
  .strictObject({
    to: agentNameSchema.optional().describe("the agent's name, for a direct message"),
    body: z.string().min(1).max(100_000),
    thread_id: threadId.optional().describe("continue this thread (with `to`)"),
    reply_to: messageId.optional().describe("answer this message: to its sender, in its thread"),
    broadcast: z.boolean().optional().describe("send to every active agent (each has its own unread state)"),
  })
  .superRefine((b, ctx) => {
    const modes = [b.to !== undefined, b.reply_to !== undefined, b.broadcast === true].filter(Boolean).length;
    if (modes !== 1) ctx.addIssue({ code: "custom", path: ["to"], message: "give exactly one of `to`, `reply_to` or `broadcast: true`" });
    if (b.thread_id !== undefined && b.to === undefined) ctx.addIssue({ code: "custom", path: ["thread_id"], message: "`thread_id` goes with `to`" });
  });

export const sentMessageSchema = z.object({
  id: z.string().describe("the message id, or for a broadcast the broadcast id (brd_…)"),
  to: z.string().describe("the recipient agent's name, the person's id for a reply to a person, or `*` for a broadcast"),
  threadId: z.string(),
  replyTo: z.string().nullable(),
  broadcast: z.boolean(),
  recipients: z.number().int(),
  createdAt: z.string(),
});

export const messageSchema = z
  .object({
    id: z.string(),
    to: z.object({ type: z.string(), id: z.string().nullable(), agent: z.string().nullable() }),
    from: z.object({ type: z.string(), id: z.string(), agent: z.string().nullable() }),
    body: z.string(),
    threadId: z.string().nullable(),
    replyTo: z.string().nullable(),
    broadcastId: z.string().nullable(),
    readAt: z.string().nullable(),
    createdAt: z.string(),
  })
  .meta({ id: "Message" });

export const messageListQuerySchema = pageQuerySchema.extend({
  agent: agentNameSchema.optional().describe("messages to or from this agent"),
  thread: threadId.optional(),
  unread: z
    .enum(["true", "false"])
    .transform((v) => v === "true")
    .optional(),
});

export const threadSchema = z.object({ threadId: z.string(), messages: z.array(messageSchema) });

// ---------------------------------------------------------------------------------------
// Memory

export const memoryItemSchema = z
  .object({
    id: z.string(),
    layer: z.enum(["working", "archive"]),
    title: z.string(),
    content: z.string(),
    tokens: z.number().int(),
    version: z.number().int(),
    source: z.string(),
    createdAt: z.string(),
    updatedAt: z.string(),
    expiresAt: z.string().nullable(),
  })
  .meta({ id: "MemoryItem" });

export const agentMemorySchema = z
  .object({
    agent: z.string(),
    tokenizer: z.string().describe("how tokens are counted (an approximation of the provider's)"),
    soul: z.object({ tokens: z.number().int(), limit: z.number().int() }),
    working: z.object({ tokens: z.number().int(), limit: z.number().int(), items: z.array(memoryItemSchema) }),
    archive: z.object({ items: z.number().int(), tokens: z.number().int(), retentionDays: z.number().int() }),
    context: z.object({ limit: z.number().int() }).describe("the active-context layer's budget (assembled per run)"),
    dreams: z.object({
      lastAt: z.string().nullable(),
      lastRunId: z.string().nullable(),
      changesSince: z.number().int().describe("working-memory writes since the last dream"),
    }),
  })
  .meta({ id: "AgentMemory" });
