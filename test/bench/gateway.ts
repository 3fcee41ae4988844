/**
 * MCP tool gateway benchmarks, against a baseline measured in the same run, all on the real
 * `mcp-server-everything` over stdio:
 *  1. baseline: N sequential `tools/call` of its `echo` tool through the MCP SDK client
 *     directly (one connection, no database): p50/p99 latency and calls/s;
 *  2. the same tool through Bosun: a scripted agent whose runs each make many
 *     `mcp__everything__echo` calls, executed by `agentRuntime(...).wake(...)` in this
 *     process. Each call is one model turn: the scripted model's answer, its `llm` step,
 *     the policy gate + the per-minute call slot (phase 1 transaction), the MCP call, then
 *     the audit + the tool step (phase 3 transaction). Per-call time two ways: the whole
 *     runs' wall time divided by the calls, and the gaps between consecutive tool steps'
 *     `created_at` (database clock) within a run; the ratio is against the baseline;
 *  3. approval round trip through a worker (pg-boss): an agent whose descriptor requires
 *     approval for the tool (`spec.approval.tools`); per approval, the time from its
 *     decision (`services.approvals.approve`) to the tool step written by the resumed
 *     run, on the database clock (waitpoint `resolved_at` → step `created_at`) and on
 *     this process's clock (before approve() → step seen by a 2 ms poll).
 * Prints figures; asserts nothing.
 */
