import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { type AgentRuntime, agentRuntime, bootstrapGatewayDemo, createServices, type DomainServices, providerCache, spendEngine, systemActor } from "@bosun/core";
import { withTenant } from "@bosun/db";
import { createJobs, type Jobs } from "@bosun/jobs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startMcpHttpFixture } from "../../../test/fixtures/mcp-http-server";
import { createTestDb, type TestDb } from "../../../test/helpers/db";
import { recordQueries } from "../../../test/helpers/queries";

process.env.BOSUN_SECRET_KEY ??= randomBytes(32).toString("hex");
process.env.BOSUN_MCP_STDIO_COMMANDS = "mcp-server-everything,mcp-server-filesystem";

let db: TestDb;
let producer: Jobs;
let services: DomainServices;
let tenantId: string;
let rt: AgentRuntime;
let fixture: Awaited<ReturnType<typeof startMcpHttpFixture>>;
const runtimes: AgentRuntime[] = [];

const q = async <T = Record<string, unknown>>(sql: string, values: unknown[] = []) => (await db.database.pool.query(sql, values)).rows as T[];
const actor = () => systemActor(tenantId, "test");

interface StepRow {
  seq: number;
  kind: string;
  name: string;
  status: string;
  input: { tools?: string[]; toolUseId?: string };
  output: { content?: string; isError?: boolean; code?: string; ref?: string; truncated?: boolean; bytes?: number; feeMicros?: number };
}

function runtime(id: string) {
  const s = createServices({ database: db.database, jobs: producer, secureCookies: false });
  const r = agentRuntime({ database: db.database, jobs: producer, tasks: s.tasks, provider: providerCache(), workerId: id, leaseTtlSeconds: 30 });
  runtimes.push(r);
  return r;
}

async function apply(name: string, script: unknown[], spec: Record<string, unknown> = {}) {
  const d = { apiVersion: "agent.os/v1", kind: "Agent", metadata: { name, owner: "tests" }, spec: { model: { provider: "scripted", name: "scripted-small", script }, soul: "", ...spec } };
  return (await services.agents.apply(actor(), name, d)).body;
}

/** Gives the agent a task and runs it on `runtime` until the run finishes or waits. */
async function runTask(name: string, script: unknown[], spec: Record<string, unknown> = {}, on: AgentRuntime = rt) {
  const agent = await apply(name, script, spec);
  const task = (await services.tasks.create(actor(), { title: `work for ${name}`, body: "", priority: 50, depends_on: [], requires_review: false, max_attempts: 1, assignee: name })).body;
  await on.wake({ tenantId, agentId: agent.id });
  const [t] = await q<{ run_id: string; status: string }>(`SELECT run_id, status FROM tasks WHERE id = $1`, [task.id]);
  return { agent, taskId: task.id, runId: t!.run_id, taskStatus: t!.status, steps: () => stepsOf(t!.run_id) };
}

const stepsOf = (runId: string) => q<StepRow>(`SELECT seq, kind, name, status, input, output FROM steps WHERE run_id = $1 ORDER BY seq`, [runId]);
const toolStep = async (runId: string, name: string) => (await stepsOf(runId)).find((s) => s.kind === "tool" && s.name === name)!;

beforeAll(async () => {
  db = await createTestDb();
  producer = createJobs({ connectionString: db.url, role: "producer", max: 2 });
  await producer.start();
  services = createServices({ database: db.database, jobs: producer, secureCookies: false });
  const s = await services.identity.signup({ tenant: { name: "Gateway", timeZone: "UTC" }, owner: { email: "gw@example.com", password: "gateway-password-1" } });
  tenantId = s.tenant.id;
  fixture = await startMcpHttpFixture();
  await services.gateway.create(actor(), { name: "fixture", transport: "http", url: fixture.url });
  await services.gateway.refresh(actor(), "fixture");
  rt = runtime("w-gw");
});
afterAll(async () => {
  for (const r of runtimes) r.stop();
  await new Promise((ok) => setTimeout(ok, 200));
  await fixture?.close();
  await producer?.stop({ graceful: false, timeout: 1000 });
  await db?.drop();
});

