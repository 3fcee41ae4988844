import type { Tx } from "@bosun/db";
import { gatewayToolMeta } from "../gateway/describe";
import { INTERNAL_TOOL_NAMES } from "../runtime/tools";
import type { ToolMeta } from "./tool-types";

export type { ToolMeta } from "./tool-types";

/**
 * The action value a call declares in its input field `action_value_usd` (a non-negative
 * number of dollars, at most 6 decimals counted), in micro-dollars; null when it declares none.
 * Any tool call may declare one this way; a gateway tool may map another input field.
 */
export function declaredActionValue(input: unknown): bigint | null {
  const raw = (input as { action_value_usd?: unknown } | null)?.action_value_usd;
  const v = typeof raw === "string" && /^\d+(\.\d+)?$/.test(raw.trim()) ? Number(raw) : raw;
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0 || v > 1e12) return null;
  return BigInt(Math.round(v * 1_000_000));
}

/** Describes a tool call, or null when no tool of that name exists for this tenant. */
export async function describeTool(tx: Tx, p: { tenantId: string; name: string; input: unknown }): Promise<ToolMeta | null> {
  if (INTERNAL_TOOL_NAMES.has(p.name)) {
    return { name: p.name, ref: p.name, kind: "internal", sideEffect: "internal", actionValueMicros: declaredActionValue(p.input), feeMicros: 0n };
  }
  const meta = await gatewayToolMeta(tx, p);
  return meta && meta.actionValueMicros === null ? { ...meta, actionValueMicros: declaredActionValue(p.input) } : meta;
}
