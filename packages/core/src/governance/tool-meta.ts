import type { Tx } from "@bosun/db";
import { gatewayToolMeta } from "../gateway/describe";
import { INTERNAL_TOOL_NAMES } from "../runtime/tools";
import type { ToolMeta } from "./tool-types";

export type { ToolMeta } from "./tool-types";

/** Describes a tool call, or null when no tool of that name exists for this tenant. */
export async function describeTool(tx: Tx, p: { tenantId: string; name: string; input: unknown }): Promise<ToolMeta | null> {
  if (INTERNAL_TOOL_NAMES.has(p.name)) {
    return { name: p.name, ref: p.name, kind: "internal", sideEffect: "internal", actionValueMicros: null, feeMicros: 0n };
  }
  return gatewayToolMeta(tx, p);
}
