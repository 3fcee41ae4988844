/**
 * The API as its own process (production and docker-compose): needs DATABASE_URL.
 * `npm start` runs API and worker together on the embedded default instead.
 */
import { bootstrap, configOrExit, createServices } from "@bosun/core";
import { createDatabase, runMigrations } from "@bosun/db";
import { createJobs } from "@bosun/jobs";
import { loadApiConfig } from "./config";
import { startApi } from "./server";

const url = process.env.DATABASE_URL;
if (!url) {
  console.error("DATABASE_URL is not set. Run `npm start` to use the embedded Postgres, or set DATABASE_URL.");
  process.exit(2);
}
const config = configOrExit(() => loadApiConfig());
await runMigrations(url);
const database = createDatabase(url, { max: config.dbPool, applicationName: "bosun-api" });
const jobs = createJobs({ connectionString: url, role: "producer" });
await jobs.start();
// First start against an empty database: the first tenant, owner and admin key, from
// BOSUN_INIT_* or generated and printed once. Later starts (and other replicas) skip it.
const boot = await bootstrap(createServices({ database, jobs, secureCookies: false }), process.env, { demoAgents: false });
if (boot.created) {
  console.log(
    `Bosun initialised tenant ${boot.tenantId}: login ${boot.email}` +
      (boot.passwordGenerated ? ` / ${boot.password}` : "") +
      (process.env.BOSUN_INIT_API_KEY ? "" : `, admin key ${boot.apiKey} (shown once)`),
  );
}
const api = await startApi({ database, databaseUrl: url, jobs, config });

let stopping = false;
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.on(signal, async () => {
    if (stopping) return;
    stopping = true;
    api.app.log.info({ signal }, "shutting down");
    await api.close();
    await jobs.stop();
    await database.close();
    process.exit(0);
  });
}
