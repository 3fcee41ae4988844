/**
 * Execution-plane benchmarks, each against a baseline measured in the same run:
 *  1. tasks per second through the whole path (create → wake → claim → scripted model →
 *     complete) against raw pg-boss send / work / complete on the same database;
 *  2. wake latency from task creation to run start, p50 and p99;
 *  3. 10,000 scheduled agents with nothing to do: model calls (must be 0) and database
 *     time per tick, against a plain UPDATE of the same rows.
 * Prints figures; asserts nothing.
 */
import { randomBytes } from "node:crypto";
import { agentRuntime, createServices, providerCache, scheduleTick, systemActor } from "@bosun/core";
import { createDatabase, runMigrations } from "@bosun/db";
import { createJobs } from "@bosun/jobs";
import { startWorker } from "@bosun/worker";
import pino from "pino";
import pg from "pg";
import { testServer } from "../setup/server";

const TASKS = Number(process.env.BENCH_TASKS ?? 500);
const IDLE_AGENTS = Number(process.env.BENCH_IDLE_AGENTS ?? 10_000);
const silent = pino({ level: "silent" });

const server = await testServer();
const dbName = `bosun_bench_${randomBytes(3).toString("hex")}`;
const admin = new pg.Client({ connectionString: server.adminUrl });
await admin.connect();
await admin.query(`CREATE DATABASE ${dbName}`);
const u = new URL(server.adminUrl);
u.pathname = `/${dbName}`;
const url = u.toString();
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;

