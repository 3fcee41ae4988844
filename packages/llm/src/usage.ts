import { z } from "zod";
import type { Usage } from "./types";

/*
 * Providers count prompt caching differently, and the cost path prices each category on
 * its own, so usage is split into categories that never overlap:
 *
 *   Anthropic: input_tokens EXCLUDES the cache. cache_read_input_tokens and
 *     cache_creation_input_tokens are separate and additive:
 *     total = input + cache_read + cache_creation + output.
 *   OpenAI: prompt_tokens INCLUDES prompt_tokens_details.cached_tokens (and
 *     cache_write_tokens where reported): uncached input = prompt - cached - cache_write,
 *     total = prompt + completion (= total_tokens).
 */

const count = z
  .number()
  .int()
  .nonnegative()
  .nullish()
  .transform((n) => n ?? 0);

const anthropicUsageSchema = z.looseObject({
  input_tokens: count,
  output_tokens: count,
  cache_creation_input_tokens: count,
  cache_read_input_tokens: count,
});

const openAIUsageSchema = z.looseObject({
  prompt_tokens: count,
  completion_tokens: count,
  total_tokens: count,
  prompt_tokens_details: z
    .looseObject({ cached_tokens: count, cache_write_tokens: count })
    .nullish()
    .transform((d) => d ?? { cached_tokens: 0, cache_write_tokens: 0 }),
});

const asRecord = (u: unknown): Record<string, unknown> =>
  typeof u === "object" && u !== null ? { ...(u as Record<string, unknown>) } : {};

function build(input: number, cacheRead: number, cacheWrite: number, output: number, raw: unknown): Usage {
  return {
    inputTokens: input,
    cacheReadTokens: cacheRead,
    cacheWriteTokens: cacheWrite,
    outputTokens: output,
    totalTokens: input + cacheRead + cacheWrite + output,
    raw: asRecord(raw),
  };
}

function parse<S extends z.ZodType>(schema: S, u: unknown, what: string): z.output<S> {
  const r = schema.safeParse(u);
  if (!r.success) throw new Error(`${what} usage is malformed: ${z.prettifyError(r.error)}`);
  return r.data;
}

/** Anthropic Messages `usage` (or a message_start usage merged with message_delta's). */
export function normaliseAnthropicUsage(u: unknown): Usage {
  const p = parse(anthropicUsageSchema, u, "Anthropic");
  return build(p.input_tokens, p.cache_read_input_tokens, p.cache_creation_input_tokens, p.output_tokens, u);
}

/** OpenAI Chat Completions `usage` (also what OpenAI-compatible servers send). */
export function normaliseOpenAIUsage(u: unknown): Usage {
  const p = parse(openAIUsageSchema, u, "OpenAI");
  const cacheRead = Math.min(p.prompt_tokens_details.cached_tokens, p.prompt_tokens);
  const cacheWrite = Math.min(p.prompt_tokens_details.cache_write_tokens, p.prompt_tokens - cacheRead);
  return build(p.prompt_tokens - cacheRead - cacheWrite, cacheRead, cacheWrite, p.completion_tokens, u);
}

/** Usage for a response that came with none: zeros, flagged `unreported`. */
export function unreportedUsage(): Usage {
  return { ...build(0, 0, 0, 0, {}), unreported: true };
}
