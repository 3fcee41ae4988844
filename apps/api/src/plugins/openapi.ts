import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import type { FastifyInstance } from "fastify";
import { jsonSchemaTransform, jsonSchemaTransformObject } from "fastify-type-provider-zod";

/** OpenAPI 3.1 built from the same zod schemas that validate requests; UI at /docs. */
export async function registerOpenApi(app: FastifyInstance) {
  await app.register(swagger, {
    openapi: {
      openapi: "3.1.0",
      info: {
        title: "Bosun API",
        version: "1.0.0",
        description:
          "The operations layer for fleets of AI agents. Authenticate with `Authorization: Bearer <API key>`. " +
          "Errors are RFC 9457 application/problem+json with a machine `code`. Lists use cursor pagination " +
          "(`limit`, `cursor` → `nextCursor`). Creates accept an `Idempotency-Key` header.",
      },
      components: {
        securitySchemes: {
          apiKey: { type: "http", scheme: "bearer", description: "A Bosun API key (bsn_…)" },
          session: { type: "apiKey", in: "cookie", name: "bosun_session" },
        },
      },
      security: [{ apiKey: [] }, { session: [] }],
    },
    transform: jsonSchemaTransform,
    transformObject: jsonSchemaTransformObject,
  });
  await app.register(swaggerUi, { routePrefix: "/docs", uiConfig: { deepLinking: true } });
}
