import { fieldIssues, missingIsRequired } from "@bosun/core";
import type { FastifyInstance } from "fastify";
import fastJson from "fast-json-stringify";
import { z } from "zod";
import { RequestValidationError } from "./errors";

/**
 * Request validation with zod, reporting every invalid field by its path (`spec.model`),
 * including unknown fields.
 *
 * Responses are serialised by fast-json-stringify from the JSON Schema of each route's
 * zod response schema. Like zod's own serialiser it writes only the listed properties
 * (the schema is an allowlist of what leaves the server), but without re-validating every
 * field of every item, which cost a third of the time of a list request (see `npm run bench`).
 */
export function registerValidation(app: FastifyInstance) {
  app.setValidatorCompiler(({ schema }) => {
    const s = schema as z.ZodType;
    return (data: unknown) => {
      const r = s.safeParse(data, { error: missingIsRequired });
      return r.success ? { value: r.data } : { error: new RequestValidationError(fieldIssues(r.error)) };
    };
  });
  app.setSerializerCompiler(({ schema }) => {
    const json = z.toJSONSchema(schema as z.ZodType, { io: "output", unrepresentable: "any", target: "draft-7" });
    return fastJson(json as Parameters<typeof fastJson>[0]);
  });
}

