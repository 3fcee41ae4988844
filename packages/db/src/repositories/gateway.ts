import { and, asc, eq, gt, sql } from "drizzle-orm";
import pg from "pg";
import type { Db } from "../client";
import { type PreparedStatement, prepared } from "../tx";
import { mcpServers, type mcpTools } from "../schema/index";

export type McpServerRow = typeof mcpServers.$inferSelect;
export type McpToolRow = typeof mcpTools.$inferSelect;

export async function insertServer(db: Db, row: typeof mcpServers.$inferInsert): Promise<McpServerRow | undefined> {
  const [r] = await db.insert(mcpServers).values(row).onConflictDoNothing().returning();
  return r;
}

export async function getServerByName(db: Db, p: { tenantId: string; name: string; forUpdate?: boolean }): Promise<McpServerRow | undefined> {
  const q = db
    .select()
    .from(mcpServers)
    .where(and(eq(mcpServers.tenantId, p.tenantId), eq(mcpServers.name, p.name)));
  const [r] = p.forUpdate ? await q.for("update") : await q;
  return r;
}

export async function listServers(db: Db, p: { tenantId: string; limit: number; afterName?: string | undefined }): Promise<McpServerRow[]> {
  return db
    .select()
    .from(mcpServers)
    .where(and(eq(mcpServers.tenantId, p.tenantId), p.afterName !== undefined ? gt(mcpServers.name, p.afterName) : undefined))
    .orderBy(asc(mcpServers.name))
    .limit(p.limit);
}

export async function updateServer(
  db: Db,
  p: { tenantId: string; id: string; patch: Partial<Omit<typeof mcpServers.$inferInsert, "tenantId" | "id" | "createdAt">> },
): Promise<McpServerRow> {
  const [r] = await db
    .update(mcpServers)
    .set({ ...p.patch, updatedAt: sql`now()` })
    .where(and(eq(mcpServers.tenantId, p.tenantId), eq(mcpServers.id, p.id)))
    .returning();
  return r!;
}

export async function deleteServer(db: Db, p: { tenantId: string; id: string }): Promise<void> {
  await db.delete(mcpServers).where(and(eq(mcpServers.tenantId, p.tenantId), eq(mcpServers.id, p.id)));
}

/** Every version of every tool of a server (or of the tenant), current first within a name. */
export async function listTools(
  db: Db,
  p: { tenantId: string; serverId?: string | undefined; currentOnly?: boolean; limit: number; after?: [string, string, number] | undefined },
): Promise<(McpToolRow & { serverName: string })[]> {
  const values: unknown[] = [p.tenantId, p.limit];
  const where = ["t.tenant_id = $1"];
  if (p.serverId !== undefined) where.push(`t.server_id = $${values.push(p.serverId)}`);
  if (p.currentOnly) where.push("t.current");
  if (p.after) {
    where.push(`(s.name, t.name, -t.version) > ($${values.push(p.after[0])}, $${values.push(p.after[1])}, $${values.push(-p.after[2])})`);
  }
  const { rows } = await db.$client.query<McpToolRow & { serverName: string }>(
    `SELECT t.tenant_id AS "tenantId", t.server_id AS "serverId", t.name, t.version, t.schema_hash AS "schemaHash", t.input_schema AS "inputSchema",
            t.description, t.side_effect AS "sideEffect", t.fee_micros::float8 AS "feeMicros", t.value_field AS "valueField", t.current,
            t.first_seen_at AS "firstSeenAt", t.last_seen_at AS "lastSeenAt", s.name AS "serverName"
       FROM mcp_tools t JOIN mcp_servers s ON s.tenant_id = t.tenant_id AND s.id = t.server_id
      WHERE ${where.join(" AND ")}
      ORDER BY s.name, t.name, t.version DESC LIMIT $2`,
    values,
  );
  return rows;
}

