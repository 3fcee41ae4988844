import {
  createProposalBodySchema,
  decideProposalBodySchema,
  idParam,
  pageOf,
  problemSchema,
  proposalDetailSchema,
  proposalListQuerySchema,
  proposalSchema,
  proposalSettingsSchema,
  respondProposalBodySchema,
  updateProposalSettingsBodySchema,
} from "@bosun/contracts";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { actorOf } from "../plugins/auth";
import { idempotencyOf, sendCreated } from "../plugins/idempotency";
import type { Services } from "../services";

const errors = { 400: problemSchema, 401: problemSchema, 403: problemSchema, 404: problemSchema, 409: problemSchema, 422: problemSchema };
const params = idParam("prp");
const tags = ["proposals"];

export function proposalRoutes(app: FastifyInstance, s: Services) {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get(
    "/v1/proposals",
    { schema: { tags, summary: "List proposals, newest first", querystring: proposalListQuerySchema, response: { 200: pageOf(proposalSchema), ...errors } } },
    async (req) => s.proposals.list(actorOf(req), req.query),
  );

  r.post(
    "/v1/proposals",
    {
      schema: {
        tags,
        summary: "Propose a cross-domain change; the agents owning its domains are asked",
        body: createProposalBodySchema,
        response: { 201: proposalDetailSchema, ...errors },
      },
    },
    async (req, reply) => sendCreated(reply, await s.proposals.create(actorOf(req), req.body, { idempotency: idempotencyOf(req), requestId: req.id })),
  );

  r.get(
    "/v1/proposals/settings",
    { schema: { tags, summary: "The tenant's proposal windows", response: { 200: proposalSettingsSchema, ...errors } } },
    async (req) => s.proposals.getSettings(actorOf(req)),
  );

  r.patch(
    "/v1/proposals/settings",
    {
      schema: {
        tags,
        summary: "Change the proposal windows (admin); they apply to proposals created afterwards",
        body: updateProposalSettingsBodySchema,
        response: { 200: proposalSettingsSchema, ...errors },
      },
    },
    async (req) => s.proposals.updateSettings(actorOf(req), req.body, { requestId: req.id }),
  );

  r.get(
    "/v1/proposals/:id",
    { schema: { tags, summary: "A proposal with the asked agents' responses", params, response: { 200: proposalDetailSchema, ...errors } } },
    async (req) => s.proposals.get(actorOf(req), req.params.id),
  );

  r.post(
    "/v1/proposals/:id/responses",
    {
      schema: {
        tags,
        summary: "An asked agent responds (its own key): support, concern or block",
        params,
        body: respondProposalBodySchema,
        response: { 200: proposalDetailSchema, ...errors },
      },
    },
    async (req) => s.proposals.respond(actorOf(req), req.params.id, req.body, { requestId: req.id }),
  );

  r.post(
    "/v1/proposals/:id/decide",
    {
      schema: {
        tags,
        summary: "A person approves (applying its action, once) or rejects an open or escalated proposal",
        params,
        body: decideProposalBodySchema,
        response: { 200: proposalDetailSchema, ...errors },
      },
    },
    async (req) => s.proposals.decide(actorOf(req), req.params.id, req.body, { requestId: req.id }),
  );
}
