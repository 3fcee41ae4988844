import { sql } from "drizzle-orm";
import { bigint, boolean, foreignKey, index, integer, jsonb, pgTable, primaryKey, text, uniqueIndex } from "drizzle-orm/pg-core";
import { createdAt, tenantId, tenantPolicy, ts, updatedAt } from "./columns";
import { tenants } from "./tenants";

/**
 * A tenant's MCP server, reached through the tool gateway: a stdio command the worker
 * spawns, or a streamable HTTP URL. `secrets_enc` holds the env vars (stdio) or headers
 * (http) as AES-256-GCM ciphertext under BOSUN_SECRET_KEY; `secret_names` lists their
 * names, which is all the API ever shows.
 */
export const mcpServers = pgTable(
  "mcp_servers",
  {
    tenantId: tenantId().references(() => tenants.id, { onDelete: "cascade" }),
    id: text("id").notNull(),
    name: text("name").notNull(),
    transport: text("transport", { enum: ["stdio", "http"] }).notNull(),
    command: text("command"),
    args: jsonb("args").$type<string[]>().notNull().default(sql`'[]'::jsonb`),
    url: text("url"),
    secretsEnc: text("secrets_enc"),
    secretNames: jsonb("secret_names").$type<string[]>().notNull().default(sql`'[]'::jsonb`),
    callsPerMinute: integer("calls_per_minute").notNull(),
    resultCapBytes: integer("result_cap_bytes").notNull(),
    timeoutMs: integer("timeout_ms").notNull(),
    status: text("status", { enum: ["active", "disabled"] })
      .notNull()
      .default("active"),
    lastError: text("last_error"),
    lastListedAt: ts("last_listed_at"),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [primaryKey({ columns: [t.tenantId, t.id] }), uniqueIndex("mcp_servers_tenant_name_key").on(t.tenantId, t.name), tenantPolicy()],
).enableRLS();

/**
 * The tool catalogue: one row per version of a server's tool. A tool whose input schema
 * (or description) hashes differently from its current version gets version n+1; older
 * versions stay, with `current` false. The operator's settings (fee, side effect, value
 * field) belong to the tool and are carried to each new version.
 */
export const mcpTools = pgTable(
  "mcp_tools",
  {
    tenantId: tenantId(),
    serverId: text("server_id").notNull(),
    name: text("name").notNull(),
    version: integer("version").notNull(),
    schemaHash: text("schema_hash").notNull(),
    inputSchema: jsonb("input_schema").notNull(),
    description: text("description").notNull().default(""),
    sideEffect: text("side_effect", { enum: ["external", "internal"] })
      .notNull()
      .default("external"),
    feeMicros: bigint("fee_micros", { mode: "number" }).notNull().default(0),
    /** The input field that holds the call's value in US dollars, if the operator named one. */
    valueField: text("value_field"),
    current: boolean("current").notNull().default(true),
    firstSeenAt: ts("first_seen_at").notNull().defaultNow(),
    lastSeenAt: ts("last_seen_at").notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ columns: [t.tenantId, t.serverId, t.name, t.version] }),
    foreignKey({ name: "mcp_tools_server_fk", columns: [t.tenantId, t.serverId], foreignColumns: [mcpServers.tenantId, mcpServers.id] }).onDelete("cascade"),
    uniqueIndex("mcp_tools_current_key")
      .on(t.tenantId, t.serverId, t.name)
      .where(sql`current`),
    tenantPolicy(),
  ],
).enableRLS();

/**
 * Calls per server per minute, counted in Postgres so the limit holds across workers:
 * one row per (server, minute), incremented only while under the limit.
 */
export const mcpCallCounters = pgTable(
  "mcp_call_counters",
  {
    tenantId: tenantId(),
    serverId: text("server_id").notNull(),
    windowStart: ts("window_start").notNull(),
    calls: integer("calls").notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.tenantId, t.serverId, t.windowStart] }),
    foreignKey({ name: "mcp_call_counters_server_fk", columns: [t.tenantId, t.serverId], foreignColumns: [mcpServers.tenantId, mcpServers.id] }).onDelete(
      "cascade",
    ),
    index("mcp_call_counters_window_idx").on(t.windowStart),
    tenantPolicy(),
  ],
).enableRLS();
