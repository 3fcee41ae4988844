import { agentRuntime, createServices, type DomainServices, loadContextData, providerCache, systemActor } from "@bosun/core";
import { withTenant } from "@bosun/db";
import { createJobs, type Jobs } from "@bosun/jobs";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDb, type TestDb } from "../../../test/helpers/db";
import { startWorker } from "../src/worker";

/**
 * Proposals and ownership inside agent runs: the `propose` and `respond_to_proposal` tools,
 * `create_task` refused outside the agent's domains, and the worker's tick as the timer.
 */

let db: TestDb;
let producer: Jobs;
let services: DomainServices;
let tenantId: string;
const silent = pino({ level: process.env.TEST_LOG ?? "silent" });

const q = async <T = Record<string, unknown>>(sql: string, values: unknown[] = []) => (await db.database.pool.query(sql, values)).rows as T[];
const actor = () => systemActor(tenantId, "test");

function descriptor(name: string, domains: string[], script: unknown[]) {
  return {
    apiVersion: "agent.os/v1",
    kind: "Agent",
    metadata: { name, owner: "tests" },
    spec: { model: { provider: "scripted", name: "scripted-small", script }, soul: `You are ${name}.`, domains },
  };
}

const apply = (name: string, domains: string[], script: unknown[] = []) => services.agents.apply(actor(), name, descriptor(name, domains, script)).then((r) => r.body);
const runtime = (id: string) => agentRuntime({ database: db.database, jobs: producer, tasks: services.tasks, proposals: services.proposals, provider: providerCache(), workerId: id });

/** Gives the agent a task and runs it once; returns the run's tool steps. */
async function runOnce(name: string, agentId: string) {
  const task = (await services.tasks.create(actor(), { title: `work for ${name}`, body: "", priority: 50, depends_on: [], requires_review: false, max_attempts: 3, assignee: name })).body;
  expect((await runtime(`w-${name}`).wake({ tenantId, agentId })).outcome).toBe("ran");
  const [t] = await q<{ run_id: string; status: string }>("SELECT run_id, status FROM tasks WHERE id = $1", [task.id]);
  expect(t!.status).toBe("done");
  return q<{ kind: string; name: string; status: string; output: { content: string; proposalId?: string } }>(
    "SELECT kind, name, status, output FROM steps WHERE run_id = $1 AND kind <> 'llm' ORDER BY seq",
    [t!.run_id],
  );
}

beforeAll(async () => {
  db = await createTestDb();
  producer = createJobs({ connectionString: db.url, role: "producer", max: 2 });
  await producer.start();
  services = createServices({ database: db.database, jobs: producer, secureCookies: false });
  const s = await services.identity.signup({ tenant: { name: "Proposals", timeZone: "UTC" }, owner: { email: "prp@example.com", password: "proposal-password-1" } });
  tenantId = s.tenant.id;
});
afterAll(async () => {
  await producer.stop({ graceful: false, timeout: 1000 });
  await db.drop();
});

describe("inside a run", () => {
  it("create_task outside the agent's domains is a tool error that names the propose tool; propose asks the owners; their support applies the action", async () => {
    const planner = await apply("planner", ["plan/*"], [
      { call: "create_task", input: { title: "reconcile-direct", domain: "finance/invoices" } },
      {
        call: "propose",
        input: { title: "Reconcile April", body: "the ledger is off", domains: ["finance/invoices"], action: { type: "create_tasks", tasks: [{ title: "reconcile-proposed", domain: "finance/invoices" }] } },
      },
    ]);
    await apply("fin", ["finance/*"]);
    const steps = await runOnce("planner", planner.id);
    expect(steps[0]).toMatchObject({ kind: "tool", name: "create_task", status: "error" });
    expect(steps[0]!.output.content).toMatch(/^OUTSIDE_DOMAIN: agent 'planner' may not create a task in domain 'finance\/invoices'/);
    expect(steps[0]!.output.content).toContain("`propose` tool");
    expect(steps[1]).toMatchObject({ kind: "proposal", name: "propose", status: "ok" });
    expect(await q("SELECT id FROM tasks WHERE title = 'reconcile-direct'")).toEqual([]);
    const proposalId = steps[1]!.output.proposalId!;
    const open = await services.proposals.get(actor(), proposalId);
    expect(open).toMatchObject({ status: "open", proposer: { type: "agent", id: planner.id }, domains: ["finance/invoices"] });
    expect(open.responses.map((r) => r.agent)).toEqual(["fin"]);

    // The owner answers in its own run: unanimous support approves and applies, in that step's transaction.
    const fin = await apply("fin", ["finance/*"], [{ call: "respond_to_proposal", input: { proposal: proposalId, stance: "support", comment: "yes" } }]);
    const finSteps = await runOnce("fin", fin.id);
    expect(finSteps[0]).toMatchObject({ kind: "proposal", name: "respond_to_proposal", status: "ok" });
    expect(finSteps[0]!.output.content).toContain("approved");
    const approved = await services.proposals.get(actor(), proposalId);
    expect(approved).toMatchObject({ status: "approved", decisionReason: "unanimous_support", responses: [{ agent: "fin", stance: "support", comment: "yes" }] });
    expect(await q("SELECT created_by_type, created_by_id FROM tasks WHERE title = 'reconcile-proposed'")).toEqual([
      { created_by_type: "system", created_by_id: `proposal:${proposalId}` },
    ]);
  });

  it("respond_to_proposal by an agent that was not asked, or with a bad stance, is a tool error", async () => {
    const p = (await services.proposals.create(actor(), { title: "Ops only", body: "", domains: ["ops/x"] })).body;
    const outsider = await apply("outsider", ["hr/*"], [
      { call: "respond_to_proposal", input: { proposal: p.id, stance: "block" } },
      { call: "respond_to_proposal", input: { proposal: p.id, stance: "veto" } },
    ]);
    const steps = await runOnce("outsider", outsider.id);
    expect(steps.slice(0, 2).map((s) => [s.name, s.status])).toEqual([
      ["respond_to_proposal", "error"],
      ["respond_to_proposal", "error"],
    ]);
    expect(steps[0]!.output.content).toMatch(/^FORBIDDEN: this agent was not asked/);
    expect(steps[1]!.output.content).toMatch(/support, concern or block/);
  });
});

