import { describe, expect, it } from "vitest";
import { backoffDelay, defaultRetryPolicy, normaliseAnthropicUsage, normaliseOpenAIUsage, parseRetryAfter } from "../src/index";

describe("usage normalisation", () => {
  it("Anthropic: input_tokens excludes the cache; reads and writes add to it", () => {
    const raw = { input_tokens: 100, cache_read_input_tokens: 900, cache_creation_input_tokens: 50, output_tokens: 20, service_tier: "standard" };
    const u = normaliseAnthropicUsage(raw);
    expect(u).toEqual({ inputTokens: 100, cacheReadTokens: 900, cacheWriteTokens: 50, outputTokens: 20, totalTokens: 1070, raw });
    expect(u.raw).not.toBe(raw); // a copy: later mutation of the SDK object cannot change a recorded step
  });

  it("Anthropic: null and missing cache counters are zero", () => {
    expect(normaliseAnthropicUsage({ input_tokens: 7, output_tokens: 3, cache_read_input_tokens: null })).toMatchObject({
      inputTokens: 7,
      cacheReadTokens: 0,
      cacheWriteTokens: 0,
      outputTokens: 3,
      totalTokens: 10,
    });
  });

  it("OpenAI: prompt_tokens includes cached_tokens; the categories add up to total_tokens", () => {
    const raw = { prompt_tokens: 1000, completion_tokens: 20, total_tokens: 1020, prompt_tokens_details: { cached_tokens: 900 } };
    expect(normaliseOpenAIUsage(raw)).toEqual({ inputTokens: 100, cacheReadTokens: 900, cacheWriteTokens: 0, outputTokens: 20, totalTokens: 1020, raw });
  });

  it("OpenAI: cache_write_tokens is part of prompt_tokens too", () => {
    const u = normaliseOpenAIUsage({
      prompt_tokens: 1000,
      completion_tokens: 20,
      total_tokens: 1020,
      prompt_tokens_details: { cached_tokens: 600, cache_write_tokens: 300 },
    });
    expect(u).toMatchObject({ inputTokens: 100, cacheReadTokens: 600, cacheWriteTokens: 300, outputTokens: 20, totalTokens: 1020 });
  });

  it("OpenAI: no details (older servers) means no cache", () => {
    expect(normaliseOpenAIUsage({ prompt_tokens: 12, completion_tokens: 3, total_tokens: 15, prompt_tokens_details: null })).toMatchObject({
      inputTokens: 12,
      cacheReadTokens: 0,
      totalTokens: 15,
    });
  });

  it("refuses counts that are not counts", () => {
    expect(() => normaliseAnthropicUsage({ input_tokens: -1, output_tokens: 2 })).toThrow(/usage is malformed/);
    expect(() => normaliseOpenAIUsage({ prompt_tokens: "12", completion_tokens: 3 })).toThrow(/usage is malformed/);
  });
});

describe("retry timing", () => {
  it("parses retry-after-ms, retry-after seconds and HTTP dates", () => {
    expect(parseRetryAfter(new Headers({ "retry-after": "2" }))).toBe(2000);
    expect(parseRetryAfter(new Headers({ "retry-after": "0.5", "retry-after-ms": "120" }))).toBe(120);
    const now = Date.parse("2026-03-01T10:00:00Z");
    expect(parseRetryAfter(new Headers({ "retry-after": "Sun, 01 Mar 2026 10:00:05 GMT" }), now)).toBe(5000);
    expect(parseRetryAfter(new Headers({ "retry-after": "soon" }))).toBeUndefined();
    expect(parseRetryAfter(new Headers())).toBeUndefined();
  });

  it("backs off exponentially with jitter, capped", () => {
    const p = { ...defaultRetryPolicy, baseDelayMs: 100, maxDelayMs: 1000 };
    expect(backoffDelay(p, 1, () => 0)).toBe(50);
    expect(backoffDelay(p, 1, () => 1)).toBe(100);
    expect(backoffDelay(p, 3, () => 1)).toBe(400);
    expect(backoffDelay(p, 10, () => 1)).toBe(1000);
  });
});
