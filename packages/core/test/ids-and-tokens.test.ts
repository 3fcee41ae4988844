import { countTokens as bpe } from "gpt-tokenizer";
import { describe, expect, it } from "vitest";
import { isId, newId, randomHex } from "../src/ids";
import { newTraceparent } from "../src/runtime/trace";
import { countTokens } from "../src/memory/tokens";

describe("newId", () => {
  it("is the prefix, 10 characters of time and 16 of randomness, in Crockford base32", () => {
    const id = newId("tsk");
    expect(id).toMatch(/^tsk_[0-9a-hjkmnp-tv-z]{26}$/);
    expect(isId("tsk", id)).toBe(true);
    // The time part is the current millisecond.
    const decode = (s: string) => [...s].reduce((n, c) => n * 32 + "0123456789abcdefghjkmnpqrstvwxyz".indexOf(c), 0);
    expect(Math.abs(decode(id.slice(4, 14)) - Date.now())).toBeLessThan(1000);
  });

  it("never repeats, across many refills of its random pool, and sorts by the millisecond it was made in", async () => {
    const ids = Array.from({ length: 20_000 }, () => newId("aud"));
    expect(new Set(ids).size).toBe(ids.length);
    // No two ids share their random part either (a reused pool would show here).
    expect(new Set(ids.map((i) => i.slice(14))).size).toBe(ids.length);
    const before = newId("aud");
    await new Promise((r) => setTimeout(r, 5));
    const after = newId("aud");
    expect(after.slice(0, 14) > before.slice(0, 14)).toBe(true);
  });
});

describe("randomHex and newTraceparent", () => {
  it("gives fresh hex of the length asked for, across refills of the pool it shares with newId", () => {
    const seen = new Set<string>();
    for (let i = 0; i < 3000; i++) {
      // Interleaved with ids, as a run's start draws both: neither takes the other's bytes.
      const id = newId("run").slice(14);
      const hex = randomHex(16);
      expect(hex).toMatch(/^[0-9a-f]{32}$/);
      expect(seen.has(hex) || seen.has(id)).toBe(false);
      seen.add(hex).add(id);
    }
    expect(randomHex(5000)).toMatch(/^[0-9a-f]{10000}$/);
  });

  it("makes W3C traceparents, a child keeping its parent's trace id with a span id of its own", () => {
    const root = newTraceparent();
    expect(root).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    const child = newTraceparent(root);
    expect(child.split("-")[1]).toBe(root.split("-")[1]);
    expect(child.split("-")[2]).not.toBe(root.split("-")[2]);
    expect(newTraceparent().split("-")[1]).not.toBe(root.split("-")[1]);
  });
});

describe("countTokens", () => {
  it("counts as the BPE tokenizer does, from the cache or not", () => {
    const texts = ["", "hello world", "Work through tools. When the task is done call complete_task.", "ü ö ä ß — 東京", "x".repeat(9000)];
    for (let round = 0; round < 3; round++) {
      for (const t of texts) expect(countTokens(t)).toBe(t ? bpe(t) : 0);
    }
  });

  it("still counts right once the cache has turned over", () => {
    const many = Array.from({ length: 2500 }, (_, i) => `line ${i}: ${"word ".repeat(i % 7)}`);
    for (const t of many) expect(countTokens(t)).toBe(bpe(t));
    for (const t of many.slice(0, 50)) expect(countTokens(t)).toBe(bpe(t));
  });
});
