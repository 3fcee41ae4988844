import {
  loginBodySchema,
  meSchema,
  problemSchema,
  signupBodySchema,
  signupResultSchema,
  tenantSchema,
  updateTenantBodySchema,
} from "@bosun/contracts";
import { AppError } from "@bosun/core";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { actorOf } from "../plugins/auth";
import type { Services } from "../services";

const errors = { 400: problemSchema, 401: problemSchema, 403: problemSchema, 409: problemSchema, 422: problemSchema };

export function identityRoutes(app: FastifyInstance, s: Services) {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.post(
    "/v1/signup",
    {
      config: { public: true, rateLimit: { max: 20, timeWindow: "1 minute" } },
      schema: {
        tags: ["identity"],
        summary: "Create a tenant, its owner and a first admin API key (shown once)",
        security: [],
        body: signupBodySchema,
        response: { 201: signupResultSchema, ...errors },
      },
    },
    async (req, reply) => reply.code(201).send(await s.identity.signup(req.body, req.id)),
  );

  r.post(
    "/v1/auth/login",
    {
      config: { public: true, rateLimit: { max: 30, timeWindow: "1 minute" } },
      schema: {
        tags: ["identity"],
        summary: "Console login: sets an httpOnly session cookie",
        security: [],
        body: loginBodySchema,
        response: { 200: z.object({ tenantId: z.string(), user: z.object({ id: z.string(), email: z.string() }) }), ...errors },
      },
    },
    async (req, reply) => {
      const { session, user, tenant } = await s.identity.login(req.body);
      void reply.header("set-cookie", s.identity.lucia.createSessionCookie(session.id).serialize());
      return { tenantId: tenant.id, user: { id: user.id, email: user.email } };
    },
  );

  r.post(
    "/v1/auth/logout",
    {
      config: { public: true },
      schema: { tags: ["identity"], summary: "End the console session", response: { 204: z.null() } },
    },
    async (req, reply) => {
      if (req.sessionId) await s.identity.lucia.invalidateSession(req.sessionId);
      void reply.header("set-cookie", s.identity.lucia.createBlankSessionCookie().serialize());
      return reply.code(204).send(null);
    },
  );

  r.post(
    "/v1/auth/tenant",
    {
      schema: {
        tags: ["identity"],
        summary: "Switch the console session to another tenant the user belongs to",
        body: z.strictObject({ tenantId: z.string().max(64) }),
        response: { 204: z.null(), ...errors, 404: problemSchema },
      },
    },
    async (req, reply) => {
      const actor = actorOf(req);
      if (!req.sessionId) throw new AppError("BAD_REQUEST", "switching tenants needs a console session; an API key belongs to one tenant");
      await s.identity.switchTenant(req.sessionId, actor.id, req.body.tenantId);
      return reply.code(204).send(null);
    },
  );

  r.get(
    "/v1/me",
    { schema: { tags: ["identity"], summary: "Who is calling, in which tenant, with which scopes", response: { 200: meSchema, ...errors } } },
    async (req) => s.identity.me(actorOf(req)),
  );

  r.get(
    "/v1/tenant",
    { schema: { tags: ["identity"], summary: "The caller's tenant", response: { 200: tenantSchema, ...errors } } },
    async (req) => (await s.identity.me(actorOf(req))).tenant,
  );

  r.patch(
    "/v1/tenant",
    {
      schema: {
        tags: ["identity"],
        summary: "Rename the tenant or change its time zone (admin)",
        body: updateTenantBodySchema,
        response: { 200: tenantSchema, ...errors },
      },
    },
    async (req) => s.identity.updateTenant(actorOf(req), req.body, req.id),
  );
}
