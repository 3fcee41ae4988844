import { countTokens as count } from "gpt-tokenizer";

/**
 * Token counts for memory limits and prompt layers, with a real BPE tokenizer
 * (gpt-tokenizer 4.0.0, OpenAI's o200k_base encoding). Claude's tokenizer is not public;
 * o200k_base approximates it (English prose within about 10-20 %), which is what a
 * budget for "how much of the prompt is memory" needs: the same text always counts the
 * same, and the provider's reported usage stays the source of truth for cost.
 */
export function countTokens(text: string): number {
  return text ? count(text) : 0;
}

/** The most tokens a soul may have: it is loaded into every prompt (DESIGN: about 500). */
export const SOUL_MAX_TOKENS = 1500;
