import type { Tx } from "@bosun/db";
import type { ToolMeta } from "../governance/tool-types";

/**
 * Describes a gateway (MCP) tool call from the tenant's tool catalogue: the model-facing
 * name `mcp__<server>__<tool>` maps to `mcp://gateway/<server>/<tool>`.
 */
export async function gatewayToolMeta(_tx: Tx, _p: { tenantId: string; name: string; input: unknown }): Promise<ToolMeta | null> {
  return null;
}
