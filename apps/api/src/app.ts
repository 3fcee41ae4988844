import { randomBytes } from "node:crypto";
import cookie from "@fastify/cookie";
import rateLimit from "@fastify/rate-limit";
import { AppError, parseYamlBody } from "@bosun/core";
import Fastify, { type FastifyInstance } from "fastify";
import type { ApiConfig } from "./config";
import { registerAuth } from "./plugins/auth";
import { registerConsole } from "./plugins/console";
import { frameworkError, registerErrorHandling } from "./plugins/errors";
import { registerOpenApi } from "./plugins/openapi";
import { registerValidation } from "./plugins/validation";
import { agentRoutes } from "./routes/agents";
import { auditRoutes } from "./routes/audit";
import { proposalRoutes } from "./routes/proposals";
import { apiKeyRoutes } from "./routes/api-keys";
import { costRoutes } from "./routes/costs";
import { gatewayRoutes } from "./routes/gateway";
import { healthRoutes } from "./routes/health";
import { identityRoutes } from "./routes/identity";
import { taskRoutes } from "./routes/tasks";
import { runRoutes } from "./routes/runs";
import { messageRoutes } from "./routes/messages";
import { memoryRoutes } from "./routes/memory";
import { approvalRoutes } from "./routes/approvals";
import { inboxRoutes } from "./routes/inbox";
import { policyRoutes } from "./routes/policies";
import { settingsRoutes } from "./routes/settings";
import type { Services } from "./services";

/** One redact list for everything that must never reach a log line. */
export const redactPaths = [
  "req.headers.authorization",
  "req.headers.cookie",
  'res.headers["set-cookie"]',
  "*.password",
  "*.apiKey",
  "*.key",
  "*.secret",
  "*.token",
  "*.secrets",
  "*.secretsEnc",
];

const REQUEST_ID = /^[\w.:-]{1,128}$/;

export async function buildApp(services: Services, config: ApiConfig, opts: { logger?: boolean | object } = {}): Promise<FastifyInstance> {
  let accepting = true;
  const app = Fastify({
    logger:
      opts.logger === false
        ? false
        : { level: config.logLevel, redact: { paths: redactPaths, censor: "[redacted]" }, ...(typeof opts.logger === "object" ? opts.logger : {}) },
    bodyLimit: config.bodyLimitBytes,
    trustProxy: config.trustProxy,
    requestIdHeader: false,
    genReqId: (req) => {
      const given = req.headers["x-request-id"];
      return typeof given === "string" && REQUEST_ID.test(given) ? given : `req_${randomBytes(10).toString("hex")}`;
    },
    routerOptions: { maxParamLength: 200 },
    frameworkErrors: frameworkError,
  });
  app.addHook("onSend", async (req, reply) => {
    void reply.header("x-request-id", req.id);
  });

  registerValidation(app);
  registerErrorHandling(app);
  app.addContentTypeParser(["application/yaml", "application/x-yaml", "text/yaml"], { parseAs: "string" }, (_req, body, done) => {
    try {
      done(null, parseYamlBody(body as string));
    } catch (err) {
      done(err as AppError, undefined);
    }
  });

  await app.register(cookie);
  await registerOpenApi(app);
  registerAuth(app, { apiKeys: services.apiKeys, identity: services.identity, publicUrl: config.publicUrl });
  // Limits apply per API key (or session, or address before authentication). Counters are
  // per process: with N API processes a key may make up to N times the limit.
  await app.register(rateLimit, {
    global: true,
    max: config.rateLimitPerMinute,
    timeWindow: "1 minute",
    hook: "preValidation",
    keyGenerator: (req) => req.actor?.keyId ?? (req.sessionId ? `s:${req.sessionId}` : `ip:${req.ip}`),
    errorResponseBuilder: (_req, ctx) =>
      Object.assign(new AppError("RATE_LIMITED", `rate limit of ${ctx.max} requests per ${ctx.after} reached; retry after ${ctx.after}`), {
        statusCode: 429,
      }),
  });

  healthRoutes(app, services, () => accepting);
  identityRoutes(app, services);
  apiKeyRoutes(app, services);
  agentRoutes(app, services);
  taskRoutes(app, services);
  runRoutes(app, services);
  messageRoutes(app, services);
  memoryRoutes(app, services);
  costRoutes(app, services);
  proposalRoutes(app, services);
  auditRoutes(app, services);
  policyRoutes(app, services);
  approvalRoutes(app, services);
  inboxRoutes(app, services);
  gatewayRoutes(app, services);
  settingsRoutes(app, services);
  await registerConsole(app, config.consoleDir);

  app.addHook("preClose", async () => {
    accepting = false;
  });
  return app;
}
