import { spawn } from "node:child_process";
import path from "node:path";
import { type AgentRuntime, agentRuntime, createServices, type DomainServices, providerCache, runtimeSweep, scheduleTick, systemActor } from "@bosun/core";
import { createDatabase, type Database, repo, withTenant } from "@bosun/db";
import { createJobs, type Jobs } from "@bosun/jobs";
import { ModelError, type ModelProvider, type ModelRequest } from "@bosun/llm";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDb, type TestDb } from "../../../test/helpers/db";
import { recordQueries } from "../../../test/helpers/queries";
import { startWorker, type Worker } from "../src/worker";

let db: TestDb;
let producer: Jobs;
let services: DomainServices;
let tenantId: string;
const silent = pino({ level: process.env.TEST_LOG ?? "silent" });

async function until<T>(fn: () => Promise<T | undefined | null | false>, ms = 20_000, what = "condition"): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`${what} not met in ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const q = async <T = Record<string, unknown>>(sql: string, values: unknown[] = []) => (await db.database.pool.query(sql, values)).rows as T[];

function descriptor(name: string, model: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) {
  return {
    apiVersion: "agent.os/v1",
    kind: "Agent",
    metadata: { name, owner: "tests" },
    spec: { model: { provider: "scripted", name: "scripted-small", ...model }, soul: `You are ${name}.`, ...extra },
  };
}

const actor = () => systemActor(tenantId, "test");
const apply = (name: string, model?: Record<string, unknown>, extra?: Record<string, unknown>) =>
  services.agents.apply(actor(), name, descriptor(name, model, extra)).then((r) => r.body);
const createTask = (title: string, more: Record<string, unknown> = {}) =>
  services.tasks.create(actor(), { title, body: "", priority: 50, depends_on: [], requires_review: false, max_attempts: 3, ...more }).then((r) => r.body);

/** A provider that counts calls, around the real ones. */
function counting() {
  const real = providerCache();
  const calls: ModelRequest[] = [];
  return {
    calls,
    provider: (m: Parameters<ReturnType<typeof providerCache>>[0]): ModelProvider => ({
      name: "counting",
      complete: (req) => {
        calls.push(req);
        return real(m).complete(req);
      },
    }),
  };
}

function runtimeFor(database: Database, jobs: Jobs, id: string, extra: Partial<Parameters<typeof agentRuntime>[0]> = {}): AgentRuntime {
  const s = createServices({ database, jobs, secureCookies: false });
  return agentRuntime({ database, jobs, tasks: s.tasks, provider: providerCache(), workerId: id, leaseTtlSeconds: 2, ...extra });
}

beforeAll(async () => {
  db = await createTestDb();
  producer = createJobs({ connectionString: db.url, role: "producer", max: 2 });
  await producer.start();
  services = createServices({ database: db.database, jobs: producer, secureCookies: false });
  const s = await services.identity.signup({ tenant: { name: "Runtime", timeZone: "UTC" }, owner: { email: "rt@example.com", password: "runtime-password-1" } });
  tenantId = s.tenant.id;
});
afterAll(async () => {
  await producer.stop({ graceful: false, timeout: 1000 });
  await db.drop();
});

describe("a run, end to end through the worker", () => {
  it("wakes on a new task, calls the model, completes the task and records every step", async () => {
    const agent = await apply("finisher");
    const jobs = createJobs({ connectionString: db.url, role: "worker", max: 2 });
    const s = createServices({ database: db.database, jobs, secureCookies: false });
    const worker = await startWorker({ jobs, services: s, logger: silent, runtime: runtimeFor(db.database, jobs, "w-e2e") });
    try {
      const task = await createTask("Summarise the ledger", { assignee: "finisher" });
      const done = await until(async () => (await q(`SELECT status, result, run_id FROM tasks WHERE id = $1`, [task.id]))[0]?.status === "done" && true, 15_000, "task done");
      expect(done).toBe(true);
      const [t] = await q<{ result: string; run_id: string }>(`SELECT result, run_id FROM tasks WHERE id = $1`, [task.id]);
      expect(String(t!.result)).toContain(task.id);
      const run = await services.runs.get(actor(), t!.run_id);
      expect(run).toMatchObject({ status: "succeeded", trigger: "task", taskId: task.id, agentId: agent.id, model: "scripted-small" });
      expect(run.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
      const steps = (await services.runs.steps(actor(), run.id, { limit: 50 })).items;
      expect(steps.map((x) => [x.kind, x.name, x.status])).toEqual([
        ["llm", "scripted-small", "ok"],
        ["tool", "complete_task", "ok"],
      ]);
      expect(steps[0]!.inputTokens + steps[0]!.cacheWriteTokens).toBeGreaterThan(0);
      expect(steps[0]!.outputTokens).toBeGreaterThan(0);
      // Nothing left behind: the lease is released and no run is active.
      await until(
        async () => (await q<{ lease_owner: string | null }>(`SELECT lease_owner FROM agent_sessions WHERE agent_id = $1`, [agent.id]))[0]?.lease_owner === null,
        5000,
        "lease released",
      );
    } finally {
      await worker.stop();
    }
  });

  it("leaves a paused agent's tasks queued and does not keep waking it", async () => {
    const agent = await apply("napper");
    await services.agents.pause(actor(), "napper");
    const task = await createTask("wait for me", { assignee: "napper" });
    const wakes = async () =>
      (await q<{ n: number }>(`SELECT count(*)::int AS n FROM pgboss.job WHERE name = 'agent.wake' AND data->>'agentId' = $1`, [agent.id]))[0]!.n;
    const before = await wakes();
    const rt = runtimeFor(db.database, producer, "w-nap");
    expect((await rt.wake({ tenantId, agentId: agent.id })).outcome).toBe("idle");
    expect(await wakes()).toBe(before);
    expect((await q(`SELECT status FROM tasks WHERE id = $1`, [task.id]))[0]).toEqual({ status: "queued" });
    await services.agents.resume(actor(), "napper");
    expect((await rt.wake({ tenantId, agentId: agent.id })).outcome).toBe("ran");
    expect((await q(`SELECT status FROM tasks WHERE id = $1`, [task.id]))[0]).toEqual({ status: "done" });
  });

  it("sees work only where a claim would find it", async () => {
    // `finance/*` covers one path segment, not `finance/ledger/2026`. The idle checks must
    // use the claim's rule, or the agent is woken for work it cannot take, finds none, and
    // is woken again.
    const agent = await apply("narrow", {}, { domains: ["finance/*"], schedule: { every: "15m" } });
    await createTask("too deep", { domain: "finance/ledger/2026" });
    const wakes = async () =>
      (await q<{ n: number }>(`SELECT count(*)::int AS n FROM pgboss.job WHERE name = 'agent.wake' AND data->>'agentId' = $1`, [agent.id]))[0]!.n;
    const before = await wakes();
    expect((await runtimeFor(db.database, producer, "w-narrow").wake({ tenantId, agentId: agent.id })).outcome).toBe("idle");
    await q(`UPDATE agents SET next_wake_at = now() - interval '1 second' WHERE id = $1`, [agent.id]);
    const tick = await scheduleTick({ database: db.database, jobs: producer });
    expect(tick.woken).toBe(0);
    expect(await wakes()).toBe(before);
  });

  it("runs a dependency chain in order", async () => {
    await apply("chain");
    const a = await createTask("first", { assignee: "chain" });
    const b = await createTask("second", { assignee: "chain", depends_on: [a.id] });
    const c = await createTask("third", { assignee: "chain", depends_on: [b.id] });
    const rt = runtimeFor(db.database, producer, "w-chain");
    const agent = (await q<{ id: string }>(`SELECT id FROM agents WHERE name = 'chain'`))[0]!;
    for (let i = 0; i < 5; i++) await rt.wake({ tenantId, agentId: agent.id });
    const rows = await q<{ id: string; status: string; completed_at: Date }>(`SELECT id, status, completed_at FROM tasks WHERE id = ANY($1) ORDER BY completed_at`, [[a.id, b.id, c.id]]);
    expect(rows.map((r) => r.status)).toEqual(["done", "done", "done"]);
    expect(rows.map((r) => r.id)).toEqual([a.id, b.id, c.id]);
  });
});

describe("leases and fencing", () => {
  it("refuses every write of a worker that lost its lease, and the new holder finishes the run", async () => {
    const agent = await apply("fenced-agent");
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const real = providerCache();
    let inCall = false;
    // Worker A's model call stalls until we let it go, long after its lease is gone.
    const slowA = agentRuntime({
      database: db.database,
      jobs: producer,
      tasks: services.tasks,
      workerId: "w-A",
      // Long enough that A's heartbeat does not revive the lease we expire by hand below.
      leaseTtlSeconds: 30,
      provider: (m) => ({
        name: "slow",
        complete: async (req) => {
          inCall = true;
          await gate;
          return real(m).complete(req);
        },
      }),
    });
    const task = await createTask("contested", { assignee: "fenced-agent" });
    const a = slowA.wake({ tenantId, agentId: agent.id });
    // Wait until A is inside the model call: its writes before the call (run start, budget
    // reservation) extend the lease, and would undo the expiry below.
    await until(async () => inCall, 10_000, "A in its model call");
    // A's lease expires; B takes the session (epoch + 1) and completes the run.
    await q(`UPDATE agent_sessions SET lease_expires_at = now() - interval '1 second' WHERE agent_id = $1`, [agent.id]);
    const b = runtimeFor(db.database, producer, "w-B");
    expect((await b.wake({ tenantId, agentId: agent.id })).outcome).toBe("ran");
    const [t] = await q<{ status: string; run_id: string }>(`SELECT status, run_id FROM tasks WHERE id = $1`, [task.id]);
    expect(t!.status).toBe("done");
    const stepsBefore = await q(`SELECT seq, lease_epoch FROM steps WHERE run_id = $1 ORDER BY seq`, [t!.run_id]);
    // Now A's call returns: its step write is fenced off and nothing changes.
    release();
    expect((await a).outcome).toBe("lease_lost");
    const stepsAfter = await q(`SELECT seq, lease_epoch FROM steps WHERE run_id = $1 ORDER BY seq`, [t!.run_id]);
    expect(stepsAfter).toEqual(stepsBefore);
    expect(new Set(stepsAfter.map((s) => Number(s.lease_epoch))).size).toBe(1);
    const [run] = await q<{ status: string }>(`SELECT status FROM runs WHERE id = $1`, [t!.run_id]);
    expect(run!.status).toBe("succeeded");
  });

  it("recovers a run from a worker killed with SIGKILL mid-call", async () => {
    const agent = await apply("victim", { name: "hang" });
    // One process (node with tsx's loader), so SIGKILL kills the worker itself, not a wrapper.
    const child = spawn(process.execPath, ["--import", "tsx", path.resolve("test/fixtures/runtime-worker.ts")], {
      env: { ...process.env, DATABASE_URL: db.url, WORKER_ID: "doomed", LEASE_TTL: "2" },
      stdio: ["ignore", "pipe", "inherit"],
    });
    try {
      await until(async () => child.stdout && (await new Promise<boolean>((r) => child.stdout!.once("data", (d) => r(String(d).includes("ready"))))), 30_000, "child ready");
      const task = await createTask("doomed work", { assignee: "victim" });
      await until(async () => (await q(`SELECT 1 FROM agent_sessions WHERE agent_id = $1 AND lease_owner = 'doomed'`, [agent.id])).length > 0, 15_000, "child holds lease");
      await until(async () => (await q(`SELECT 1 FROM runs WHERE task_id = $1 AND status = 'running'`, [task.id])).length > 0, 10_000, "run started");
      child.kill("SIGKILL");
      await new Promise((r) => child.once("exit", r));
      // The survivor's model answers; it waits out the dead worker's lease, then resumes.
      const jobs = createJobs({ connectionString: db.url, role: "worker", max: 2 });
      const s = createServices({ database: db.database, jobs, secureCookies: false });
      const survivor = agentRuntime({
        database: db.database,
        jobs,
        tasks: s.tasks,
        workerId: "survivor",
        leaseTtlSeconds: 2,
        provider: (m) => providerCache()({ ...m, name: "scripted-small" }),
      });
      const worker = await startWorker({ jobs, services: s, logger: silent, runtime: survivor, tickMs: 300 });
      try {
        await until(async () => (await q(`SELECT status FROM tasks WHERE id = $1`, [task.id]))[0]?.status === "done", 20_000, "task done after crash").catch(async (e) => {
          console.log(JSON.stringify({
            task: await q(`SELECT status, attempts, lease_owner, lease_epoch, lease_expires_at FROM tasks WHERE id = $1`, [task.id]),
            runs: await q(`SELECT id, status FROM runs WHERE task_id = $1`, [task.id]),
            session: await q(`SELECT lease_owner, lease_epoch, lease_expires_at, wake_requested_at FROM agent_sessions WHERE agent_id = $1`, [agent.id]),
            jobs: await q(`SELECT state, data, singleton_key, retry_count FROM pgboss.job WHERE name = 'agent.wake' AND data->>'agentId' = $1`, [agent.id]),
            now: await q(`SELECT now()`),
          }, null, 1));
          throw e;
        });
        const [t] = await q<{ run_id: string; attempts: number }>(`SELECT run_id, attempts FROM tasks WHERE id = $1`, [task.id]);
        const runs = await q(`SELECT id, status FROM runs WHERE task_id = $1`, [task.id]);
        expect(runs).toEqual([{ id: t!.run_id, status: "succeeded" }]);
        const [sess] = await q<{ lease_epoch: string }>(`SELECT lease_epoch FROM agent_sessions WHERE agent_id = $1`, [agent.id]);
        expect(Number(sess!.lease_epoch)).toBeGreaterThanOrEqual(2);
      } finally {
        await worker.stop();
      }
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
    }
  });

  it("on shutdown stops mid-call, releases the lease and leaves the run for another worker", async () => {
    const agent = await apply("shutdown-agent");
    const task = await createTask("interrupted", { assignee: "shutdown-agent" });
    let calls = 0;
    // A model call that only ends when it is aborted, as a long real call would be.
    const stuck: ModelProvider = {
      name: "stuck",
      complete: (req) => {
        calls++;
        return new Promise((_, reject) => req.signal?.addEventListener("abort", () => reject(new Error("aborted"))));
      },
    };
    const jobs = createJobs({ connectionString: db.url, role: "worker", max: 2 });
    const s = createServices({ database: db.database, jobs, secureCookies: false });
    const leaving = runtimeFor(db.database, jobs, "w-leaving", { provider: () => stuck, leaseTtlSeconds: 30 });
    const worker = await startWorker({ jobs, services: s, logger: silent, runtime: leaving });
    await until(async () => calls > 0, 10_000, "model called");
    await worker.stop();
    // The lease is free at once (not after 30 s), the run is still running, the task still
    // claimed, and a wake is queued for whoever comes next.
    const [session] = await q<{ lease_owner: string | null }>(`SELECT lease_owner FROM agent_sessions WHERE agent_id = $1`, [agent.id]);
    expect(session!.lease_owner).toBeNull();
    const [t] = await q<{ status: string; run_id: string }>(`SELECT status, run_id FROM tasks WHERE id = $1`, [task.id]);
    expect(t!.status).toBe("in_progress");
    expect((await q(`SELECT status FROM runs WHERE id = $1`, [t!.run_id]))[0]).toEqual({ status: "running" });
    expect(await q(`SELECT 1 FROM pgboss.job WHERE name = 'agent.wake' AND data->>'agentId' = $1 AND data->>'reason' = 'recheck' AND state = 'created'`, [agent.id])).toHaveLength(1);
    await runtimeFor(db.database, producer, "w-next").wake({ tenantId, agentId: agent.id });
    expect((await q(`SELECT status FROM tasks WHERE id = $1`, [task.id]))[0]).toEqual({ status: "done" });
    expect(await q(`SELECT id FROM runs WHERE task_id = $1`, [task.id])).toEqual([{ id: t!.run_id }]);
  });

  it("never repeats a tool's side effect when a worker crashes right after the tool step", async () => {
    const agent = await apply("crasher", { script: [{ call: "create_task", input: { title: "made once", assignee: "crasher-helper" } }] });
    await apply("crasher-helper");
    const task = await createTask("do it", { assignee: "crasher" });
    let crashed = false;
    const crashing = runtimeFor(db.database, producer, "w-crash", {
      afterStep: (s) => {
        if (s.kind === "tool" && s.name === "create_task" && !crashed) {
          crashed = true;
          throw new Error("simulated crash after the tool step committed");
        }
      },
    });
    await expect(crashing.wake({ tenantId, agentId: agent.id })).rejects.toThrow("simulated crash");
    await q(`UPDATE agent_sessions SET lease_expires_at = now() - interval '1 second' WHERE agent_id = $1`, [agent.id]);
    await runtimeFor(db.database, producer, "w-replay").wake({ tenantId, agentId: agent.id });
    expect((await q(`SELECT status FROM tasks WHERE id = $1`, [task.id]))[0]).toEqual({ status: "done" });
    expect(await q(`SELECT count(*)::int AS n FROM tasks WHERE title = 'made once'`)).toEqual([{ n: 1 }]);
    const [t] = await q<{ run_id: string }>(`SELECT run_id FROM tasks WHERE id = $1`, [task.id]);
    const steps = await q<{ kind: string; name: string }>(`SELECT kind, name FROM steps WHERE run_id = $1 ORDER BY seq`, [t!.run_id]);
    expect(steps.filter((s) => s.name === "create_task")).toHaveLength(1);
  });
});

describe("steps as written", () => {
  it("hands each step to afterStep exactly as it is stored, though its write returns only its time", async () => {
    // The model's step goes with the turn's BEGIN, the tool's with its COMMIT; neither is
    // read back (writtenStep builds the row from what was sent).
    const agent = await apply("step-echo", { script: [{ call: "complete_task", input: { result: { summary: "done", n: 2, nested: { ok: true } } } }] });
    const task = await createTask("echo my steps", { assignee: "step-echo" });
    const seen: unknown[] = [];
    await runtimeFor(db.database, producer, "w-steps", { afterStep: (st) => void seen.push(st) }).wake({ tenantId, agentId: agent.id });
    const [t] = await q<{ run_id: string; status: string }>(`SELECT run_id, status FROM tasks WHERE id = $1`, [task.id]);
    expect(t!.status).toBe("done");
    const stored = await withTenant(db.database, tenantId, (tx) => repo.runtime.listSteps(tx, { tenantId, runId: t!.run_id }));
    expect(stored.map((st) => [st.kind, st.name])).toEqual([
      ["llm", "scripted-small"],
      ["tool", "complete_task"],
    ]);
    expect(seen).toEqual(stored);
  });
});

describe("waiting and waking", () => {
  it("keeps a delegating run's task while its sub-agent works, so the task is not handed out again", async () => {
    const boss = await apply("slow-boss", { script: [{ call: "delegate", input: { agent: "slow-helper", instructions: "take your time" } }] });
    const helper = await apply("slow-helper");
    const task = await createTask("delegated work", { assignee: "slow-boss" });
    const rt = runtimeFor(db.database, producer, "w-slow-boss");
    await rt.wake({ tenantId, agentId: boss.id });
    const [t] = await q<{ run_id: string; status: string }>(`SELECT run_id, status FROM tasks WHERE id = $1`, [task.id]);
    expect(t!.status).toBe("in_progress");
    expect((await q(`SELECT status FROM runs WHERE id = $1`, [t!.run_id]))[0]).toEqual({ status: "waiting" });
    // The helper has not run yet; the task's lease is about to run out. The sweep keeps it,
    // so lease recovery leaves the task with the waiting run.
    await q(`UPDATE tasks SET lease_expires_at = now() + interval '1 second' WHERE id = $1`, [task.id]);
    await runtimeSweep({ database: db.database, jobs: producer });
    const [kept] = await q<{ ahead: number }>(`SELECT extract(epoch FROM lease_expires_at - now())::int AS ahead FROM tasks WHERE id = $1`, [task.id]);
    expect(kept!.ahead).toBeGreaterThan(240);
    await new Promise((r) => setTimeout(r, 1100));
    expect(await services.tasks.recoverExpiredLeases()).toMatchObject({ requeued: 0, escalated: 0 });
    // The helper finishes; the boss resumes and completes the task on its first attempt.
    await runtimeFor(db.database, producer, "w-slow-helper").wake({ tenantId, agentId: helper.id });
    for (let i = 0; i < 3; i++) await rt.wake({ tenantId, agentId: boss.id });
    expect((await q(`SELECT status, attempts FROM tasks WHERE id = $1`, [task.id]))[0]).toEqual({ status: "done", attempts: 0 });
    expect((await q(`SELECT count(*)::int AS n FROM runs WHERE task_id = $1`, [task.id]))[0]).toEqual({ n: 1 });
  });

  it("resumes a parent exactly once when its child finishes before the parent has released", async () => {
    const parent = await apply("parent", { script: [{ call: "delegate", input: { agent: "child", instructions: "count to three" } }] });
    const child = await apply("child");
    const task = await createTask("needs help", { assignee: "parent" });
    const childRuntime = runtimeFor(db.database, producer, "w-child");
    const parentRuntime = runtimeFor(db.database, producer, "w-parent", {
      // Right after the delegation commits, and before the parent releases its lease,
      // the child runs to the end and resolves the parent's waitpoint.
      afterStep: async (s) => {
        if (s.kind === "delegate") {
          const out = s.output as { childRunId: string };
          await childRuntime.wake({ tenantId, agentId: child.id });
          await until(async () => (await q(`SELECT status FROM runs WHERE id = $1`, [out.childRunId]))[0]?.status === "succeeded", 10_000, "child done");
        }
      },
    });
    await parentRuntime.wake({ tenantId, agentId: parent.id });
    // The waitpoint was resolved while the parent held the lease: the release saw the mark
    // and woke the parent again. Run the wakes pg-boss would deliver.
    for (let i = 0; i < 3; i++) await parentRuntime.wake({ tenantId, agentId: parent.id });
    const [t] = await q<{ status: string; run_id: string }>(`SELECT status, run_id FROM tasks WHERE id = $1`, [task.id]);
    expect(t!.status).toBe("done");
    const steps = await q<{ kind: string; name: string; output: unknown }>(`SELECT kind, name, output FROM steps WHERE run_id = $1 ORDER BY seq`, [t!.run_id]);
    expect(steps.map((s) => s.kind)).toEqual(["llm", "delegate", "llm", "tool"]);
    const run = await services.runs.get(actor(), t!.run_id);
    expect(run.tree.map((r) => r.agentId)).toEqual([parent.id, child.id]);
    expect(run.tree[1]!.parentRunId).toBe(run.id);
    expect(run.tree[1]!.traceparent.split("-")[1]).toBe(run.traceparent.split("-")[1]);
    const waits = await q<{ status: string; consumed_at: Date | null }>(`SELECT status, consumed_at FROM waitpoints WHERE run_id = $1`, [run.id]);
    expect(waits).toHaveLength(1);
    expect(waits[0]!.status).toBe("resolved");
    expect(waits[0]!.consumed_at).not.toBeNull();
  });

  it("never has two active runs for an agent under a burst of 100 messages", async () => {
    const agent = await apply("busy");
    const workers: Worker[] = [];
    const pools: Database[] = [];
    for (let i = 0; i < 3; i++) {
      const database = createDatabase(db.url, { max: 4 });
      pools.push(database);
      const jobs = createJobs({ connectionString: db.url, role: "worker", max: 2 });
      const s = createServices({ database, jobs, secureCookies: false });
      workers.push(await startWorker({ jobs, services: s, logger: silent, runtime: runtimeFor(database, jobs, `w-burst-${i}`), concurrency: 4 }));
    }
    let maxActive = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const [r] = await q<{ n: number }>(`SELECT count(*)::int AS n FROM runs WHERE agent_id = $1 AND status IN ('running', 'waiting')`, [agent.id]);
        maxActive = Math.max(maxActive, r!.n);
        await new Promise((res) => setTimeout(res, 5));
      }
    })();
    try {
      await Promise.all(Array.from({ length: 100 }, (_, i) => services.runs.sendMessage(actor(), { to: "busy", body: `message ${i}` })));
      await until(async () => (await q(`SELECT 1 FROM messages WHERE to_agent_id = $1 AND read_at IS NULL`, [agent.id])).length === 0, 20_000, "all read");
      await until(async () => (await q(`SELECT 1 FROM runs WHERE agent_id = $1 AND status IN ('running','waiting')`, [agent.id])).length === 0, 20_000, "runs over");
    } finally {
      sampling = false;
      await sampler;
      for (const w of workers) await w.stop();
      for (const p of pools) await p.close();
    }
    // Sampled while it ran: never two at once (a quick burst can also fall between samples,
    // when none is seen; the intervals below do not depend on sampling).
    expect(maxActive).toBeLessThanOrEqual(1);
    // Every run has ended, and no two runs' lifetimes overlap: each one started after the
    // previous one's end (its start is a later transaction's time).
    const [overlaps] = await q<{ unended: number; overlapping: number }>(
      `SELECT (SELECT count(*)::int FROM runs WHERE agent_id = $1 AND (started_at IS NULL OR ended_at IS NULL)) AS unended,
              (SELECT count(*)::int FROM runs x JOIN runs y ON y.agent_id = x.agent_id AND y.id > x.id
               WHERE x.agent_id = $1 AND x.started_at < y.ended_at AND y.started_at < x.ended_at) AS overlapping`,
      [agent.id],
    );
    expect(overlaps).toEqual({ unended: 0, overlapping: 0 });
    const [stats] = await q<{ runs: number; read: number }>(
      `SELECT (SELECT count(*)::int FROM runs WHERE agent_id = $1) AS runs, (SELECT count(*)::int FROM messages WHERE to_agent_id = $1 AND read_at IS NOT NULL) AS read`,
      [agent.id],
    );
    expect(stats!.read).toBe(100);
    // Bursts coalesce: far fewer runs than messages.
    expect(stats!.runs).toBeGreaterThan(0);
    expect(stats!.runs).toBeLessThan(100);
  });
});

describe("a tool in the model's turn", () => {
  it("writes an internal tool's effect and step in the transaction of the model step that asked for it", async () => {
    await apply("one-turn");
    const task = await createTask("finish in one transaction", { assignee: "one-turn" });
    const rt = runtimeFor(db.database, producer, "w-one-turn");
    const agent = (await q<{ id: string }>(`SELECT id FROM agents WHERE name = 'one-turn'`))[0]!;
    await rt.wake({ tenantId, agentId: agent.id });
    const [t] = await q<{ status: string; run_id: string; done_at: string }>(`SELECT status, run_id, completed_at::text AS done_at FROM tasks WHERE id = $1`, [task.id]);
    expect(t!.status).toBe("done");
    const steps = await q<{ kind: string; name: string; at: string }>(`SELECT kind, name, created_at::text AS at FROM steps WHERE run_id = $1 ORDER BY seq`, [t!.run_id]);
    expect(steps.map((x) => [x.kind, x.name])).toEqual([
      ["llm", "scripted-small"],
      ["tool", "complete_task"],
    ]);
    // One transaction wrote the model's step, the tool's step and the task's completion:
    // now() is the transaction's start time, the same to the microsecond in all three (the
    // tool's rows are written under savepoints, so their xmin differs; their now() does not).
    expect(new Set([...steps.map((x) => x.at), t!.done_at]).size).toBe(1);
    const [run] = await q<{ status: string; step_count: number }>(`SELECT status, step_count FROM runs WHERE id = $1`, [t!.run_id]);
    expect(run).toEqual({ status: "succeeded", step_count: 2 });
  });

  it("reads only the steps written since the last turn, and still gives the model the whole conversation", async () => {
    const talk = Array.from({ length: 5 }, (_, i) => ({ call: "send_message", input: { to: "log-peer", body: `note ${i}` } }));
    await apply("long-log", { script: talk });
    await apply("log-peer");
    const task = await createTask("five notes then done", { assignee: "long-log" });
    const counted = counting();
    const rt = runtimeFor(db.database, producer, "w-long-log", { provider: counted.provider });
    const agent = (await q<{ id: string }>(`SELECT id FROM agents WHERE name = 'long-log'`))[0]!;
    const recording = recordQueries();
    try {
      await rt.wake({ tenantId, agentId: agent.id });
    } finally {
      recording.stop();
    }
    const [t] = await q<{ status: string; run_id: string }>(`SELECT status, run_id FROM tasks WHERE id = $1`, [task.id]);
    expect(t!.status).toBe("done");
    // Each turn wrote the model's step and its tool's; the next turn read from there on
    // (the first turn, prepared with the claim, read nothing).
    const from = recording.sent.flatMap((s) => [...s.matchAll(/EXECUTE bosun_b_run_steps\('[^']*', '[^']*', '(\d+)'\)/g)].map((m) => Number(m[1])));
    expect(from).toEqual([0, 2, 4, 6, 8]);
    // The model saw the conversation grow by a tool use and its result each turn.
    expect(counted.calls.map((c) => c.messages.length)).toEqual([1, 3, 5, 7, 9, 11]);
    expect(await q(`SELECT count(*)::int AS n FROM steps WHERE run_id = $1`, [t!.run_id])).toEqual([{ n: 12 }]);
  });

  it("ends the run without touching the task when the task's lease was lost during the model call", async () => {
    await apply("lease-lost-mid-call");
    const task = await createTask("requeued while the model thinks", { assignee: "lease-lost-mid-call" });
    const real = providerCache();
    let requeued = false;
    const requeueing = (m: Parameters<typeof real>[0]): ModelProvider => ({
      name: "requeueing",
      complete: async (req) => {
        if (!requeued) {
          requeued = true;
          // What the lease sweep does to a task whose lease ran out: back to the queue, new epoch.
          await q(`UPDATE tasks SET status = 'queued', lease_owner = NULL, lease_expires_at = NULL, run_id = NULL, lease_epoch = lease_epoch + 1 WHERE id = $1`, [
            task.id,
          ]);
        }
        return real(m).complete(req);
      },
    });
    const rt = runtimeFor(db.database, producer, "w-lease-lost-mid-call", { provider: requeueing });
    const agent = (await q<{ id: string }>(`SELECT id FROM agents WHERE name = 'lease-lost-mid-call'`))[0]!;
    await rt.wake({ tenantId, agentId: agent.id });
    // The first run lost the task; the same wake then claimed it again and finished it.
    const runs = await q<{ id: string; status: string; error: { code: string } | null }>(`SELECT id, status, error FROM runs WHERE task_id = $1 ORDER BY created_at`, [task.id]);
    expect(runs.map((r) => [r.status, r.error?.code ?? null])).toEqual([
      ["failed", "TASK_LEASE_LOST"],
      ["succeeded", null],
    ]);
    const steps = await q<{ kind: string; status: string; output: { content?: string }; at: string }>(
      `SELECT kind, status, output, created_at::text AS at FROM steps WHERE run_id = $1 ORDER BY seq`,
      [runs[0]!.id],
    );
    expect(steps.map((x) => [x.kind, x.status])).toEqual([
      ["llm", "ok"],
      ["tool", "error"],
    ]);
    expect(steps[1]!.output.content).toMatch(/task lease lost/);
    // Handled in the model's own transaction (rolled back to the turn's savepoint), not
    // left to a turn of its own.
    expect(steps[0]!.at).toBe(steps[1]!.at);
    const [t] = await q<{ status: string; run_id: string; attempts: number }>(`SELECT status, run_id, attempts FROM tasks WHERE id = $1`, [task.id]);
    expect(t).toMatchObject({ status: "done", run_id: runs[1]!.id });
  });

  it("does not run the tool of a run an operator cancelled during the model call", async () => {
    await apply("cancelled-mid-call");
    const task = await createTask("cancelled while the model thinks", { assignee: "cancelled-mid-call" });
    const real = providerCache();
    const cancelling = (m: Parameters<typeof real>[0]): ModelProvider => ({
      name: "cancelling",
      complete: async (req) => {
        const [run] = await q<{ id: string }>(`SELECT id FROM runs WHERE task_id = $1`, [task.id]);
        await services.runs.cancel(actor(), run!.id);
        return real(m).complete(req);
      },
    });
    const rt = runtimeFor(db.database, producer, "w-cancel-mid-call", { provider: cancelling });
    const agent = (await q<{ id: string }>(`SELECT id FROM agents WHERE name = 'cancelled-mid-call'`))[0]!;
    await rt.wake({ tenantId, agentId: agent.id });
    const [t] = await q<{ status: string; run_id: string }>(`SELECT status, run_id FROM tasks WHERE id = $1`, [task.id]);
    expect(t!.status).not.toBe("done");
    const steps = await q<{ kind: string }>(`SELECT kind FROM steps WHERE run_id = $1 ORDER BY seq`, [t!.run_id]);
    expect(steps.map((x) => x.kind)).toEqual(["llm"]);
    const [run] = await q<{ status: string }>(`SELECT status FROM runs WHERE id = $1`, [t!.run_id]);
    expect(run!.status).toBe("cancelled");
  });
});

describe("routing and limits", () => {
  it("escalates from a failing small model to the large one, recording both attempts", async () => {
    await apply("router", { name: "tiny", escalate_to: { name: "scripted-large" } });
    const task = await createTask("route me", { assignee: "router" });
    const real = providerCache();
    const tiny: ModelProvider = {
      name: "tiny",
      complete: async () => {
        throw new ModelError("tiny is overloaded", { kind: "overloaded", retryable: false, provider: "tiny" });
      },
    };
    const rt = runtimeFor(db.database, producer, "w-route", { provider: (m) => (m.name === "tiny" ? tiny : real(m)) });
    const agent = (await q<{ id: string }>(`SELECT id FROM agents WHERE name = 'router'`))[0]!;
    await rt.wake({ tenantId, agentId: agent.id });
    const [t] = await q<{ status: string; run_id: string }>(`SELECT status, run_id FROM tasks WHERE id = $1`, [task.id]);
    expect(t!.status).toBe("done");
    const steps = await q<{ kind: string; model: string; status: string; output: { escalated?: boolean } }>(
      `SELECT kind, model, status, output FROM steps WHERE run_id = $1 ORDER BY seq`,
      [t!.run_id],
    );
    expect(steps.map((x) => [x.kind, x.model, x.status])).toEqual([
      ["llm", "tiny", "error"],
      ["llm", "scripted-large", "ok"],
      ["tool", null, "ok"],
    ]);
    expect(steps[0]!.output.escalated).toBe(true);
  });

  it("stops a run at its step limit and sends its task back", async () => {
    // A script that never completes: it keeps sending itself messages.
    const loop = Array.from({ length: 20 }, () => ({ call: "send_message", input: { to: "limit-peer", body: "again" } }));
    await apply("limited", { script: loop });
    await apply("limit-peer");
    const task = await createTask("never ends", { assignee: "limited" });
    const rt = runtimeFor(db.database, producer, "w-limit", { limits: { maxSteps: 6 } });
    const agent = (await q<{ id: string }>(`SELECT id FROM agents WHERE name = 'limited'`))[0]!;
    await rt.wake({ tenantId, agentId: agent.id });
    const runs = await q<{ status: string; error: { code: string }; step_count: number }>(`SELECT status, error, step_count FROM runs WHERE task_id = $1 ORDER BY created_at`, [task.id]);
    expect(runs[0]).toMatchObject({ status: "failed", error: { code: "LIMIT" } });
    expect(runs[0]!.step_count).toBe(6);
    const [t] = await q<{ status: string; attempts: number }>(`SELECT status, attempts FROM tasks WHERE id = $1`, [task.id]);
    expect(t!.attempts).toBeGreaterThanOrEqual(1);
  });
});

describe("schedules", () => {
  it("ticks an idle agent 100 times without a model call, and wakes it once there is work", async () => {
    const c = counting();
    const agent = await apply("sleeper", {}, { schedule: { every: "15m" } });
    const rt = runtimeFor(db.database, producer, "w-sleep", { provider: c.provider });
    const wakesBefore = await q<{ n: number }>(`SELECT count(*)::int AS n FROM pgboss.job WHERE name = 'agent.wake' AND data->>'agentId' = $1`, [agent.id]);
    for (let i = 0; i < 100; i++) {
      await q(`UPDATE agents SET next_wake_at = now() - interval '1 second' WHERE id = $1`, [agent.id]);
      const r = await scheduleTick({ database: db.database, jobs: producer });
      expect(r.due).toBeGreaterThanOrEqual(1);
    }
    const [session] = await q<{ idle_cycles: string }>(`SELECT idle_cycles FROM agent_sessions WHERE agent_id = $1`, [agent.id]);
    expect(Number(session!.idle_cycles)).toBe(100);
    expect(c.calls).toHaveLength(0);
    expect(await q(`SELECT 1 FROM runs WHERE agent_id = $1`, [agent.id])).toEqual([]);
    const wakesAfter = await q<{ n: number }>(`SELECT count(*)::int AS n FROM pgboss.job WHERE name = 'agent.wake' AND data->>'agentId' = $1`, [agent.id]);
    expect(wakesAfter[0]!.n).toBe(wakesBefore[0]!.n);
    // The next tick reschedules by the descriptor's interval.
    const [next] = await q<{ later: boolean }>(`SELECT next_wake_at > now() + interval '14 minutes' AS later FROM agents WHERE id = $1`, [agent.id]);
    expect(next!.later).toBe(true);

    // With a claimable task, the tick wakes it, and a wake runs the model.
    await services.agents.pause(actor(), "sleeper");
    await services.agents.resume(actor(), "sleeper");
    await createTask("wake up", { assignee: "sleeper" });
    await q(`UPDATE agents SET next_wake_at = now() - interval '1 second' WHERE id = $1`, [agent.id]);
    const r = await scheduleTick({ database: db.database, jobs: producer });
    expect(r.woken).toBeGreaterThanOrEqual(1);
    await rt.wake({ tenantId, agentId: agent.id });
    expect(c.calls.length).toBeGreaterThan(0);
  });
});

describe("many workers, many tasks", () => {
  it("four workers racing over 1,000 tasks do each exactly once", async () => {
    const names = Array.from({ length: 8 }, (_, i) => `racer-${i}`);
    for (const n of names) await apply(n, {}, { domains: ["race/*"] });
    const created: string[] = [];
    for (let i = 0; i < 1000; i += 50) {
      const batch = await Promise.all(Array.from({ length: 50 }, (_, j) => createTask(`race ${i + j}`, { domain: "race/work" })));
      created.push(...batch.map((t) => t.id));
    }
    const workers: Worker[] = [];
    const pools: Database[] = [];
    for (let i = 0; i < 4; i++) {
      const database = createDatabase(db.url, { max: 6 });
      pools.push(database);
      const jobs = createJobs({ connectionString: db.url, role: "worker", max: 2 });
      const s = createServices({ database, jobs, secureCookies: false });
      workers.push(await startWorker({ jobs, services: s, logger: silent, runtime: runtimeFor(database, jobs, `w-race-${i}`), concurrency: 4, tickMs: 1000 }));
    }
    try {
      await until(async () => (await q<{ n: number }>(`SELECT count(*)::int AS n FROM tasks WHERE id = ANY($1) AND status = 'done'`, [created]))[0]!.n === 1000, 240_000, "1000 done");
    } finally {
      for (const w of workers) await w.stop();
      for (const p of pools) await p.close();
    }
    const completions = await q<{ target_id: string; n: number }>(
      `SELECT target_id, count(*)::int AS n FROM audit_events WHERE action = 'task.complete' AND target_id = ANY($1) GROUP BY target_id`,
      [created],
    );
    expect(completions).toHaveLength(1000);
    expect(completions.every((c) => c.n === 1)).toBe(true);
    const runs = await q<{ n: number; tasks: number }>(`SELECT count(*)::int AS n, count(DISTINCT task_id)::int AS tasks FROM runs WHERE task_id = ANY($1)`, [created]);
    expect(runs[0]).toEqual({ n: 1000, tasks: 1000 });
    const byWorkerAgents = await q<{ n: number }>(`SELECT count(DISTINCT claimed_by_agent_id)::int AS n FROM tasks WHERE id = ANY($1)`, [created]);
    expect(byWorkerAgents[0]!.n).toBeGreaterThan(1);
  }, 300_000);
});
