/**
 * Money, in one place.
 *
 * - Amounts are integer micro-dollars: $1 = 1,000,000 µ$. Never floats: a float cannot
 *   hold $0.1 exactly, and a ledger that sums a million of them drifts.
 * - Token prices are micro-dollars per million tokens (µ$/MTok), so every list price is
 *   an integer ($0.075 / MTok = 75,000).
 * - A charge is Σ tokens × price / 1,000,000, computed in BigInt (tokens × price can pass
 *   2^53: 10^8 tokens × 1.8·10^8 µ$/MTok) and divided once, rounding UP: nothing is
 *   undercharged, and the whole charge rounds once rather than each category.
 * - A worst case (what a reservation holds) is priced the same way: every prompt token at
 *   the dearest input rate of the model, plus `max_tokens` of output.
 * - Compute is worker milliseconds at a rate in µ$ per hour, also rounded up.
 */

const PER_MTOK = 1_000_000n;
const MS_PER_HOUR = 3_600_000n;

export interface TokenPrice {
  inputMicrosPerMtok: number;
  outputMicrosPerMtok: number;
  cacheReadMicrosPerMtok: number;
  cacheWriteMicrosPerMtok: number;
}

/** Non-overlapping token categories, as packages/llm normalises them. */
export interface TokenCounts {
  inputTokens: number;
  cacheReadTokens: number;
  cacheWriteTokens: number;
  outputTokens: number;
}

const ceilDiv = (n: bigint, d: bigint) => (n + d - 1n) / d;
const big = (n: number, what: string) => {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`${what} must be a non-negative safe integer, got ${n}`);
  return BigInt(n);
};
const toNumber = (n: bigint) => {
  if (n > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError(`amount ${n} µ$ is beyond what the ledger holds`);
  return Number(n);
};

/** The cost of a call's usage in µ$, rounded up. */
export function tokenCost(price: TokenPrice, t: TokenCounts): number {
  const sum =
    big(t.inputTokens, "inputTokens") * big(price.inputMicrosPerMtok, "input price") +
    big(t.cacheReadTokens, "cacheReadTokens") * big(price.cacheReadMicrosPerMtok, "cache-read price") +
    big(t.cacheWriteTokens, "cacheWriteTokens") * big(price.cacheWriteMicrosPerMtok, "cache-write price") +
    big(t.outputTokens, "outputTokens") * big(price.outputMicrosPerMtok, "output price");
  return toNumber(ceilDiv(sum, PER_MTOK));
}

/**
 * The most a call can cost: each of `promptTokens` at the dearest input category (a cache
 * write costs more than plain input on Anthropic), plus `maxTokens` of output.
 */
export function worstCaseCost(price: TokenPrice, promptTokens: number, maxTokens: number): number {
  const dearestInput = Math.max(price.inputMicrosPerMtok, price.cacheWriteMicrosPerMtok, price.cacheReadMicrosPerMtok);
  const sum = big(promptTokens, "promptTokens") * big(dearestInput, "input price") + big(maxTokens, "maxTokens") * big(price.outputMicrosPerMtok, "output price");
  return toNumber(ceilDiv(sum, PER_MTOK));
}

/** Worker time at a rate in µ$ per hour, rounded up. */
export function computeCost(ms: number, microsPerHour: number): number {
  return toNumber(ceilDiv(big(Math.ceil(ms), "ms") * big(microsPerHour, "rate"), MS_PER_HOUR));
}

/**
 * A decimal dollar amount as micro-dollars, exactly: through its decimal text, never by
 * multiplying a float. At most six decimal places; anything finer is refused.
 */
export function usdToMicros(usd: number | string): number {
  const text = typeof usd === "number" ? numberText(usd) : usd.trim();
  const m = /^(\d+)(?:\.(\d{1,6}))?$/.exec(text);
  if (!m) throw new RangeError(`'${text}' is not a dollar amount with at most 6 decimal places`);
  return toNumber(BigInt(m[1]!) * 1_000_000n + BigInt((m[2] ?? "").padEnd(6, "0")));
}

/** Shortest decimal text of a number (no exponent), for usdToMicros. */
function numberText(n: number): string {
  if (!Number.isFinite(n) || n < 0) return String(n);
  const s = String(n);
  if (!/e/i.test(s)) return s;
  return n.toFixed(20).replace(/0+$/, "").replace(/\.$/, "");
}

/** Micro-dollars as a decimal dollar string with six places: 1234567 → "1.234567". */
export function formatMicros(micros: number): string {
  const neg = micros < 0;
  const abs = BigInt(Math.abs(micros));
  const s = `${abs / 1_000_000n}.${(abs % 1_000_000n).toString().padStart(6, "0")}`;
  return neg ? `-${s}` : s;
}

/** Micro-dollars for people: "$1.23", "$0.0042" (at least two places, more when small). */
export function formatUsd(micros: number): string {
  const s = formatMicros(micros).replace(/0+$/, "");
  const [whole, frac = ""] = s.split(".");
  return `$${whole}.${frac.padEnd(2, "0")}`;
}

/** Which threshold percentages a move from `before` to `after` crosses against `limit`. */
export function crossedThresholds(thresholds: number[], limit: number, before: number, after: number): number[] {
  if (after <= before) return [];
  const L = BigInt(limit);
  return thresholds.filter((t) => {
    const mark = BigInt(t) * L; // compare spent·100 with t·limit: no division, no rounding
    return BigInt(before) * 100n < mark && BigInt(after) * 100n >= mark;
  });
}
