import { inboxItemSchema, inboxQuerySchema, pageOf, problemSchema } from "@bosun/contracts";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { actorOf } from "../plugins/auth";
import type { Services } from "../services";

const errors = { 400: problemSchema, 401: problemSchema, 403: problemSchema, 404: problemSchema, 422: problemSchema };

export function inboxRoutes(app: FastifyInstance, s: Services) {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get(
    "/v1/inbox",
    {
      schema: {
        tags: ["inbox"],
        summary:
          "What waits for a person: pending approvals, escalated tasks, tasks blocked by a failed or cancelled dependency, escalated proposals, agents paused by a budget; newest first",
        querystring: inboxQuerySchema,
        response: { 200: pageOf(inboxItemSchema), ...errors },
      },
    },
    async (req) => s.inbox.list(actorOf(req), req.query),
  );
}
