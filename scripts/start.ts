/**
 * `npm start`: Bosun in one process for a laptop or a demo. API, worker and console on
 * the Postgres in DATABASE_URL, or, when it is unset, on an embedded Postgres under
 * `.data/` that the next start reuses. Prints the URL and the admin credentials.
 */
import { randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";
import { loadApiConfig, startApi } from "@bosun/api";
import { bootstrap, configOrExit, createServices, envInt } from "@bosun/core";
import { createDatabase, runMigrations, startEmbeddedPostgres } from "@bosun/db";
import { createJobs } from "@bosun/jobs";
import { createRuntime, loadWorkerConfig, startWorker } from "@bosun/worker";
import pino from "pino";

const root = path.resolve(import.meta.dirname, "..");
const dataDir = path.resolve(process.env.BOSUN_DATA_DIR ?? path.join(root, ".data"));
// Every setting is read before anything starts, so a wrong value stops here, naming it.
// API and worker share one pool here (BOSUN_DB_POOL).
const { config, workerConfig, embeddedPort } = configOrExit(() => ({
  config: loadApiConfig(),
  workerConfig: loadWorkerConfig(),
  embeddedPort: envInt(process.env, "BOSUN_EMBEDDED_PG_PORT", 54329, { min: 1, max: 65_535 }),
}));
const log = pino({ level: config.logLevel, name: "bosun" });

let embedded: Awaited<ReturnType<typeof startEmbeddedPostgres>> | undefined;
let url = process.env.DATABASE_URL;
if (!url) {
  log.info({ dataDir }, "DATABASE_URL is not set: starting the embedded Postgres");
  embedded = await startEmbeddedPostgres({
    dir: dataDir,
    port: embeddedPort,
    log: (line) => log.debug({ postgres: line }),
  });
  url = embedded.url;
}

// Secrets at rest (MCP servers' credentials) are encrypted under BOSUN_SECRET_KEY: the
// embedded default makes one at its first start and keeps it in its data folder.
if (!process.env.BOSUN_SECRET_KEY && embedded) {
  const keyFile = path.join(dataDir, "secret.key");
  let key = (await fs.readFile(keyFile, "utf8").catch(() => "")).trim();
  if (!key) {
    key = randomBytes(32).toString("hex");
    await fs.writeFile(keyFile, key, { mode: 0o600 });
  }
  process.env.BOSUN_SECRET_KEY = key;
}

await runMigrations(url);
const database = createDatabase(url, { max: config.dbPool, applicationName: "bosun" });
const producer = createJobs({ connectionString: url, role: "producer" });
await producer.start();
// Bootstrap before listening, so that a ready API always has its first tenant.
const boot = await bootstrap(createServices({ database, jobs: producer, secureCookies: false }), process.env);
const api = await startApi({ database, databaseUrl: url, jobs: producer, config, logger: { level: config.logLevel } });

const workerJobs = createJobs({ connectionString: url, role: "worker" });
const workerServices = createServices({ database, jobs: workerJobs, secureCookies: false });
const workerLog = log.child({ component: "worker" });
const worker = await startWorker({
  jobs: workerJobs,
  services: workerServices,
  logger: workerLog,
  runtime: createRuntime(workerServices, workerJobs, { logger: workerLog }),
  tickMs: workerConfig.tickMs,
  concurrency: workerConfig.concurrency,
  rollupMs: workerConfig.rollupMs,
  publicUrl: config.publicUrl,
  smtpUrl: workerConfig.smtpUrl,
});

const credentialsFile = path.join(dataDir, "bootstrap.json");
let creds: { email?: string; password?: string; apiKey?: string } = {};
if (boot.created) {
  creds = { email: boot.email, password: boot.password, apiKey: boot.apiKey };
  // Only the embedded default keeps the first credentials, in its own data folder, so a
  // second start can print them again. A real DATABASE_URL deployment shows them once.
  if (embedded) await fs.writeFile(credentialsFile, JSON.stringify(creds, null, 2), { mode: 0o600 });
} else if (embedded) {
  creds = JSON.parse(await fs.readFile(credentialsFile, "utf8").catch(() => "{}"));
}

const publicUrl = config.publicUrl;
const lines = [
  "",
  "  Bosun is running",
  `    Console    ${publicUrl}/`,
  `    API docs   ${publicUrl}/docs`,
  `    Database   ${embedded ? `embedded Postgres, data in ${dataDir}` : "DATABASE_URL"}`,
  creds.email ? `    Login      ${creds.email} / ${creds.password ?? "(as set in BOSUN_INIT_ADMIN_PASSWORD)"}` : "",
  creds.apiKey ? `    Admin key  ${creds.apiKey}` : "    Admin key  shown at the first start only (create another at POST /v1/api-keys)",
  creds.apiKey ? `    Try        curl -H 'Authorization: Bearer ${creds.apiKey}' ${publicUrl}/v1/agents` : "",
  "",
].filter((l) => l !== "");
console.log(lines.join("\n") + "\n");

let stopping = false;
async function shutdown(signal: string) {
  if (stopping) return;
  stopping = true;
  log.info({ signal }, "shutting down");
  const force = setTimeout(() => {
    log.error("shutdown took longer than 20 s; exiting");
    process.exit(1);
  }, 20_000);
  force.unref();
  await api.close();
  await worker.stop();
  await producer.stop();
  await database.close();
  if (embedded) await embedded.stop();
  console.log("Bosun stopped cleanly.");
  process.exit(0);
}
process.on("SIGTERM", () => void shutdown("SIGTERM"));
process.on("SIGINT", () => void shutdown("SIGINT"));
