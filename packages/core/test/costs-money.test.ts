import { computeCost, crossedThresholds, formatMicros, formatUsd, priceCandidates, tokenCost, usdToMicros, worstCaseCost } from "@bosun/core";
import { normaliseAnthropicUsage, normaliseOpenAIUsage } from "@bosun/llm";
import { describe, expect, it } from "vitest";

// claude-opus-4-7 and gpt-5.4 as seeded in migrations/0003_cost_governance.sql.
const opus = { inputMicrosPerMtok: 5_000_000, cacheWriteMicrosPerMtok: 6_250_000, cacheReadMicrosPerMtok: 500_000, outputMicrosPerMtok: 25_000_000 };
const gpt = { inputMicrosPerMtok: 2_500_000, cacheWriteMicrosPerMtok: 2_500_000, cacheReadMicrosPerMtok: 250_000, outputMicrosPerMtok: 15_000_000 };

describe("money", () => {
  it("prices each token category at its own rate and rounds the charge up once", () => {
    // 100 × $5 + 900 × $0.50 + 50 × $6.25 + 20 × $25 per MTok = 500 + 450 + 312.5 + 500 = 1762.5 µ$, rounded up.
    expect(tokenCost(opus, { inputTokens: 100, cacheReadTokens: 900, cacheWriteTokens: 50, outputTokens: 20 })).toBe(1763);
    expect(tokenCost(opus, { inputTokens: 1, cacheReadTokens: 0, cacheWriteTokens: 0, outputTokens: 0 })).toBe(5);
    // One token of cache read is 0.5 µ$: never charged as 0.
    expect(tokenCost(opus, { inputTokens: 0, cacheReadTokens: 1, cacheWriteTokens: 0, outputTokens: 0 })).toBe(1);
    expect(tokenCost(opus, { inputTokens: 0, cacheReadTokens: 0, cacheWriteTokens: 0, outputTokens: 0 })).toBe(0);
  });

  it("stays exact beyond 2^53 intermediate products", () => {
    const dear = { inputMicrosPerMtok: 180_000_000, outputMicrosPerMtok: 180_000_000, cacheReadMicrosPerMtok: 0, cacheWriteMicrosPerMtok: 0 };
    // 10^8 × 1.8·10^8 = 1.8·10^16 > 2^53: a float would round; BigInt does not.
    expect(tokenCost(dear, { inputTokens: 100_000_001, cacheReadTokens: 0, cacheWriteTokens: 0, outputTokens: 0 })).toBe(18_000_000_180);
  });

  it("prices the worst case at the dearest input category plus max_tokens of output", () => {
    expect(worstCaseCost(opus, 1000, 100)).toBe(Math.ceil((1000 * 6_250_000 + 100 * 25_000_000) / 1_000_000));
    expect(worstCaseCost(gpt, 1000, 0)).toBe(2500);
  });

  it("charges compute by the millisecond, rounded up", () => {
    expect(computeCost(3_600_000, 50_000)).toBe(50_000);
    expect(computeCost(1, 50_000)).toBe(1);
    expect(computeCost(0, 50_000)).toBe(0);
    expect(computeCost(72_000, 50_000)).toBe(1000);
  });

  it("converts dollars to micro-dollars through their decimal text", () => {
    expect(usdToMicros(0.1)).toBe(100_000);
    expect(usdToMicros(40)).toBe(40_000_000);
    expect(usdToMicros("2.000001")).toBe(2_000_001);
    expect(usdToMicros(1e-6)).toBe(1);
    expect(() => usdToMicros(0.0000001)).toThrow(/6 decimal places/);
    expect(() => usdToMicros(-1)).toThrow();
    expect(formatMicros(1_234_567)).toBe("1.234567");
    expect(formatUsd(40_000_000)).toBe("$40.00");
    expect(formatUsd(4_200)).toBe("$0.0042");
  });

  it("finds the thresholds a spend crosses, once each", () => {
    expect(crossedThresholds([50, 80, 100], 1000, 0, 499)).toEqual([]);
    expect(crossedThresholds([50, 80, 100], 1000, 0, 500)).toEqual([50]);
    expect(crossedThresholds([50, 80, 100], 1000, 499, 1200)).toEqual([50, 80, 100]);
    expect(crossedThresholds([50, 80, 100], 1000, 500, 799)).toEqual([]);
    expect(crossedThresholds([50, 80, 100], 0, 0, 0)).toEqual([]);
  });

  it("looks prices up by the exact id, then without a date suffix, then provider-wide", () => {
    expect(priceCandidates("claude-opus-4-7-20260214")).toEqual(["claude-opus-4-7-20260214", "claude-opus-4-7", "*"]);
    expect(priceCandidates("gpt-4o-2024-08-06")).toEqual(["gpt-4o-2024-08-06", "gpt-4o", "*"]);
    expect(priceCandidates("gpt-5.5")).toEqual(["gpt-5.5", "*"]);
  });
});

describe("cache tokens are counted once, for both providers", () => {
  it("Anthropic: input_tokens excludes the cache; every category is priced once", () => {
    const raw = { input_tokens: 100, cache_read_input_tokens: 900, cache_creation_input_tokens: 50, output_tokens: 20 };
    const u = normaliseAnthropicUsage(raw);
    expect(u).toMatchObject({ inputTokens: 100, cacheReadTokens: 900, cacheWriteTokens: 50, outputTokens: 20, totalTokens: 1070, raw });
    // Pricing the cache reads as plain input too (the double count) would add 900 × 5 = 4500 µ$.
    expect(tokenCost(opus, u)).toBe(1763);
  });

  it("OpenAI: prompt_tokens includes cached_tokens; only the uncached rest is plain input", () => {
    const raw = { prompt_tokens: 1000, completion_tokens: 20, total_tokens: 1020, prompt_tokens_details: { cached_tokens: 900 } };
    const u = normaliseOpenAIUsage(raw);
    expect(u).toMatchObject({ inputTokens: 100, cacheReadTokens: 900, cacheWriteTokens: 0, outputTokens: 20, totalTokens: raw.total_tokens });
    // 100 × 2.5 + 900 × 0.25 + 20 × 15 = 250 + 225 + 300 µ$.
    expect(tokenCost(gpt, u)).toBe(775);
    // Counting prompt_tokens as input on top of the cached ones would be 1000 × 2.5 + 225 + 300.
    expect(tokenCost(gpt, u)).toBeLessThan(1000 * 2.5 + 225 + 300);
  });
});
