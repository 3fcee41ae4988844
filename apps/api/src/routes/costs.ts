import {
  alertListQuerySchema,
  alertSchema,
  budgetListQuerySchema,
  budgetSchema,
  costExportQuerySchema,
  costSettingsSchema,
  costsQuerySchema,
  costsSchema,
  createBudgetBodySchema,
  createPriceBodySchema,
  idParam,
  pageOf,
  priceListQuerySchema,
  priceSchema,
  problemSchema,
  updateBudgetBodySchema,
  updateCostSettingsBodySchema,
} from "@bosun/contracts";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { actorOf } from "../plugins/auth";
import { idempotencyOf, sendCreated } from "../plugins/idempotency";
import type { Services } from "../services";

const errors = { 400: problemSchema, 401: problemSchema, 403: problemSchema, 404: problemSchema, 409: problemSchema, 422: problemSchema };
const params = idParam("bud");

export function costRoutes(app: FastifyInstance, s: Services) {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get(
    "/v1/budgets",
    { schema: { tags: ["budgets"], summary: "List budgets with their current window", querystring: budgetListQuerySchema, response: { 200: pageOf(budgetSchema), ...errors } } },
    async (req) => s.budgets.list(actorOf(req), req.query),
  );

  r.post(
    "/v1/budgets",
    {
      schema: {
        tags: ["budgets"],
        summary: "Create a budget on the tenant or an agent (admin)",
        body: createBudgetBodySchema,
        response: { 201: budgetSchema, ...errors },
      },
    },
    async (req, reply) => sendCreated(reply, await s.budgets.create(actorOf(req), req.body, { idempotency: idempotencyOf(req), requestId: req.id })),
  );

  r.get(
    "/v1/budgets/:id",
    { schema: { tags: ["budgets"], summary: "A budget and its current window", params, response: { 200: budgetSchema, ...errors } } },
    async (req) => s.budgets.get(actorOf(req), req.params.id),
  );

  r.patch(
    "/v1/budgets/:id",
    {
      schema: {
        tags: ["budgets"],
        summary: "Change a budget (admin); a descriptor budget's limit is changed in its descriptor",
        params,
        body: updateBudgetBodySchema,
        response: { 200: budgetSchema, ...errors },
      },
    },
    async (req) => s.budgets.update(actorOf(req), req.params.id, req.body, { requestId: req.id }),
  );

  r.delete(
    "/v1/budgets/:id",
    { schema: { tags: ["budgets"], summary: "Delete a budget (admin); not one from a descriptor", params, response: { 200: budgetSchema, ...errors } } },
    async (req) => s.budgets.remove(actorOf(req), req.params.id, { requestId: req.id }),
  );

  r.get(
    "/v1/alerts",
    { schema: { tags: ["budgets"], summary: "Budget alerts (thresholds crossed), newest first", querystring: alertListQuerySchema, response: { 200: pageOf(alertSchema), ...errors } } },
    async (req) => s.costs.listAlerts(actorOf(req), req.query),
  );

  r.get(
    "/v1/costs",
    {
      schema: {
        tags: ["costs"],
        summary: "Spend over tenant-local days, grouped by agent, model, day or kind, each split into tokens, actions and compute",
        querystring: costsQuerySchema,
        response: { 200: costsSchema, ...errors },
      },
    },
    async (req) => s.costs.costs(actorOf(req), req.query),
  );

  r.get(
    "/v1/costs/export.csv",
    {
      schema: {
        tags: ["costs"],
        summary: "The ledger (or its daily rollups) as CSV (RFC 4180), streamed; every usage column",
        querystring: costExportQuerySchema,
        response: errors,
      },
    },
    async (req, reply) => {
      const stream = s.costs.exportCsv(actorOf(req), req.query);
      const name = `bosun-${req.query.rows}-${req.query.from}-to-${req.query.to}.csv`;
      // A stream is piped as it is, past the response serialiser (the error schemas type `send`).
      return reply.type("text/csv; charset=utf-8").header("content-disposition", `attachment; filename="${name}"`).send(stream as never);
    },
  );

  r.get(
    "/v1/costs/settings",
    { schema: { tags: ["costs"], summary: "The tenant's cost settings", response: { 200: costSettingsSchema, ...errors } } },
    async (req) => s.costs.getSettings(actorOf(req)),
  );

  r.patch(
    "/v1/costs/settings",
    {
      schema: {
        tags: ["costs"],
        summary: "Allow or refuse unpriced models, set the compute rate and alert recipients (admin)",
        body: updateCostSettingsBodySchema,
        response: { 200: costSettingsSchema, ...errors },
      },
    },
    async (req) => s.costs.updateSettings(actorOf(req), req.body, { requestId: req.id }),
  );

  r.get(
    "/v1/prices",
    { schema: { tags: ["costs"], summary: "Model prices: the catalogue and the tenant's own, every version", querystring: priceListQuerySchema, response: { 200: pageOf(priceSchema), ...errors } } },
    async (req) => s.costs.listPrices(actorOf(req), req.query),
  );

  r.post(
    "/v1/prices",
    {
      schema: {
        tags: ["costs"],
        summary: "Add a tenant price for a model from a date (admin); it wins over the catalogue",
        body: createPriceBodySchema,
        response: { 201: priceSchema, ...errors },
      },
    },
    async (req, reply) => reply.code(201).send(await s.costs.createPrice(actorOf(req), req.body, { requestId: req.id })),
  );
}
