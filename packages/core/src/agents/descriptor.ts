import { createHash } from "node:crypto";
import { type AgentDescriptor, descriptorSchema, type FieldIssue } from "@bosun/contracts";
import { canonicalJson } from "@bosun/db";
import type { z } from "zod";
import { parse as parseYaml, YAMLParseError } from "yaml";
import { AppError } from "../errors";
import { countTokens, SOUL_MAX_TOKENS } from "../memory/tokens";

/**
 * For safeParse's `error` option: a field that is absent says so (`title: required`, `window:
 * required: one of "hour", "day"`) rather than zod's "Invalid input: expected string,
 * received undefined". A schema's own messages still come first. Every parse whose issues
 * reach a client or a model uses it.
 */
export function missingIsRequired(issue: z.core.$ZodRawIssue): string | undefined {
  if (issue.input !== undefined) return undefined;
  if (issue.code === "invalid_type" || issue.code === "invalid_union") return "required";
  if (issue.code === "invalid_value") return `required: ${issue.values.length === 1 ? "" : "one of "}${issue.values.map((v) => JSON.stringify(v)).join(", ")}`;
  return undefined;
}

/** Zod issues as `{ path, message }` with dotted paths (`spec.drives.0.name`). */
export function fieldIssues(error: z.ZodError): FieldIssue[] {
  return error.issues.map((i) => {
    const path = i.path.map(String).join(".");
    if (i.code === "unrecognized_keys") {
      return { path: [path, ...i.keys].filter(Boolean).join("."), message: `unknown field '${i.keys.join("', '")}'` };
    }
    return { path: path || "(root)", message: i.message };
  });
}

/**
 * The JSON parser (secure-json-parse) refuses `__proto__` keys and `constructor.prototype`;
 * YAML gets the same rule, instead of zod silently dropping such a key from a record.
 */
function refusePrototypeKeys(key: unknown, value: unknown): unknown {
  if (key === "__proto__" || (key === "constructor" && typeof value === "object" && value !== null && Object.hasOwn(value, "prototype"))) {
    throw new AppError("BAD_REQUEST", "the YAML body contains a forbidden prototype property");
  }
  return value;
}

/** Parses a YAML document; syntax errors become BAD_REQUEST with line and column. */
export function parseYamlBody(text: string): unknown {
  try {
    return parseYaml(text, refusePrototypeKeys, { maxAliasCount: 100, uniqueKeys: true, prettyErrors: true });
  } catch (err) {
    if (err instanceof AppError) throw err;
    if (err instanceof YAMLParseError) {
      const pos = err.linePos?.[0];
      throw new AppError("BAD_REQUEST", `malformed YAML${pos ? ` at line ${pos.line}, column ${pos.col}` : ""}: ${err.message.split("\n")[0]}`);
    }
    throw new AppError("BAD_REQUEST", "malformed YAML");
  }
}

export function validateDescriptor(input: unknown): AgentDescriptor {
  const r = descriptorSchema.safeParse(input, { error: missingIsRequired });
  if (!r.success) {
    const errors = fieldIssues(r.error);
    throw new AppError("VALIDATION", `the descriptor is invalid: ${errors.map((e) => `${e.path}: ${e.message}`).join("; ")}`, errors);
  }
  // The soul is in every prompt: its size is bounded in tokens, not only in characters.
  const soulTokens = countTokens(r.data.spec.soul.trim());
  if (soulTokens > SOUL_MAX_TOKENS) {
    const message = `the soul is ${soulTokens} tokens; at most ${SOUL_MAX_TOKENS} (it is loaded into every prompt)`;
    throw new AppError("VALIDATION", `the descriptor is invalid: spec.soul: ${message}`, [{ path: "spec.soul", message }]);
  }
  return r.data;
}

/** Identity of a descriptor after defaults are applied: equal hashes, same revision. */
export const specHash = (d: AgentDescriptor) => createHash("sha256").update(canonicalJson(d)).digest("hex");

export interface DiffEntry {
  path: string;
  op: "add" | "remove" | "replace";
  from?: unknown;
  to?: unknown;
}

/**
 * Field-level differences between two descriptors. Objects are compared key by key;
 * arrays and scalars are compared whole, because a list of tools read as a unit is
 * clearer than index-by-index noise.
 */
export function diffDescriptors(a: unknown, b: unknown, path = ""): DiffEntry[] {
  if (isObject(a) && isObject(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    return keys.flatMap((k) => {
      const p = path ? `${path}.${k}` : k;
      if (!(k in a) || a[k] === undefined) return b[k] === undefined ? [] : [{ path: p, op: "add" as const, to: b[k] }];
      if (!(k in b) || b[k] === undefined) return [{ path: p, op: "remove" as const, from: a[k] }];
      return diffDescriptors(a[k], b[k], p);
    });
  }
  return canonicalJson(a) === canonicalJson(b) ? [] : [{ path: path || "(root)", op: "replace", from: a, to: b }];
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

export function durationMs(d: string): number {
  const m = /^(\d+)(s|m|h|d)$/.exec(d);
  if (!m) throw new Error(`bad duration ${d}`);
  return Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
}
