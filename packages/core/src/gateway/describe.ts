import { repo, type Tx } from "@bosun/db";
import type { ToolMeta } from "../governance/tool-types";
import { modelToolName, parseModelToolName, toolRef } from "./names";

type CatalogueTool = NonNullable<Awaited<ReturnType<typeof repo.gateway.currentTool>>>;

/**
 * The current catalogue entry a model-facing name points at (see names.ts), or null. Read
 * once per transaction and name: a call's policy gate describes the tool and the gateway's
 * phase 1 then resolves it, in the same transaction.
 */
export function resolveGatewayTool(tx: Tx, p: { tenantId: string; name: string }): Promise<CatalogueTool | null> {
  let known = resolved.get(tx);
  if (!known) {
    known = new Map();
    resolved.set(tx, known);
  }
  const key = `${p.tenantId}\n${p.name}`;
  let r = known.get(key);
  if (!r) {
    r = resolve(tx, p);
    known.set(key, r);
  }
  return r;
}
/** By transaction: withTenant binds a new Tx to each one (its connection is reused, the Tx is not). */
const resolved = new WeakMap<object, Map<string, Promise<CatalogueTool | null>>>();

async function resolve(tx: Tx, p: { tenantId: string; name: string }): Promise<CatalogueTool | null> {
  const parsed = parseModelToolName(p.name);
  if (!parsed) return null;
  const direct = await repo.gateway.currentTool(tx, { tenantId: p.tenantId, server: parsed.server, tool: parsed.tool });
  if (direct && modelToolName(parsed.server, direct.name) === p.name) return direct;
  // An escaped or shortened name: find the tool of that server whose model name it is.
  const { rows } = await tx.$client.query<{ name: string }>(
    `SELECT t.name FROM mcp_tools t JOIN mcp_servers s ON s.tenant_id = t.tenant_id AND s.id = t.server_id
      WHERE t.tenant_id = $1 AND s.name = $2 AND t.current`,
    [p.tenantId, parsed.server],
  );
  const match = rows.find((r) => modelToolName(parsed.server, r.name) === p.name);
  if (!match) return null;
  return (await repo.gateway.currentTool(tx, { tenantId: p.tenantId, server: parsed.server, tool: match.name })) ?? null;
}

/**
 * The value a call declares, in micro-dollars: the operator names an input field per tool
 * (`value_field`, a dotted path such as `amount` or `order.total`) whose value is a US
 * dollar amount (a number or a numeric string). Missing or not a number: no value.
 */
export function declaredValueMicros(valueField: string | null, input: unknown): bigint | null {
  if (!valueField) return null;
  let v: unknown = input;
  for (const part of valueField.split(".")) {
    if (v === null || typeof v !== "object" || Array.isArray(v)) return null;
    v = (v as Record<string, unknown>)[part];
  }
  const n = typeof v === "number" ? v : typeof v === "string" && /^-?\d+(\.\d+)?$/.test(v.trim()) ? Number(v) : Number.NaN;
  if (!Number.isFinite(n) || Math.abs(n) > 1e12) return null;
  return BigInt(Math.round(n * 1_000_000));
}

/**
 * Describes a gateway (MCP) tool call from the tenant's tool catalogue: the model-facing
 * name `mcp__<server>__<tool>` maps to `mcp://gateway/<server>/<tool>`.
 */
export async function gatewayToolMeta(tx: Tx, p: { tenantId: string; name: string; input: unknown }): Promise<ToolMeta | null> {
  const t = await resolveGatewayTool(tx, p);
  if (!t) return null;
  return {
    name: p.name,
    ref: toolRef(t.serverName, t.name),
    kind: "gateway",
    sideEffect: t.sideEffect,
    actionValueMicros: declaredValueMicros(t.valueField, p.input),
    feeMicros: BigInt(Math.round(Number(t.feeMicros))),
    gateway: { serverId: t.serverId, server: t.serverName, tool: t.name, version: t.version },
  };
}