/** The current version of one tool, with its server, for a call. */
export async function currentTool(db: Db, p: { tenantId: string; server: string; tool: string }) {
  const { rows } = await db.$client.query<McpToolRow & { serverName: string; serverStatus: string }>(
    `SELECT t.tenant_id AS "tenantId", t.server_id AS "serverId", t.name, t.version, t.schema_hash AS "schemaHash", t.input_schema AS "inputSchema",
            t.description, t.side_effect AS "sideEffect", t.fee_micros::float8 AS "feeMicros", t.value_field AS "valueField", t.current,
            t.first_seen_at AS "firstSeenAt", t.last_seen_at AS "lastSeenAt", s.name AS "serverName", s.status AS "serverStatus"
       FROM mcp_tools t JOIN mcp_servers s ON s.tenant_id = t.tenant_id AND s.id = t.server_id
      WHERE t.tenant_id = $1 AND s.name = $2 AND t.name = $3 AND t.current`,
    [p.tenantId, p.server, p.tool],
  );
  return rows[0];
}

/** Current tools of the tenant's active servers: what agents may be offered. */
export async function currentTools(db: Db, p: { tenantId: string }) {
  const { rows } = await db.$client.query<{ serverName: string; name: string; version: number; description: string; inputSchema: unknown }>(
    `SELECT s.name AS "serverName", t.name, t.version, t.description, t.input_schema AS "inputSchema"
       FROM mcp_tools t JOIN mcp_servers s ON s.tenant_id = t.tenant_id AND s.id = t.server_id
      WHERE t.tenant_id = $1 AND t.current AND s.status = 'active'
      ORDER BY s.name, t.name`,
    [p.tenantId],
  );
  return rows;
}

/**
 * Merges one listing of a server's tools into the catalogue: an unchanged hash touches
 * `last_seen_at`; a new hash retires the current version and adds version n+1 with the
 * tool's settings; a tool no longer listed stops being current.
 */
export async function syncTools(
  db: Db,
  p: { tenantId: string; serverId: string; tools: { name: string; schemaHash: string; inputSchema: unknown; description: string }[] },
): Promise<{ added: string[]; changed: string[]; unchanged: string[]; removed: string[] }> {
  const out = { added: [] as string[], changed: [] as string[], unchanged: [] as string[], removed: [] as string[] };
  // The caller holds the server's row lock: refreshes of one server take turns.
  const { rows: existing } = await db.$client.query<{ name: string; version: number; schema_hash: string; current: boolean }>(
    `SELECT DISTINCT ON (name) name, version, schema_hash, current FROM mcp_tools
      WHERE tenant_id = $1 AND server_id = $2 ORDER BY name, version DESC`,
    [p.tenantId, p.serverId],
  );
  const latest = new Map(existing.map((r) => [r.name, r]));
  for (const t of p.tools) {
    const prev = latest.get(t.name);
    if (prev && prev.schema_hash === t.schemaHash && prev.current) {
      await db.$client.query(`UPDATE mcp_tools SET last_seen_at = now() WHERE tenant_id = $1 AND server_id = $2 AND name = $3 AND version = $4`, [
        p.tenantId,
        p.serverId,
        t.name,
        prev.version,
      ]);
      out.unchanged.push(t.name);
      continue;
    }
    // Settings come from the newest version; a returning tool with its old schema is a new version too.
    await db.$client.query(`UPDATE mcp_tools SET current = false WHERE tenant_id = $1 AND server_id = $2 AND name = $3 AND current`, [
      p.tenantId,
      p.serverId,
      t.name,
    ]);
    await db.$client.query(
      `INSERT INTO mcp_tools (tenant_id, server_id, name, version, schema_hash, input_schema, description, side_effect, fee_micros, value_field, current)
       SELECT $1, $2, $3, coalesce(max(version), 0) + 1, $4, $5, $6,
              coalesce((array_agg(side_effect ORDER BY version DESC))[1], 'external'),
              coalesce((array_agg(fee_micros ORDER BY version DESC))[1], 0),
              (array_agg(value_field ORDER BY version DESC))[1], true
         FROM mcp_tools WHERE tenant_id = $1 AND server_id = $2 AND name = $3`,
      [p.tenantId, p.serverId, t.name, t.schemaHash, JSON.stringify(t.inputSchema), t.description],
    );
    (prev ? out.changed : out.added).push(t.name);
  }
  const listed = new Set(p.tools.map((t) => t.name));
  for (const r of existing) {
    if (!listed.has(r.name) && r.current) {
      await db.$client.query(`UPDATE mcp_tools SET current = false WHERE tenant_id = $1 AND server_id = $2 AND name = $3`, [p.tenantId, p.serverId, r.name]);
      out.removed.push(r.name);
    }
  }
  return out;
}

