import dns from "node:dns/promises";
import net from "node:net";
import type { repo } from "@bosun/db";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { getDefaultEnvironment, StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { AppError } from "../errors";
import { decryptSecrets } from "./crypto";

type ServerRow = repo.gateway.McpServerRow;

/**
 * Which stdio commands tenants may register: a stdio server runs on the worker's host
 * with the worker's privileges, so the deployment chooses them (BOSUN_MCP_STDIO_COMMANDS,
 * comma-separated exact commands; `*` allows any). Default: the bundled demo server only.
 */
export function allowedStdioCommands(env: NodeJS.ProcessEnv = process.env): string[] {
  return (env.BOSUN_MCP_STDIO_COMMANDS ?? "mcp-server-everything")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
}

export function assertStdioAllowed(command: string) {
  const allowed = allowedStdioCommands();
  if (!allowed.includes("*") && !allowed.includes(command)) {
    throw new AppError("FORBIDDEN", `stdio command '${command}' is not allowed on this deployment (BOSUN_MCP_STDIO_COMMANDS: ${allowed.join(", ") || "none"})`);
  }
}

/**
 * Addresses an HTTP MCP server may not have unless the deployment allows them: loopback,
 * private, link-local (cloud metadata at 169.254.169.254), carrier-grade NAT, unique-local
 * and unspecified. A tenant admin registers the URL, and the worker connects to it from
 * inside the deployment's network: without this, a tenant could reach the deployment's
 * own services (its database, a metadata endpoint) through the gateway.
 */
const internal = new net.BlockList();
for (const [net4, bits] of [
  ["0.0.0.0", 8],
  ["10.0.0.0", 8],
  ["100.64.0.0", 10],
  ["127.0.0.0", 8],
  ["169.254.0.0", 16],
  ["172.16.0.0", 12],
  ["192.168.0.0", 16],
] as const) {
  internal.addSubnet(net4, bits, "ipv4");
}
internal.addAddress("::", "ipv6");
internal.addAddress("::1", "ipv6");
internal.addSubnet("fc00::", 7, "ipv6");
internal.addSubnet("fe80::", 10, "ipv6");

/**
 * Refuses an HTTP MCP server URL whose host resolves to an internal address, unless the
 * deployment allows private addresses (BOSUN_MCP_HTTP_ALLOW_PRIVATE=true, e.g. for a
 * server beside the worker) or lists the host (BOSUN_MCP_HTTP_HOSTS, comma-separated host
 * names). Checked when a server is registered or changed, and again on every connect, so a
 * name that later resolves elsewhere is caught too.
 */
export async function assertHttpAllowed(url: string, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new AppError("VALIDATION", `'${url}' is not a URL`, [{ path: "url", message: "not a URL" }]);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") {
    throw new AppError("VALIDATION", "an MCP server URL must be http or https", [{ path: "url", message: "http or https only" }]);
  }
  if (env.BOSUN_MCP_HTTP_ALLOW_PRIVATE === "true") return;
  const host = u.hostname.replace(/^\[|\]$/g, "");
  const listed = (env.BOSUN_MCP_HTTP_HOSTS ?? "")
    .split(",")
    .map((h) => h.trim().toLowerCase())
    .filter(Boolean);
  if (listed.includes(host.toLowerCase())) return;
  let addresses: { address: string; family: number }[];
  try {
    addresses = net.isIP(host) ? [{ address: host, family: net.isIP(host) }] : await dns.lookup(host, { all: true });
  } catch {
    throw new AppError("VALIDATION", `the MCP server's host '${host}' does not resolve`, [{ path: "url", message: "host does not resolve" }]);
  }
  const bad = addresses.find((a) => {
    // IPv4-mapped IPv6 (::ffff:127.0.0.1) is checked as the IPv4 address it carries.
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(a.address);
    return mapped ? internal.check(mapped[1]!, "ipv4") : internal.check(a.address, a.family === 6 ? "ipv6" : "ipv4");
  });
  if (bad) {
    throw new AppError(
      "FORBIDDEN",
      `the MCP server's host '${host}' resolves to an internal address (${bad.address}); this deployment allows only public addresses (set BOSUN_MCP_HTTP_HOSTS or BOSUN_MCP_HTTP_ALLOW_PRIVATE=true to allow it)`,
    );
  }
}

interface Entry {
  client: Client;
  /** The server row's version the connection was made from: an update makes a new one. */
  stamp: number;
  lastUsed: number;
  busy: number;
  stderr: string[];
}

const CLIENT_INFO = { name: "bosun-gateway", version: "1.0.0" };
/** Starting a stdio server (a node process) takes longer than a call. */
const MIN_CONNECT_MS = 15_000;

/**
 * MCP connections, one per (tenant, server) in this process, reused across calls and
 * closed after `idleMs` unused, when the server's row changes, or when the connection
 * drops (the next call reconnects). stdio servers get the SDK's minimal environment
 * (PATH, HOME, ...) plus their decrypted env vars, never the worker's own environment.
 */
