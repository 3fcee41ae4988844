/**
 * Cost-governance benchmarks, each against a baseline measured in the same run:
 *  1. reserve + settle around a model call (its ledger rows, the alerts check), per second
 *     and p99, under 50 concurrent callers: first with each caller's agent's daily budget
 *     only, then with the tenant's monthly budget too, one row every call contends for;
 *     against a plain single-row UPDATE (autocommit) by 50 concurrent callers on the
 *     same database;
 *  2. GET /v1/costs/export.csv of 100,000 and then 1,000,000 ledger rows (made with SQL)
 *     through a listening API: rows per second, and peak RSS sampled every 20 ms, which
 *     must not grow with the row count.
 * Prints figures; asserts nothing.
 */
import { randomBytes } from "node:crypto";
import type { AddressInfo } from "node:net";
import { buildApp, loadApiConfig } from "@bosun/api";
import { createServices, spendEngine, systemActor } from "@bosun/core";
import { createDatabase, runMigrations, withTenant } from "@bosun/db";
import { createJobs } from "@bosun/jobs";
import { normaliseAnthropicUsage } from "@bosun/llm";
import pg from "pg";
import { testServer } from "../setup/server";

const OPS = Number(process.env.BENCH_SPEND_OPS ?? 5000);
const CALLERS = Number(process.env.BENCH_CALLERS ?? 50);
const ROWS = Number(process.env.BENCH_EXPORT_ROWS ?? 1_000_000);

const server = await testServer();
const dbName = `bosun_bench_${randomBytes(3).toString("hex")}`;
const admin = new pg.Client({ connectionString: server.adminUrl });
await admin.connect();
await admin.query(`CREATE DATABASE ${dbName}`);
const u = new URL(server.adminUrl);
u.pathname = `/${dbName}`;
const url = u.toString();
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
const mb = (n: number) => `${(n / 1024 / 1024).toFixed(0)} MB`;

/** Runs `ops` operations with `callers` at a time; returns ops/s and per-op latencies. */
async function concurrently(ops: number, callers: number, op: (i: number, caller: number) => Promise<unknown>) {
  let next = 0;
  const latencies: number[] = [];
  const start = performance.now();
  await Promise.all(
    Array.from({ length: callers }, async (_, caller) => {
      for (;;) {
        const i = next++;
        if (i >= ops) return;
        const t0 = performance.now();
        await op(i, caller);
        latencies.push(performance.now() - t0);
      }
    }),
  );
  return { perSec: ops / ((performance.now() - start) / 1000), latencies };
}

