import { agentMemorySchema, agentNameSchema, idParam, problemSchema } from "@bosun/contracts";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { actorOf } from "../plugins/auth";
import type { Services } from "../services";

const errors = { 400: problemSchema, 401: problemSchema, 403: problemSchema, 404: problemSchema, 409: problemSchema, 422: problemSchema };

export function memoryRoutes(app: FastifyInstance, s: Services) {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get(
    "/v1/agents/:name/memory",
    {
      schema: {
        tags: ["memory"],
        summary: "An agent's memory layers: soul, working items and archive, with their token usage and limits; its last dream",
        params: z.object({ name: agentNameSchema }),
        response: { 200: agentMemorySchema, ...errors },
      },
    },
    async (req) => s.memory.get(actorOf(req), req.params.name),
  );

  r.post(
    "/v1/tasks/:id/promote",
    {
      schema: {
        tags: ["tasks"],
        summary: "Promote a backlog task (created by an agent's drive under autonomy `propose`) to the queue",
        params: idParam("tsk"),
        response: { 200: z.object({ id: z.string(), status: z.literal("queued") }), ...errors },
      },
    },
    async (req) => s.drives.promote(actorOf(req), req.params.id, req.id),
  );
}
