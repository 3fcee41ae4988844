/**
 * Execution-plane benchmarks, each against a baseline measured in the same run:
 *  1. tasks per second through the whole path (create → wake → claim → scripted model →
 *     complete) against raw pg-boss send / work / complete on the same database, with
 *     the machine's CPU time per task and per job, split into each side's producing half
 *     (creates, sends: measured alone) and the rest;
 *  2. wake latency from task creation to run start, p50 and p99;
 *  3. 10,000 scheduled agents with nothing to do: model calls (must be 0) and database
 *     time per tick, against a plain UPDATE of the same rows, and again with a backlog of
 *     5,000 tasks they do not cover;
 *  4. a task create in a tenant of a few agents and in one of 10,000 (the wake choice asks
 *     each agent whether it covers the task's domain).
 * Prints figures; asserts nothing.
 */
import { randomBytes } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import inspector from "node:inspector/promises";
import { availableParallelism } from "node:os";
import { agentRuntime, createServices, providerCache, scheduleTick, systemActor } from "@bosun/core";
import { createDatabase, repo, runMigrations } from "@bosun/db";
import { createJobs } from "@bosun/jobs";
import { startWorker } from "@bosun/worker";
import pino from "pino";
import pg from "pg";
import { testServer } from "../setup/server";

const TASKS = Number(process.env.BENCH_TASKS ?? 500);
const AGENTS = Number(process.env.BENCH_AGENTS ?? 8);
const WORKER_CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 8);
/** The multi-tenant pass: the same agents spread over this many tenants (1: skipped). */
const TENANTS = Number(process.env.BENCH_TENANTS ?? 4);
/**
 * One-tenant passes, each between two baseline passes (BENCH_ROUNDS + 1 of those): the
 * figures are the medians. On a shared VM a single pair moved by a third from run to run.
 */
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 3));
/** BENCH_PROFILE=1: count the statements of the whole-path phase by their first words. */
const PROFILE = process.env.BENCH_PROFILE === "1";
const profile = new Map<string, { n: number; ms: number }>();
let profiling = false;
if (PROFILE) {
  const original = pg.Client.prototype.query as (...a: unknown[]) => unknown;
  (pg.Client.prototype as unknown as { query: (...a: unknown[]) => unknown }).query = function (this: pg.Client, ...args: unknown[]) {
    const q = args[0] as string | { text?: string; name?: string };
    const text = (typeof q === "string" ? q : (q?.name ?? q?.text ?? "?")).replace(/\s+/g, " ").slice(0, 90);
    const t0 = performance.now();
    const r = original.apply(this, args);
    if (profiling && r && typeof (r as Promise<unknown>).then === "function") {
      void (r as Promise<unknown>).then(
        () => {
          const e = profile.get(text) ?? { n: 0, ms: 0 };
          e.n++;
          e.ms += performance.now() - t0;
          profile.set(text, e);
        },
        () => {},
      );
    }
    return r;
  };
}
const IDLE_AGENTS = Number(process.env.BENCH_IDLE_AGENTS ?? 10_000);
/** Tasks run through the whole path before anything is measured, then ANALYZE (see below). */
const WARMUP = Number(process.env.BENCH_WARMUP ?? 300);
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
  // Bosun's pool has as many connections as the like-for-like baseline's two clients
  // together (its sender's 4 and its worker's 4, below). It had 16, and on 2 cores the
  // extra concurrent transactions (up to 16 of the 50 creates in flight, against 4 of the
  // baseline's sends) cost CPU rather than adding throughput: in 8 alternating runs the
  // ratio was 0.45 on average with 16 and 0.49 with 8 (single runs 0.41-0.51 either way),
  // one run each with 6, 10 and 12 gave 0.50, 0.49 and 0.46, and with 4, fewer than the
  // worker's 8 runs, 0.39.
  const database = createDatabase(url, { max: 8 });
  const producer = createJobs({ connectionString: url, role: "producer", max: 4 });
  await producer.start();
  // pg-boss plans each statement at every call, with the job table's statistics of the
  // moment, and at this bench's scale (thousands of jobs) those statistics decide whether a
  // fetch takes the queue's partial index of waiting jobs or walks every job the queue ever
  // had, and whether a completion probes the primary key or hashes the whole queue: ~33 and
  // ~19 buffers a call, or ~250-500 each (pg_stat_statements). Which it got depended on what
  // the job table held when it was last analyzed, and autovacuum analyzes it when it has
  // changed enough, at a moment of its choosing: the like-for-like baseline took 3.2-3.6 ms
  // of CPU a job in some runs and 3.9-4.4 in others, and the ratio moved by up to a tenth
  // with it (statistics taken after a warm-up whose worker ticked every 5 s, instead of
  // every second, gave pg-boss the slow plans in every pass). The job table is therefore
  // analyzed once, empty, and kept out of autovacuum and out of the warm-up's ANALYZE: its
  // statistics then say nothing about any queue, as at a scale where no queue is a large
  // share of it, and every pass, the baseline's and the path's wakes alike, gets the cheap
  // plans, whatever the warm-up left (checked with a 1 s and a 5 s tick). Each baseline
  // pass also sends to a queue of its own. The passes still start on a VACUUMed database:
  // a plain VACUUM changes no statistics.
  /** The tables of `schema` of the given kinds (pg_class.relkind), as qualified names. */
  const tablesOf = async (schema: string, kinds: string[]) =>
    (
      await database.pool.query<{ t: string }>(
        `SELECT c.oid::regclass::text AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = ANY($2)`,
        [schema, kinds],
      )
    ).rows.map((r) => r.t);
  // Storage parameters are the partitions' own (a partitioned parent takes none).
  for (const t of await tablesOf("pgboss", ["r"])) await database.pool.query(`ALTER TABLE ${t} SET (autovacuum_enabled = false)`);
  await database.pool.query(`ANALYZE pgboss.job`);
  const services = createServices({ database, jobs: producer, secureCookies: false });
  /** A tenant with `agents` agents covering `bench/*` (the first fleet is the single-tenant one). */
  async function fleet(name: string, agents: number) {
    const signup = await services.identity.signup({ tenant: { name, timeZone: "UTC" }, owner: { email: `${name.toLowerCase()}@example.com`, password: "bench-password-1" } });
    const a = systemActor(signup.tenant.id, "bench");
    for (let i = 0; i < agents; i++) {
      await services.agents.apply(a, `worker-${i}`, {
        apiVersion: "agent.os/v1",
        kind: "Agent",
        metadata: { name: `worker-${i}`, owner: "bench" },
        spec: { model: { provider: "scripted", name: "scripted-small" }, domains: ["bench/*"] },
      });
    }
    return a;
  }
  const actor = await fleet("Bench", AGENTS);
  const tenantId = actor.tenantId;
  const spread: (typeof actor)[] = [];
  for (let i = 0; i < TENANTS; i++) spread.push(await fleet(`Spread${i}`, Math.max(1, Math.round(AGENTS / TENANTS))));
  const createFor = (a: typeof actor, title: string) =>
    services.tasks.create(a, { title, body: "", priority: 50, depends_on: [], requires_review: false, max_attempts: 3, domain: "bench/work" });
  const create = (title: string) => createFor(actor, title);
  const doneCount = async () => (await database.pool.query(`SELECT count(*)::int AS n FROM tasks WHERE status = 'done'`)).rows[0].n as number;
  async function startPathWorker() {
    const workerJobs = createJobs({ connectionString: url, role: "worker", max: 4 });
    const ws = createServices({ database, jobs: workerJobs, secureCookies: false });
    const runtime = agentRuntime({ database, jobs: workerJobs, tasks: ws.tasks, provider: providerCache(), workerId: "bench", leaseTtlSeconds: 30 });
    return startWorker({ jobs: workerJobs, services: ws, logger: silent, runtime, concurrency: WORKER_CONCURRENCY, tickMs: 1000 });
  }

  // 0. Warm-up, measured by nothing: WARMUP tasks through the whole path, then ANALYZE. On
  // a new database every table is empty and has no statistics, and the plans a connection
  // caches for its prepared statements are made for that: for a primary-key lookup the
  // planner may take another index on tenant_id as just as cheap, and that plan, kept
  // until the table is analyzed, scans all of a tenant's rows for each lookup (it made the
  // one-tenant pass slower than four tenants). In production autovacuum analyzes a table
  // within a minute of its first rows, which replaces those plans; the bench does that
  // now, so that it measures what a database in use sees.
  async function warmUp(n: number, label: string, running?: Awaited<ReturnType<typeof startPathWorker>>) {
    const warm = running ?? (await startPathWorker());
    const before = await doneCount();
    for (let i = 0; i < n; i += 50) {
      await Promise.all(Array.from({ length: Math.min(50, n - i) }, (_, j) => createFor([actor, ...spread][(i + j) % (1 + spread.length)]!, `${label} ${i + j}`)));
    }
    while ((await doneCount()) - before < n) await new Promise((r) => setTimeout(r, 100));
    if (!running) await warm.stop();
    await sealAll();
  }
  // The worker's tick seals audit events in batches after their commit. Sealing what is left
  // at the end of a warm-up and of each measured pass (before its CPU time is read) makes a
  // pass pay for sealing its own events, all of them, and none of the warm-up's.
  async function sealAll() {
    for (const a of [actor, ...spread]) while ((await repo.sealAudit(database, a.tenantId)) > 0);
  }
  if (WARMUP > 0) await warmUp(WARMUP, "warm-up");
  // Every table but pg-boss's (analyzed empty, above).
  for (const t of await tablesOf("public", ["r", "p"])) await database.pool.query(`ANALYZE ${t}`);

  // 1a. Raw pg-boss: send N jobs, workers fetch and complete each. Two baselines: at its
  // best (work() in batches of 20, fetched again at once while they come back full), and
  // with the concurrency the Bosun worker has: WORKER_CONCURRENCY loops, each fetching one
  // job and completing it, on a queue that sends a NOTIFY with each job as agent.wake's
  // does. That is the like-for-like one: send, fetch and complete, one job at a time.
  //
  // The like-for-like loops call fetch() and complete() themselves rather than work() with
  // a batch of one: a work() loop that fetched a job waits for its next poll unless a
  // NOTIFY came in meanwhile (a batch of one never counts as full, so it never bursts),
  // and with notify on that wait is 30 s by default. Once the sends stopped, a backlog
  // then drained one job per loop per wait, and the measured rate said more about the
  // wait than about pg-boss.
  async function queueWithSender(queue: string, notify: boolean) {
    await producer.boss.createQueue(queue, { policy: "standard", notify });
    // pg-boss caches queue settings at start (and each minute): a producer started after the
    // queue exists sends its NOTIFY from the first job.
    const sender = createJobs({ connectionString: url, role: "producer", max: 4 });
    await sender.start();
    const rawWorker = createJobs({ connectionString: url, role: "worker", max: 4 });
    await rawWorker.start();
    // Each instance's pool opens all its connections now rather than in the measured pass,
    // where the path's pools are warm: a new Postgres backend costs CPU to start and to fill
    // its caches (making and stopping these two instances took ~100-130 ms of the machine's
    // CPU, ~0.2 ms a job of a 500-job pass, which the passes' CPU time used to include).
    const open = (j: typeof sender) => Promise.all(Array.from({ length: 4 }, () => j.boss.getDb().executeSql("SELECT pg_sleep(0.02)")));
    await Promise.all([open(sender), open(rawWorker)]);
    const send = async () => {
      for (let i = 0; i < TASKS; i += 50) {
        await Promise.all(Array.from({ length: Math.min(50, TASKS - i) }, (_, j) => sender.boss.send(queue, { i: i + j })));
      }
    };
    const stop = async () => {
      await rawWorker.stop({ graceful: false, timeout: 1000 });
      await sender.stop({ graceful: false, timeout: 1000 });
    };
    return { queue, rawWorker, send, stop };
  }
  async function rawBatched(queue: string) {
    const { rawWorker, send, stop } = await queueWithSender(queue, false);
    let rawDone = 0;
    let rawFinished!: () => void;
    const rawAll = new Promise<void>((r) => {
      rawFinished = r;
    });
    await rawWorker.boss.work(queue, { batchSize: 20, localConcurrency: 4, pollingIntervalSeconds: 0.5, burstWhenBatchFull: true }, async (jobs) => {
      rawDone += jobs.length;
      if (rawDone >= TASKS) rawFinished();
    });
    const rawStart = performance.now();
    await send();
    await rawAll;
    const secs = (performance.now() - rawStart) / 1000;
    await stop();
    return secs;
  }
  /** The like-for-like pass on `q` (queueWithSender's, made and stopped by the caller). */
  async function rawOneByOne(q: Awaited<ReturnType<typeof queueWithSender>>) {
    const { queue, rawWorker, send } = q;
    let rawDone = 0;
    const loop = async () => {
      while (rawDone < TASKS) {
        const [job] = await rawWorker.boss.fetch(queue, { batchSize: 1 });
        if (!job) {
          // Only before the first sends land: the loops end when the last job is done.
          await new Promise((r) => setTimeout(r, 5));
          continue;
        }
        await rawWorker.boss.complete(queue, job.id);
        rawDone++;
      }
    };
    const rawStart = performance.now();
    await Promise.all([send(), ...Array.from({ length: WORKER_CONCURRENCY }, loop)]);
    return (performance.now() - rawStart) / 1000;
  }
  /** CPU time the whole machine has spent busy so far, in ms (Linux's /proc/stat; NaN elsewhere). */
  const busyMs = async () => {
    try {
      const [cpu] = (await readFile("/proc/stat", "utf8")).split("\n");
      const [user, nice, system, , , irq, softirq] = cpu!.trim().split(/\s+/).slice(1).map(Number);
      return ((user! + nice! + system! + irq! + softirq!) * 1000) / 100; // USER_HZ is 100 on Linux
    } catch {
      return Number.NaN;
    }
  };
  /** CPU time this process (Node: the clients on both sides, Bosun's producer and worker) has spent since `from`, in ms. */
  const nodeMs = (from: NodeJS.CpuUsage) => {
    const d = process.cpuUsage(from);
    return (d.user + d.system) / 1000;
  };
  /** WAL the server wrote while `f` ran, in bytes (the whole server's: nothing else runs). */
  const walLsn = async () => (await database.pool.query<{ lsn: string }>(`SELECT pg_current_wal_lsn()::text AS lsn`)).rows[0]!.lsn;
  const walSince = async (from: string) =>
    Number((await database.pool.query<{ n: string }>(`SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1)::bigint AS n`, [from])).rows[0]!.n);
  const rawSecs = await rawBatched("bench.raw");
  /**
   * The like-for-like baseline with its CPU time and WAL. Its queue and its two pg-boss
   * instances are made before and stopped after what is measured, as the path's worker is:
   * their start and stop are not a job's cost.
   */
  const rawSame = async (queue: string) => {
    const q = await queueWithSender(queue, true);
    try {
      return await measured(() => rawOneByOne(q));
    } finally {
      await q.stop();
    }
  };
  /** What `pass` (which returns its own seconds) cost: the machine's CPU time, this process's, and the WAL. */
  async function measured(pass: () => Promise<number>) {
    const walFrom = await walLsn();
    const busyFrom = await busyMs();
    const nodeFrom = process.cpuUsage();
    const secs = await pass();
    return { secs, busy: (await busyMs()) - busyFrom, node: nodeMs(nodeFrom), wal: await walSince(walFrom), walFrom };
  }
  // Measured before and after each one-tenant pass (ROUNDS of them), and averaged: the VM's
  // speed drifts over a minute, and a baseline taken on one side only moves the ratio with it.
  const rawSameBefore = await rawSame("bench.raw.same.before");
  // Each measured pass starts on a vacuumed database, so that autovacuum does not clean
  // up one pass's rows in the middle of the next: it visits a database once a minute and
  // then vacuums and analyzes every table that changed, and in runs of 2,000 tasks it
  // landed in the baseline's second pass, which came out a third slower than its first.
  const vacuum = () => database.pool.query("VACUUM");
  // A VACUUM or ANALYZE invalidates every cached plan (so would a GRANT: see packages/jobs'
  // grantQueueAccess), and each of the pool's connections then plans each prepared
  // statement again the first time it runs it, up to a few milliseconds each under load
  // (the wake choice), ~25 statements on 16 connections: ~0.8 ms of server time per task
  // over a 500-task pass that began so, by pg_stat_statements. A database in use pays that
  // once a connection after such an event, not once every 500 tasks: the measured worker
  // is started first, then a second, shorter warm-up pays it. (pg-boss's statements are
  // unnamed, planned at every call: that is in its figures, as it is in production.)
  //
  // 1b. The whole path, on one tenant's fleet, then on the same number of agents spread
  // over TENANTS tenants (each tenant's audited writes are ordered by its hash chain).
  let worker = await startPathWorker();
  /** Before each measured pass: a VACUUM, then the plans it dropped made again. */
  const readyForPass = async () => {
    await vacuum();
    if (WARMUP > 0) await warmUp(Math.ceil(WARMUP / 2), "warm-up after vacuum", worker);
  };
  await readyForPass();
  async function path(actors: (typeof actor)[]) {
    const before = await doneCount();
    // Wall-clock times (the database's clock is this machine's): the end is the last
    // completion's commit time, read once everything is done, so the bench can poll
    // slowly and take no CPU from the path it measures.
    const t0 = Date.now();
    for (let i = 0; i < TASKS; i += 50) await Promise.all(Array.from({ length: Math.min(50, TASKS - i) }, (_, j) => createFor(actors[(i + j) % actors.length]!, `t${i + j}`)));
    const created = Date.now();
    while ((await doneCount()) - before < TASKS) await new Promise((r) => setTimeout(r, 250));
    const last = await database.pool.query<{ at: Date }>(`SELECT max(completed_at) AS at FROM tasks WHERE status = 'done' AND tenant_id = ANY($1)`, [actors.map((a) => a.tenantId)]);
    const end = last.rows[0]!.at.getTime();
    console.log(`  (${actors.length} tenant(s): the ${TASKS} creates took ${((created - t0) / 1000).toFixed(2)} s of the ${((end - t0) / 1000).toFixed(2)} s)`);
    return (end - t0) / 1000;
  }
  /** A one-tenant pass: its time, the machine's CPU time and the WAL, its audit events sealed. */
  const onePass = () =>
    measured(async () => {
      const secs = await path([actor]);
      await sealAll();
      return secs;
    });
  // With pg_stat_statements loaded by the server, BENCH_PROFILE also prints where the
  // server's own time went (the client-side timings above include queueing and lock waits).
  const statStatements = PROFILE && (await database.pool.query(`CREATE EXTENSION IF NOT EXISTS pg_stat_statements`).then(() => database.pool.query(`SELECT pg_stat_statements_reset()`)).then(() => true, () => false));
  // BENCH_PROFILE: rows written per table (and the updates that were HOT, which write no
  // index entry), from the statistics the server counts, over the one-tenant pass.
  const tableWrites = async () =>
    new Map(
      (
        await database.pool.query<{ t: string; ins: string; upd: string; hot: string; del: string; idx: string }>(
          `SELECT s.relname AS t, n_tup_ins AS ins, n_tup_upd AS upd, n_tup_hot_upd AS hot, n_tup_del AS del,
                  (SELECT count(*) FROM pg_index i WHERE i.indrelid = s.relid) AS idx
           FROM pg_stat_user_tables s`,
        )
      ).rows.map((r) => [r.t, r]),
    );
  if (PROFILE) await database.pool.query(`SELECT pg_stat_force_next_flush()`).catch(() => {});
  const writesBefore = PROFILE ? await tableWrites() : new Map();
  // BENCH_CPU_PROFILE=<file>: the Node process's CPU profile of the one-tenant pass alone
  // (open it in Chrome's DevTools or any .cpuprofile viewer).
  const cpuProfile = process.env.BENCH_CPU_PROFILE ? new inspector.Session() : null;
  if (cpuProfile) {
    cpuProfile.connect();
    await cpuProfile.post("Profiler.enable");
    await cpuProfile.post("Profiler.start");
  }
  profiling = PROFILE;
  const first = await onePass();
  profiling = false;
  if (cpuProfile) {
    const { profile: taken } = await cpuProfile.post("Profiler.stop");
    await writeFile(process.env.BENCH_CPU_PROFILE!, JSON.stringify(taken));
    cpuProfile.disconnect();
  }
  // BENCH_PROFILE's figures are read before any other pass, so that they count the first
  // one-tenant pass's statements, rows and WAL alone.
  if (statStatements) {
    const r = await database.pool.query(
      `SELECT calls, plans, total_exec_time + total_plan_time AS total_exec_time, total_plan_time, left(regexp_replace(query, '\\s+', ' ', 'g'), 90) AS q FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) ORDER BY total_exec_time + total_plan_time DESC LIMIT 30`,
    );
    const total = r.rows.reduce((n, x) => n + Number(x.total_exec_time), 0);
    console.log(`\nserver execution time: ${(total / TASKS).toFixed(2)} ms per task (top 30 statements)`);
    for (const x of r.rows) console.log(`${(Number(x.total_exec_time) / TASKS).toFixed(3).padStart(7)} ms/task (plan ${(Number(x.total_plan_time) / TASKS).toFixed(3)}) ${(Number(x.calls) / TASKS).toFixed(2).padStart(6)}/task ${(Number(x.plans) / TASKS).toFixed(2).padStart(6)} plans/task  ${x.q}`);
  }
  if (PROFILE) {
    await new Promise((r) => setTimeout(r, 1500)); // backends report their counts within a second
    const after = await tableWrites();
    console.log(`\nrows written per task, by table (indexes: how many the table has; HOT updates write none):`);
    const per = (n: number) => (n / TASKS).toFixed(2).padStart(6);
    const rows = [...after.values()]
      .map((a) => {
        const b = writesBefore.get(a.t);
        const d = (k: "ins" | "upd" | "hot" | "del") => Number(a[k]) - Number(b?.[k] ?? 0);
        return { t: a.t, ins: d("ins"), upd: d("upd"), hot: d("hot"), del: d("del"), idx: Number(a.idx) };
      })
      .filter((x) => x.ins + x.upd + x.del > 0)
      .sort((x, y) => y.ins + y.upd + y.del - (x.ins + x.upd + x.del));
    for (const x of rows) console.log(`${per(x.ins)} ins ${per(x.upd)} upd (${per(x.hot)} HOT) ${per(x.del)} del  ${String(x.idx).padStart(2)} idx  ${x.t}`);
  }
  // With pg_walinspect (PostgreSQL 15's contrib), what the path's WAL was made of.
  if (PROFILE && (await database.pool.query(`CREATE EXTENSION IF NOT EXISTS pg_walinspect`).then(() => true, () => false))) {
    const r = await database.pool.query(
      `SELECT "resource_manager/record_type" AS kind, count, record_size, fpi_size FROM pg_get_wal_stats($1, pg_current_wal_lsn(), true)
       WHERE count > 0 ORDER BY record_size + fpi_size DESC LIMIT 25`,
      [first.walFrom],
    );
    console.log(`\nWAL of the path, per task (top 25 record types):`);
    for (const x of r.rows) {
      console.log(`${(Number(x.count) / TASKS).toFixed(2).padStart(7)} records ${(Number(x.record_size) / TASKS).toFixed(0).padStart(6)} B + full pages ${(Number(x.fpi_size) / TASKS).toFixed(0).padStart(6)} B  ${x.kind}`);
    }
  }
  if (PROFILE) {
    const rows = [...profile].sort((a, b) => b[1].n - a[1].n);
    const total = rows.reduce((n, [, v]) => n + v.n, 0);
    console.log(`\n${total} statements, ${(total / TASKS).toFixed(1)} per task:`);
    for (const [text, v] of rows.slice(0, 40)) console.log(`${(v.n / TASKS).toFixed(2).padStart(6)}/task ${(v.ms / v.n).toFixed(1).padStart(6)} ms  ${text}`);
  }
  // The other rounds: a baseline pass, then a one-tenant pass, each on a vacuumed
  // database (and the path's plans made again after the VACUUM), then the last baseline.
  const raws = [rawSameBefore];
  const paths = [first];
  for (let r = 1; r <= ROUNDS; r++) {
    await vacuum();
    // No Bosun worker runs during a baseline pass (none did during the first): its idle
    // tick (schedules, sweeps, sealing), about once a pass, is Bosun's work, not pg-boss's.
    // The next path pass's warm-up opens the new worker's connections and makes its plans.
    await worker.stop();
    raws.push(await rawSame(`bench.raw.same.${r}`));
    worker = await startPathWorker();
    if (r === ROUNDS) break;
    await readyForPass();
    paths.push(await onePass());
  }
  const median = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  };
  // Each one-tenant pass against the mean of the baseline passes either side of it.
  const rounds = paths.map((p, i) => {
    const raw = { secs: (raws[i]!.secs + raws[i + 1]!.secs) / 2, busy: (raws[i]!.busy + raws[i + 1]!.busy) / 2 };
    return { ratio: raw.secs / p.secs, cpuRatio: raw.busy / p.busy };
  });
  const rawSameSecs = median(raws.map((r) => r.secs));
  const rawSameBusy = median(raws.map((r) => r.busy));
  const rawSameWal = median(raws.map((r) => r.wal));
  const pathMedianSecs = median(paths.map((p) => p.secs));
  let spreadSecs = Number.NaN;
  if (TENANTS > 1) {
    await readyForPass();
    spreadSecs = await path(spread);
  }

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

  // 1c. Where the difference lies: the producing half of each side measured alone, on a
  // vacuumed database, the creates with no worker running and the sends with no worker
  // fetching (the same 50 at a time as in the passes). The consuming half (for a task: its
  // wake, claim, model call, the run's records and the completion; for a job: its fetch
  // and completion) is the whole pass's CPU time less that.
  await vacuum();
  const sender = await queueWithSender("bench.raw.sends", true);
  const sendsAlone = await measured(async () => {
    const t0 = performance.now();
    await sender.send();
    return (performance.now() - t0) / 1000;
  });
  await sender.stop();
  await vacuum();
  const beforeAlone = await doneCount();
  const createsAlone = await measured(async () => {
    const t0 = performance.now();
    for (let i = 0; i < TASKS; i += 50) await Promise.all(Array.from({ length: Math.min(50, TASKS - i) }, (_, j) => create(`alone ${i + j}`)));
    return (performance.now() - t0) / 1000;
  });
  // Those tasks are run (not measured), so that what follows starts with none queued.
  const drainer = await startPathWorker();
  while ((await doneCount()) - beforeAlone < TASKS) await new Promise((r) => setTimeout(r, 100));
  await drainer.stop();
  await sealAll();

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
  /** Ticks until no agent is due: how many ticks, agents and ms it took. */
  const tickAll = async () => {
    const t0 = performance.now();
    let n = 0;
    let due = 0;
    for (;;) {
      const r = await scheduleTick({ database, jobs: producer }, { batch: 1000 });
      if (r.due === 0) break;
      n++;
      due += r.due;
    }
    return { ticks: n, due, ms: performance.now() - t0 };
  };
  const { ticks, due: processed, ms: tickMs } = await tickAll();
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
  // The same ticks with a backlog: 5,000 tasks queued in a domain none of these agents
  // covers. Each agent's idle check looks only where its own tasks could be (its globs'
  // heads), not along the tenant's queue.
  const BACKLOG = 5_000;
  await database.pool.query(
    `INSERT INTO tasks (tenant_id, id, title, body, priority, domain, status, created_by_type, created_by_id)
     SELECT $1, 'tsk_backlog' || lpad(g::text, 19, '0'), 'backlog ' || g, '', 50, 'elsewhere/' || (g % 10), 'queued', 'system', 'bench'
     FROM generate_series(1, $2) g`,
    [tenantId, BACKLOG],
  );
  await database.pool.query(`UPDATE agents SET next_wake_at = now() - interval '1 second' WHERE name LIKE 'idle-%'`);
  await database.pool.query("ANALYZE");
  const backlog = await tickAll();
  const backlogTickMs = backlog.ms / backlog.ticks;
  await database.pool.query(`DELETE FROM tasks WHERE tenant_id = $1 AND id LIKE 'tsk_backlog%'`, [tenantId]);

  // 4. A task create in a big fleet: the wake choice asks every active agent of the tenant
  // whether it covers the task's domain. Sequential creates, no worker running, in a tenant
  // of a few agents and in this one, which now has 10,000 more (covering idle/*).
  const createMs = async (a: typeof actor, domain: string, n: number) => {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) await services.tasks.create(a, { title: `scale ${i}`, body: "", priority: 50, depends_on: [], requires_review: false, max_attempts: 3, domain });
    return (performance.now() - t0) / n;
  };
  await createMs(spread[0] ?? actor, "bench/work", 20);
  const smallFleetMs = await createMs(spread[0] ?? actor, "bench/work", 200);
  await createMs(actor, "bench/work", 20);
  const bigFleetMs = await createMs(actor, "bench/work", 200);
  const allCoverMs = await createMs(actor, "idle/work", 50);
  const smallFleetAgents = (await database.pool.query(`SELECT count(*)::int AS n FROM agents WHERE tenant_id = $1`, [(spread[0] ?? actor).tenantId])).rows[0].n as number;
  const bigFleetAgents = (await database.pool.query(`SELECT count(*)::int AS n FROM agents WHERE tenant_id = $1`, [tenantId])).rows[0].n as number;

  console.log(`\nExecution plane (Postgres: ${server.kind})`);
  const rate = (secs: number) => (TASKS / secs).toFixed(0).padStart(6);
  console.log(`raw pg-boss send→work→complete     ${rate(rawSecs)} jobs/s  (${TASKS} jobs, batches of 20, 4 at a time)`);
  const list = (xs: number[], f: (x: number) => string) => xs.map(f).join(", ");
  console.log(
    `raw pg-boss, worker's concurrency  ${rate(rawSameSecs)} jobs/s  (${TASKS} jobs, 1 per fetch, ${WORKER_CONCURRENCY} at a time; median of ${raws.length} passes: ` +
      `${list(raws.map((r) => r.secs), (x) => rate(x).trim())})`,
  );
  console.log(
    `Bosun create→wake→claim→model→done ${rate(pathMedianSecs)} tasks/s (${TASKS} tasks, ${AGENTS} agents of 1 tenant, 1 worker × ${WORKER_CONCURRENCY}; ` +
      `median of ${paths.length} passes: ${list(paths.map((p) => p.secs), (x) => rate(x).trim())})`,
  );
  if (TENANTS > 1) console.log(`Bosun, the same over ${TENANTS} tenants   ${rate(spreadSecs)} tasks/s (${TASKS} tasks, ${spread.length * Math.max(1, Math.round(AGENTS / TENANTS))} agents, one pass)`);
  const ratios = rounds.map((r) => r.ratio);
  console.log(
    `ratio ${median(ratios).toFixed(2)} of like-for-like raw pg-boss (median; each pass against the baseline passes either side of it: ${list(ratios, (x) => x.toFixed(2))}), ` +
      `${(rawSecs / pathMedianSecs).toFixed(2)} of batched (target ≥ 0.50)` +
      (TENANTS > 1 ? `; over ${TENANTS} tenants ${(raws.at(-1)!.secs / spreadSecs).toFixed(2)} of the last baseline pass / ${(rawSecs / spreadSecs).toFixed(2)}` : ""),
  );
  console.log(`WAL written: ${(median(paths.map((p) => p.wal)) / TASKS / 1024).toFixed(1)} kB per task, like-for-like pg-boss ${(rawSameWal / TASKS / 1024).toFixed(1)} kB per job`);
  // The machine's CPU time (every process: Node, Postgres, the kernel) per task and per job:
  // steadier from run to run than the rates on a shared VM, and what the rates come down to
  // when the machine is busy.
  if (!Number.isNaN(first.busy)) {
    const cpuRatios = rounds.map((r) => r.cpuRatio);
    // Medians of the passes: the machine's CPU time and this process's.
    const pathWhole = { busy: median(paths.map((p) => p.busy)), node: median(paths.map((p) => p.node)) };
    const rawWhole = { busy: rawSameBusy, node: median(raws.map((r) => r.node)) };
    console.log(
      `CPU time, whole machine: ${(pathWhole.busy / TASKS).toFixed(2)} ms per task (one tenant), like-for-like pg-boss ${(rawWhole.busy / TASKS).toFixed(2)} ms per job ` +
        `(ratio ${median(cpuRatios).toFixed(2)}, by pass: ${list(cpuRatios, (x) => x.toFixed(2))})`,
    );
    console.log(`  of which this Node process (the clients on both sides): ${(pathWhole.node / TASKS).toFixed(2)} ms per task, ${(rawWhole.node / TASKS).toFixed(2)} ms per job`);
    // The two halves apart (1c): the consuming half is the pass's CPU time less the producing half's.
    const half = (task: string, t: { busy: number; node: number }, job: string, j: { busy: number; node: number }) =>
      `${task} ${(t.busy / TASKS).toFixed(2)} ms per task (Node ${(t.node / TASKS).toFixed(2)}), ${job} ${(j.busy / TASKS).toFixed(2)} ms per job (Node ${(j.node / TASKS).toFixed(2)}): ratio ${(j.busy / t.busy).toFixed(2)}`;
    const rest = (whole: { busy: number; node: number }, producing: { busy: number; node: number }) => ({ busy: whole.busy - producing.busy, node: whole.node - producing.node });
    console.log(`  producing half: ${half("creates alone", createsAlone, "sends alone", sendsAlone)}`);
    console.log(`  consuming half: ${half("wake to done", rest(pathWhole, createsAlone), "fetch and complete", rest(rawWhole, sendsAlone))}`);
    // How busy the machine was in each pass. A pass that left it idle waited on something
    // else (on a slow disk, the commits' flushes: three a pg-boss job, two a task), and its
    // rate then says more about that than about CPU work; the CPU ratio still compares work.
    const cores = availableParallelism();
    const busy = (p: { secs: number; busy: number }) => `${Math.round((p.busy / (p.secs * 1000 * cores)) * 100)}%`;
    console.log(`machine busy (of ${cores} cores): baseline passes ${raws.map(busy).join(", ")}; one-tenant passes ${paths.map(busy).join(", ")}`);
  }
  console.log(`wake latency, task created → run started: p50 ${pct(latencies, 50)} ms, p99 ${pct(latencies, 99)} ms (target p50 < 50 ms)`);
  console.log(
    `${processed} idle scheduled agents: ${ticks} ticks, ${(tickMs / ticks).toFixed(1)} ms of database time per 1,000-agent tick, ` +
      `model calls ${llmAfter - llmBefore}, wakes ${wakesAfter - wakesBefore}; plain UPDATE floor ${(plainMs / ticks).toFixed(1)} ms per 1,000 (ratio ${(plainMs / tickMs).toFixed(2)}); ` +
      `with ${BACKLOG.toLocaleString("en")} tasks queued in a domain none of them covers: ${backlogTickMs.toFixed(1)} ms per tick\n`,
  );
  console.log(
    `task create, one at a time: ${smallFleetMs.toFixed(2)} ms in a tenant of ${smallFleetAgents} agents, ${bigFleetMs.toFixed(2)} ms in one of ${bigFleetAgents.toLocaleString("en")} ` +
      `(ratio ${(smallFleetMs / bigFleetMs).toFixed(2)}); ${allCoverMs.toFixed(2)} ms for a domain ${IDLE_AGENTS.toLocaleString("en")} of them cover\n`,
  );
  await producer.stop({ graceful: false, timeout: 1000 });
  await database.close();
} finally {
  await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  await admin.end();
  await server.stop();
}