describe("the worker's tick", () => {
  it("is the timer: it approves a proposal whose silence window has passed and escalates a blocked one past its escalate window", async () => {
    await apply("ops", ["ops/*"]);
    const quiet = (await services.proposals.create(actor(), { title: "Quiet", body: "", domains: ["ops/quiet"] })).body;
    const blocked = (await services.proposals.create(actor(), { title: "Blocked", body: "", domains: ["ops/blocked"] })).body;
    const opsKey = await services.apiKeys.create(actor(), { name: "ops", scopes: ["write"], agent: "ops" });
    const opsActor = await services.apiKeys.authenticate(opsKey.body.key!);
    await services.proposals.respond(opsActor!, blocked.id, { stance: "block", comment: "no" });
    // Move both proposals' clocks back a day and a half instead of waiting for it.
    await q(
      `UPDATE proposals SET approve_at = approve_at - interval '36 hours', escalate_at = escalate_at - interval '36 hours',
         due_at = due_at - interval '36 hours' WHERE id = ANY($1)`,
      [[quiet.id, blocked.id]],
    );
    const jobs = createJobs({ connectionString: db.url, role: "worker", max: 2 });
    const worker = await startWorker({ jobs, services, logger: silent, mailer: null });
    try {
      await worker.tick();
      expect((await services.proposals.get(actor(), quiet.id)).status).toBe("approved");
      expect((await services.proposals.get(actor(), blocked.id)).status).toBe("open");
      await q("UPDATE proposals SET escalate_at = escalate_at - interval '13 hours', due_at = due_at - interval '13 hours' WHERE id = $1", [blocked.id]);
      await worker.tick();
      expect((await services.proposals.get(actor(), blocked.id)).status).toBe("escalated");
    } finally {
      await worker.stop();
    }
  });
});

describe("the active context", () => {
  it("shows an agent the open proposals it was asked about, unanswered until it takes a stance, and not others'", async () => {
    const owner = await apply("ctx-owner", ["ctx/*"]);
    const stranger = await apply("ctx-stranger", ["elsewhere/*"]);
    const p = (await services.proposals.create(actor(), { title: "Context proposal", body: "", domains: ["ctx/a"] })).body;
    const seen = (agentId: string) =>
      withTenant(db.database, tenantId, (tx) => loadContextData(tx, { tenantId, agentId, withContext: true })).then((d) =>
        d.proposals.filter((x) => x.id === p.id),
      );
    expect(await seen(owner.id)).toEqual([{ id: p.id, title: "Context proposal", responded: false }]);
    expect(await seen(stranger.id)).toEqual([]);
    const key = await services.apiKeys.create(actor(), { name: "ctx-owner", scopes: ["write"], agent: "ctx-owner" });
    await services.proposals.respond((await services.apiKeys.authenticate(key.body.key!))!, p.id, { stance: "concern", comment: "hm" });
    expect(await seen(owner.id)).toEqual([{ id: p.id, title: "Context proposal", responded: true }]);
  });
});

describe("asking", () => {
  it("tells each asked agent with a message that wakes it, and an agent woken by it responds without any task", async () => {
    const owner = await apply("ask-owner", ["ask/*"]);
    const bystander = await apply("ask-bystander", ["other/*"]);
    const p = (await services.proposals.create(actor(), { title: "Ask me", body: "please", domains: ["ask/x"] })).body;
    const told = await q<{ to_agent_id: string; body: string }>("SELECT to_agent_id, body FROM messages WHERE tenant_id = $1 AND body LIKE $2", [tenantId, `%${p.id}%`]);
    expect(told.map((m) => m.to_agent_id)).toEqual([owner.id]);
    expect(told[0]!.body).toContain("respond_to_proposal");
    expect(told.some((m) => m.to_agent_id === bystander.id)).toBe(false);
    const wakes = await q<{ n: number }>("SELECT count(*)::int AS n FROM pgboss.job WHERE name = 'agent.wake' AND data->>'agentId' = $1", [owner.id]);
    expect(wakes[0]!.n).toBeGreaterThan(0);
    // The scripted response names the proposal: put its id into the script, then let a worker take the wake.
    await services.agents.apply(actor(), "ask-owner", descriptor("ask-owner", ["ask/*"], [{ call: "respond_to_proposal", input: { proposal: p.id, stance: "support", comment: "fine" } }]));
    const jobs = createJobs({ connectionString: db.url, role: "worker", max: 2 });
    const rt = agentRuntime({ database: db.database, jobs, tasks: services.tasks, proposals: services.proposals, provider: providerCache(), workerId: "w-ask" });
    const worker = await startWorker({ jobs, services, logger: silent, runtime: rt, mailer: null, tickMs: 0 });
    try {
      const deadline = Date.now() + 30_000;
      while ((await services.proposals.get(actor(), p.id)).status !== "approved") {
        if (Date.now() > deadline) throw new Error("the asked agent never responded");
        await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      await worker.stop();
    }
    const got = await services.proposals.get(actor(), p.id);
    expect(got.responses).toMatchObject([{ agent: "ask-owner", stance: "support", comment: "fine" }]);
  });
});
