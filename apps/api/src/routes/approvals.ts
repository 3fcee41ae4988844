import { approvalListQuerySchema, approvalSchema, decideApprovalBodySchema, idParam, pageOf, problemSchema } from "@bosun/contracts";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { actorOf } from "../plugins/auth";
import type { Services } from "../services";

const errors = { 400: problemSchema, 401: problemSchema, 403: problemSchema, 404: problemSchema, 409: problemSchema, 422: problemSchema };
const tags = ["approvals"];
const params = idParam("wpt");

export function approvalRoutes(app: FastifyInstance, s: Services) {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get(
    "/v1/approvals",
    { schema: { tags, summary: "Approvals of tool calls, newest first", querystring: approvalListQuerySchema, response: { 200: pageOf(approvalSchema), ...errors } } },
    async (req) => s.approvals.list(actorOf(req), req.query),
  );

  r.get(
    "/v1/approvals/:id",
    { schema: { tags, summary: "An approval and the tool call it holds", params, response: { 200: approvalSchema, ...errors } } },
    async (req) => s.approvals.get(actorOf(req), req.params.id),
  );

  r.post(
    "/v1/approvals/:id/approve",
    {
      schema: {
        tags,
        summary: "Approve: the run resumes and the tool runs, once (operator); 409 when already decided or expired",
        params,
        body: decideApprovalBodySchema,
        response: { 200: approvalSchema, ...errors },
      },
    },
    async (req) => s.approvals.approve(actorOf(req), req.params.id, req.body, req.id),
  );

  r.post(
    "/v1/approvals/:id/deny",
    {
      schema: {
        tags,
        summary: "Deny: the run resumes and the agent gets the denial as the tool's result (operator); 409 when already decided or expired",
        params,
        body: decideApprovalBodySchema,
        response: { 200: approvalSchema, ...errors },
      },
    },
    async (req) => s.approvals.deny(actorOf(req), req.params.id, req.body, req.id),
  );
}