try {
  await runMigrations(url);
  const database = createDatabase(url, { max: CALLERS + 2 });
  const producer = createJobs({ connectionString: url, role: "producer", max: 4 });
  await producer.start();
  const services = createServices({ database, jobs: producer, secureCookies: false });
  const signup = await services.identity.signup({ tenant: { name: "Bench", timeZone: "UTC" }, owner: { email: "b@example.com", password: "bench-password-1" } });
  const tenantId = signup.tenant.id;
  const actor = systemActor(tenantId, "bench");

  // 1. Reserve + settle. One agent per caller, each with a daily budget; one tenant budget over all.
  const agents: string[] = [];
  for (let i = 0; i < CALLERS; i++) {
    const r = await services.agents.apply(actor, `caller-${i}`, {
      apiVersion: "agent.os/v1",
      kind: "Agent",
      metadata: { name: `caller-${i}`, owner: "bench" },
      spec: { model: { provider: "anthropic", name: "claude-opus-4-7" }, budgets: { usd_per_day: 100_000 } },
    });
    agents.push(r.body.id);
  }
  const spend = spendEngine({ jobs: producer });
  const usage = normaliseAnthropicUsage({ input_tokens: 120, cache_read_input_tokens: 2000, cache_creation_input_tokens: 0, output_tokens: 300 });
  const runCreatedAt = new Date();
  const call = (i: number, caller: number) => {
    const runId = `run_${String(i).padStart(26, "0")}`;
    return withTenant(database, tenantId, (tx) =>
      spend.reserve(tx, {
        tenantId,
        agentId: agents[caller]!,
        runId,
        runCreatedAt,
        taskId: null,
        key: `${runId}:0`,
        calls: [{ provider: "anthropic", model: "claude-opus-4-7", promptTokens: 4000, maxTokens: 1024 }],
        computeMs: 150_000,
      }),
    ).then((r) => withTenant(database, tenantId, (tx) => spend.settle(tx, r, { calls: [{ seq: 0, model: "claude-opus-4-7-20260214", usage }], computeMs: 900 })));
  };
  await concurrently(200, CALLERS, call); // warm-up: plans, windows, partitions
  const agentOnly = await concurrently(OPS, CALLERS, (i, c) => call(i + 1000, c));
  await services.budgets.create(actor, { scope: "tenant", metric: "usd", window: "month", limitUsd: 1_000_000, enforcement: "hard", thresholds: [50, 80, 100], onExhausted: "refuse" });
  const spendRun = await concurrently(OPS, CALLERS, (i, c) => call(i + 1000 + OPS, c));
  const [check] = (
    await database.pool.query<{ reserved: string; held: number }>(
      `SELECT (SELECT sum(reserved) FROM budget_windows) AS reserved, (SELECT count(*)::int FROM budget_reservations) AS held`,
    )
  ).rows;

  await database.pool.query(`CREATE TABLE bench_counter (id int PRIMARY KEY, n bigint NOT NULL)`);
  await database.pool.query(`INSERT INTO bench_counter VALUES (1, 0)`);
  await concurrently(200, CALLERS, () => database.pool.query(`UPDATE bench_counter SET n = n + 1 WHERE id = 1`));
  const plainRun = await concurrently(OPS, CALLERS, () => database.pool.query(`UPDATE bench_counter SET n = n + 1 WHERE id = 1`));

  // 2. The CSV export through a listening API.
  const config = loadApiConfig({}, { host: "127.0.0.1", port: 0, consoleDir: "/nonexistent", rateLimitPerMinute: 1_000_000, logLevel: "warn" });
  const app = await buildApp(services, config, { logger: false });
  await app.listen({ host: "127.0.0.1", port: 0 });
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  const key = signup.apiKey.key!;
  await database.pool.query(`DELETE FROM cost_ledger`); // the reserve/settle rows
  const insertRows = (from: number, to: number) =>
    database.pool.query(
      `INSERT INTO cost_ledger (tenant_id, id, run_created_at, idempotency_key, kind, agent_id, run_id, step_seq, provider, model, price_id,
                                input_tokens, cache_read_tokens, cache_write_tokens, output_tokens, raw_usage, cost_micros, created_at)
       SELECT $1, 'chg_' || lpad(g::text, 26, '0'), $3::timestamptz, 'bench:' || g, 'tokens', $2, 'run_' || lpad((g / 10)::text, 26, '0'), g % 10,
              'anthropic', 'claude-opus-4-7-20260214', 'prc_bench', 100 + g % 50, 900, 50, 20 + g % 7,
              jsonb_build_object('input_tokens', 100 + g % 50, 'cache_read_input_tokens', 900), 1763 + g % 100,
              now() - make_interval(secs => g % 80000)
       FROM generate_series($4::int, $5::int) g`,
      [tenantId, agents[0], runCreatedAt, from, to],
    );
  const today = new Date().toISOString().slice(0, 10);
  const yesterday = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);

  async function exportOnce() {
    const rssBefore = process.memoryUsage().rss;
    let peak = rssBefore;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 20);
    const start = performance.now();
    const res = await fetch(`${base}/v1/costs/export.csv?from=${yesterday}&to=${today}`, { headers: { authorization: `Bearer ${key}` } });
    let bytes = 0;
    let lines = 0;
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      bytes += chunk.length;
      for (let i = 0; i < chunk.length; i++) if (chunk[i] === 0x0a) lines++;
    }
    const secs = (performance.now() - start) / 1000;
    clearInterval(sampler);
    return { rows: lines - 1, secs, bytes, rssBefore, peak };
  }

  const small = Math.min(100_000, ROWS);
  await insertRows(1, small);
  await database.pool.query("ANALYZE cost_ledger");
  const e1 = await exportOnce();
  if (ROWS > small) await insertRows(small + 1, ROWS);
  await database.pool.query("ANALYZE cost_ledger");
  const e2 = await exportOnce();
  await app.close();

  const line = (e: Awaited<ReturnType<typeof exportOnce>>) =>
    `${String(e.rows).padStart(9)} rows: ${(e.rows / e.secs).toFixed(0).padStart(7)} rows/s, ${mb(e.bytes / e.secs)}/s, ` +
    `peak RSS ${mb(e.peak)} (${mb(e.peak - e.rssBefore)} over the ${mb(e.rssBefore)} before)`;
  console.log(`\nCost governance (Postgres: ${server.kind})`);
  const figures = (r: { perSec: number; latencies: number[] }) =>
    `${r.perSec.toFixed(0).padStart(6)}/s, p50 ${pct(r.latencies, 50).toFixed(1).padStart(6)} ms, p99 ${pct(r.latencies, 99).toFixed(1).padStart(6)} ms`;
  console.log(`${OPS} calls each, ${CALLERS} concurrent callers:`);
  console.log(`  reserve + settle, each agent's own daily budget          ${figures(agentOnly)}  (ratio ${(agentOnly.perSec / plainRun.perSec).toFixed(2)})`);
  console.log(`  reserve + settle, + the tenant's budget (one shared row) ${figures(spendRun)}  (ratio ${(spendRun.perSec / plainRun.perSec).toFixed(2)})`);
  console.log(`  plain single-row UPDATE (autocommit, one shared row)     ${figures(plainRun)}`);
  console.log(`  left behind: ${Number(check!.reserved)} µ$ reserved, ${check!.held} reservations`);
  console.log(`CSV export through GET /v1/costs/export.csv`);
  console.log(`  ${line(e1)}`);
  console.log(`  ${line(e2)}`);
  // What each export added over the memory it started from; that, not the absolute peak
  // (which also holds whatever the previous phase left to the garbage collector), is
  // what must not grow with the row count.
  console.log(`  memory an export adds: ${mb(e1.peak - e1.rssBefore)} for ${e1.rows} rows, ${mb(e2.peak - e2.rssBefore)} for ${e2.rows} rows\n`);
  await producer.stop({ graceful: false, timeout: 1000 });
  await database.close();
} finally {
  await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  await admin.end();
  await server.stop();
}
