import {
  mcpRefreshResultSchema,
  mcpServerCreateSchema,
  mcpServerNameSchema,
  mcpServerSchema,
  mcpServerUpdateSchema,
  mcpToolNameSchema,
  mcpToolSchema,
  mcpToolUpdateSchema,
  pageOf,
  pageQuerySchema,
  problemSchema,
  toolListQuerySchema,
} from "@bosun/contracts";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { actorOf } from "../plugins/auth";
import { idempotencyOf, sendCreated } from "../plugins/idempotency";
import type { Services } from "../services";

const errors = {
  400: problemSchema,
  401: problemSchema,
  403: problemSchema,
  404: problemSchema,
  409: problemSchema,
  422: problemSchema,
  503: problemSchema,
};
const params = z.object({ name: mcpServerNameSchema });
const tags = ["tool gateway"];

export function gatewayRoutes(app: FastifyInstance, s: Services) {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.post(
    "/v1/mcp-servers",
    {
      schema: {
        tags,
        summary: "Register an MCP server (admin): a stdio command or a streamable HTTP URL; secrets are stored encrypted and never returned",
        body: mcpServerCreateSchema,
        response: { 201: mcpServerSchema, ...errors },
      },
    },
    async (req, reply) => sendCreated(reply, await s.gateway.create(actorOf(req), req.body, { idempotency: idempotencyOf(req), requestId: req.id })),
  );

  r.get(
    "/v1/mcp-servers",
    { schema: { tags, summary: "List MCP servers by name", querystring: pageQuerySchema, response: { 200: pageOf(mcpServerSchema), ...errors } } },
    async (req) => s.gateway.list(actorOf(req), req.query),
  );

  r.get(
    "/v1/mcp-servers/:name",
    { schema: { tags, summary: "Get an MCP server", params, response: { 200: mcpServerSchema, ...errors } } },
    async (req) => s.gateway.get(actorOf(req), req.params.name),
  );

  r.patch(
    "/v1/mcp-servers/:name",
    {
      schema: { tags, summary: "Change an MCP server (admin); `secrets` replaces them all", params, body: mcpServerUpdateSchema, response: { 200: mcpServerSchema, ...errors } },
    },
    async (req) => s.gateway.update(actorOf(req), req.params.name, req.body, { requestId: req.id }),
  );

  r.delete(
    "/v1/mcp-servers/:name",
    { schema: { tags, summary: "Delete an MCP server and its catalogue (admin)", params, response: { 200: mcpServerSchema, ...errors } } },
    async (req) => s.gateway.remove(actorOf(req), req.params.name, { requestId: req.id }),
  );

  r.post(
    "/v1/mcp-servers/:name/refresh",
    {
      schema: {
        tags,
        summary: "List the server's tools into the catalogue (admin): a changed schema is a new version, older versions are kept",
        params,
        response: { 200: mcpRefreshResultSchema, ...errors },
      },
    },
    async (req) => s.gateway.refresh(actorOf(req), req.params.name, { requestId: req.id }),
  );

  r.get(
    "/v1/mcp-servers/:name/tools",
    {
      schema: {
        tags,
        summary: "The server's tools, every version (newest first)",
        params,
        querystring: toolListQuerySchema.omit({ server: true }),
        response: { 200: pageOf(mcpToolSchema), ...errors },
      },
    },
    async (req) => s.gateway.tools(actorOf(req), { ...req.query, server: req.params.name }),
  );

  r.patch(
    "/v1/mcp-servers/:name/tools/:tool",
    {
      schema: {
        tags,
        summary: "Set a tool's fee, side effect or value field (admin); kept across its versions",
        params: params.extend({ tool: mcpToolNameSchema }),
        body: mcpToolUpdateSchema,
        response: { 200: mcpToolSchema, ...errors },
      },
    },
    async (req) => s.gateway.updateTool(actorOf(req), req.params.name, req.params.tool, req.body, { requestId: req.id }),
  );

  r.get(
    "/v1/tools",
    { schema: { tags, summary: "The tenant's tool catalogue: every MCP tool version", querystring: toolListQuerySchema, response: { 200: pageOf(mcpToolSchema), ...errors } } },
    async (req) => s.gateway.tools(actorOf(req), req.query),
  );
}
