import {
  claimTaskBodySchema,
  completeTaskBodySchema,
  createTaskBodySchema,
  failTaskBodySchema,
  heartbeatTaskBodySchema,
  idParam,
  pageOf,
  problemSchema,
  reviewTaskBodySchema,
  startTaskBodySchema,
  taskDetailSchema,
  taskListQuerySchema,
  taskSchema,
  updateTaskBodySchema,
} from "@bosun/contracts";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { actorOf } from "../plugins/auth";
import { idempotencyOf, sendCreated } from "../plugins/idempotency";
import type { Services } from "../services";

const errors = { 400: problemSchema, 401: problemSchema, 403: problemSchema, 404: problemSchema, 409: problemSchema, 422: problemSchema };
const params = idParam("tsk");
const tags = ["tasks"];

export function taskRoutes(app: FastifyInstance, s: Services) {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get(
    "/v1/tasks",
    { schema: { tags, summary: "List tasks, newest first", querystring: taskListQuerySchema, response: { 200: pageOf(taskSchema), ...errors } } },
    async (req) => s.tasks.list(actorOf(req), req.query),
  );

  r.post(
    "/v1/tasks",
    {
      schema: {
        tags,
        summary: "Create a task for an agent (assignee) or a domain; 422 names a dependency cycle",
        body: createTaskBodySchema,
        response: { 201: taskDetailSchema, ...errors },
      },
    },
    async (req, reply) => sendCreated(reply, await s.tasks.create(actorOf(req), req.body, { idempotency: idempotencyOf(req), requestId: req.id })),
  );

  r.get(
    "/v1/tasks/:id",
    { schema: { tags, summary: "Get a task with its dependencies", params, response: { 200: taskDetailSchema, ...errors } } },
    async (req) => s.tasks.get(actorOf(req), req.params.id),
  );

  r.patch(
    "/v1/tasks/:id",
    {
      schema: {
        tags,
        summary: "Change title, body or priority of an unfinished task; add dependencies to a queued one",
        params,
        body: updateTaskBodySchema,
        response: { 200: taskDetailSchema, ...errors },
      },
    },
    async (req) => s.tasks.update(actorOf(req), req.params.id, req.body, { requestId: req.id }),
  );

  r.post(
    "/v1/tasks/:id/cancel",
    { schema: { tags, summary: "Cancel a task that is not finished", params, response: { 200: taskSchema, ...errors } } },
    async (req) => s.tasks.cancel(actorOf(req), req.params.id, { requestId: req.id }),
  );

  r.post(
    "/v1/tasks/:id/claim",
    {
      schema: {
        tags,
        summary: "Claim a queued task with an agent's own key; the response's leaseEpoch fences every later write",
        params,
        body: claimTaskBodySchema,
        response: { 200: taskSchema, ...errors },
      },
    },
    async (req) => s.tasks.claim(actorOf(req), req.params.id, req.body, { requestId: req.id }),
  );

  r.post(
    "/v1/tasks/:id/start",
    { schema: { tags, summary: "Mark a claimed task in progress", params, body: startTaskBodySchema, response: { 200: taskSchema, ...errors } } },
    async (req) => s.tasks.start(actorOf(req), req.params.id, req.body, { requestId: req.id }),
  );

  r.post(
    "/v1/tasks/:id/heartbeat",
    { schema: { tags, summary: "Extend the lease; 409 when it was lost", params, body: heartbeatTaskBodySchema, response: { 200: taskSchema, ...errors } } },
    async (req) => s.tasks.heartbeat(actorOf(req), req.params.id, req.body, { requestId: req.id }),
  );

  r.post(
    "/v1/tasks/:id/complete",
    {
      schema: {
        tags,
        summary: "Complete with a result (done, or in_review when the task requires review); 409 when the lease was lost",
        params,
        body: completeTaskBodySchema,
        response: { 200: taskSchema, ...errors },
      },
    },
    async (req) => s.tasks.complete(actorOf(req), req.params.id, req.body, { requestId: req.id }),
  );

  r.post(
    "/v1/tasks/:id/fail",
    {
      schema: {
        tags,
        summary: "Report failure: back to the queue when retry is asked and attempts remain, else failed",
        params,
        body: failTaskBodySchema,
        response: { 200: taskSchema, ...errors },
      },
    },
    async (req) => s.tasks.fail(actorOf(req), req.params.id, req.body, { requestId: req.id }),
  );

  r.post(
    "/v1/tasks/:id/review",
    {
      schema: {
        tags,
        summary: "Review a task in review: approve (done) or request changes (back to the queue)",
        params,
        body: reviewTaskBodySchema,
        response: { 200: taskSchema, ...errors },
      },
    },
    async (req) => s.tasks.review(actorOf(req), req.params.id, req.body, { requestId: req.id }),
  );
}