try {
  await runMigrations(url);
  const database = createDatabase(url, { max: 16 });
  const producer = createJobs({ connectionString: url, role: "producer", max: 4 });
  await producer.start();
  const services = createServices({ database, jobs: producer, secureCookies: false });
  const signup = await services.identity.signup({ tenant: { name: "Bench", timeZone: "UTC" }, owner: { email: "b@example.com", password: "bench-password-1" } });
  const tenantId = signup.tenant.id;
  const actor = systemActor(tenantId, "bench");
  for (let i = 0; i < 8; i++) {
    await services.agents.apply(actor, `worker-${i}`, {
      apiVersion: "agent.os/v1",
      kind: "Agent",
      metadata: { name: `worker-${i}`, owner: "bench" },
      spec: { model: { provider: "scripted", name: "scripted-small" }, domains: ["bench/*"] },
    });
  }

  // 1a. Raw pg-boss: send N jobs, a worker completes each.
  const rawQueue = "bench.raw";
  await producer.boss.createQueue(rawQueue, { policy: "standard" });
  const rawWorker = createJobs({ connectionString: url, role: "worker", max: 4 });
  await rawWorker.start();
  let rawDone = 0;
  let rawFinished!: () => void;
  const rawAll = new Promise<void>((r) => {
    rawFinished = r;
  });
  // The baseline at its best: batches of 20, fetched again at once while they come back full.
  await rawWorker.boss.work(rawQueue, { batchSize: 20, localConcurrency: 4, pollingIntervalSeconds: 0.5, burstWhenBatchFull: true }, async (jobs) => {
    rawDone += jobs.length;
    if (rawDone >= TASKS) rawFinished();
  });
  const rawStart = performance.now();
  for (let i = 0; i < TASKS; i += 50) {
    await Promise.all(Array.from({ length: Math.min(50, TASKS - i) }, (_, j) => producer.boss.send(rawQueue, { i: i + j })));
  }
  await rawAll;
  const rawSecs = (performance.now() - rawStart) / 1000;
  await rawWorker.stop({ graceful: false, timeout: 1000 });

  // 1b. The whole path.
  const workerJobs = createJobs({ connectionString: url, role: "worker", max: 4 });
  const ws = createServices({ database, jobs: workerJobs, secureCookies: false });
  const runtime = agentRuntime({ database, jobs: workerJobs, tasks: ws.tasks, provider: providerCache(), workerId: "bench", leaseTtlSeconds: 30 });
  const worker = await startWorker({ jobs: workerJobs, services: ws, logger: silent, runtime, concurrency: 8, tickMs: 1000 });
  const create = (title: string) =>
    services.tasks.create(actor, { title, body: "", priority: 50, depends_on: [], requires_review: false, max_attempts: 3, domain: "bench/work" });
  const doneCount = async () => (await database.pool.query(`SELECT count(*)::int AS n FROM tasks WHERE status = 'done'`)).rows[0].n as number;
  const pathStart = performance.now();
  for (let i = 0; i < TASKS; i += 50) await Promise.all(Array.from({ length: Math.min(50, TASKS - i) }, (_, j) => create(`t${i + j}`)));
  while ((await doneCount()) < TASKS) await new Promise((r) => setTimeout(r, 20));
  const pathSecs = (performance.now() - pathStart) / 1000;

  // 2. Wake latency, one task at a time on an idle fleet.
  const latencies: number[] = [];
  for (let i = 0; i < 100; i++) {
    const t = (await create(`latency ${i}`)).body;
    let started: Date | null = null;
    while (!started) {
      const r = await database.pool.query(`SELECT started_at, (SELECT created_at FROM tasks WHERE id = $1) AS created FROM runs WHERE task_id = $1`, [t.id]);
      if (r.rows[0]?.started_at) {
        started = r.rows[0].started_at;
        latencies.push(started!.getTime() - r.rows[0].created.getTime());
      } else await new Promise((res) => setTimeout(res, 2));
    }
    while ((await database.pool.query(`SELECT 1 FROM tasks WHERE id = $1 AND status = 'done'`, [t.id])).rowCount === 0) await new Promise((res) => setTimeout(res, 2));
  }
  await worker.stop();

  // 3. 10,000 scheduled agents with nothing to do.
  await database.pool.query(
    `INSERT INTO agents (tenant_id, id, name, owner, revision, spec_hash, descriptor, next_wake_at)
     SELECT $1, 'agt_idle' || lpad(g::text, 22, '0'), 'idle-' || g, 'bench', 1, 'h',
            jsonb_build_object('apiVersion', 'agent.os/v1', 'kind', 'Agent', 'metadata', jsonb_build_object('name', 'idle-' || g, 'owner', 'bench'),
              'spec', jsonb_build_object('model', jsonb_build_object('provider', 'scripted', 'name', 'scripted-small'), 'domains', '["idle/*"]'::jsonb, 'schedule', jsonb_build_object('every', '15m'))),
            now() - interval '1 second'
     FROM generate_series(1, $2) g`,
    [tenantId, IDLE_AGENTS],
  );
  await database.pool.query("ANALYZE");
  const llmBefore = (await database.pool.query(`SELECT count(*)::int AS n FROM steps WHERE kind = 'llm'`)).rows[0].n;
  const wakesBefore = (await database.pool.query(`SELECT count(*)::int AS n FROM pgboss.job WHERE name = 'agent.wake'`)).rows[0].n;
  const tickStart = performance.now();
  let ticks = 0;
  let processed = 0;
  for (;;) {
    const r = await scheduleTick({ database, jobs: producer }, { batch: 1000 });
    if (r.due === 0) break;
    ticks++;
    processed += r.due;
  }
  const tickMs = performance.now() - tickStart;
  const llmAfter = (await database.pool.query(`SELECT count(*)::int AS n FROM steps WHERE kind = 'llm'`)).rows[0].n;
  const wakesAfter = (await database.pool.query(`SELECT count(*)::int AS n FROM pgboss.job WHERE name = 'agent.wake'`)).rows[0].n;
  // The floor: the same rows rescheduled by a plain UPDATE, 1,000 at a time.
  await database.pool.query(`UPDATE agents SET next_wake_at = now() - interval '1 second' WHERE name LIKE 'idle-%'`);
  const plainStart = performance.now();
  for (;;) {
    const r = await database.pool.query(
      `UPDATE agents SET next_wake_at = now() + interval '15 minutes' WHERE (tenant_id, id) IN (
         SELECT tenant_id, id FROM agents WHERE next_wake_at <= now() AND status = 'active' LIMIT 1000)`,
    );
    if (r.rowCount === 0) break;
  }
  const plainMs = performance.now() - plainStart;

  console.log(`\nExecution plane (Postgres: ${server.kind})`);
  console.log(`raw pg-boss send→work→complete     ${(TASKS / rawSecs).toFixed(0).padStart(6)} jobs/s  (${TASKS} jobs)`);
  console.log(`Bosun create→wake→claim→model→done ${(TASKS / pathSecs).toFixed(0).padStart(6)} tasks/s (${TASKS} tasks, 8 agents, 1 worker)`);
  console.log(`ratio ${(rawSecs / pathSecs).toFixed(2)} of raw pg-boss (target ≥ 0.50)`);
  console.log(`wake latency, task created → run started: p50 ${pct(latencies, 50)} ms, p99 ${pct(latencies, 99)} ms (target p50 < 50 ms)`);
  console.log(
    `${processed} idle scheduled agents: ${ticks} ticks, ${(tickMs / ticks).toFixed(1)} ms of database time per 1,000-agent tick, ` +
      `model calls ${llmAfter - llmBefore}, wakes ${wakesAfter - wakesBefore}; plain UPDATE floor ${(plainMs / ticks).toFixed(1)} ms per 1,000 (ratio ${(plainMs / tickMs).toFixed(2)})\n`,
  );
  await producer.stop({ graceful: false, timeout: 1000 });
  await database.close();
} finally {
  await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  await admin.end();
  await server.stop();
}
