import {
  agentNameSchema,
  finishRunBodySchema,
  idParam,
  pageOf,
  pageQuerySchema,
  problemSchema,
  runDetailSchema,
  runListQuerySchema,
  runSchema,
  startRunBodySchema,
  stepSchema,
  usageBodySchema,
} from "@bosun/contracts";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { actorOf } from "../plugins/auth";
import { idempotencyOf, sendCreated } from "../plugins/idempotency";
import type { Services } from "../services";

const errors = { 400: problemSchema, 401: problemSchema, 403: problemSchema, 404: problemSchema, 409: problemSchema, 422: problemSchema };
const tags = ["runs"];
const runParams = idParam("run");

export function runRoutes(app: FastifyInstance, s: Services) {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get(
    "/v1/runs",
    { schema: { tags, summary: "List runs, newest first", querystring: runListQuerySchema, response: { 200: pageOf(runSchema), ...errors } } },
    async (req) => s.runs.list(actorOf(req), req.query),
  );

  r.get(
    "/v1/runs/:id",
    { schema: { tags, summary: "A run and its whole tree of sub-agent runs", params: runParams, response: { 200: runDetailSchema, ...errors } } },
    async (req) => s.runs.get(actorOf(req), req.params.id),
  );

  r.get(
    "/v1/runs/:id/steps",
    {
      schema: { tags, summary: "The run's steps (the trace), secrets redacted", params: runParams, querystring: pageQuerySchema, response: { 200: pageOf(stepSchema), ...errors } },
    },
    async (req) => s.runs.steps(actorOf(req), req.params.id, req.query),
  );

  r.post(
    "/v1/runs/:id/cancel",
    { schema: { tags, summary: "Cancel a running or waiting run", params: runParams, response: { 200: runSchema, ...errors } } },
    async (req) => s.runs.cancel(actorOf(req), req.params.id, req.id),
  );

  r.post(
    "/v1/runs/:id/usage",
    {
      schema: {
        tags,
        summary: "An external agent reports model usage on its own run (agent key)",
        description:
          "Records a `usage` step and charges it to the cost ledger at the model's price. The usage happened already, so it is recorded even past a hard budget; " +
          "the answer is then 402 BUDGET_EXCEEDED (the report is on the books): stop working. An unpriced model is refused (422, nothing recorded) unless the tenant allows unpriced models. " +
          "A report sent again with the same `reportId` or Idempotency-Key is charged once.",
        params: runParams,
        body: usageBodySchema,
        response: { 201: stepSchema, 402: problemSchema, ...errors },
      },
    },
    async (req, reply) => sendCreated(reply, await s.runs.reportUsage(actorOf(req), req.params.id, req.body, idempotencyOf(req)?.key, req.id)),
  );

  r.post(
    "/v1/runs/:id/finish",
    {
      schema: { tags, summary: "An external agent ends its own run (agent key)", params: runParams, body: finishRunBodySchema, response: { 200: runSchema, ...errors } },
    },
    async (req) => s.runs.finishExternal(actorOf(req), req.params.id, req.body, req.id),
  );

  r.post(
    "/v1/agents/:name/runs",
    {
      schema: {
        tags,
        summary: "Start a run of an agent with an input; with an agent's own key, an external run to report usage on",
        description: "With an agent's own key, refused with 402 BUDGET_EXCEEDED while one of the agent's hard budgets is spent.",
        params: z.object({ name: agentNameSchema }),
        body: startRunBodySchema,
        response: { 201: runSchema, 402: problemSchema, ...errors },
      },
    },
    async (req, reply) => reply.code(201).send(await s.runs.start(actorOf(req), req.params.name, req.body, req.id)),
  );
}
