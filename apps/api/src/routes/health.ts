import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import type { Services } from "../services";

export function healthRoutes(app: FastifyInstance, s: Services, ready: () => boolean) {
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.get(
    "/healthz",
    { config: { public: true }, schema: { tags: ["health"], summary: "Liveness", response: { 200: z.object({ status: z.literal("ok") }) } } },
    async () => ({ status: "ok" as const }),
  );
  r.get(
    "/readyz",
    {
      config: { public: true },
      schema: {
        tags: ["health"],
        summary: "Readiness: the database answers and the process is not shutting down",
        response: { 200: z.object({ status: z.literal("ready") }), 503: z.object({ status: z.literal("unavailable"), reason: z.string() }) },
      },
    },
    async (_req, reply) => {
      if (!ready()) return reply.code(503).send({ status: "unavailable" as const, reason: "shutting down" });
      try {
        await s.database.pool.query("SELECT 1");
        return { status: "ready" as const };
      } catch {
        return reply.code(503).send({ status: "unavailable" as const, reason: "database unreachable" });
      }
    },
  );
}