export function mcpPool(opts: { idleMs?: number } = {}) {
  const idleMs = opts.idleMs ?? 5 * 60_000;
  const conns = new Map<string, Promise<Entry>>();
  let closed = false;
  const sweep = setInterval(() => {
    const now = Date.now();
    for (const [key, p] of conns) {
      void p
        .then((e) => {
          if (e.busy === 0 && now - e.lastUsed > idleMs && conns.get(key) === p) {
            conns.delete(key);
            void e.client.close().catch(() => {});
          }
        })
        .catch(() => {});
    }
  }, Math.max(1000, Math.min(idleMs, 60_000)));
  sweep.unref();

  async function connect(server: ServerRow, key: string): Promise<Entry> {
    const secrets = decryptSecrets(server.tenantId, server.secretsEnc);
    const client = new Client(CLIENT_INFO);
    const stderr: string[] = [];
    let transport: StdioClientTransport | StreamableHTTPClientTransport;
    if (server.transport === "stdio") {
      assertStdioAllowed(server.command ?? "");
      transport = new StdioClientTransport({
        command: server.command!,
        args: server.args,
        env: { ...getDefaultEnvironment(), ...secrets },
        stderr: "pipe",
      });
      transport.stderr?.on("data", (d: Buffer) => {
        stderr.push(d.toString("utf8"));
        if (stderr.length > 20) stderr.shift();
      });
    } else {
      await assertHttpAllowed(server.url!);
      transport = new StreamableHTTPClientTransport(new URL(server.url!), { requestInit: { headers: secrets } });
    }
    const entry: Entry = { client, stamp: server.updatedAt.getTime(), lastUsed: Date.now(), busy: 0, stderr };
    client.onclose = () => {
      void conns
        .get(key)
        ?.then((e) => {
          if (e === entry) conns.delete(key);
        })
        .catch(() => {});
    };
    await client.connect(transport, { timeout: Math.max(server.timeoutMs, MIN_CONNECT_MS) });
    return entry;
  }

  async function acquire(server: ServerRow): Promise<Entry> {
    if (closed) throw new AppError("SERVICE_UNAVAILABLE", "the gateway is shutting down");
    const key = `${server.tenantId}:${server.id}`;
    let p = conns.get(key);
    if (p) {
      const e = await p.catch(() => null);
      if (!e || e.stamp !== server.updatedAt.getTime()) {
        if (conns.get(key) === p) conns.delete(key);
        if (e) void e.client.close().catch(() => {});
        p = undefined;
      }
    }
    if (!p) {
      p = connect(server, key);
      conns.set(key, p);
      p.catch(() => {
        if (conns.get(key) === p) conns.delete(key);
      });
    }
    const e = await p;
    e.busy++;
    e.lastUsed = Date.now();
    return e;
  }

  async function use<T>(server: ServerRow, fn: (c: Client) => Promise<T>): Promise<T> {
    const e = await acquire(server);
    try {
      return await fn(e.client);
    } finally {
      e.busy--;
      e.lastUsed = Date.now();
    }
  }

  return {
    listTools: (server: ServerRow) =>
      use(server, async (c) => {
        const tools = [];
        let cursor: string | undefined;
        for (let page = 0; page < 50; page++) {
          const r = await c.listTools(cursor ? { cursor } : {}, { timeout: server.timeoutMs });
          tools.push(...r.tools);
          cursor = r.nextCursor;
          if (!cursor) break;
        }
        return tools;
      }),
    callTool: (server: ServerRow, p: { tool: string; args: Record<string, unknown>; signal?: AbortSignal }) =>
      use(server, (c) => c.callTool({ name: p.tool, arguments: p.args }, undefined, { timeout: server.timeoutMs, ...(p.signal ? { signal: p.signal } : {}) })),
    /** The last lines the server wrote to stderr (stdio), for error messages. */
    async stderrOf(server: ServerRow) {
      const e = await conns.get(`${server.tenantId}:${server.id}`)?.catch(() => null);
      return e?.stderr.join("").slice(-500) ?? "";
    },
    async close() {
      closed = true;
      clearInterval(sweep);
      const all = [...conns.values()];
      conns.clear();
      await Promise.all(all.map((p) => p.then((e) => e.client.close()).catch(() => {})));
    },
  };
}

export type McpPool = ReturnType<typeof mcpPool>;

/** Tool call results as text for the model: text blocks as they are, others described. */
export function resultText(result: { content?: unknown; structuredContent?: unknown; toolResult?: unknown }): string {
  const content = Array.isArray(result.content) ? (result.content as Record<string, unknown>[]) : [];
  const parts: string[] = [];
  for (const b of content) {
    if (b.type === "text") parts.push(String(b.text ?? ""));
    else if (b.type === "image" || b.type === "audio") parts.push(`[${b.type} ${String(b.mimeType ?? "")}, ${String(b.data ?? "").length} base64 characters]`);
    else if (b.type === "resource") {
      const r = (b.resource ?? {}) as Record<string, unknown>;
      parts.push(typeof r.text === "string" ? r.text : `[resource ${String(r.uri ?? "")}]`);
    } else if (b.type === "resource_link") parts.push(`[resource link ${String(b.uri ?? "")}]`);
    else parts.push(JSON.stringify(b));
  }
  if (parts.length === 0 && result.structuredContent !== undefined) parts.push(JSON.stringify(result.structuredContent));
  if (parts.length === 0 && result.toolResult !== undefined) parts.push(JSON.stringify(result.toolResult));
  return parts.join("\n");
}

/** Cuts text to at most `cap` bytes of UTF-8, on a character boundary. */
export function capBytes(text: string, cap: number): { text: string; truncated: boolean; bytes: number } {
  const buf = Buffer.from(text, "utf8");
  if (buf.length <= cap) return { text, truncated: false, bytes: buf.length };
  let end = cap;
  while (end > 0 && (buf[end]! & 0xc0) === 0x80) end--;
  return { text: buf.subarray(0, end).toString("utf8"), truncated: true, bytes: buf.length };
}
