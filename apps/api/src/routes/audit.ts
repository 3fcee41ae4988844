import { auditEventSchema, auditListQuerySchema, auditVerifySchema, pageOf, problemSchema } from "@bosun/contracts";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { actorOf } from "../plugins/auth";
import type { Services } from "../services";

const errors = { 400: problemSchema, 401: problemSchema, 403: problemSchema, 422: problemSchema };
const tags = ["audit"];

export function auditRoutes(app: FastifyInstance, s: Services) {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get(
    "/v1/audit",
    {
      schema: {
        tags,
        summary: "Audit events, newest first, by actor, target, action (exact or prefix*) and time (admin)",
        querystring: auditListQuerySchema,
        response: { 200: pageOf(auditEventSchema), ...errors },
      },
    },
    async (req) => s.audit.list(actorOf(req), req.query),
  );

  r.get(
    "/v1/audit/verify",
    { schema: { tags, summary: "Walk the tenant's hash chain and name the first broken link (admin)", response: { 200: auditVerifySchema, ...errors } } },
    async (req) => s.audit.verify(actorOf(req)),
  );
}
