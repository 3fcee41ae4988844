/**
 * Phase 1 of a gateway call reads less: the tool is resolved once per transaction (the
 * policy gate and the gateway share it), never across transactions; the server and the
 * call's per-minute slot are one round trip.
 */
import { queryBatch, repo, withTenant } from "@bosun/db";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDb, type TestDb } from "../../../test/helpers/db";
import { recordQueries } from "../../../test/helpers/queries";
import { resolveGatewayTool } from "../src/gateway/describe";
import { modelToolName } from "../src/gateway/names";

let db: TestDb;
const T = "ten_0000000000gggggggggggggggg";
const server = "srv_0000000000gggggggggggggggg";
const name = modelToolName("tools", "echo");

beforeAll(async () => {
  db = await createTestDb();
  const q = (sql: string, v: unknown[]) => db.database.pool.query(sql, v);
  await q(`INSERT INTO tenants (id, name) VALUES ($1, 'G')`, [T]);
  await q(
    `INSERT INTO mcp_servers (tenant_id, id, name, transport, url, args, calls_per_minute, result_cap_bytes, timeout_ms)
     VALUES ($1, $2, 'tools', 'http', 'http://127.0.0.1:9/mcp', '["--flag"]', 2, 65536, 5000)`,
    [T, server],
  );
  await q(`INSERT INTO mcp_tools (tenant_id, server_id, name, version, schema_hash, input_schema) VALUES ($1, $2, 'echo', 1, 'h1', '{"type":"object"}')`, [T, server]);
});
afterAll(() => db.drop());

describe("gateway phase 1", () => {
  it("resolves a tool once per transaction, and afresh in the next one", async () => {
    const recording = recordQueries();
    const versions = await withTenant(db.database, T, async (tx) => {
      const a = await resolveGatewayTool(tx, { tenantId: T, name });
      const b = await resolveGatewayTool(tx, { tenantId: T, name });
      return [a?.version, b?.version];
    }).finally(() => recording.stop());
    expect(versions).toEqual([1, 1]);
    expect(recording.sent.filter((s) => s.includes("FROM mcp_tools t JOIN mcp_servers s"))).toHaveLength(1);
    // A new version of the tool: the next transaction sees it.
    await db.database.pool.query(`UPDATE mcp_tools SET current = false WHERE tenant_id = $1 AND name = 'echo'`, [T]);
    await db.database.pool.query(`INSERT INTO mcp_tools (tenant_id, server_id, name, version, schema_hash, input_schema) VALUES ($1, $2, 'echo', 2, 'h2', '{"type":"object"}')`, [
      T,
      server,
    ]);
    expect((await withTenant(db.database, T, (tx) => resolveGatewayTool(tx, { tenantId: T, name })))?.version).toBe(2);
  });

  it("reads the server and takes the call's slot in one round trip, refusing past the server's calls per minute", async () => {
    const take = () =>
      withTenant(db.database, T, async (tx) =>
        repo.gateway.serverAndSlotFrom(await queryBatch(tx.$client, repo.gateway.serverAndCallSlotStatements({ tenantId: T, serverName: "tools" }))),
      );
    const first = await take();
    expect(first.server).toMatchObject({ tenantId: T, id: server, name: "tools", transport: "http", args: ["--flag"], callsPerMinute: 2, timeoutMs: 5000, status: "active" });
    expect(first.server!.createdAt).toBeInstanceOf(Date);
    // The same row as the ORM's read of it.
    const orm = await withTenant(db.database, T, (tx) => repo.gateway.getServerByName(tx, { tenantId: T, name: "tools" }));
    expect(first.server).toEqual(orm);
    expect(first.slot.ok).toBe(true);
    const second = await take();
    const third = await take();
    // Two calls a minute: the third is refused until the next minute (unless the minute
    // turned between the calls, when the second or third opens a new window).
    const refused = [second, third].filter((r) => !r.slot.ok);
    const [{ calls }] = (await db.database.pool.query(`SELECT max(calls)::int AS calls FROM mcp_call_counters WHERE tenant_id = $1`, [T])).rows;
    expect(calls).toBeLessThanOrEqual(2);
    if (refused.length > 0) expect(refused[0]!.slot.retryAfterMs).toBeGreaterThan(0);
    // An unknown server takes no slot.
    const none = await withTenant(db.database, T, async (tx) =>
      repo.gateway.serverAndSlotFrom(await queryBatch(tx.$client, repo.gateway.serverAndCallSlotStatements({ tenantId: T, serverName: "nope" }))),
    );
    expect(none).toEqual({ server: undefined, slot: { ok: false, retryAfterMs: expect.any(Number) } });
  });
});