import { randomBytes } from "node:crypto";
import path from "node:path";
import { agentRuntime, createServices, gatewayExecutor, providerCache, spendEngine, systemActor } from "@bosun/core";
import { createDatabase, runMigrations } from "@bosun/db";
import { createJobs } from "@bosun/jobs";
import { startWorker } from "@bosun/worker";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { getDefaultEnvironment, StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import pg from "pg";
import pino from "pino";
import { testServer } from "../setup/server";

const CALLS = Number(process.env.BENCH_GATEWAY_CALLS ?? 300);
/** Calls per Bosun run (a scripted model plays at most 200 script steps; one call each). */
const PER_RUN = Math.min(150, CALLS);
const APPROVALS = Number(process.env.BENCH_APPROVALS ?? 30);
const silent = pino({ level: "silent" });

process.env.BOSUN_SECRET_KEY ??= randomBytes(32).toString("hex");
// The stdio server is spawned by name from PATH (the SDK passes PATH through): make sure
// the workspace's bin directory is on it when run without npm.
const bin = path.resolve(import.meta.dirname, "../../node_modules/.bin");
if (!(process.env.PATH ?? "").split(path.delimiter).includes(bin)) process.env.PATH = `${bin}${path.delimiter}${process.env.PATH ?? ""}`;

const server = await testServer();
const dbName = `bosun_bench_${randomBytes(3).toString("hex")}`;
const admin = new pg.Client({ connectionString: server.adminUrl });
await admin.connect();
await admin.query(`CREATE DATABASE ${dbName}`);
const u = new URL(server.adminUrl);
u.pathname = `/${dbName}`;
const url = u.toString();
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Statements sent by every pg client of this process while `counting`, and their summed time. */
let counting = false;
const statements = { n: 0, ms: 0 };
/** BENCH_PROFILE=1: the same, by statement (its name, or its first words). */
const PROFILE = process.env.BENCH_PROFILE === "1";
const byStatement = new Map<string, { n: number; ms: number }>();
const originalQuery = pg.Client.prototype.query as (...a: unknown[]) => unknown;
(pg.Client.prototype as unknown as { query: (...a: unknown[]) => unknown }).query = function (this: pg.Client, ...args: unknown[]) {
  const t0 = performance.now();
  const r = originalQuery.apply(this, args);
  if (counting && r && typeof (r as Promise<unknown>).then === "function") {
    void (r as Promise<unknown>).then(
      () => {
        statements.n++;
        statements.ms += performance.now() - t0;
        if (PROFILE) {
          const q = args[0] as string | { text?: string; name?: string };
          const key = (typeof q === "string" ? q : (q?.name ?? q?.text ?? "?")).replace(/\s+/g, " ").slice(0, 100);
          const e = byStatement.get(key) ?? { n: 0, ms: 0 };
          e.n++;
          e.ms += performance.now() - t0;
          byStatement.set(key, e);
        }
      },
      () => {},
    );
  }
  return r;
};

const cleanups: Array<() => Promise<unknown>> = [];
try {
  // 1. The baseline: the SDK client straight to the server.
  const direct = new Client({ name: "bosun-bench", version: "0.0.0" });
  cleanups.push(() => direct.close());
  await direct.connect(new StdioClientTransport({ command: "mcp-server-everything", args: ["stdio"], env: getDefaultEnvironment(), stderr: "ignore" }));
  for (let i = 0; i < 30; i++) await direct.callTool({ name: "echo", arguments: { message: `warm ${i}` } });
  const directLat: number[] = [];
  const directStart = performance.now();
  for (let i = 0; i < CALLS; i++) {
    const t0 = performance.now();
    const r = await direct.callTool({ name: "echo", arguments: { message: `hello ${i}` } });
    directLat.push(performance.now() - t0);
    if (r.isError) throw new Error(`direct echo failed: ${JSON.stringify(r.content)}`);
  }
  const directSecs = (performance.now() - directStart) / 1000;
  await direct.close();

  // 2. Through Bosun.
  await runMigrations(url);
  const database = createDatabase(url, { max: 10 });
  cleanups.push(() => database.close());
  const producer = createJobs({ connectionString: url, role: "producer", max: 2 });
  await producer.start();
  cleanups.push(() => producer.stop({ graceful: false, timeout: 1000 }));
  const services = createServices({ database, jobs: producer, secureCookies: false });
  const signup = await services.identity.signup({ tenant: { name: "Bench", timeZone: "UTC" }, owner: { email: "bench@example.com", password: "bench-password-1" } });
  const tenantId = signup.tenant.id;
  const actor = systemActor(tenantId, "bench");
  // The default 60 calls/minute would refuse most of the run: the slot is still taken, just never full.
  await services.gateway.create(actor, { name: "everything", transport: "stdio", command: "mcp-server-everything", args: ["stdio"], limits: { callsPerMinute: 100_000 } });
  await services.gateway.refresh(actor, "everything");
  const q = async <T = Record<string, unknown>>(sql: string, values: unknown[] = []) => (await database.pool.query(sql, values)).rows as T[];
  const apply = (name: string, script: unknown[], extra: Record<string, unknown> = {}) =>
    services.agents.apply(actor, name, {
      apiVersion: "agent.os/v1",
      kind: "Agent",
      metadata: { name, owner: "bench" },
      spec: { model: { provider: "scripted", name: "scripted-small", script }, soul: "", tools: ["mcp://gateway/everything/*"], ...extra },
    });
  const echoes = (n: number, tag: string) => Array.from({ length: n }, (_, i) => ({ call: "mcp__everything__echo", input: { message: `${tag} ${i}` } }));

  // The runtime's own gateway executor, its three phases timed (prepare runs inside the
  // gate's transaction, complete inside the step's; see packages/core/src/gateway/execute.ts).
  const phases = { prepare: [] as number[], call: [] as number[], complete: [] as number[] };
  const inner = gatewayExecutor({ database, spend: spendEngine({ jobs: producer }) });
  const timed =
    <A extends unknown[], R>(into: number[], fn: (...a: A) => Promise<R>) =>
    async (...a: A) => {
      const t0 = performance.now();
      try {
        return await fn(...a);
      } finally {
        if (counting) into.push(performance.now() - t0);
      }
    };
  const gateway = { ...inner, prepare: timed(phases.prepare, inner.prepare), call: timed(phases.call, inner.call), complete: timed(phases.complete, inner.complete) };
  cleanups.push(() => inner.close());

  // Room for PER_RUN calls in one run: 2 steps a call, and a conversation that grows with each.
  const rt = agentRuntime({
    gateway,
    database,
    jobs: producer,
    tasks: services.tasks,
    provider: providerCache(),
    workerId: "bench-gw",
    leaseTtlSeconds: 60,
    limits: { maxSteps: 4 * PER_RUN + 20, maxTokens: 1_000_000_000 },
  });
  cleanups.push(async () => rt.stop());

  /** One task for `agent`, run to the end by rt.wake: wall time and the run's id. */
  async function runOnce(agent: string, script: unknown[]) {
    const a = (await apply(agent, script)).body;
    const task = (await services.tasks.create(actor, { title: `echo for ${agent}`, body: "", priority: 50, depends_on: [], requires_review: false, max_attempts: 1, assignee: agent })).body;
    const t0 = performance.now();
    await rt.wake({ tenantId, agentId: a.id });
    const ms = performance.now() - t0;
    const [t] = await q<{ run_id: string; status: string }>(`SELECT run_id, status FROM tasks WHERE id = $1`, [task.id]);
    if (t?.status !== "done") throw new Error(`bench run for ${agent} ended with task ${t?.status}`);
    return { ms, runId: t.run_id };
  }

  await runOnce("warm", echoes(20, "warm")); // connection to the server, plans, caches
  let bosunMs = 0;
  const runIds: string[] = [];
  counting = true;
  for (let done = 0, i = 0; done < CALLS; i++) {
    const n = Math.min(PER_RUN, CALLS - done);
    const r = await runOnce(`echo-${i}`, echoes(n, `hello ${i}`));
    bosunMs += r.ms;
    runIds.push(r.runId);
    done += n;
  }
  counting = false;
  const toolSteps = await q<{ run_id: string; seq: number; status: string; at: string }>(
    `SELECT run_id, seq, status, extract(epoch FROM created_at) * 1000 AS at FROM steps
     WHERE run_id = ANY($1) AND kind = 'tool' AND name = 'mcp__everything__echo' ORDER BY run_id, seq`,
    [runIds],
  );
  const okCalls = toolSteps.filter((s) => s.status === "ok").length;
  if (okCalls !== CALLS) throw new Error(`expected ${CALLS} ok echo steps, got ${okCalls} of ${toolSteps.length}`);
  const gaps: number[] = [];
  // By position in the run: does a call get slower as the run's conversation grows?
  const early: number[] = [];
  const late: number[] = [];
  for (let i = 1, k = 1; i < toolSteps.length; i++, k++) {
    if (toolSteps[i]!.run_id !== toolSteps[i - 1]!.run_id) {
      k = 0;
      continue;
    }
    const gap = Number(toolSteps[i]!.at) - Number(toolSteps[i - 1]!.at);
    gaps.push(gap);
    if (k <= 20) early.push(gap);
    if (toolSteps[i + 20]?.run_id !== toolSteps[i]!.run_id) late.push(gap);
  }
  const stepsPerCall = (await q<{ n: number }>(`SELECT count(*)::int AS n FROM steps WHERE run_id = ANY($1)`, [runIds]))[0]!.n / CALLS;
  rt.stop();

  // 3. Approval round trip, through a worker: the run's wake and the approval's wake are pg-boss jobs.
  const workerJobs = createJobs({ connectionString: url, role: "worker", max: 4 });
  const ws = createServices({ database, jobs: workerJobs, secureCookies: false });
  const wrt = agentRuntime({ database, jobs: workerJobs, tasks: ws.tasks, provider: providerCache(), workerId: "bench-gw-worker", leaseTtlSeconds: 30 });
  cleanups.push(async () => wrt.stop());
  const worker = await startWorker({ jobs: workerJobs, services: ws, logger: silent, runtime: wrt, mailer: null, tickMs: 1000 });
  cleanups.push(() => worker.stop());
  await apply("gated", [{ call: "mcp__everything__echo", input: { message: "approved echo" } }], { approval: { tools: ["mcp://gateway/everything/echo"] } });
  async function until<T>(fn: () => Promise<T | undefined | null | false>, what: string, ms = 30_000): Promise<T> {
    const end = Date.now() + ms;
    for (;;) {
      const v = await fn();
      if (v) return v;
      if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
      await sleep(2);
    }
  }
  const dbRound: number[] = [];
  const jsRound: number[] = [];
  for (let i = 0; i < APPROVALS + 3; i++) {
    const runId = (await services.runs.start(actor, "gated", { input: `approval ${i}` })).id;
    const approval = await until(
      async () => (await q<{ id: string }>(`SELECT id FROM waitpoints WHERE run_id = $1 AND kind = 'approval' AND status = 'pending'`, [runId]))[0],
      "the run to ask for approval",
    );
    const t0 = performance.now();
    await services.approvals.approve(actor, approval.id, { comment: "bench" });
    const step = await until(
      async () => (await q<{ at: string }>(`SELECT extract(epoch FROM created_at) * 1000 AS at FROM steps WHERE run_id = $1 AND kind = 'tool' AND status = 'ok'`, [runId]))[0],
      "the resumed run's tool step",
    );
    const js = performance.now() - t0;
    const [w] = await q<{ at: string }>(`SELECT extract(epoch FROM resolved_at) * 1000 AS at FROM waitpoints WHERE id = $1`, [approval.id]);
    await until(async () => (await q<{ status: string }>(`SELECT status FROM runs WHERE id = $1`, [runId]))[0]?.status === "succeeded", "the run to finish");
    if (i < 3) continue; // warm-up
    dbRound.push(Number(step.at) - Number(w!.at));
    jsRound.push(js);
  }
  await worker.stop();
  wrt.stop();

  // The table.
  const perCallDirect = (directSecs * 1000) / CALLS;
  const perCallBosun = bosunMs / CALLS;
  const f = (n: number) => n.toFixed(2).padStart(8);
  const rate = (n: number) => n.toFixed(0).padStart(6);
  console.log(`\nMCP tool gateway: mcp-server-everything 'echo' over stdio (Postgres: ${server.kind})`);
  console.log(`${"".padEnd(58)}   calls/s    mean ms     p50 ms     p99 ms`);
  console.log(
    `${`direct SDK client, ${CALLS} sequential calls (baseline)`.padEnd(58)}   ${rate(CALLS / directSecs)}   ${f(mean(directLat))}   ${f(pct(directLat, 50))}   ${f(pct(directLat, 99))}`,
  );
  console.log(`${`Bosun, ${CALLS} calls in runs of ${PER_RUN}: run wall time / calls`.padEnd(58)}   ${rate(1000 / perCallBosun)}   ${f(perCallBosun)}          -          -`);
  console.log(
    `${"Bosun, gap between consecutive tool steps (db clock)".padEnd(58)}   ${rate(1000 / mean(gaps))}   ${f(mean(gaps))}   ${f(pct(gaps, 50))}   ${f(pct(gaps, 99))}`,
  );
  console.log(
    `${"  the same, calls 2-21 of each run (short conversation)".padEnd(58)}   ${rate(1000 / mean(early))}   ${f(mean(early))}   ${f(pct(early, 50))}   ${f(pct(early, 99))}\n` +
      `${"  the same, the last 20 calls of each run (long one)".padEnd(58)}   ${rate(1000 / mean(late))}   ${f(mean(late))}   ${f(pct(late, 50))}   ${f(pct(late, 99))}`,
  );
  const phase = (label: string, xs: number[]) =>
    console.log(`${`  ${label}`.padEnd(58)}        -   ${f(mean(xs))}   ${f(pct(xs, 50))}   ${f(pct(xs, 99))}`);
  phase("gateway phase 1: resolve tool + call slot (tx 1)", phases.prepare);
  phase("gateway phase 2: the MCP call (no tx open)", phases.call);
  phase("gateway phase 3: result, audit queued (tx 2)", phases.complete);
  console.log(
    `  SQL: ${(statements.n / CALLS).toFixed(1)} statements per call; the run waits on SQL ${((statements.ms / bosunMs) * 100).toFixed(0)}% of its wall time`,
  );
  if (PROFILE) {
    for (const [text, v] of [...byStatement].sort((a, b) => b[1].ms - a[1].ms).slice(0, 30)) {
      console.log(`${(v.n / CALLS).toFixed(2).padStart(6)}/call ${(v.ms / CALLS).toFixed(2).padStart(6)} ms/call  ${text}`);
    }
  }
  console.log(
    `ratio ${(perCallDirect / perCallBosun).toFixed(3)} of the baseline's calls/s; overhead per call ${(perCallBosun - perCallDirect).toFixed(2)} ms ` +
      `(${(perCallBosun / perCallDirect).toFixed(1)}x the direct call)`,
  );
  console.log(`  Each Bosun call is one model turn: scripted model answer + llm step; the policy gate + call slot (tx 1); the MCP call;`);
  console.log(`  the tool step + its audit row (tx 2): ${stepsPerCall.toFixed(2)} steps written per call. Per-call time is measured two ways:`);
  console.log(`  wall time of rt.wake() summed over the runs / calls, and created_at gaps between successive echo steps of a run.`);
  console.log(`approval round trip through a worker (pg-boss), ${dbRound.length} approvals, decision → tool step of the resumed run:`);
  console.log(`  database clock (waitpoint resolved_at → step created_at)  p50 ${f(pct(dbRound, 50))} ms   p99 ${f(pct(dbRound, 99))} ms   mean ${f(mean(dbRound))} ms`);
  console.log(`  bench clock (before approve() → step seen, 2 ms poll)      p50 ${f(pct(jsRound, 50))} ms   p99 ${f(pct(jsRound, 99))} ms   mean ${f(mean(jsRound))} ms\n`);
} finally {
  // Stops runtimes and the worker (closing their MCP connections and stdio children), the queue, the pool.
  for (const c of cleanups.reverse()) await c().catch(() => {});
  await sleep(200);
  await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  await admin.end();
  await server.stop();
}
