/**
 * `npm run bench`: GET /v1/agents through the whole API (API-key auth, rate limit, tenant
 * transaction under RLS, zod response serialisation) against a bare Fastify route that
 * runs the same query on the same pool, measured in the same run with autocannon on
 * loopback. Prints req/s, p99 and the ratio. Not a test: nothing here asserts.
 */
import { randomBytes } from "node:crypto";
import { loadApiConfig, startApi } from "@bosun/api";
import { createServices, systemActor } from "@bosun/core";
import { createDatabase, runMigrations } from "@bosun/db";
import { createJobs } from "@bosun/jobs";
import autocannon from "autocannon";
import Fastify from "fastify";
import pg from "pg";
import { testServer } from "../setup/server";

const DURATION = Number(process.env.BENCH_SECONDS ?? 10);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 16);
const AGENTS = 20;

const server = await testServer();
const dbName = `bosun_bench_${randomBytes(3).toString("hex")}`;
const admin = new pg.Client({ connectionString: server.adminUrl });
await admin.connect();
await admin.query(`CREATE DATABASE ${dbName}`);
const u = new URL(server.adminUrl);
u.pathname = `/${dbName}`;
const url = u.toString();

try {
  await runMigrations(url);
  const database = createDatabase(url, { max: 10 });
  const jobs = createJobs({ connectionString: url, role: "producer", max: 2 });
  await jobs.start();
  const services = createServices({ database, jobs, secureCookies: false });
  const signup = await services.identity.signup({
    tenant: { name: "Bench", timeZone: "UTC" },
    owner: { email: "bench@example.com", password: "bench-password-123" },
  });
  const tenantId = signup.tenant.id;
  const key = signup.apiKey.key!;
  const actor = systemActor(tenantId, "bench");
  for (let i = 0; i < AGENTS; i++) {
    const name = `agent-${String(i).padStart(3, "0")}`;
    await services.agents.apply(actor, name, {
      apiVersion: "agent.os/v1",
      kind: "Agent",
      metadata: { name, owner: "bench" },
      spec: {
        model: { provider: "scripted", name: "scripted-small", pinned_revision: "2026-01-01" },
        soul: "You are a benchmark agent. ".repeat(10),
        tools: ["mcp://gateway/ledger/read", "mcp://gateway/email/draft"],
        domains: ["bench/*"],
        schedule: { every: "15m" },
        budgets: { usd_per_day: 10 },
      },
    });
  }

  const api = await startApi({
    database,
    databaseUrl: url,
    jobs,
    config: loadApiConfig({}, { host: "127.0.0.1", port: 0, rateLimitPerMinute: 10_000_000, consoleDir: "/nonexistent" }),
    logger: false,
  });
  const app = api.app;
  const appUrl = api.url;

  // The baseline: the same page query, same pool, no auth, no RLS transaction, no zod.
  const bare = Fastify({ logger: false });
  bare.get("/bare/agents", async () => {
    const { rows } = await database.pool.query(
      `SELECT tenant_id, id, name, owner, status, revision, spec_hash, descriptor, next_wake_at, created_at, updated_at
       FROM agents WHERE tenant_id = $1 ORDER BY name LIMIT 51`,
      [tenantId],
    );
    return { items: rows, nextCursor: null };
  });
  const bareUrl = await bare.listen({ host: "127.0.0.1", port: 0 });

  const run = (target: string, headers: Record<string, string> = {}, duration = DURATION) =>
    autocannon({ url: target, connections: CONNECTIONS, duration, headers });

  const check = await fetch(`${appUrl}/v1/agents`, { headers: { authorization: `Bearer ${key}` } });
  const body = (await check.json()) as { items: unknown[] };
  if (check.status !== 200 || body.items.length !== AGENTS) throw new Error(`bench setup broken: ${check.status}`);

  // Warm both paths (JIT, pool, caches), then alternate short rounds so that any other
  // load on the machine weighs on both sides alike; report the median of each.
  await run(`${bareUrl}/bare/agents`, {}, 2);
  await run(`${appUrl}/v1/agents`, { authorization: `Bearer ${key}` }, 2);
  const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
  const base: autocannon.Result[] = [];
  const ours: autocannon.Result[] = [];
  for (let i = 0; i < rounds; i++) {
    base.push(await run(`${bareUrl}/bare/agents`));
    ours.push(await run(`${appUrl}/v1/agents`, { authorization: `Bearer ${key}` }));
  }
  const median = (rs: autocannon.Result[]) => [...rs].sort((a, b) => a.requests.average - b.requests.average)[Math.floor(rs.length / 2)]!;
  const baseline = median(base);
  const bosun = median(ours);

  const row = (name: string, r: autocannon.Result) =>
    `${name.padEnd(34)} ${r.requests.average.toFixed(0).padStart(8)} req/s   p99 ${String(r.latency.p99).padStart(4)} ms   errors ${r.errors + r.non2xx}`;
  console.log(`\nGET /v1/agents (${AGENTS} agents per page), ${CONNECTIONS} connections, ${rounds} rounds of ${DURATION} s, median round; Postgres: ${server.kind}`);
  console.log(row("bare Fastify + pg (baseline)", baseline));
  console.log(row("Bosun API (auth, RLS, schema)", bosun));
  const ratio = bosun.requests.average / baseline.requests.average;
  console.log(`ratio ${ratio.toFixed(2)} of the baseline (target ≥ 0.70)\n`);

  await app.close();
  await bare.close();
  await jobs.stop({ graceful: false, timeout: 1000 });
  await database.close();
} finally {
  await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  await admin.end();
  await server.stop();
}
