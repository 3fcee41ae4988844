import { deploymentSchema, problemSchema } from "@bosun/contracts";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { actorOf } from "../plugins/auth";
import type { Services } from "../services";

export function settingsRoutes(app: FastifyInstance, s: Services) {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get(
    "/v1/settings/deployment",
    {
      schema: {
        tags: ["settings"],
        summary: "The deployment's workers, SMTP and model providers, as the workers report them (admin)",
        response: { 200: deploymentSchema, 401: problemSchema, 403: problemSchema },
      },
    },
    async (req) => s.deployment.view(actorOf(req)),
  );
}
