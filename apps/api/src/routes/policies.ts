import { createPolicyBodySchema, idParam, pageOf, policyListQuerySchema, policySchema, problemSchema, updatePolicyBodySchema } from "@bosun/contracts";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { actorOf } from "../plugins/auth";
import { idempotencyOf, sendCreated } from "../plugins/idempotency";
import type { Services } from "../services";

const errors = { 400: problemSchema, 401: problemSchema, 403: problemSchema, 404: problemSchema, 409: problemSchema, 422: problemSchema };
const tags = ["policies"];
const params = idParam("pol");

export function policyRoutes(app: FastifyInstance, s: Services) {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get(
    "/v1/policies",
    { schema: { tags, summary: "List tool-call policies (tenant-wide and per agent)", querystring: policyListQuerySchema, response: { 200: pageOf(policySchema), ...errors } } },
    async (req) => s.policies.list(actorOf(req), req.query),
  );

  r.post(
    "/v1/policies",
    {
      schema: {
        tags,
        summary: "Create a policy: allow, deny or require approval for matching tool calls (admin)",
        body: createPolicyBodySchema,
        response: { 201: policySchema, ...errors },
      },
    },
    async (req, reply) => sendCreated(reply, await s.policies.create(actorOf(req), req.body, { idempotency: idempotencyOf(req), requestId: req.id })),
  );

  r.get(
    "/v1/policies/:id",
    { schema: { tags, summary: "A policy", params, response: { 200: policySchema, ...errors } } },
    async (req) => s.policies.get(actorOf(req), req.params.id),
  );

  r.patch(
    "/v1/policies/:id",
    { schema: { tags, summary: "Change a policy (admin); a given match replaces the whole match", params, body: updatePolicyBodySchema, response: { 200: policySchema, ...errors } } },
    async (req) => s.policies.update(actorOf(req), req.params.id, req.body, { requestId: req.id }),
  );

  r.delete(
    "/v1/policies/:id",
    { schema: { tags, summary: "Delete a policy (admin)", params, response: { 200: policySchema, ...errors } } },
    async (req) => s.policies.remove(actorOf(req), req.params.id, { requestId: req.id }),
  );
}
