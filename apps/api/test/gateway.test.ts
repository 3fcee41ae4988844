import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startMcpHttpFixture } from "../../../test/fixtures/mcp-http-server";
import { createKey, createTenant, createTestApp, problem, type TestApp, type TestTenant } from "../../../test/helpers/app";

process.env.BOSUN_SECRET_KEY ??= randomBytes(32).toString("hex");
process.env.BOSUN_MCP_STDIO_COMMANDS = "mcp-server-everything,mcp-server-filesystem";

let t: TestApp;
let acme: TestTenant;
let other: TestTenant;
let fixture: Awaited<ReturnType<typeof startMcpHttpFixture>>;
const TOKEN = `tok-${randomBytes(8).toString("hex")}`;

const q = async <T = Record<string, unknown>>(sql: string, values: unknown[] = []) => (await t.db.database.pool.query(sql, values)).rows as T[];
const get = (url: string, auth = acme.auth) => t.app.inject({ method: "GET", url, headers: auth });
const send = (method: "POST" | "PATCH" | "DELETE", url: string, payload?: object, headers: Record<string, string> = acme.auth) =>
  t.app.inject({ method, url, headers, ...(payload ? { payload } : {}) });

beforeAll(async () => {
  t = await createTestApp();
  acme = await createTenant(t.app, "Acme");
  other = await createTenant(t.app, "Other");
  fixture = await startMcpHttpFixture({ token: TOKEN });
});
afterAll(async () => {
  await fixture?.close();
  await t?.close();
});

