import { AppError, fieldIssues } from "@bosun/core";
import { type ErrorCode, errorCodes, errorTitles, type FieldIssue, type Problem } from "@bosun/contracts";
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { ZodError } from "zod";

/** Raised by our validator compiler; carries field paths the client can act on. */
export class RequestValidationError extends Error {
  constructor(readonly issues: FieldIssue[]) {
    super(issues.map((i) => `${i.path}: ${i.message}`).join("; "));
  }
}

export function sendProblem(
  req: FastifyRequest,
  reply: FastifyReply,
  code: ErrorCode,
  detail: string,
  errors?: FieldIssue[],
) {
  const status = errorCodes[code];
  const body: Problem = {
    type: `https://bosun.dev/problems/${code.toLowerCase().replaceAll("_", "-")}`,
    title: errorTitles[code],
    status,
    code,
    detail,
    instance: req.url.split("?")[0],
    requestId: req.id,
    ...(errors?.length ? { errors } : {}),
  };
  return reply.code(status).type("application/problem+json").serializer(JSON.stringify).send(body);
}

/** Postgres errors that mean "bad input", never "server broken". */
function fromPostgres(err: { code?: string; message: string }): [ErrorCode, string] | null {
  // drizzle wraps driver errors in a DrizzleQueryError whose `cause` is the pg error;
  // without unwrapping, a NUL byte in a text field (22021) was a 500.
  const c = err.code ?? (err as { cause?: { code?: unknown } }).cause?.code;
  if (typeof c !== "string") return null;
  if (c.length !== 5) return null;
  if (c === "23505") return ["CONFLICT", "a resource with these values already exists"];
  if (c === "23503") return ["CONFLICT", "a referenced resource does not exist or is still referenced"];
  if (c.startsWith("22")) return ["VALIDATION", "a value is out of range or malformed"];
  return null;
}

/**
 * Fastify's `frameworkErrors`: a URL with bad percent-encoding or an over-long path
 * parameter is refused by the router before any route or error handler runs, and would
 * otherwise get Fastify's own application/json body without a request id.
 */
export function frameworkError(err: FastifyError, req: FastifyRequest, reply: FastifyReply) {
  void reply.header("x-request-id", req.id);
  if (err.code === "FST_ERR_MAX_PARAM_LENGTH") return sendProblem(req, reply, "BAD_REQUEST", "a path segment of the URL is too long");
  if (err.code === "FST_ERR_BAD_URL") return sendProblem(req, reply, "BAD_REQUEST", "the URL is not valid: malformed percent-encoding");
  req.log.error({ err }, "router error");
  return sendProblem(req, reply, "INTERNAL", "an internal error occurred; quote the request id when reporting it");
}

/**
 * One error handler for the whole API: every failure becomes problem+json with a code
 * from the closed taxonomy and the request id. A 5xx never leaks its message.
 */
export function registerErrorHandling(app: FastifyInstance) {
  app.setNotFoundHandler((req, reply) => sendProblem(req, reply, "NOT_FOUND", `no route for ${req.method} ${req.url.split("?")[0]}`));

  app.setErrorHandler((err: FastifyError & { validationContext?: string }, req, reply) => {
    if (err instanceof AppError) return sendProblem(req, reply, err.code, err.message, err.errors);
    if (err instanceof RequestValidationError) {
      const ctx = err.validationContext;
      const issues = ctx && ctx !== "body" ? err.issues.map((i) => ({ ...i, path: `${ctx === "querystring" ? "query" : ctx}.${i.path}` })) : err.issues;
      return sendProblem(req, reply, "VALIDATION", `request ${ctx ?? "input"} is invalid: ${issues.map((i) => `${i.path}: ${i.message}`).join("; ")}`, issues);
    }
    if (err instanceof ZodError) {
      const issues = fieldIssues(err);
      return sendProblem(req, reply, "VALIDATION", issues.map((i) => `${i.path}: ${i.message}`).join("; "), issues);
    }
    switch (err.code) {
      case "FST_ERR_CTP_BODY_TOO_LARGE":
        return sendProblem(req, reply, "PAYLOAD_TOO_LARGE", `the body is larger than the limit of ${app.initialConfig.bodyLimit} bytes`);
      case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
        return sendProblem(req, reply, "UNSUPPORTED_MEDIA_TYPE", `unsupported Content-Type '${req.headers["content-type"] ?? ""}'; send application/json or application/yaml`);
      case "FST_ERR_CTP_EMPTY_JSON_BODY":
        return sendProblem(req, reply, "BAD_REQUEST", "the body is empty but Content-Type is application/json");
      case "FST_ERR_CTP_INVALID_JSON_BODY":
        return sendProblem(req, reply, "BAD_REQUEST", `malformed JSON: ${err.message}`);
    }
    if (err instanceof SyntaxError || (err.statusCode === 400 && /JSON/i.test(err.message))) {
      return sendProblem(req, reply, "BAD_REQUEST", `malformed JSON: ${err.message}`);
    }
    if (err.statusCode === 429) return sendProblem(req, reply, "RATE_LIMITED", err.message || "too many requests; slow down and retry later");
    const pg = fromPostgres(err as { code?: string; message: string });
    if (pg) {
      req.log.warn({ err }, "database rejected input");
      return sendProblem(req, reply, pg[0], pg[1]);
    }
    if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
      const code: ErrorCode = err.statusCode === 413 ? "PAYLOAD_TOO_LARGE" : err.statusCode === 415 ? "UNSUPPORTED_MEDIA_TYPE" : err.statusCode === 404 ? "NOT_FOUND" : err.statusCode === 405 ? "METHOD_NOT_ALLOWED" : "BAD_REQUEST";
      return sendProblem(req, reply, code, err.message);
    }
    req.log.error({ err }, "unhandled error");
    return sendProblem(req, reply, "INTERNAL", "an internal error occurred; quote the request id when reporting it");
  });
}
