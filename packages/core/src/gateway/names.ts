import { createHash } from "node:crypto";
import { globToRegExp } from "../glob";

/**
 * Names of gateway tools. Policies, descriptors and audit use the canonical reference
 * `mcp://gateway/<server>/<tool>`. Models need names matching ^[a-zA-Z0-9_-]{1,64}$, so
 * the model sees `mcp__<server>__<tool>`: server names are slugs (lowercase, digits,
 * dashes, at most 32 characters) and cannot contain `__`, so the server part ends at the
 * first `__`. A tool name with other characters (MCP allows dots, for one) has them
 * replaced by `_`, and a name that was changed or is too long ends in `_` and 8 hex digits
 * of the SHA-256 of the real tool name, cut to fit in 64. The name is resolved back
 * through the server's catalogue, so the mapping need not be invertible by itself.
 */
export const GATEWAY_PREFIX = "mcp__";
export const REF_PREFIX = "mcp://gateway/";
export const SERVER_NAME = /^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/;

export function modelToolName(server: string, tool: string): string {
  const escaped = tool.replace(/[^A-Za-z0-9_-]/g, "_");
  const plain = `${GATEWAY_PREFIX}${server}__${escaped}`;
  if (escaped === tool && plain.length <= 64) return plain;
  const hash = createHash("sha256").update(tool).digest("hex").slice(0, 8);
  return `${plain.slice(0, 64 - 9)}_${hash}`;
}

export const isGatewayToolName = (name: string) => name.startsWith(GATEWAY_PREFIX);

/** The server a model-facing name points at, and the tool name it spells if unchanged. */
export function parseModelToolName(name: string): { server: string; tool: string } | null {
  if (!isGatewayToolName(name)) return null;
  const rest = name.slice(GATEWAY_PREFIX.length);
  const i = rest.indexOf("__");
  if (i <= 0) return null;
  const server = rest.slice(0, i);
  const tool = rest.slice(i + 2);
  if (!SERVER_NAME.test(server) || !tool) return null;
  return { server, tool };
}

export const toolRef = (server: string, tool: string) => `${REF_PREFIX}${server}/${tool}`;

/**
 * Whether a descriptor's `spec.tools` offers `ref` to the agent. Globs as policies read
 * them (governance/policy.ts): `*` is any run of characters but `/`, `**` any run at all,
 * `?` one character; so `mcp://gateway/everything/*` is every tool of that server.
 */
export function toolPermitted(patterns: readonly string[], ref: string): boolean {
  return patterns.some((p) => globToRegExp(p).test(ref));
}
