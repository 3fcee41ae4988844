import { countTokens as count } from "gpt-tokenizer";

/**
 * Token counts for memory limits and prompt layers, with a real BPE tokenizer
 * (gpt-tokenizer 4.0.0, OpenAI's o200k_base encoding). Claude's tokenizer is not public;
 * o200k_base approximates it (English prose within about 10-20 %), which is what a
 * budget for "how much of the prompt is memory" needs: the same text always counts the
 * same, and the provider's reported usage stays the source of truth for cost.
 *
 * Counts are remembered by text: every run of an agent counts the same soul and
 * instructions again, and BPE costs about as much as the rest of assembling a prompt.
 * The cache keeps the latest CACHE_ENTRIES texts of up to CACHE_MAX_CHARS characters.
 */
export function countTokens(text: string): number {
  if (!text) return 0;
  if (text.length > CACHE_MAX_CHARS) return count(text);
  const known = counted.get(text);
  if (known !== undefined) {
    // Most recently used last: the oldest is the first to go.
    counted.delete(text);
    counted.set(text, known);
    return known;
  }
  const n = count(text);
  counted.set(text, n);
  if (counted.size > CACHE_ENTRIES) counted.delete(counted.keys().next().value!);
  return n;
}

const CACHE_ENTRIES = 2000;
const CACHE_MAX_CHARS = 8192;
const counted = new Map<string, number>();

/** The most tokens a soul may have: it is loaded into every prompt (DESIGN: about 500). */
export const SOUL_MAX_TOKENS = 1500;
