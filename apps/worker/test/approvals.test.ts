import { randomBytes } from "node:crypto";
import { type AgentRuntime, agentRuntime, createServices, type DomainServices, providerCache, runtimeSweep, systemActor } from "@bosun/core";
import type { Database } from "@bosun/db";
import { createJobs, type Jobs } from "@bosun/jobs";
import type { ContentBlock, ModelProvider, ModelRequest } from "@bosun/llm";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startMcpHttpFixture } from "../../../test/fixtures/mcp-http-server";
import { createTestDb, type TestDb } from "../../../test/helpers/db";
import { startWorker } from "../src/worker";

process.env.BOSUN_SECRET_KEY ??= randomBytes(32).toString("hex");

/**
 * Policies and approvals inside the agent runtime, against real Postgres and the real
 * runtime: a call over the value threshold suspends its run; approval resumes it and the
 * tool runs exactly once; denial and expiry reach the agent as the tool's result.
 */

let db: TestDb;
let producer: Jobs;
let services: DomainServices;
let tenantId: string;

const q = async <T = Record<string, unknown>>(sql: string, values: unknown[] = []) => (await db.database.pool.query(sql, values)).rows as T[];
const actor = () => systemActor(tenantId, "test");

function descriptor(name: string, model: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) {
  return {
    apiVersion: "agent.os/v1",
    kind: "Agent",
    metadata: { name, owner: "tests" },
    spec: { model: { provider: "scripted", name: "scripted-small", ...model }, soul: `You are ${name}.`, ...extra },
  };
}
const apply = (name: string, model?: Record<string, unknown>, extra?: Record<string, unknown>) =>
  services.agents.apply(actor(), name, descriptor(name, model, extra)).then((r) => r.body);

/** The real providers, recording every request (to read the tool results the model got). */
function recording() {
  const real = providerCache();
  const requests: ModelRequest[] = [];
  return {
    requests,
    provider: (m: Parameters<ReturnType<typeof providerCache>>[0]): ModelProvider => ({
      name: "recording",
      complete: (req) => {
        requests.push(req);
        return real(m).complete(req);
      },
    }),
  };
}

const runtimes: AgentRuntime[] = [];
function runtimeFor(database: Database, jobs: Jobs, id: string, extra: Partial<Parameters<typeof agentRuntime>[0]> = {}): AgentRuntime {
  const s = createServices({ database, jobs, secureCookies: false });
  const r = agentRuntime({ database, jobs, tasks: s.tasks, provider: providerCache(), workerId: id, leaseTtlSeconds: 5, ...extra });
  runtimes.push(r);
  return r;
}

const silent = pino({ level: process.env.TEST_LOG ?? "silent" });

