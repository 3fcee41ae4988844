import { createHash } from "node:crypto";
import type { McpServerCreate, McpServerUpdate, McpToolUpdate } from "@bosun/contracts";
import { canonicalJson, type Database, repo, type Tx, withTenant } from "@bosun/db";
import { type Actor, requireScope } from "../actor";
import { audit } from "../audit";
import { AppError, conflict, forbidden, notFound } from "../errors";
import { type IdempotencyRequest, runCreate } from "../idempotency";
import { newId } from "../ids";
import { decodeCursor, page } from "../pagination";
import { assertHttpAllowed, assertStdioAllowed, mcpPool } from "./client";
import { encryptSecrets } from "./crypto";
import { modelToolName, toolRef } from "./names";

const g = repo.gateway;
type ServerRow = repo.gateway.McpServerRow;
type ToolRow = repo.gateway.McpToolRow & { serverName: string };

export const GATEWAY_DEFAULTS = { callsPerMinute: 60, resultCapBytes: 64 * 1024, timeoutMs: 30_000 };

export function mcpServerView(s: ServerRow) {
  return {
    id: s.id,
    name: s.name,
    transport: s.transport,
    command: s.command,
    args: s.args,
    url: s.url,
    secretNames: s.secretNames,
    limits: { callsPerMinute: s.callsPerMinute, resultCapBytes: s.resultCapBytes, timeoutMs: s.timeoutMs },
    status: s.status,
    lastError: s.lastError,
    lastListedAt: s.lastListedAt?.toISOString() ?? null,
    createdAt: s.createdAt.toISOString(),
    updatedAt: s.updatedAt.toISOString(),
  };
}

export function mcpToolView(t: ToolRow) {
  return {
    server: t.serverName,
    name: t.name,
    ref: toolRef(t.serverName, t.name),
    modelName: modelToolName(t.serverName, t.name),
    version: t.version,
    schemaHash: t.schemaHash,
    inputSchema: t.inputSchema,
    description: t.description,
    sideEffect: t.sideEffect,
    feeMicros: Number(t.feeMicros),
    valueField: t.valueField,
    current: t.current,
    firstSeenAt: new Date(t.firstSeenAt).toISOString(),
    lastSeenAt: new Date(t.lastSeenAt).toISOString(),
  };
}

/** What makes a tool version: what the model is shown and what it must send. */
export function toolSchemaHash(t: { name: string; description?: string | undefined; inputSchema: unknown; outputSchema?: unknown }) {
  return createHash("sha256")
    .update(canonicalJson({ name: t.name, description: t.description ?? "", inputSchema: t.inputSchema, outputSchema: t.outputSchema ?? null }))
    .digest("hex");
}

interface Ctx {
  requestId?: string | undefined;
}

const isToolCursor = (v: unknown): v is [string, string, number] =>
  Array.isArray(v) && v.length === 3 && typeof v[0] === "string" && typeof v[1] === "string" && Number.isInteger(v[2]);

