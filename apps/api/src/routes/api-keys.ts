import { apiKeySchema, createApiKeyBodySchema, createdApiKeySchema, idParam, pageOf, pageQuerySchema, problemSchema } from "@bosun/contracts";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { actorOf } from "../plugins/auth";
import { idempotencyOf, sendCreated } from "../plugins/idempotency";
import type { Services } from "../services";

const errors = { 400: problemSchema, 401: problemSchema, 403: problemSchema, 404: problemSchema, 422: problemSchema };

export function apiKeyRoutes(app: FastifyInstance, s: Services) {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get(
    "/v1/api-keys",
    {
      schema: {
        tags: ["api-keys"],
        summary: "List API keys (admin); secrets are never returned",
        querystring: pageQuerySchema,
        response: { 200: pageOf(apiKeySchema), ...errors },
      },
    },
    async (req) => s.apiKeys.list(actorOf(req), req.query),
  );

  r.post(
    "/v1/api-keys",
    {
      schema: {
        tags: ["api-keys"],
        summary: "Create an API key (admin); the secret is in the response once",
        body: createApiKeyBodySchema,
        response: { 201: createdApiKeySchema, ...errors },
      },
    },
    async (req, reply) =>
      sendCreated(reply, await s.apiKeys.create(actorOf(req), req.body, { idempotency: idempotencyOf(req), requestId: req.id })),
  );

  r.delete(
    "/v1/api-keys/:id",
    {
      schema: {
        tags: ["api-keys"],
        summary: "Revoke an API key (admin); it stops working at once",
        params: idParam("key"),
        response: { 200: apiKeySchema, ...errors },
      },
    },
    async (req) => s.apiKeys.revoke(actorOf(req), req.params.id, req.id),
  );
}