describe("agents call MCP tools through the gateway", () => {
  it("calls a real npm MCP server (server-everything over stdio) and gets the result, audited", async () => {
    await services.gateway.create(actor(), { name: "everything", transport: "stdio", command: "mcp-server-everything", args: ["stdio"], secrets: { DEMO_SECRET: "env-value-42" } });
    await services.gateway.refresh(actor(), "everything");
    const r = await runTask("caller", [{ call: "mcp__everything__echo", input: { message: "hello gateway" } }, { call: "mcp__everything__get-env", input: {} }], {
      tools: ["mcp://gateway/everything/*"],
    });
    expect(r.taskStatus).toBe("done");
    const steps = await r.steps();
    expect(steps[0]!.input.tools).toEqual(expect.arrayContaining(["mcp__everything__echo", "mcp__everything__get-env", "complete_task"]));
    expect(steps[0]!.input.tools!.some((t) => t.startsWith("mcp__fixture__"))).toBe(false);
    const echo = await toolStep(r.runId, "mcp__everything__echo");
    expect(echo.status).toBe("ok");
    expect(echo.output.content).toContain("hello gateway");
    expect(echo.output.ref).toBe("mcp://gateway/everything/echo");
    // The stdio server got its decrypted env var, and none of the worker's own environment.
    const env = await toolStep(r.runId, "mcp__everything__get-env");
    expect(env.output.content).toContain("env-value-42");
    expect(env.output.content).not.toContain(process.env.BOSUN_SECRET_KEY!);
    const audits = await q<{ actor_type: string; actor_id: string; after: { outcome: string } }>(
      `SELECT actor_type, actor_id, after FROM audit_events WHERE action = 'tool.call' AND target_id = 'mcp://gateway/everything/echo'`,
    );
    expect(audits).toEqual([{ actor_type: "agent", actor_id: r.agent.id, after: expect.objectContaining({ outcome: "ok", runId: r.runId }) }]);
  }, 60_000);

  it("reads the run's state with each turn's fence, the tool once for the gate and phase 1, and writes the call's step with phase 3's COMMIT", async () => {
    const recording = recordQueries();
    let r: Awaited<ReturnType<typeof runTask>>;
    try {
      r = await runTask("round-trips", [{ call: "mcp__fixture__echo", input: { message: "once" } }], { tools: ["mcp://gateway/fixture/echo"] });
    } finally {
      recording.stop();
    }
    expect(r.taskStatus).toBe("done");
    const echo = await toolStep(r.runId, "mcp__fixture__echo");
    expect(echo.status).toBe("ok");
    expect(recording.sent.filter((q) => q.includes("AND s.name = $2 AND t.name = $3 AND t.current"))).toHaveLength(1);
    // The server's row and the slot in one round trip, the tool step's savepoint with them.
    expect(recording.sent.filter((q) => q.includes("EXECUTE bosun_b_gateway_server(") && q.includes("EXECUTE bosun_b_gateway_call_slot("))).toHaveLength(1);
    const stepWrites = recording.sent.filter((q) => q.includes("EXECUTE bosun_b_insert_step_update_run_held(") && q.includes("mcp__fixture__echo"));
    expect(stepWrites).toHaveLength(1);
    expect(stepWrites[0]).toMatch(/COMMIT\s*$/);
    // The turn that runs the tool read the run's state with its fence and the policies:
    // the model's turn had left the tool use unanswered.
    const toolTurn = recording.sent.filter((q) => q.includes("EXECUTE bosun_b_fence(") && q.includes("EXECUTE bosun_b_policies_for_agent(") && q.includes("EXECUTE bosun_b_run_steps("));
    expect(toolTurn).toHaveLength(1);
    // And the turn after it, a model call, read the state with its preparation's fence and
    // the prompt's layers.
    const modelTurn = recording.sent.filter((q) => q.includes("EXECUTE bosun_b_fence(") && q.includes("EXECUTE bosun_b_memory_prompt_reads(") && q.includes("EXECUTE bosun_b_run_steps("));
    expect(modelTurn).toHaveLength(1);
    // No state read of its own was needed for either.
    expect(recording.sent.filter((q) => q.includes("EXECUTE bosun_b_run_steps(") && !q.includes("EXECUTE bosun_b_fence("))).toEqual([]);
  });

  it("does not offer, and refuses, a tool the descriptor does not list; the server never sees it", async () => {
    const before = fixture.callsTo("write_note");
    const r = await runTask("limited", [{ call: "mcp__fixture__write_note", input: { note: "x" } }], { tools: ["mcp://gateway/fixture/echo"] });
    const steps = await r.steps();
    expect(steps[0]!.input.tools).toContain("mcp__fixture__echo");
    expect(steps[0]!.input.tools).not.toContain("mcp__fixture__write_note");
    const s = await toolStep(r.runId, "mcp__fixture__write_note");
    expect(s.status).toBe("error");
    expect(fixture.callsTo("write_note")).toBe(before);
  });

  it("a call denied by policy never reaches the MCP server (counted on the server's side)", async () => {
    await apply("noter", []);
    await services.policies.create(actor(), { name: "no-notes", agent: "noter", priority: 100, match: { tool: "mcp://gateway/fixture/write_note" }, decision: "deny" });
    const before = fixture.callsTo("write_note");
    const denied = await runTask("noter", [{ call: "mcp__fixture__write_note", input: { note: "secret plan" } }], { tools: ["mcp://gateway/fixture/*"] });
    const s = await toolStep(denied.runId, "mcp__fixture__write_note");
    expect(s.status).toBe("error");
    expect(fixture.callsTo("write_note")).toBe(before);
    expect(fixture.calls.some((c) => c.args.note === "secret plan")).toBe(false);
    // The same call by an agent the policy does not cover does reach it.
    const allowed = await runTask("noter-ok", [{ call: "mcp__fixture__write_note", input: { note: "fine" } }], { tools: ["mcp://gateway/fixture/*"] });
    expect((await toolStep(allowed.runId, "mcp__fixture__write_note")).status).toBe("ok");
    expect(fixture.callsTo("write_note")).toBe(before + 1);
  });

  it("reads through server-filesystem, and a write_file denied by policy leaves no file", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "bosun-gw-"));
    await writeFile(path.join(dir, "hello.txt"), "file contents 7");
    await services.gateway.create(actor(), { name: "files", transport: "stdio", command: "mcp-server-filesystem", args: [dir] });
    await services.gateway.refresh(actor(), "files");
    await apply("fs-writer", []);
    await services.policies.create(actor(), { name: "no-fs-writes", agent: "fs-writer", priority: 100, match: { tool: "mcp://gateway/files/write_file" }, decision: "deny" });
    const target = path.join(dir, "denied.txt");
    const r = await runTask(
      "fs-writer",
      [
        { call: "mcp__files__read_text_file", input: { path: path.join(dir, "hello.txt") } },
        { call: "mcp__files__write_file", input: { path: target, content: "should not exist" } },
      ],
      { tools: ["mcp://gateway/files/*"] },
    );
    expect((await toolStep(r.runId, "mcp__files__read_text_file")).output.content).toContain("file contents 7");
    expect((await toolStep(r.runId, "mcp__files__write_file")).status).toBe("error");
    expect(existsSync(target)).toBe(false);
    // Without the policy the same call writes the file: the check above can fail.
    const ok = await runTask("fs-writer-ok", [{ call: "mcp__files__write_file", input: { path: target, content: "written" } }], { tools: ["mcp://gateway/files/*"] });
    expect((await toolStep(ok.runId, "mcp__files__write_file")).status).toBe("ok");
    expect(existsSync(target)).toBe(true);
    await rm(dir, { recursive: true, force: true });
  }, 60_000);

  it("caps the result at the server's limit and flags the truncation", async () => {
    await services.gateway.update(actor(), "fixture", { limits: { resultCapBytes: 1000 } });
    const r = await runTask("reader", [{ call: "mcp__fixture__big", input: { size: 5000 } }, { call: "mcp__fixture__fail", input: {} }], { tools: ["mcp://gateway/fixture/*"] });
    const s = await toolStep(r.runId, "mcp__fixture__big");
    expect(s.status).toBe("ok");
    expect(s.output).toMatchObject({ truncated: true, bytes: 5000 });
    const body = s.output.content!.split("\n[truncated")[0]!;
    expect(Buffer.byteLength(body)).toBeLessThanOrEqual(1000);
    expect(Buffer.byteLength(body)).toBeGreaterThan(990);
    expect(body).toMatch(/^é+$/);
    // A tool that reports an error is a tool_result error for the model, not a crash.
    const f = await toolStep(r.runId, "mcp__fixture__fail");
    expect(f).toMatchObject({ status: "error", output: { isError: true, content: "it broke" } });
    expect(r.taskStatus).toBe("done");
    await services.gateway.update(actor(), "fixture", { limits: { resultCapBytes: 65536 } });
  });

  it("charges a tool's fee once as an `action` and refuses the call over a hard budget", async () => {
    await services.gateway.updateTool(actor(), "fixture", "pay", { feeMicros: 600_000, valueField: "amount" });
    const before = fixture.callsTo("pay");
    const r = await runTask("payer", [{ call: "mcp__fixture__pay", input: { amount: 12.5, to: "acme" } }], { tools: ["mcp://gateway/fixture/pay"] });
    const s = await toolStep(r.runId, "mcp__fixture__pay");
    expect(s).toMatchObject({ status: "ok", output: { content: "paid 12.5 to acme", feeMicros: 600_000 } });
    const rows = await q<{ kind: string; cost_micros: string; idempotency_key: string; description: string; step_seq: number }>(
      `SELECT kind, cost_micros, idempotency_key, description, step_seq FROM cost_ledger WHERE run_id = $1 AND kind = 'action'`,
      [r.runId],
    );
    expect(rows).toEqual([{ kind: "action", cost_micros: "600000", idempotency_key: `${r.runId}:${s.seq}:action`, description: "mcp://gateway/fixture/pay", step_seq: s.seq }]);
    expect(fixture.callsTo("pay")).toBe(before + 1);
    // Settling the same step again (a replayed step) finds its charge by key: still one row.
    const spend = spendEngine({ jobs: producer });
    const [run] = await q<{ created_at: Date }>(`SELECT created_at FROM runs WHERE id = $1`, [r.runId]);
    const again = { tenantId, agentId: r.agent.id, runId: r.runId, runCreatedAt: run!.created_at, taskId: r.taskId, key: `${r.runId}:${s.seq}`, calls: [], computeMs: 0, actionMicros: 600_000 };
    const reservation = await withTenant(db.database, tenantId, (tx) => spend.reserve(tx, again));
    const replay = await withTenant(db.database, tenantId, (tx) => spend.settleAction(tx, reservation, { seq: s.seq, description: "mcp://gateway/fixture/pay" }));
    expect(replay.costMicros).toBe(0);
    expect(await q(`SELECT 1 FROM cost_ledger WHERE run_id = $1 AND kind = 'action'`, [r.runId])).toHaveLength(1);

    // A $0.50 daily budget holds the model calls but not a $0.60 fee: refused, never sent.
    const broke = await runTask("broke", [{ call: "mcp__fixture__pay", input: { amount: 1, to: "x" } }], {
      tools: ["mcp://gateway/fixture/pay"],
      budgets: { usd_per_day: 0.5 },
    });
    const refused = await toolStep(broke.runId, "mcp__fixture__pay");
    expect(refused.status).toBe("error");
    expect(refused.output.code).toBe("BUDGET_EXCEEDED");
    expect(fixture.callsTo("pay")).toBe(before + 1);
    expect(await q(`SELECT 1 FROM cost_ledger WHERE run_id = $1 AND kind = 'action'`, [broke.runId])).toEqual([]);
    // Nothing stays reserved for the refused fee.
    expect(await q(`SELECT 1 FROM budget_reservations WHERE key = $1`, [`${broke.runId}:${refused.seq}`])).toEqual([]);
  });

  it("a server that does not answer in time is a tool error for the model, and its fee is released", async () => {
    const slow = await startMcpHttpFixture({ delayMs: 3000 });
    try {
      await services.gateway.create(actor(), { name: "slow", transport: "http", url: slow.url, limits: { timeoutMs: 300 } });
      await services.gateway.refresh(actor(), "slow");
      await services.gateway.updateTool(actor(), "slow", "echo", { feeMicros: 1000 });
      const r = await runTask("impatient", [{ call: "mcp__slow__echo", input: { text: "late" } }], { tools: ["mcp://gateway/slow/*"], budgets: { usd_per_day: 5 } });
      const s = await toolStep(r.runId, "mcp__slow__echo");
      expect(s.status).toBe("error");
      expect(s.output.code).toBe("MCP_ERROR");
      expect(s.output.content).toMatch(/timed out|timeout/i);
      expect(r.taskStatus).toBe("done");
      expect(await q(`SELECT 1 FROM cost_ledger WHERE run_id = $1 AND kind = 'action'`, [r.runId])).toEqual([]);
      expect(await q(`SELECT 1 FROM budget_reservations WHERE key = $1`, [`${r.runId}:${s.seq}`])).toEqual([]);
      const [w] = await q<{ reserved: string }>(`SELECT sum(reserved)::text AS reserved FROM budget_windows w JOIN budgets b ON b.tenant_id = w.tenant_id AND b.id = w.budget_id WHERE b.agent_id = $1`, [r.agent.id]);
      expect(Number(w!.reserved)).toBe(0);
    } finally {
      await slow.close();
    }
  }, 30_000);

  it("limits calls per server per minute across two workers (counted in Postgres)", async () => {
    await services.gateway.create(actor(), { name: "limited", transport: "http", url: fixture.url, limits: { callsPerMinute: 3 } });
    await services.gateway.refresh(actor(), "limited");
    // Stay inside one minute window.
    if (new Date().getSeconds() > 40) await new Promise((ok) => setTimeout(ok, (61 - new Date().getSeconds()) * 1000));
    const script = [1, 2, 3].map((i) => ({ call: "mcp__limited__echo", input: { text: `rl-${i}` } }));
    const [a, b] = await Promise.all([
      runTask("rl-a", script, { tools: ["mcp://gateway/limited/*"] }, runtime("w-rl-a")),
      runTask("rl-b", script, { tools: ["mcp://gateway/limited/*"] }, runtime("w-rl-b")),
    ]);
    const steps = [...(await a.steps()), ...(await b.steps())].filter((s) => s.name === "mcp__limited__echo");
    expect(steps).toHaveLength(6);
    expect(steps.filter((s) => s.status === "ok")).toHaveLength(3);
    expect(steps.filter((s) => s.output.code === "RATE_LIMITED")).toHaveLength(3);
    expect(fixture.calls.filter((c) => String(c.args.text).startsWith("rl-"))).toHaveLength(3);
  }, 90_000);

  it("the demo: server-everything, an echo, then a get-sum that waits for a person's approval", async () => {
    const demo = await services.identity.signup({ tenant: { name: "Demo", timeZone: "UTC" }, owner: { email: "demo@example.com", password: "demo-password-1" } });
    const da = systemActor(demo.tenant.id, "bootstrap");
    await bootstrapGatewayDemo(services, da);
    const agent = await services.agents.get(da, "tool-runner");
    await rt.wake({ tenantId: demo.tenant.id, agentId: agent.id });
    const [task] = await q<{ id: string; run_id: string; status: string }>(`SELECT id, run_id, status FROM tasks WHERE tenant_id = $1`, [demo.tenant.id]);
    expect(task!.status).toBe("in_progress");
    expect((await toolStep(task!.run_id, "mcp__everything__echo")).output.content).toContain("hello from the gateway");
    const pending = (await services.approvals.list(da, { limit: 10, status: "pending" })).items;
    expect(pending).toHaveLength(1);
    await services.approvals.approve(da, pending[0]!.id, { comment: "fine" });
    await rt.wake({ tenantId: demo.tenant.id, agentId: agent.id });
    const sum = await toolStep(task!.run_id, "mcp__everything__get-sum");
    expect(sum.status).toBe("ok");
    expect(sum.output.content).toContain("1234");
    expect((await q<{ status: string }>(`SELECT status FROM tasks WHERE id = $1`, [task!.id]))[0]!.status).toBe("done");
  }, 60_000);

  it("waits for a human approval before the call, then makes it", async () => {
    const before = fixture.callsTo("pay");
    const r = await runTask("careful", [{ call: "mcp__fixture__pay", input: { amount: 3, to: "vendor" } }], {
      tools: ["mcp://gateway/fixture/pay"],
      approval: { tools: ["mcp://gateway/fixture/pay"] },
    });
    const [run] = await q<{ status: string }>(`SELECT status FROM runs WHERE id = $1`, [r.runId]);
    expect(run!.status).toBe("waiting");
    expect(fixture.callsTo("pay")).toBe(before);
    const pending = (await services.approvals.list(actor(), { limit: 10, status: "pending", agent: "careful" })).items;
    expect(pending).toHaveLength(1);
    await services.approvals.approve(actor(), pending[0]!.id, {});
    await rt.wake({ tenantId, agentId: r.agent.id });
    expect(fixture.callsTo("pay")).toBe(before + 1);
    expect((await toolStep(r.runId, "mcp__fixture__pay")).status).toBe("ok");
    const [t] = await q<{ status: string }>(`SELECT status FROM tasks WHERE id = $1`, [r.taskId]);
    expect(t!.status).toBe("done");
  });
});