/** Sets a tool's operator settings on all its versions (they belong to the tool). */
export async function updateToolSettings(
  db: Db,
  p: { tenantId: string; serverId: string; name: string; patch: { sideEffect?: "external" | "internal"; feeMicros?: number; valueField?: string | null } },
): Promise<number> {
  const { rowCount } = await db.$client.query(
    `UPDATE mcp_tools SET
       side_effect = CASE WHEN $4::boolean THEN $5 ELSE side_effect END,
       fee_micros = CASE WHEN $6::boolean THEN $7::bigint ELSE fee_micros END,
       value_field = CASE WHEN $8::boolean THEN $9 ELSE value_field END
     WHERE tenant_id = $1 AND server_id = $2 AND name = $3`,
    [
      p.tenantId,
      p.serverId,
      p.name,
      p.patch.sideEffect !== undefined,
      p.patch.sideEffect ?? null,
      p.patch.feeMicros !== undefined,
      p.patch.feeMicros ?? null,
      p.patch.valueField !== undefined,
      p.patch.valueField ?? null,
    ],
  );
  return rowCount ?? 0;
}

const SERVER_COLUMNS = `tenant_id AS "tenantId", id, name, transport, command, args, url, secrets_enc AS "secretsEnc", secret_names AS "secretNames",
  calls_per_minute AS "callsPerMinute", result_cap_bytes AS "resultCapBytes", timeout_ms AS "timeoutMs", status, last_error AS "lastError",
  last_listed_at AS "lastListedAt", created_at AS "createdAt", updated_at AS "updatedAt"`;

/**
 * A gateway call's server (by name, the row getServerByName reads) and its per-minute
 * call slot, as statements (escaped literals) for one round trip. The slot counts the call
 * in the current minute's counter unless it is full (the server and its limit read by name
 * in SQL; an unknown server takes none) and says how long until the next minute. Every
 * worker sees the count once the caller's short transaction commits. `serverAndSlotFrom`
 * reads the results.
 */
export function serverAndCallSlotStatements(p: { tenantId: string; serverName: string }): PreparedStatement[] {
  const args = [pg.escapeLiteral(p.tenantId), pg.escapeLiteral(p.serverName)];
  return [
    prepared("bosun_b_gateway_server", `SELECT ${SERVER_COLUMNS} FROM mcp_servers WHERE tenant_id = $1 AND name = $2`, args),
    prepared(
      "bosun_b_gateway_call_slot",
      `WITH s AS (SELECT id, calls_per_minute FROM mcp_servers WHERE tenant_id = $1 AND name = $2),
            w AS (SELECT date_trunc('minute', now()) AS start),
            old AS (DELETE FROM mcp_call_counters WHERE tenant_id = $1 AND server_id = (SELECT id FROM s) AND window_start < (SELECT start FROM w) - interval '5 minutes'),
            ins AS (
              INSERT INTO mcp_call_counters (tenant_id, server_id, window_start, calls) SELECT $1, s.id, w.start, 1 FROM s, w
              ON CONFLICT (tenant_id, server_id, window_start) DO UPDATE SET calls = mcp_call_counters.calls + 1
                WHERE mcp_call_counters.calls < (SELECT calls_per_minute FROM s)
              RETURNING calls)
       SELECT (SELECT calls FROM ins) AS calls,
              extract(epoch FROM (SELECT start FROM w) + interval '1 minute' - now())::float8 * 1000 AS ms`,
      args,
    ),
  ];
}

export function serverAndSlotFrom(results: pg.QueryResult[]): { server: McpServerRow | undefined; slot: { ok: boolean; retryAfterMs: number } } {
  const slot = results[1]?.rows[0] as { calls: number | null; ms: number } | undefined;
  return { server: results[0]?.rows[0] as McpServerRow | undefined, slot: { ok: slot?.calls != null, retryAfterMs: Math.ceil(slot?.ms ?? 60_000) } };
}