describe("MCP servers over HTTP", () => {
  it("registers a server with a secret that is stored encrypted and never returned", async () => {
    const body = { name: "fixture", transport: "http", url: fixture.url, secrets: { Authorization: `Bearer ${TOKEN}` }, limits: { callsPerMinute: 30 } };
    const res = await send("POST", "/v1/mcp-servers", body, { ...acme.auth, "idempotency-key": "mcp-1" });
    expect(res.statusCode).toBe(201);
    const s = res.json();
    expect(s).toMatchObject({
      name: "fixture",
      transport: "http",
      url: fixture.url,
      secretNames: ["Authorization"],
      limits: { callsPerMinute: 30, resultCapBytes: 65536, timeoutMs: 30000 },
      status: "active",
    });
    expect(s.id).toMatch(/^mcp_[0-9a-z]{26}$/);
    expect(res.body).not.toContain(TOKEN);
    const replay = await send("POST", "/v1/mcp-servers", body, { ...acme.auth, "idempotency-key": "mcp-1" });
    expect(replay.headers["idempotent-replayed"]).toBe("true");
    expect(replay.json().id).toBe(s.id);
    // The column holds ciphertext, not the token; the API never shows it, the audit neither.
    const [row] = await q<{ secrets_enc: string }>(`SELECT secrets_enc FROM mcp_servers WHERE id = $1`, [s.id]);
    expect(row!.secrets_enc).toMatch(/^v1\./);
    expect(row!.secrets_enc).not.toContain(TOKEN);
    expect(Buffer.from(row!.secrets_enc.split(".")[3]!, "base64url").toString("latin1")).not.toContain(TOKEN);
    for (const url of ["/v1/mcp-servers/fixture", "/v1/mcp-servers"]) expect((await get(url)).body).not.toContain(TOKEN);
    const audits = await q<{ after: unknown }>(`SELECT after FROM audit_events WHERE target_id = $1`, [s.id]);
    expect(audits.length).toBe(1);
    expect(JSON.stringify(audits)).not.toContain(TOKEN);
    // A name in use is a conflict.
    expect(problem(await send("POST", "/v1/mcp-servers", { ...body, secrets: undefined })).code).toBe("CONFLICT");
  });

  it("refuses bad input with problem+json, non-admins and unlisted stdio commands", async () => {
    const bad = [
      { name: "Bad Name", transport: "http", url: "http://x" },
      { name: "x", transport: "stdio" },
      { name: "x", transport: "http" },
      { name: "x", transport: "http", url: "ftp://x" },
      { name: "x", transport: "http", url: "http://x", extra: 1 },
      { name: "x", transport: "http", url: "http://x", secrets: { "bad name": "v" } },
      { name: "x", transport: "http", url: "http://x", limits: { callsPerMinute: 0 } },
    ];
    for (const b of bad) expect(problem(await send("POST", "/v1/mcp-servers", b)).code).toBe("VALIDATION");
    const writer = await createKey(t.app, acme, { scopes: ["write"] });
    expect(problem(await send("POST", "/v1/mcp-servers", { name: "w", transport: "http", url: "http://127.0.0.1:1/mcp" }, writer.auth)).code).toBe("FORBIDDEN");
    expect(problem(await send("POST", "/v1/mcp-servers/fixture/refresh", undefined, writer.auth)).code).toBe("FORBIDDEN");
    expect((await get("/v1/mcp-servers/fixture", writer.auth)).statusCode).toBe(200);
    expect(problem(await send("POST", "/v1/mcp-servers", { name: "shell", transport: "stdio", command: "bash", args: ["-c", "id"] })).code).toBe("FORBIDDEN");
    expect(problem(await send("PATCH", "/v1/mcp-servers/fixture/tools/Bad%20Tool", { feeMicros: 1 })).code).toBe("VALIDATION");
    expect(problem(await send("PATCH", "/v1/mcp-servers/fixture/tools/echo", { feeMicros: -1 })).code).toBe("VALIDATION");
  });

  it("refuses HTTP servers on internal addresses unless the deployment allows them, on register, update and connect", async () => {
    // The suite allows private addresses (its fixtures listen on loopback); this test does not.
    const saved = process.env.BOSUN_MCP_HTTP_ALLOW_PRIVATE;
    process.env.BOSUN_MCP_HTTP_ALLOW_PRIVATE = "false";
    try {
      for (const url of ["http://127.0.0.1:9/mcp", "http://169.254.169.254/latest", "http://10.1.2.3/mcp", "http://[::1]:9/mcp", "http://[::ffff:127.0.0.1]/mcp", "http://localhost:9/mcp"]) {
        const res = await send("POST", "/v1/mcp-servers", { name: "inside", transport: "http", url });
        expect(res.statusCode, url).toBe(403);
        expect(problem(res).detail, url).toMatch(/internal address/);
      }
      expect(await q("SELECT 1 FROM mcp_servers WHERE name = 'inside'")).toEqual([]);
      // Moving an existing server inside is refused too, and a row that points inside (as
      // a stale registration would) is refused when the worker connects to refresh it.
      expect(problem(await send("PATCH", "/v1/mcp-servers/fixture", { url: "http://127.0.0.1:5432/" })).code).toBe("FORBIDDEN");
      const refresh = await send("POST", "/v1/mcp-servers/fixture/refresh");
      expect(JSON.stringify(refresh.json())).toMatch(/internal address/);
      // A host the deployment lists is allowed.
      process.env.BOSUN_MCP_HTTP_HOSTS = "localhost";
      expect((await send("POST", "/v1/mcp-servers", { name: "listed", transport: "http", url: "http://localhost:9/mcp" })).statusCode).toBe(201);
      expect((await send("DELETE", "/v1/mcp-servers/listed")).statusCode).toBeLessThan(300);
    } finally {
      if (saved === undefined) delete process.env.BOSUN_MCP_HTTP_ALLOW_PRIVATE;
      else process.env.BOSUN_MCP_HTTP_ALLOW_PRIVATE = saved;
      delete process.env.BOSUN_MCP_HTTP_HOSTS;
    }
  });

  it("lists tools into a catalogue versioned by schema hash, keeping old versions", async () => {
    fixture.setEchoVersion(1);
    const first = await send("POST", "/v1/mcp-servers/fixture/refresh");
    expect(first.statusCode).toBe(200);
    expect(first.json()).toMatchObject({ added: expect.arrayContaining(["echo", "pay", "big"]), changed: [], removed: [] });
    expect(first.json().server.lastListedAt).not.toBeNull();
    const again = (await send("POST", "/v1/mcp-servers/fixture/refresh")).json();
    expect(again).toMatchObject({ added: [], changed: [], removed: [] });
    expect(again.unchanged).toContain("echo");

    fixture.setEchoVersion(2);
    const changed = (await send("POST", "/v1/mcp-servers/fixture/refresh")).json();
    expect(changed.changed).toEqual(["echo"]);
    const tools = (await get("/v1/mcp-servers/fixture/tools?limit=50")).json().items as { name: string; version: number; current: boolean; schemaHash: string; inputSchema: { properties: object }; ref: string; modelName: string }[];
    const echo = tools.filter((x) => x.name === "echo");
    expect(echo.map((x) => [x.version, x.current])).toEqual([
      [2, true],
      [1, false],
    ]);
    expect(echo[0]!.schemaHash).not.toBe(echo[1]!.schemaHash);
    expect(Object.keys(echo[0]!.inputSchema.properties).sort()).toEqual(["loud", "text"]);
    expect(echo[0]).toMatchObject({ ref: "mcp://gateway/fixture/echo", modelName: "mcp__fixture__echo" });
    // The same schema back is the same version; back to the old schema is a new version.
    expect((await send("POST", "/v1/mcp-servers/fixture/refresh")).json().unchanged).toContain("echo");
    fixture.setEchoVersion(1);
    expect((await send("POST", "/v1/mcp-servers/fixture/refresh")).json().changed).toEqual(["echo"]);
    const current = (await get("/v1/tools?current=true&server=fixture")).json().items as { name: string; version: number }[];
    expect(current.find((x) => x.name === "echo")!.version).toBe(3);
    // Paged catalogue, newest version first within a tool.
    const p1 = (await get("/v1/tools?limit=2")).json();
    const p2 = (await get(`/v1/tools?limit=50&cursor=${p1.nextCursor}`)).json();
    expect([...p1.items, ...p2.items].length).toBe((await get("/v1/tools?limit=200")).json().items.length);
    expect(problem(await get("/v1/tools?cursor=nonsense")).code).toBe("BAD_REQUEST");
  });

  it("sets a tool's fee, side effect and value field across versions, audited", async () => {
    const res = await send("PATCH", "/v1/mcp-servers/fixture/tools/pay", { feeMicros: 250_000, valueField: "amount", sideEffect: "external" });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ name: "pay", feeMicros: 250_000, valueField: "amount", sideEffect: "external", current: true });
    const [a] = await q<{ action: string; after: { feeMicros: number } }>(`SELECT action, after FROM audit_events WHERE target_id = 'mcp://gateway/fixture/pay'`);
    expect(a).toMatchObject({ action: "mcp_tool.update", after: { feeMicros: 250_000 } });
    expect(problem(await send("PATCH", "/v1/mcp-servers/fixture/tools/nope", { feeMicros: 1 })).code).toBe("NOT_FOUND");
  });

  it("keeps the catalogue and records the error when a server cannot be listed", async () => {
    expect((await send("PATCH", "/v1/mcp-servers/fixture", { secrets: { Authorization: "Bearer wrong" } })).statusCode).toBe(200);
    const res = await send("POST", "/v1/mcp-servers/fixture/refresh");
    expect(problem(res).code).toBe("SERVICE_UNAVAILABLE");
    expect(res.body).not.toContain("wrong");
    const s = (await get("/v1/mcp-servers/fixture")).json();
    expect(s.lastError).toBeTruthy();
    expect((await get("/v1/tools?server=fixture&current=true")).json().items.length).toBeGreaterThan(0);
    expect((await send("PATCH", "/v1/mcp-servers/fixture", { secrets: { Authorization: `Bearer ${TOKEN}` } })).statusCode).toBe(200);
    expect((await send("POST", "/v1/mcp-servers/fixture/refresh")).json().server.lastError).toBeNull();
  });

  it("lists a real stdio server from npm (server-everything) and server-filesystem", async () => {
    expect((await send("POST", "/v1/mcp-servers", { name: "everything", transport: "stdio", command: "mcp-server-everything", args: ["stdio"], secrets: { DEMO_TOKEN: "s3cret-env" } })).statusCode).toBe(201);
    const r = await send("POST", "/v1/mcp-servers/everything/refresh");
    expect(r.statusCode).toBe(200);
    expect(r.json().added).toEqual(expect.arrayContaining(["echo", "get-sum"]));
    const fs = await send("POST", "/v1/mcp-servers", { name: "files", transport: "stdio", command: "mcp-server-filesystem", args: ["/tmp"] });
    expect(fs.statusCode).toBe(201);
    expect((await send("POST", "/v1/mcp-servers/files/refresh")).json().added).toEqual(expect.arrayContaining(["read_text_file", "write_file"]));
  }, 60_000);

  it("never shows one tenant's servers or tools to another", async () => {
    expect(problem(await get("/v1/mcp-servers/fixture", other.auth)).code).toBe("NOT_FOUND");
    expect((await get("/v1/mcp-servers", other.auth)).json().items).toEqual([]);
    expect((await get("/v1/tools", other.auth)).json().items).toEqual([]);
    expect(problem(await send("POST", "/v1/mcp-servers/fixture/refresh", undefined, other.auth)).code).toBe("NOT_FOUND");
    expect(problem(await send("PATCH", "/v1/mcp-servers/fixture/tools/pay", { feeMicros: 0 }, other.auth)).code).toBe("NOT_FOUND");
    expect(problem(await send("DELETE", "/v1/mcp-servers/fixture", undefined, other.auth)).code).toBe("NOT_FOUND");
  });

  it("deletes a server with its catalogue", async () => {
    expect((await send("DELETE", "/v1/mcp-servers/files")).statusCode).toBe(200);
    expect(problem(await get("/v1/mcp-servers/files")).code).toBe("NOT_FOUND");
    expect((await get("/v1/tools?limit=200")).json().items.some((x: { server: string }) => x.server === "files")).toBe(false);
  });
});