async function until<T>(fn: () => Promise<T | undefined | null | false>, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`${what} not met in ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Starts a manual run of an agent and returns its id. */
const startRun = async (agent: string, input = "go") => (await services.runs.start(actor(), agent, { input })).id;
const runOf = async (id: string) => (await q<{ status: string; error: unknown }>(`SELECT status, error FROM runs WHERE id = $1`, [id]))[0]!;
const stepsOf = (runId: string) =>
  q<{ seq: number; kind: string; name: string; status: string; input: Record<string, unknown>; output: Record<string, unknown> }>(
    `SELECT seq, kind, name, status, input, output FROM steps WHERE run_id = $1 ORDER BY seq`,
    [runId],
  );
const tasksTitled = async (title: string) => (await q<{ n: number }>(`SELECT count(*)::int AS n FROM tasks WHERE title = $1`, [title]))[0]!.n;
const approvalsOf = (runId: string) =>
  q<{ id: string; status: string; expires_at: Date; payload: Record<string, unknown> }>(
    `SELECT id, status, expires_at, payload FROM waitpoints WHERE run_id = $1 AND kind = 'approval' ORDER BY created_at`,
    [runId],
  );
/** The tool_result blocks of the last request a model got. */
const lastToolResults = (requests: ModelRequest[]) =>
  (requests.at(-1)?.messages ?? []).flatMap((m) => m.content).filter((b): b is Extract<ContentBlock, { type: "tool_result" }> => b.type === "tool_result");

beforeAll(async () => {
  db = await createTestDb();
  producer = createJobs({ connectionString: db.url, role: "producer", max: 2 });
  await producer.start();
  services = createServices({ database: db.database, jobs: producer, secureCookies: false });
  const s = await services.identity.signup({ tenant: { name: "Approvals", timeZone: "UTC" }, owner: { email: "ap@example.com", password: "approvals-password-1" } });
  tenantId = s.tenant.id;
  // Tasks the agents create go to an agent no test wakes.
  await apply("warehouse");
});
afterAll(async () => {
  // Stopping closes each runtime's gateway connection pool.
  for (const r of runtimes) r.stop();
  await producer.stop({ graceful: false, timeout: 1000 });
  await db.drop();
});

describe("the value threshold", () => {
  it("runs a call under the threshold, suspends the run on one over it, and runs it exactly once on approval", async () => {
    const agent = await apply(
      "buyer",
      {
        script: [
          { call: "create_task", input: { title: "small purchase", assignee: "warehouse", action_value_usd: 40 } },
          { call: "create_task", input: { title: "big purchase", assignee: "warehouse", action_value_usd: 500 } },
        ],
      },
      { approval: { on_action_value_usd_gt: 100 } },
    );
    const runId = await startRun("buyer");
    const rt = runtimeFor(db.database, producer, "w-buyer");
    expect((await rt.wake({ tenantId, agentId: agent.id })).outcome).toBe("ran");

    // Under the threshold: it ran, with the decision on its step. Over it: suspended.
    expect(await tasksTitled("small purchase")).toBe(1);
    expect(await tasksTitled("big purchase")).toBe(0);
    expect(await runOf(runId)).toMatchObject({ status: "waiting" });
    let steps = await stepsOf(runId);
    expect(steps.map((s) => [s.kind, s.name, s.status])).toEqual([
      ["llm", "scripted-small", "ok"],
      ["tool", "create_task", "ok"],
      ["llm", "scripted-small", "ok"],
      ["approval", "create_task", "ok"],
    ]);
    expect(steps[1]!.input.policy).toMatchObject({ decision: "allow", rule: { source: "default" }, actionValueMicros: 40_000_000 });
    const [approval] = await approvalsOf(runId);
    expect(approval).toMatchObject({ status: "pending", payload: { tool: "create_task", toolUseId: "toolu_scripted_1" } });
    expect(approval!.payload.policy).toMatchObject({
      decision: "require_approval",
      rule: { source: "descriptor", name: "spec.approval.on_action_value_usd_gt" },
      actionValueMicros: 500_000_000,
    });
    // About 24 h by default.
    expect(approval!.expires_at.getTime() - Date.now()).toBeGreaterThan(23 * 3600_000);

    // Waking again does nothing while the approval is pending.
    expect((await rt.wake({ tenantId, agentId: agent.id })).outcome).toBe("idle");
    expect(await tasksTitled("big purchase")).toBe(0);

    // Clear the wakes queued so far (nothing consumes them here), to see the approval's own.
    await q(`DELETE FROM pgboss.job WHERE name = 'agent.wake' AND data->>'agentId' = $1`, [agent.id]);
    // Two people approve at the same moment: one wins, the other gets a conflict.
    const operator = { ...actor(), type: "user" as const, id: "usr_operator", scopes: ["write" as const] };
    const results = await Promise.allSettled([
      services.approvals.approve(operator, approval!.id, { comment: "ok" }),
      services.approvals.approve(operator, approval!.id, { comment: "ok" }),
    ]);
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    const rejected = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
    expect(rejected.reason).toMatchObject({ code: "CONFLICT" });
    const got = await services.approvals.get(actor(), approval!.id);
    expect(got).toMatchObject({ status: "approved", comment: "ok", decidedBy: { type: "user", id: "usr_operator" }, actionValueUsd: 500 });
    // Approving woke the agent, in the same transaction.
    expect((await q(`SELECT count(*)::int AS n FROM pgboss.job WHERE name = 'agent.wake' AND data->>'agentId' = $1 AND data->>'reason' = 'waitpoint'`, [agent.id]))[0]).toEqual({ n: 1 });

    // Two workers wake the agent at once: the tool runs exactly once.
    const other = runtimeFor(db.database, producer, "w-buyer-2");
    await Promise.all([rt.wake({ tenantId, agentId: agent.id }), other.wake({ tenantId, agentId: agent.id })]);
    await rt.wake({ tenantId, agentId: agent.id });
    expect(await tasksTitled("big purchase")).toBe(1);
    expect(await runOf(runId)).toMatchObject({ status: "succeeded" });
    steps = await stepsOf(runId);
    expect(steps.map((s) => [s.kind, s.name, s.status])).toEqual([
      ["llm", "scripted-small", "ok"],
      ["tool", "create_task", "ok"],
      ["llm", "scripted-small", "ok"],
      ["approval", "create_task", "ok"],
      ["tool", "create_task", "ok"],
      ["llm", "scripted-small", "ok"],
    ]);
    expect(steps[4]!.input.policy).toMatchObject({ decision: "require_approval", approval: { id: approval!.id, decision: "approved", comment: "ok" } });

    // And a second approval of the decided approval changes nothing.
    await expect(services.approvals.approve(operator, approval!.id, {})).rejects.toMatchObject({ code: "CONFLICT" });
    await rt.wake({ tenantId, agentId: agent.id });
    expect(await tasksTitled("big purchase")).toBe(1);
  });

  it("runs the approved tool once across a worker crash right after its step", async () => {
    const agent = await apply(
      "crash-buyer",
      { script: [{ call: "create_task", input: { title: "crash purchase", assignee: "warehouse", action_value_usd: 1000 } }] },
      { approval: { on_action_value_usd_gt: 10 } },
    );
    const runId = await startRun("crash-buyer");
    await runtimeFor(db.database, producer, "w-cb").wake({ tenantId, agentId: agent.id });
    const [approval] = await approvalsOf(runId);
    await services.approvals.approve(actor(), approval!.id, {});
    let crashed = false;
    const crashing = runtimeFor(db.database, producer, "w-cb-crash", {
      afterStep: (s) => {
        if (s.kind === "tool" && s.name === "create_task" && !crashed) {
          crashed = true;
          throw new Error("simulated crash after the approved tool's step committed");
        }
      },
    });
    await expect(crashing.wake({ tenantId, agentId: agent.id })).rejects.toThrow("simulated crash");
    await q(`UPDATE agent_sessions SET lease_expires_at = now() - interval '1 second' WHERE agent_id = $1`, [agent.id]);
    await runtimeFor(db.database, producer, "w-cb-replay").wake({ tenantId, agentId: agent.id });
    expect(await tasksTitled("crash purchase")).toBe(1);
    expect(await runOf(runId)).toMatchObject({ status: "succeeded" });
    expect((await stepsOf(runId)).filter((s) => s.kind === "tool" && s.name === "create_task")).toHaveLength(1);
  });
});

describe("through the worker", () => {
  it("suspends on the wake job, and the approval's own wake job resumes the run in the worker", async () => {
    const jobs = createJobs({ connectionString: db.url, role: "worker", max: 2 });
    const s = createServices({ database: db.database, jobs, secureCookies: false });
    const worker = await startWorker({ jobs, services: s, logger: silent, runtime: runtimeFor(db.database, jobs, "w-e2e-approvals"), mailer: null, tickMs: 200 });
    try {
      await apply(
        "e2e-buyer",
        { script: [{ call: "create_task", input: { title: "e2e purchase", assignee: "warehouse", action_value_usd: 5000 } }] },
        { approval: { on_action_value_usd_gt: 1000 } },
      );
      const runId = await startRun("e2e-buyer");
      const [approval] = await until(async () => {
        const a = await approvalsOf(runId);
        return a.length > 0 && a;
      }, 15_000, "the run to ask for approval");
      expect(await runOf(runId)).toMatchObject({ status: "waiting" });
      await services.approvals.approve(actor(), approval!.id, { comment: "go" });
      await until(async () => (await runOf(runId)).status === "succeeded", 15_000, "the run to resume and finish");
      expect(await tasksTitled("e2e purchase")).toBe(1);
    } finally {
      await worker.stop();
    }
  });
});

describe("a task run waiting for approval", () => {
  it("keeps its task while it waits, so the task is not handed out again", async () => {
    const agent = await apply(
      "patient",
      { script: [{ call: "create_task", input: { title: "patient purchase", assignee: "warehouse", action_value_usd: 900 } }] },
      { approval: { on_action_value_usd_gt: 100 } },
    );
    const task = (await services.tasks.create(actor(), { title: "buy it", body: "", priority: 50, depends_on: [], requires_review: false, max_attempts: 3, assignee: "patient" })).body;
    const rt = runtimeFor(db.database, producer, "w-patient");
    await rt.wake({ tenantId, agentId: agent.id });
    const [t] = await q<{ run_id: string; status: string }>(`SELECT run_id, status FROM tasks WHERE id = $1`, [task.id]);
    expect(t!.status).toBe("in_progress");
    const [approval] = await approvalsOf(t!.run_id);
    // Its lease is about to run out; the sweep keeps it, so the lease recovery leaves it alone.
    await q(`UPDATE tasks SET lease_expires_at = now() + interval '1 second' WHERE id = $1`, [task.id]);
    await runtimeSweep({ database: db.database, jobs: producer });
    const [kept] = await q<{ ahead: number }>(`SELECT extract(epoch FROM lease_expires_at - now())::int AS ahead FROM tasks WHERE id = $1`, [task.id]);
    expect(kept!.ahead).toBeGreaterThan(240);
    await new Promise((r) => setTimeout(r, 1100));
    expect(await services.tasks.recoverExpiredLeases()).toMatchObject({ requeued: 0, escalated: 0 });
    await services.approvals.approve(actor(), approval!.id, {});
    await rt.wake({ tenantId, agentId: agent.id });
    expect((await q(`SELECT status, attempts FROM tasks WHERE id = $1`, [task.id]))[0]).toEqual({ status: "done", attempts: 0 });
    expect(await tasksTitled("patient purchase")).toBe(1);
    expect((await q(`SELECT count(*)::int AS n FROM runs WHERE task_id = $1`, [task.id]))[0]).toEqual({ n: 1 });
  });
});

describe("denial and expiry reach the agent", () => {
  it("gives the agent a denial, with its comment and who denied, as the tool's error result", async () => {
    const agent = await apply(
      "denied-buyer",
      { script: [{ call: "create_task", input: { title: "denied purchase", assignee: "warehouse", action_value_usd: 500 } }] },
      { approval: { on_action_value_usd_gt: 100 } },
    );
    const runId = await startRun("denied-buyer");
    const rec = recording();
    const rt = runtimeFor(db.database, producer, "w-deny", { provider: rec.provider });
    await rt.wake({ tenantId, agentId: agent.id });
    const [approval] = await approvalsOf(runId);
    const denier = { ...actor(), type: "user" as const, id: "usr_denier" };
    const denied = await services.approvals.deny(denier, approval!.id, { comment: "too expensive" });
    expect(denied).toMatchObject({ status: "denied", comment: "too expensive", decidedBy: { type: "user", id: "usr_denier" } });
    await expect(services.approvals.approve(denier, approval!.id, {})).rejects.toMatchObject({ code: "CONFLICT" });

    await rt.wake({ tenantId, agentId: agent.id });
    expect(await tasksTitled("denied purchase")).toBe(0);
    // The agent carried on: its next model call saw the denial, and the run finished.
    expect(await runOf(runId)).toMatchObject({ status: "succeeded" });
    const [result] = lastToolResults(rec.requests);
    expect(result).toMatchObject({ toolUseId: "toolu_scripted_0", isError: true });
    expect(JSON.parse(result!.content)).toEqual({ denied: true, comment: "too expensive", by: { type: "user", id: "usr_denier" }, approval: approval!.id });
    const steps = await stepsOf(runId);
    expect(steps.map((s) => [s.kind, s.name, s.status])).toEqual([
      ["llm", "scripted-small", "ok"],
      ["approval", "create_task", "ok"],
      ["tool", "create_task", "error"],
      ["llm", "scripted-small", "ok"],
    ]);
  });

  it("expires an approval in the sweep; the agent gets the expiry and a late approval is refused", async () => {
    const agent = await apply("expiring", { script: [{ call: "send_message", input: { to: "expiring", body: "hello me" } }] });
    await services.policies.create(actor(), {
      name: "approve-expiring-messages",
      agent: "expiring",
      priority: 100,
      match: { tool: "send_message" },
      decision: "require_approval",
      approvalExpiresIn: "1h",
    });
    const runId = await startRun("expiring");
    const rec = recording();
    const rt = runtimeFor(db.database, producer, "w-exp", { provider: rec.provider });
    await rt.wake({ tenantId, agentId: agent.id });
    const [approval] = await approvalsOf(runId);
    expect(approval!.status).toBe("pending");
    const ttl = approval!.expires_at.getTime() - Date.now();
    expect(ttl).toBeGreaterThan(59 * 60_000);
    expect(ttl).toBeLessThanOrEqual(3600_000);
    expect(approval!.payload.policy).toMatchObject({ rule: { source: "policy", name: "approve-expiring-messages" } });

    // Not due yet: the sweep leaves it alone.
    expect((await runtimeSweep({ database: db.database, jobs: producer })).approvalsExpired).toBe(0);
    await q(`UPDATE waitpoints SET expires_at = now() - interval '1 second' WHERE id = $1`, [approval!.id]);
    // Past its expiry but before the sweep: approving is already refused.
    await expect(services.approvals.approve(actor(), approval!.id, {})).rejects.toMatchObject({ code: "CONFLICT" });
    expect((await runtimeSweep({ database: db.database, jobs: producer })).approvalsExpired).toBe(1);
    expect(await services.approvals.get(actor(), approval!.id)).toMatchObject({ status: "expired" });
    await expect(services.approvals.approve(actor(), approval!.id, {})).rejects.toMatchObject({ code: "CONFLICT", message: expect.stringContaining("already expired") });

    await rt.wake({ tenantId, agentId: agent.id });
    expect(await runOf(runId)).toMatchObject({ status: "succeeded" });
    expect((await q(`SELECT count(*)::int AS n FROM messages WHERE body = 'hello me'`))[0]).toEqual({ n: 0 });
    const [result] = lastToolResults(rec.requests);
    expect(result).toMatchObject({ isError: true });
    expect(JSON.parse(result!.content)).toMatchObject({ expired: true, comment: null, by: null });
  });
});

describe("policies on every tool call", () => {
  it("never executes a denied call; the model reads the rule that denied it", async () => {
    const agent = await apply("chatty", { script: [{ call: "send_message", input: { to: "chatty", body: "should not arrive" } }] });
    await services.policies.create(actor(), { name: "no-messages", priority: 10, match: { tool: "send_message" }, decision: "deny" });
    // A tenant-wide allow for the same tool does not beat the deny.
    await services.policies.create(actor(), { name: "allow-messages", priority: 1, match: { tool: "send_*" }, decision: "allow" });
    const runId = await startRun("chatty");
    const rec = recording();
    await runtimeFor(db.database, producer, "w-chatty", { provider: rec.provider }).wake({ tenantId, agentId: agent.id });
    expect((await q(`SELECT count(*)::int AS n FROM messages WHERE body = 'should not arrive'`))[0]).toEqual({ n: 0 });
    const steps = await stepsOf(runId);
    expect(steps.map((s) => [s.kind, s.name, s.status])).toEqual([
      ["llm", "scripted-small", "ok"],
      ["tool", "send_message", "error"],
      ["llm", "scripted-small", "ok"],
    ]);
    expect(steps[1]!.input.policy).toMatchObject({ decision: "deny", rule: { source: "policy", name: "no-messages", scope: "tenant" } });
    const [result] = lastToolResults(rec.requests);
    expect(result).toMatchObject({ isError: true });
    expect(JSON.parse(result!.content)).toMatchObject({ denied: true, rule: "no-messages" });
    await services.policies.remove(actor(), (await services.policies.list(actor(), { limit: 50 })).items.find((p) => p.name === "no-messages")!.id);
    await services.policies.remove(actor(), (await services.policies.list(actor(), { limit: 50 })).items.find((p) => p.name === "allow-messages")!.id);
  });

  it("matches results to tool uses by id when one call of a turn waits for approval", async () => {
    // One model turn with two calls: the first needs approval, the second does not.
    let turn = 0;
    const requests: ModelRequest[] = [];
    const twoCalls: ModelProvider = {
      name: "scripted",
      async complete(req) {
        requests.push(req);
        turn++;
        const content: ContentBlock[] =
          turn === 1
            ? [
                { type: "tool_use", id: "call_a", name: "create_task", input: { title: "gated pair task", assignee: "warehouse" } },
                { type: "tool_use", id: "call_b", name: "send_message", input: { to: "pair-peer", body: "pair hello" } },
              ]
            : [{ type: "text", text: "done" }];
        const usage = { inputTokens: 10, cacheReadTokens: 0, cacheWriteTokens: 0, outputTokens: 5, totalTokens: 15, raw: {} };
        return { content, stopReason: turn === 1 ? "tool_use" : "end_turn", model: req.model, requestedModel: req.model, provider: "scripted", usage, latencyMs: 0, attempts: 1 };
      },
    };
    const agent = await apply("pair", {}, { approval: { tools: ["create_task"] } });
    await apply("pair-peer");
    const runId = await startRun("pair");
    const rt = runtimeFor(db.database, producer, "w-pair", { provider: () => twoCalls });
    await rt.wake({ tenantId, agentId: agent.id });
    const [approval] = await approvalsOf(runId);
    expect(approval!.payload.policy).toMatchObject({ rule: { source: "descriptor", name: "spec.approval.tools" } });
    await services.approvals.approve(actor(), approval!.id, { comment: "fine" });
    await rt.wake({ tenantId, agentId: agent.id });
    expect(await runOf(runId)).toMatchObject({ status: "succeeded" });
    expect(await tasksTitled("gated pair task")).toBe(1);
    expect((await q(`SELECT count(*)::int AS n FROM messages WHERE body = 'pair hello'`))[0]).toEqual({ n: 1 });
    // The second model call got exactly one result per call, in the calls' order.
    expect(requests).toHaveLength(2);
    expect(lastToolResults(requests).map((r) => [r.toolUseId, r.isError ?? false])).toEqual([
      ["call_a", false],
      ["call_b", false],
    ]);
    expect((await stepsOf(runId)).map((s) => [s.kind, s.name])).toEqual([
      ["llm", "scripted-small"],
      ["approval", "create_task"],
      ["tool", "create_task"],
      ["message", "send_message"],
      ["llm", "scripted-small"],
    ]);
  });
});

describe("a gateway tool over the value threshold", () => {
  let fixture: Awaited<ReturnType<typeof startMcpHttpFixture>>;
  beforeAll(async () => {
    fixture = await startMcpHttpFixture();
    await services.gateway.create(actor(), { name: "bank", transport: "http", url: fixture.url });
    await services.gateway.refresh(actor(), "bank");
    // The operator says which input field carries the call's value in dollars.
    await services.gateway.updateTool(actor(), "bank", "pay", { valueField: "amount" });
  });
  afterAll(async () => {
    await fixture?.close();
  });

  it("pays a small amount at once, and a large one only after approval, exactly once", async () => {
    const agent = await apply(
      "treasurer",
      {
        script: [
          { call: "mcp__bank__pay", input: { amount: 50, to: "stationer" } },
          { call: "mcp__bank__pay", input: { amount: 250, to: "landlord" } },
        ],
      },
      { tools: ["mcp://gateway/bank/*"], approval: { on_action_value_usd_gt: 100 } },
    );
    const runId = await startRun("treasurer");
    const rt = runtimeFor(db.database, producer, "w-treasurer");
    await rt.wake({ tenantId, agentId: agent.id });
    expect(fixture.callsTo("pay")).toBe(1);
    expect(await runOf(runId)).toMatchObject({ status: "waiting" });
    const [approval] = await approvalsOf(runId);
    expect(approval!.payload).toMatchObject({ ref: "mcp://gateway/bank/pay", input: { amount: 250, to: "landlord" } });
    expect(approval!.payload.policy).toMatchObject({ sideEffect: "external", actionValueMicros: 250_000_000, rule: { name: "spec.approval.on_action_value_usd_gt" } });

    await services.approvals.approve(actor(), approval!.id, { comment: "rent" });
    await Promise.all([rt.wake({ tenantId, agentId: agent.id }), runtimeFor(db.database, producer, "w-treasurer-2").wake({ tenantId, agentId: agent.id })]);
    await rt.wake({ tenantId, agentId: agent.id });
    expect(fixture.callsTo("pay")).toBe(2);
    expect(await runOf(runId)).toMatchObject({ status: "succeeded" });
    const payments = (await stepsOf(runId)).filter((s) => s.kind === "tool" && s.name === "mcp__bank__pay");
    expect(payments.map((s) => [s.status, (s.input.policy as { decision: string }).decision])).toEqual([
      ["ok", "allow"],
      ["ok", "require_approval"],
    ]);
  });
});
