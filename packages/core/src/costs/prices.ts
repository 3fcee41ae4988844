import type { repo } from "@bosun/db";

/** A dated snapshot id (`claude-opus-4-7-20260214`, `gpt-4o-2024-08-06`) without its date. */
const DATE_SUFFIX = /-(\d{8}|\d{4}-\d{2}-\d{2})$/;

/**
 * The price ids that may price `model`, most specific first: the exact id a provider
 * reported, the same id without a date suffix (providers report pinned snapshots of the
 * model a descriptor names), then `*`, a provider-wide price (the scripted provider's).
 */
export function priceCandidates(model: string): string[] {
  const out = [model];
  const undated = model.replace(DATE_SUFFIX, "");
  if (undated !== model) out.push(undated);
  if (model !== "*") out.push("*");
  return out;
}

export function priceView(p: repo.costs.PriceRow) {
  return {
    id: p.id,
    source: p.source,
    provider: p.provider,
    model: p.model,
    inputMicrosPerMtok: p.inputMicrosPerMtok,
    outputMicrosPerMtok: p.outputMicrosPerMtok,
    cacheReadMicrosPerMtok: p.cacheReadMicrosPerMtok,
    cacheWriteMicrosPerMtok: p.cacheWriteMicrosPerMtok,
    effectiveFrom: p.effectiveFrom.toISOString(),
    note: p.note,
  };
}
