import { fieldIssues } from "@bosun/core";
import type { FastifyInstance } from "fastify";
import { serializerCompiler } from "fastify-type-provider-zod";
import type { z } from "zod";
import { RequestValidationError } from "./errors";

/**
 * Request validation with zod, reporting every invalid field by its path (`spec.model`),
 * including unknown fields. Responses are serialised through their zod schemas, which
 * strip anything not listed: the schema is an allowlist of what leaves the server.
 */
export function registerValidation(app: FastifyInstance) {
  app.setValidatorCompiler(({ schema }) => {
    const s = schema as z.ZodType;
    return (data: unknown) => {
      const r = s.safeParse(data);
      return r.success ? { value: r.data } : { error: new RequestValidationError(fieldIssues(r.error)) };
    };
  });
  app.setSerializerCompiler(serializerCompiler);
}
