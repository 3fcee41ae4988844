/** The worker as its own process: needs DATABASE_URL. */
import { configOrExit, createServices } from "@bosun/core";
import { createDatabase, runMigrations } from "@bosun/db";
import { createJobs } from "@bosun/jobs";
import pino from "pino";
import { loadWorkerConfig } from "./config";
import { createRuntime, startWorker } from "./worker";

const url = process.env.DATABASE_URL;
if (!url) {
  console.error("DATABASE_URL is not set. Run `npm start` to use the embedded Postgres, or set DATABASE_URL.");
  process.exit(2);
}
const config = configOrExit(() => loadWorkerConfig());
const logger = pino({ level: config.logLevel, name: "bosun-worker" });
await runMigrations(url);
const database = createDatabase(url, { max: config.dbPool, applicationName: "bosun-worker" });
const jobs = createJobs({ connectionString: url, role: "worker" });
const services = createServices({ database, jobs, secureCookies: false });
const runtime = createRuntime(services, jobs, { logger });
const worker = await startWorker({
  jobs,
  services,
  logger,
  runtime,
  tickMs: config.tickMs,
  concurrency: config.concurrency,
  rollupMs: config.rollupMs,
  publicUrl: config.publicUrl,
  smtpUrl: config.smtpUrl,
});

let stopping = false;
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.on(signal, async () => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "shutting down");
    await worker.stop();
    await database.close();
    process.exit(0);
  });
}