/** MCP servers and the tool catalogue: registration (admin), listing, refresh. */
export const gatewayService = (deps: { database: Database }) => {
  const { database } = deps;

  function assertAdmin(actor: Actor) {
    requireScope(actor, "admin");
    if (actor.agentId) throw forbidden("an agent cannot register or change MCP servers");
  }

  async function load(tx: Tx, actor: Actor, name: string, forUpdate = false) {
    const s = await g.getServerByName(tx, { tenantId: actor.tenantId, name, forUpdate });
    if (!s) throw notFound(`MCP server '${name}'`);
    return s;
  }

  function sealed(tenantId: string, secrets: Record<string, string> | null | undefined) {
    if (!secrets || Object.keys(secrets).length === 0) return { secretsEnc: null, secretNames: [] as string[] };
    return { secretsEnc: encryptSecrets(tenantId, secrets), secretNames: Object.keys(secrets).sort() };
  }

  return {
    async create(actor: Actor, body: McpServerCreate, ctx: Ctx & { idempotency?: IdempotencyRequest | undefined } = {}) {
      assertAdmin(actor);
      if (body.transport === "stdio") assertStdioAllowed(body.command!);
      else await assertHttpAllowed(body.url!);
      const secrets = sealed(actor.tenantId, body.secrets);
      return runCreate(database, actor.tenantId, ctx.idempotency, async (tx) => {
        const row = await g.insertServer(tx, {
          tenantId: actor.tenantId,
          id: newId("mcp"),
          name: body.name,
          transport: body.transport,
          command: body.transport === "stdio" ? body.command! : null,
          args: body.transport === "stdio" ? (body.args ?? []) : [],
          url: body.transport === "http" ? body.url! : null,
          ...secrets,
          callsPerMinute: body.limits?.callsPerMinute ?? GATEWAY_DEFAULTS.callsPerMinute,
          resultCapBytes: body.limits?.resultCapBytes ?? GATEWAY_DEFAULTS.resultCapBytes,
          timeoutMs: body.limits?.timeoutMs ?? GATEWAY_DEFAULTS.timeoutMs,
          status: body.status ?? "active",
        });
        if (!row) throw conflict(`MCP server '${body.name}' already exists`);
        const view = mcpServerView(row);
        await audit(tx, actor, { action: "mcp_server.create", targetType: "mcp_server", targetId: row.id, after: view }, ctx.requestId);
        return { status: 201, body: view };
      });
    },

    async list(actor: Actor, q: { limit: number; cursor?: string | undefined }) {
      requireScope(actor, "read");
      const afterName = decodeCursor(q.cursor, (v): v is string => typeof v === "string");
      const rows = await withTenant(database, actor.tenantId, (tx) => g.listServers(tx, { tenantId: actor.tenantId, limit: q.limit + 1, afterName }));
      const p = page(rows, q.limit, (r) => r.name);
      return { items: p.items.map(mcpServerView), nextCursor: p.nextCursor };
    },

    async get(actor: Actor, name: string) {
      requireScope(actor, "read");
      return withTenant(database, actor.tenantId, async (tx) => mcpServerView(await load(tx, actor, name)));
    },

    async update(actor: Actor, name: string, body: McpServerUpdate, ctx: Ctx = {}) {
      assertAdmin(actor);
      return withTenant(database, actor.tenantId, async (tx) => {
        const s = await load(tx, actor, name, true);
        if (s.transport === "stdio" && body.url !== undefined) throw new AppError("VALIDATION", "a stdio server has no url", [{ path: "url", message: "not for stdio" }]);
        if (s.transport === "http" && (body.command !== undefined || body.args !== undefined)) {
          throw new AppError("VALIDATION", "an http server has no command or args", [{ path: "command", message: "not for http" }]);
        }
        if (body.command !== undefined) assertStdioAllowed(body.command);
        if (body.url !== undefined) await assertHttpAllowed(body.url);
        const updated = await g.updateServer(tx, {
          tenantId: actor.tenantId,
          id: s.id,
          patch: {
            ...(body.command !== undefined ? { command: body.command } : {}),
            ...(body.args !== undefined ? { args: body.args } : {}),
            ...(body.url !== undefined ? { url: body.url } : {}),
            ...(body.secrets !== undefined ? sealed(actor.tenantId, body.secrets) : {}),
            ...(body.limits?.callsPerMinute !== undefined ? { callsPerMinute: body.limits.callsPerMinute } : {}),
            ...(body.limits?.resultCapBytes !== undefined ? { resultCapBytes: body.limits.resultCapBytes } : {}),
            ...(body.limits?.timeoutMs !== undefined ? { timeoutMs: body.limits.timeoutMs } : {}),
            ...(body.status !== undefined ? { status: body.status } : {}),
          },
        });
        const after = mcpServerView(updated);
        await audit(tx, actor, { action: "mcp_server.update", targetType: "mcp_server", targetId: s.id, before: mcpServerView(s), after }, ctx.requestId);
        return after;
      });
    },

    async remove(actor: Actor, name: string, ctx: Ctx = {}) {
      assertAdmin(actor);
      return withTenant(database, actor.tenantId, async (tx) => {
        const s = await load(tx, actor, name, true);
        await g.deleteServer(tx, { tenantId: actor.tenantId, id: s.id });
        const before = mcpServerView(s);
        await audit(tx, actor, { action: "mcp_server.delete", targetType: "mcp_server", targetId: s.id, before }, ctx.requestId);
        return before;
      });
    },

    /**
     * Lists the server's tools (`tools/list`) into the catalogue: the listing happens
     * outside any transaction (it may take seconds), then is merged in one. A server that
     * cannot be listed keeps its catalogue and gets `last_error`.
     */
    async refresh(actor: Actor, name: string, ctx: Ctx = {}) {
      assertAdmin(actor);
      const server = await withTenant(database, actor.tenantId, (tx) => load(tx, actor, name));
      const pool = mcpPool({ idleMs: 1000 });
      let listed: Awaited<ReturnType<typeof pool.listTools>>;
      try {
        listed = await pool.listTools(server);
      } catch (err) {
        if (err instanceof AppError && err.code !== "SERVICE_UNAVAILABLE") throw err;
        const stderr = await pool.stderrOf(server);
        const message = `${err instanceof Error ? err.message : String(err)}${stderr ? ` (stderr: ${stderr.trim()})` : ""}`.slice(0, 2000);
        await withTenant(database, actor.tenantId, (tx) => g.updateServer(tx, { tenantId: actor.tenantId, id: server.id, patch: { lastError: message } }));
        throw new AppError("SERVICE_UNAVAILABLE", `MCP server '${name}' could not be listed: ${message}`);
      } finally {
        await pool.close();
      }
      return withTenant(database, actor.tenantId, async (tx) => {
        const s = await load(tx, actor, name, true);
        const tools = listed
          .filter((t) => /^[A-Za-z0-9_.-]{1,128}$/.test(t.name))
          .map((t) => ({
            name: t.name,
            description: (t.description ?? "").slice(0, 4000),
            inputSchema: t.inputSchema,
            schemaHash: toolSchemaHash(t),
          }));
        const diff = await g.syncTools(tx, { tenantId: actor.tenantId, serverId: s.id, tools });
        // Touch updated_at only through last_listed_at: connections are keyed on updated_at.
        await tx.$client.query(`UPDATE mcp_servers SET last_listed_at = now(), last_error = NULL WHERE tenant_id = $1 AND id = $2`, [actor.tenantId, s.id]);
        const fresh = (await g.getServerByName(tx, { tenantId: actor.tenantId, name }))!;
        await audit(tx, actor, { action: "mcp_server.refresh", targetType: "mcp_server", targetId: s.id, after: diff }, ctx.requestId);
        return { server: mcpServerView(fresh), ...diff };
      });
    },

    /** The catalogue: every version of every tool, newest version first within a tool. */
    async tools(actor: Actor, q: { limit: number; cursor?: string | undefined; server?: string | undefined; current?: "true" | "false" | undefined }) {
      requireScope(actor, "read");
      const after = decodeCursor(q.cursor, isToolCursor);
      return withTenant(database, actor.tenantId, async (tx) => {
        const serverId = q.server !== undefined ? (await load(tx, actor, q.server)).id : undefined;
        const rows = await g.listTools(tx, { tenantId: actor.tenantId, serverId, currentOnly: q.current === "true", limit: q.limit + 1, after });
        const filtered = q.current === "false" ? rows.filter((r) => !r.current) : rows;
        const p = page(filtered, q.limit, (r) => [r.serverName, r.name, r.version]);
        return { items: p.items.map(mcpToolView), nextCursor: p.nextCursor };
      });
    },

    async updateTool(actor: Actor, server: string, tool: string, body: McpToolUpdate, ctx: Ctx = {}) {
      assertAdmin(actor);
      return withTenant(database, actor.tenantId, async (tx) => {
        const s = await load(tx, actor, server);
        const before = await g.listTools(tx, { tenantId: actor.tenantId, serverId: s.id, limit: 1000 });
        const prev = before.find((t) => t.name === tool);
        if (!prev) throw notFound(`tool '${tool}' of MCP server '${server}'`);
        await g.updateToolSettings(tx, { tenantId: actor.tenantId, serverId: s.id, name: tool, patch: body });
        const after = (await g.listTools(tx, { tenantId: actor.tenantId, serverId: s.id, limit: 1000 })).find((t) => t.name === tool)!;
        await audit(
          tx,
          actor,
          {
            action: "mcp_tool.update",
            targetType: "tool",
            targetId: toolRef(server, tool),
            before: { sideEffect: prev.sideEffect, feeMicros: Number(prev.feeMicros), valueField: prev.valueField },
            after: { sideEffect: after.sideEffect, feeMicros: Number(after.feeMicros), valueField: after.valueField },
          },
          ctx.requestId,
        );
        return mcpToolView(after);
      });
    },
  };
};

export type GatewayService = ReturnType<typeof gatewayService>;
