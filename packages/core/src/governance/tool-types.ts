/**
 * What policy needs to know about one tool call before it runs: where the tool lives,
 * whether its effect leaves Bosun, the value the call declares and the fee it costs.
 * Internal tools (tasks, messages, memory, delegation) run inside the runtime and have
 * internal side effects; gateway tools are MCP tools reached through the gateway.
 */
export interface ToolMeta {
  /** The name the model used (gateway tools: `mcp__<server>__<tool>`). */
  name: string;
  /** The canonical name policies match: internal tools by name, gateway tools as `mcp://gateway/<server>/<tool>`. */
  ref: string;
  kind: "internal" | "gateway";
  sideEffect: "internal" | "external";
  /** The value of the action the call declares, in micro-dollars, when the tool declares one. */
  actionValueMicros: bigint | null;
  /** The tool's fee per call in micro-dollars (charged to the ledger as an `action`). */
  feeMicros: bigint;
  gateway?: { serverId: string; server: string; tool: string; version: number };
}
