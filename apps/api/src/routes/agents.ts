import {
  agentApplyResultSchema,
  agentListQuerySchema,
  agentNameSchema,
  agentSchema,
  descriptorSchema,
  pageOf,
  pageQuerySchema,
  problemSchema,
  revisionDiffSchema,
  revisionSchema,
} from "@bosun/contracts";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { actorOf } from "../plugins/auth";
import { idempotencyOf, sendCreated } from "../plugins/idempotency";
import type { Services } from "../services";

const errors = { 400: problemSchema, 401: problemSchema, 403: problemSchema, 404: problemSchema, 409: problemSchema, 422: problemSchema };
const nameParams = z.object({ name: agentNameSchema });
const revision = z.coerce.number().int().min(1).max(2_147_483_647);
const tags = ["agents"];

export function agentRoutes(app: FastifyInstance, s: Services) {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get(
    "/v1/agents",
    { schema: { tags, summary: "List agents by name", querystring: agentListQuerySchema, response: { 200: pageOf(agentSchema), ...errors } } },
    async (req) => s.agents.list(actorOf(req), req.query),
  );

  r.post(
    "/v1/agents",
    {
      schema: {
        tags,
        summary: "Create an agent from a descriptor (JSON or application/yaml); 409 if the name exists",
        body: descriptorSchema,
        response: { 201: agentApplyResultSchema, ...errors },
      },
    },
    async (req, reply) => sendCreated(reply, await s.agents.create(actorOf(req), req.body, { idempotency: idempotencyOf(req), requestId: req.id })),
  );

  r.get(
    "/v1/agents/:name",
    { schema: { tags, summary: "Get an agent", params: nameParams, response: { 200: agentSchema, ...errors } } },
    async (req) => s.agents.get(actorOf(req), req.params.name),
  );

  r.put(
    "/v1/agents/:name",
    {
      schema: {
        tags,
        summary: "Apply a descriptor (JSON or application/yaml): same spec, same revision; a changed spec makes a new revision",
        params: nameParams,
        body: descriptorSchema,
        response: { 200: agentApplyResultSchema, 201: agentApplyResultSchema, ...errors },
      },
    },
    async (req, reply) => {
      const r = await s.agents.apply(actorOf(req), req.params.name, req.body, { requestId: req.id });
      return reply.code(r.status).send(r.body);
    },
  );

  r.get(
    "/v1/agents/:name/revisions",
    {
      schema: { tags, summary: "The agent's revision history, oldest first", params: nameParams, querystring: pageQuerySchema, response: { 200: pageOf(revisionSchema), ...errors } },
    },
    async (req) => s.agents.revisions(actorOf(req), req.params.name, req.query),
  );

  r.get(
    "/v1/agents/:name/revisions/:revision",
    {
      schema: {
        tags,
        summary: "One revision's descriptor",
        params: nameParams.extend({ revision }),
        response: { 200: revisionSchema, ...errors },
      },
    },
    async (req) => s.agents.revision(actorOf(req), req.params.name, req.params.revision),
  );

  r.get(
    "/v1/agents/:name/revisions/:revision/diff",
    {
      schema: {
        tags,
        summary: "Field-level changes from this revision to another (default: the current one)",
        params: nameParams.extend({ revision }),
        querystring: z.object({ to: revision.optional() }),
        response: { 200: revisionDiffSchema, ...errors },
      },
    },
    async (req) => s.agents.diff(actorOf(req), req.params.name, req.params.revision, req.query.to),
  );

  for (const action of ["pause", "resume", "retire"] as const) {
    r.post(
      `/v1/agents/:name/${action}`,
      {
        schema: {
          tags,
          summary: action === "retire" ? "Retire an agent for good" : `${action[0]!.toUpperCase()}${action.slice(1)} an agent`,
          params: nameParams,
          response: { 200: agentSchema, ...errors },
        },
      },
      async (req) => s.agents[action](actorOf(req), req.params.name, { requestId: req.id }),
    );
  }
}
