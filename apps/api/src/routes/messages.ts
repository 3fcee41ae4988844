import {
  messageListQuerySchema,
  messageSchema,
  pageOf,
  problemSchema,
  sendMessageBodySchema,
  sentMessageSchema,
  threadSchema,
} from "@bosun/contracts";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { actorOf } from "../plugins/auth";
import type { Services } from "../services";

const errors = { 400: problemSchema, 401: problemSchema, 403: problemSchema, 404: problemSchema, 409: problemSchema, 422: problemSchema };
const tags = ["messages"];

export function messageRoutes(app: FastifyInstance, s: Services) {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.post(
    "/v1/messages",
    {
      schema: {
        tags,
        summary: "Send a direct message, a reply (in its thread) or a broadcast; each recipient agent wakes to read it",
        body: sendMessageBodySchema,
        response: { 201: sentMessageSchema, ...errors },
      },
    },
    async (req, reply) => reply.code(201).send(await s.messages.send(actorOf(req), req.body, req.id)),
  );

  r.get(
    "/v1/messages",
    { schema: { tags, summary: "List messages, newest first (an agent's key sees its own)", querystring: messageListQuerySchema, response: { 200: pageOf(messageSchema), ...errors } } },
    async (req) => s.messages.list(actorOf(req), req.query),
  );

  r.get(
    "/v1/messages/:id",
    {
      schema: {
        tags,
        summary: "A message",
        params: z.object({ id: z.string().max(64).regex(/^msg_[0-9a-z]{26}$/, "must be an id starting with msg_") }),
        response: { 200: messageSchema, ...errors },
      },
    },
    async (req) => s.messages.get(actorOf(req), req.params.id),
  );

  r.get(
    "/v1/threads/:id",
    {
      schema: {
        tags,
        summary: "A thread's messages in order (a broadcast counts once)",
        params: z.object({ id: z.string().max(64).regex(/^(msg|brd)_[0-9a-z]{26}$/, "must be a thread id (msg_… or brd_…)") }),
        response: { 200: threadSchema, ...errors },
      },
    },
    async (req) => s.messages.thread(actorOf(req), req.params.id),
  );
}
