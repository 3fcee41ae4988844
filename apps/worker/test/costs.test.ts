import {
  type AgentRuntime,
  agentRuntime,
  createServices,
  type DomainServices,
  providerCache,
  spendEngine,
  sweepReservations,
  systemActor,
  tokenCost,
} from "@bosun/core";
import { createDatabase, type Database, repo, withTenant } from "@bosun/db";
import { createJobs, type Jobs } from "@bosun/jobs";
import { type ModelProvider, type ModelRequest, type ModelResponse, normaliseAnthropicUsage, normaliseOpenAIUsage, type Usage } from "@bosun/llm";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDb, type TestDb } from "../../../test/helpers/db";
import { startWorker, type Worker } from "../src/worker";

let db: TestDb;
let producer: Jobs;
let services: DomainServices;
const silent = pino({ level: process.env.TEST_LOG ?? "silent" });

const q = async <T = Record<string, unknown>>(sql: string, values: unknown[] = []) => (await db.database.pool.query(sql, values)).rows as T[];

async function until<T>(fn: () => Promise<T | undefined | null | false>, ms = 20_000, what = "condition"): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`${what} not met in ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function newTenant(name: string, timeZone = "UTC") {
  const s = await services.identity.signup({ tenant: { name, timeZone }, owner: { email: `${name.toLowerCase().replace(/\W/g, "")}@example.com`, password: "costs-password-1" } });
  return s.tenant.id;
}

function descriptor(name: string, model: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) {
  return {
    apiVersion: "agent.os/v1",
    kind: "Agent",
    metadata: { name, owner: "tests" },
    spec: { model: { provider: "scripted", name: "scripted-small", ...model }, soul: `You are ${name}.`, ...extra },
  };
}

const apply = (tenantId: string, name: string, model?: Record<string, unknown>, extra?: Record<string, unknown>) =>
  services.agents.apply(systemActor(tenantId, "test"), name, descriptor(name, model, extra)).then((r) => r.body);
const createTask = (tenantId: string, title: string, assignee: string, more: Record<string, unknown> = {}) =>
  services.tasks
    .create(systemActor(tenantId, "test"), { title, body: "", priority: 50, depends_on: [], requires_review: false, max_attempts: 3, assignee, ...more })
    .then((r) => r.body);

function runtimeFor(database: Database, jobs: Jobs, id: string, extra: Partial<Parameters<typeof agentRuntime>[0]> = {}): AgentRuntime {
  const s = createServices({ database, jobs, secureCookies: false });
  return agentRuntime({ database, jobs, tasks: s.tasks, provider: providerCache(), workerId: id, leaseTtlSeconds: 5, ...extra });
}

/** A provider that answers `complete_task` with a canned usage, as the given provider reports it. */
function canned(reported: { provider: string; model: string; usage: Usage }, calls: ModelRequest[] = []): ModelProvider {
  return {
    name: reported.provider,
    complete: async (req): Promise<ModelResponse> => {
      calls.push(req);
      return {
        content: [{ type: "tool_use", id: `tu_${calls.length}`, name: "complete_task", input: { result: "done" } }],
        stopReason: "tool_use",
        model: reported.model,
        requestedModel: req.model,
        provider: reported.provider,
        usage: reported.usage,
        latencyMs: 1,
        attempts: 1,
      };
    },
  };
}

const ledger = (runId: string) =>
  q<{ kind: string; provider: string; model: string; price_id: string | null; cost_micros: string | null; unpriced: boolean; estimated: boolean; input_tokens: string; cache_read_tokens: string; cache_write_tokens: string; output_tokens: string; raw_usage: unknown; idempotency_key: string; step_seq: number }>(
    `SELECT * FROM cost_ledger WHERE run_id = $1 ORDER BY step_seq, kind DESC`,
    [runId],
  );

const priceRow = async (id: string) =>
  (await q<{ input_micros_per_mtok: string; output_micros_per_mtok: string; cache_read_micros_per_mtok: string; cache_write_micros_per_mtok: string }>(
    `SELECT input_micros_per_mtok, output_micros_per_mtok, cache_read_micros_per_mtok, cache_write_micros_per_mtok FROM model_prices WHERE id = $1
     UNION ALL SELECT input_micros_per_mtok, output_micros_per_mtok, cache_read_micros_per_mtok, cache_write_micros_per_mtok FROM price_overrides WHERE id = $1`,
    [id],
  ))[0]!;
const asPrice = (p: Awaited<ReturnType<typeof priceRow>>) => ({
  inputMicrosPerMtok: Number(p.input_micros_per_mtok),
  outputMicrosPerMtok: Number(p.output_micros_per_mtok),
  cacheReadMicrosPerMtok: Number(p.cache_read_micros_per_mtok),
  cacheWriteMicrosPerMtok: Number(p.cache_write_micros_per_mtok),
});

beforeAll(async () => {
  db = await createTestDb();
  producer = createJobs({ connectionString: db.url, role: "producer", max: 2 });
  await producer.start();
  services = createServices({ database: db.database, jobs: producer, secureCookies: false });
});
afterAll(async () => {
  await producer.stop({ graceful: false, timeout: 1000 });
  await db.drop();
});

describe("the ledger", () => {
  it("charges every model call with the step that records it, naming the price it used", async () => {
    const tenantId = await newTenant("Ledger");
    const agent = await apply(tenantId, "payer");
    const task = await createTask(tenantId, "Pay attention", "payer");
    await runtimeFor(db.database, producer, "w-ledger").wake({ tenantId, agentId: agent.id });
    const [t] = await q<{ status: string; run_id: string }>(`SELECT status, run_id FROM tasks WHERE id = $1`, [task.id]);
    expect(t!.status).toBe("done");
    const [step] = await q<{ seq: number; input_tokens: number; cache_read_tokens: number; cache_write_tokens: number; output_tokens: number }>(
      `SELECT seq, input_tokens, cache_read_tokens, cache_write_tokens, output_tokens FROM steps WHERE run_id = $1 AND kind = 'llm'`,
      [t!.run_id],
    );
    const rows = await ledger(t!.run_id);
    expect(rows.map((r) => [r.kind, r.idempotency_key])).toEqual([
      ["tokens", `${t!.run_id}:${step!.seq}`],
      ["compute", `${t!.run_id}:${step!.seq}:compute`],
    ]);
    const tokens = rows[0]!;
    const [catalogue] = await q<{ id: string }>(`SELECT id FROM model_prices WHERE provider = 'scripted' AND model = 'scripted-small'`);
    expect(tokens).toMatchObject({ provider: "scripted", model: "scripted-small", price_id: catalogue!.id, unpriced: false, estimated: false });
    // The provider's raw numbers are kept beside the derived categories.
    expect(tokens.raw_usage).toMatchObject({ input_tokens: step!.input_tokens, cache_creation_input_tokens: step!.cache_write_tokens });
    const usage = { inputTokens: step!.input_tokens, cacheReadTokens: step!.cache_read_tokens, cacheWriteTokens: step!.cache_write_tokens, outputTokens: step!.output_tokens };
    expect(Number(tokens.cost_micros)).toBe(tokenCost(asPrice(await priceRow(catalogue!.id)), usage));
    expect(Number(tokens.cost_micros)).toBeGreaterThan(0);
    // The application role may append to the ledger, never change it.
    await expect(
      withTenant(db.database, tenantId, (tx) => tx.$client.query(`UPDATE cost_ledger SET cost_micros = 0 WHERE run_id = $1`, [t!.run_id])),
    ).rejects.toThrow(/permission denied/);
  });

  it("keeps each provider's raw usage and prices cache tokens once, Anthropic and OpenAI alike", async () => {
    const tenantId = await newTenant("Providers");
    const anthropicRaw = { input_tokens: 100, cache_read_input_tokens: 900, cache_creation_input_tokens: 50, output_tokens: 20 };
    const openaiRaw = { prompt_tokens: 1000, completion_tokens: 20, total_tokens: 1020, prompt_tokens_details: { cached_tokens: 900 } };
    const providers: Record<string, ModelProvider> = {
      anthropic: canned({ provider: "anthropic", model: "claude-opus-4-7-20260214", usage: normaliseAnthropicUsage(anthropicRaw) }),
      openai: canned({ provider: "openai", model: "gpt-5.4-2026-03-05", usage: normaliseOpenAIUsage(openaiRaw) }),
    };
    const rt = runtimeFor(db.database, producer, "w-providers", { provider: (m) => providers[m.provider]! });
    const expected: Record<string, { model: string; cost: number; input: number; cacheRead: number; raw: object }> = {
      // 100 × $5 + 900 × $0.50 + 50 × $6.25 + 20 × $25 per MTok, rounded up.
      anthropic: { model: "claude-opus-4-7", cost: 1763, input: 100, cacheRead: 900, raw: anthropicRaw },
      // prompt_tokens includes the 900 cached: 100 × $2.50 + 900 × $0.25 + 20 × $15.
      openai: { model: "gpt-5.4", cost: 775, input: 100, cacheRead: 900, raw: openaiRaw },
    };
    for (const [provider, e] of Object.entries(expected)) {
      const agent = await apply(tenantId, `on-${provider}`, { provider, name: e.model });
      const task = await createTask(tenantId, `work on ${provider}`, `on-${provider}`);
      await rt.wake({ tenantId, agentId: agent.id });
      const [t] = await q<{ status: string; run_id: string }>(`SELECT status, run_id FROM tasks WHERE id = $1`, [task.id]);
      expect(t!.status).toBe("done");
      const [row] = (await ledger(t!.run_id)).filter((r) => r.kind === "tokens");
      const [price] = await q<{ id: string }>(`SELECT id FROM model_prices WHERE provider = $1 AND model = $2`, [provider, e.model]);
      expect({
        model: row!.model,
        price: row!.price_id,
        cost: Number(row!.cost_micros),
        input: Number(row!.input_tokens),
        cacheRead: Number(row!.cache_read_tokens),
        sum: Number(row!.input_tokens) + Number(row!.cache_read_tokens) + Number(row!.cache_write_tokens) + Number(row!.output_tokens),
        raw: row!.raw_usage,
      }).toEqual({
        model: provider === "anthropic" ? "claude-opus-4-7-20260214" : "gpt-5.4-2026-03-05",
        price: price!.id,
        cost: e.cost,
        input: e.input,
        cacheRead: e.cacheRead,
        sum: provider === "anthropic" ? 1070 : openaiRaw.total_tokens,
        raw: e.raw,
      });
    }
  });

  it("charges both attempts when routing escalates past a small model that ran out of tokens", async () => {
    const tenantId = await newTenant("Routing");
    const agent = await apply(tenantId, "router", { name: "scripted-small", max_tokens: 64, escalate_to: { name: "scripted-large" } });
    const task = await createTask(tenantId, "route me", "router");
    const real = providerCache();
    const rt = runtimeFor(db.database, producer, "w-routing", {
      provider: (m) =>
        m.name === "scripted-small"
          ? { name: "scripted", complete: async (req) => ({ ...(await real(m).complete(req)), stopReason: "max_tokens" as const }) }
          : real(m),
    });
    await rt.wake({ tenantId, agentId: agent.id });
    const [t] = await q<{ status: string; run_id: string }>(`SELECT status, run_id FROM tasks WHERE id = $1`, [task.id]);
    expect(t!.status).toBe("done");
    const tokens = (await ledger(t!.run_id)).filter((r) => r.kind === "tokens");
    expect(tokens.map((r) => [r.step_seq, r.model])).toEqual([
      [0, "scripted-small"],
      [1, "scripted-large"],
    ]);
    expect(tokens.every((r) => Number(r.cost_micros) > 0)).toBe(true);
  });

  it("charges a settle replayed under the same key once", async () => {
    const tenantId = await newTenant("Replay");
    const agent = await apply(tenantId, "replayer", {}, { budgets: { usd_per_day: 10 } });
    const spend = spendEngine({ jobs: producer });
    const runId = `run_${"r".repeat(26)}`;
    const req = {
      tenantId,
      agentId: agent.id,
      runId,
      runCreatedAt: new Date(),
      taskId: null,
      key: `${runId}:0`,
      calls: [{ provider: "scripted", model: "scripted-small", promptTokens: 1000, maxTokens: 100 }],
      computeMs: 1000,
    };
    const usage = normaliseAnthropicUsage({ input_tokens: 1000, output_tokens: 100 });
    const actual = { calls: [{ seq: 0, model: "scripted-small", usage }], computeMs: 500 };
    const first = await withTenant(db.database, tenantId, async (tx) => spend.settle(tx, await spend.reserve(tx, req), actual));
    const again = await withTenant(db.database, tenantId, async (tx) => spend.settle(tx, await spend.reserve(tx, req), actual));
    expect(first.costMicros).toBeGreaterThan(0);
    expect(again.costMicros).toBe(0);
    const rows = await q<{ n: number; sum: string }>(`SELECT count(*)::int AS n, sum(cost_micros) AS sum FROM cost_ledger WHERE run_id = $1`, [runId]);
    expect(rows[0]).toEqual({ n: 2, sum: String(first.costMicros) });
    const [w] = await q<{ spent: string; reserved: string }>(`SELECT spent, reserved FROM budget_windows WHERE tenant_id = $1`, [tenantId]);
    expect(w).toEqual({ spent: String(first.costMicros), reserved: "0" });
  });
});

describe("prices", () => {
  it("refuses an unpriced model before the call, with a clear error; the task goes back per its failure rules", async () => {
    const tenantId = await newTenant("Unpriced");
    const calls: ModelRequest[] = [];
    const agent = await apply(tenantId, "adventurer", { provider: "openai", name: "gpt-unreleased-9" });
    const task = await createTask(tenantId, "try the new model", "adventurer", { max_attempts: 2 });
    const rt = runtimeFor(db.database, producer, "w-unpriced", { provider: () => canned({ provider: "openai", model: "gpt-unreleased-9", usage: normaliseOpenAIUsage({ prompt_tokens: 10, completion_tokens: 1 }) }, calls) });
    await rt.wake({ tenantId, agentId: agent.id });
    expect(calls).toHaveLength(0);
    const runs = await q<{ status: string; error: { code: string; message: string } }>(`SELECT status, error FROM runs WHERE task_id = $1 ORDER BY created_at`, [task.id]);
    expect(runs.length).toBe(2); // one per attempt
    expect(runs[0]).toMatchObject({ status: "failed", error: { code: "UNPRICED_MODEL" } });
    expect(runs[0]!.error.message).toMatch(/no price for openai model 'gpt-unreleased-9'.*POST \/v1\/prices/);
    expect((await q(`SELECT status, attempts FROM tasks WHERE id = $1`, [task.id]))[0]).toEqual({ status: "failed", attempts: 2 });
    expect(await q(`SELECT 1 FROM cost_ledger WHERE tenant_id = $1`, [tenantId])).toEqual([]);

    // The tenant allows unpriced models: the call is made, and flagged with an unknown cost (not $0).
    const admin = systemActor(tenantId, "test");
    await services.costs.updateSettings(admin, { allowUnpricedModels: true });
    const second = await createTask(tenantId, "try it anyway", "adventurer");
    await rt.wake({ tenantId, agentId: agent.id });
    expect(calls).toHaveLength(1);
    const [t] = await q<{ status: string; run_id: string }>(`SELECT status, run_id FROM tasks WHERE id = $1`, [second.id]);
    expect(t!.status).toBe("done");
    const [row] = (await ledger(t!.run_id)).filter((r) => r.kind === "tokens");
    expect(row).toMatchObject({ unpriced: true, cost_micros: null, price_id: null, input_tokens: "10" });

    // A tenant price makes it priced from its effective date.
    const price = await services.costs.createPrice(admin, { provider: "openai", model: "gpt-unreleased-9", inputMicrosPerMtok: 3_000_000, outputMicrosPerMtok: 12_000_000 });
    expect(price).toMatchObject({ source: "tenant", cacheReadMicrosPerMtok: 3_000_000 });
    const third = await createTask(tenantId, "now priced", "adventurer");
    await rt.wake({ tenantId, agentId: agent.id });
    const [t3] = await q<{ run_id: string }>(`SELECT run_id FROM tasks WHERE id = $1`, [third.id]);
    const [row3] = (await ledger(t3!.run_id)).filter((r) => r.kind === "tokens");
    expect(row3).toMatchObject({ unpriced: false, price_id: price.id, cost_micros: String(Math.ceil((10 * 3 + 1 * 12))) });
  });

  it("prefers a tenant's price over the catalogue, by effective date", async () => {
    const tenantId = await newTenant("Overrides");
    const admin = systemActor(tenantId, "test");
    const now = Date.now();
    const cheap = await services.costs.createPrice(admin, {
      provider: "anthropic",
      model: "claude-opus-4-7",
      inputMicrosPerMtok: 4_000_000,
      outputMicrosPerMtok: 20_000_000,
      effectiveFrom: new Date(now + 3_600_000).toISOString(),
    });
    const at = (ms: number) => withTenant(db.database, tenantId, (tx) =>
      repo.costs.findPrice(tx, { tenantId, provider: "anthropic", models: ["claude-opus-4-7-20260214", "claude-opus-4-7", "*"], at: new Date(ms) }),
    );
    expect((await at(now))).toMatchObject({ source: "catalogue", inputMicrosPerMtok: 5_000_000 });
    expect((await at(now + 7_200_000))).toMatchObject({ id: cheap.id, source: "tenant", inputMicrosPerMtok: 4_000_000 });
    // Other tenants still see the catalogue.
    const other = await newTenant("Overrides Other");
    const theirs = await withTenant(db.database, other, (tx) =>
      repo.costs.findPrice(tx, { tenantId: other, provider: "anthropic", models: ["claude-opus-4-7"], at: new Date(now + 7_200_000) }),
    );
    expect(theirs).toMatchObject({ source: "catalogue" });
  });
});

describe("budgets", () => {
  it("turns the descriptor's budgets into the agent's budgets, and follows the descriptor", async () => {
    const tenantId = await newTenant("Descriptors");
    const admin = systemActor(tenantId, "test");
    await apply(tenantId, "governed", {}, { budgets: { calls_per_hour: 200, usd_per_day: 40, usd_per_invocation: 2 } });
    const list = async () => (await services.budgets.list(admin, { limit: 50, agent: "governed" })).items.map((b) => [b.metric, b.window, b.limit, b.onExhausted, b.source]).sort();
    expect(await list()).toEqual([
      ["calls", "hour", 200, "refuse", "descriptor"],
      ["usd", "day", 40_000_000, "pause_agent", "descriptor"],
      ["usd", "invocation", 2_000_000, "refuse", "descriptor"],
    ]);
    await apply(tenantId, "governed", {}, { budgets: { usd_per_day: 12.5, usd_per_month: 300 } });
    expect(await list()).toEqual([
      ["usd", "day", 12_500_000, "pause_agent", "descriptor"],
      ["usd", "month", 300_000_000, "pause_agent", "descriptor"],
    ]);
    await apply(tenantId, "governed", {}, {});
    expect(await list()).toEqual([]);
  });

  it("refuses a call that would pass a hard budget: the run fails with BUDGET_EXCEEDED and the task goes back", async () => {
    const tenantId = await newTenant("Refusals");
    const calls: ModelRequest[] = [];
    // $0.0001 per invocation: less than any call's worst case.
    const agent = await apply(tenantId, "frugal", {}, { budgets: { usd_per_invocation: 0.0001 } });
    const task = await createTask(tenantId, "too dear", "frugal", { max_attempts: 3 });
    const real = providerCache();
    const rt = runtimeFor(db.database, producer, "w-frugal", {
      provider: (m) => ({
        name: "count",
        complete: (r) => {
          calls.push(r);
          return real(m).complete(r);
        },
      }),
    });
    await rt.wake({ tenantId, agentId: agent.id });
    expect(calls).toHaveLength(0);
    const runs = await q<{ status: string; error: { code: string; message: string } }>(`SELECT status, error FROM runs WHERE task_id = $1`, [task.id]);
    expect(runs).toHaveLength(3);
    for (const r of runs) expect(r).toMatchObject({ status: "failed", error: { code: "BUDGET_EXCEEDED" } });
    expect(runs[0]!.error.message).toMatch(/agent frugal's per-invocation budget of \$0\.0001 .* would be passed/);
    expect((await q(`SELECT status, attempts FROM tasks WHERE id = $1`, [task.id]))[0]).toEqual({ status: "failed", attempts: 3 });
    expect(await q(`SELECT 1 FROM budget_reservations WHERE tenant_id = $1`, [tenantId])).toEqual([]);
    expect(await q(`SELECT reserved, spent FROM budget_windows WHERE tenant_id = $1`, [tenantId])).toEqual([]);
  });

  it("enforces calls_per_hour the same way, and pauses an agent whose exhausted budget says so", async () => {
    const tenantId = await newTenant("Calls");
    const admin = systemActor(tenantId, "test");
    // Three model calls a run (two noop tool calls, then complete_task); two calls an hour.
    const agent = await apply(tenantId, "chatty", { script: [{ call: "noop" }, { call: "noop" }] }, { budgets: { calls_per_hour: 2 } });
    const [budget] = (await services.budgets.list(admin, { limit: 10, agent: "chatty" })).items;
    await services.budgets.update(admin, budget!.id, { onExhausted: "pause_agent" });
    const task = await createTask(tenantId, "talk a lot", "chatty", { max_attempts: 1 });
    await runtimeFor(db.database, producer, "w-calls").wake({ tenantId, agentId: agent.id });
    const [run] = await q<{ status: string; error: { code: string }; step_count: number }>(`SELECT status, error, step_count FROM runs WHERE task_id = $1`, [task.id]);
    expect(run).toMatchObject({ status: "failed", error: { code: "BUDGET_EXCEEDED" } });
    expect(await q(`SELECT count(*)::int AS n FROM steps s JOIN runs r ON r.id = s.run_id WHERE r.task_id = $1 AND s.kind = 'llm'`, [task.id])).toEqual([{ n: 2 }]);
    const b = await services.budgets.get(admin, budget!.id);
    expect(b.current).toMatchObject({ spent: 2, reserved: 0 });
    expect((await services.agents.get(admin, "chatty")).status).toBe("paused");
    const [pause] = await q<{ actor_type: string; actor_id: string; after: { reason: string } }>(
      `SELECT actor_type, actor_id, after FROM audit_events WHERE tenant_id = $1 AND action = 'agent.pause'`,
      [tenantId],
    );
    expect(pause).toMatchObject({ actor_type: "system", actor_id: "budget", after: { reason: `budget ${budget!.id} exhausted` } });
  });

  it("rolls a daily window over at midnight in the tenant's time zone (injected clock)", async () => {
    const tenantId = await newTenant("Midnight", "America/New_York");
    const agent = await apply(tenantId, "night-owl", {}, { budgets: { usd_per_day: 1 } });
    let now = new Date("2026-03-10T03:59:30Z"); // 23:59:30 on 9 March in New York (EDT starts 8 March)
    const spend = spendEngine({ jobs: producer, clock: () => now });
    const usage = normaliseAnthropicUsage({ input_tokens: 1000, output_tokens: 100 }); // 1000 × $1 + 100 × $5 per MTok = 1500 µ$
    let seq = 0;
    const charge = () =>
      withTenant(db.database, tenantId, async (tx) => {
        const runId = `run_${String(seq).padStart(26, "0")}`;
        const r = await spend.reserve(tx, {
          tenantId,
          agentId: agent.id,
          runId,
          runCreatedAt: now,
          taskId: null,
          key: `${runId}:0`,
          calls: [{ provider: "scripted", model: "scripted-small", promptTokens: 1000, maxTokens: 100 }],
          computeMs: 0,
        });
        seq += 1;
        return spend.settle(tx, r, { calls: [{ seq: 0, model: "scripted-small", usage }], computeMs: 0 });
      });
    await charge();
    await charge();
    now = new Date("2026-03-10T04:00:30Z"); // 00:00:30 on 10 March in New York
    await charge();
    const windows = await q<{ window_start: Date; window_end: Date; spent: string }>(
      `SELECT window_start, window_end, spent FROM budget_windows WHERE tenant_id = $1 ORDER BY window_start`,
      [tenantId],
    );
    expect(windows.map((w) => [w.window_start.toISOString(), w.window_end.toISOString(), Number(w.spent)])).toEqual([
      ["2026-03-09T04:00:00.000Z", "2026-03-10T04:00:00.000Z", 3000],
      ["2026-03-10T04:00:00.000Z", "2026-03-11T04:00:00.000Z", 1500],
    ]);
    // The day daylight saving ends is 25 hours long.
    now = new Date("2026-11-01T12:00:00Z");
    await charge();
    const [fall] = await q<{ window_start: Date; window_end: Date }>(
      `SELECT window_start, window_end FROM budget_windows WHERE tenant_id = $1 ORDER BY window_start DESC LIMIT 1`,
      [tenantId],
    );
    expect([fall!.window_start.toISOString(), fall!.window_end.toISOString()]).toEqual(["2026-11-01T04:00:00.000Z", "2026-11-02T05:00:00.000Z"]);
  });

  it("replaces a dead worker's reservation when the resumed run makes the same call", async () => {
    const tenantId = await newTenant("Resumed");
    const agent = await apply(tenantId, "phoenix", {}, { budgets: { usd_per_day: 5, calls_per_hour: 10 } });
    const spend = spendEngine({ jobs: producer });
    const runId = `run_${"p".repeat(26)}`;
    const req = {
      tenantId,
      agentId: agent.id,
      runId,
      runCreatedAt: new Date(),
      taskId: null,
      key: `${runId}:3`,
      calls: [{ provider: "scripted", model: "scripted-small", promptTokens: 1000, maxTokens: 100 }],
      computeMs: 1000,
    };
    const held = () => q<{ reserved: string }>(`SELECT reserved FROM budget_windows WHERE tenant_id = $1 ORDER BY budget_id`, [tenantId]);
    await withTenant(db.database, tenantId, (tx) => spend.reserve(tx, req)); // the worker that dies
    const once = await held();
    const r = await withTenant(db.database, tenantId, (tx) => spend.reserve(tx, req)); // the one that resumes
    expect(await held()).toEqual(once);
    await withTenant(db.database, tenantId, (tx) => spend.settle(tx, r, { calls: [{ seq: 3, model: "scripted-small", usage: normaliseAnthropicUsage({ input_tokens: 10, output_tokens: 1 }) }], computeMs: 10 }));
    expect((await held()).map((w) => w.reserved)).toEqual(["0", "0"]);
    expect(await q(`SELECT 1 FROM budget_reservations WHERE tenant_id = $1`, [tenantId])).toEqual([]);
  });

  it("releases reservations left by dead runs (the sweeper)", async () => {
    const tenantId = await newTenant("Sweeper");
    const agent = await apply(tenantId, "ghost", {}, { budgets: { usd_per_day: 5 } });
    const spend = spendEngine({ jobs: producer });
    const runId = `run_${"g".repeat(26)}`;
    await withTenant(db.database, tenantId, (tx) =>
      spend.reserve(tx, {
        tenantId,
        agentId: agent.id,
        runId,
        runCreatedAt: new Date(),
        taskId: null,
        key: `${runId}:0`,
        calls: [{ provider: "scripted", model: "scripted-small", promptTokens: 1000, maxTokens: 100 }],
        computeMs: 1000,
      }),
    );
    const [held] = await q<{ reserved: string }>(`SELECT reserved FROM budget_windows WHERE tenant_id = $1`, [tenantId]);
    expect(Number(held!.reserved)).toBeGreaterThan(0);
    expect((await sweepReservations(db.database)).released).toBe(0); // not expired yet
    await q(`UPDATE budget_reservations SET expires_at = now() - interval '1 second' WHERE tenant_id = $1`, [tenantId]);
    expect((await sweepReservations(db.database)).released).toBe(1);
    expect(await q(`SELECT reserved, spent FROM budget_windows WHERE tenant_id = $1`, [tenantId])).toEqual([{ reserved: "0", spent: "0" }]);
    expect(await q(`SELECT 1 FROM budget_reservations WHERE tenant_id = $1`, [tenantId])).toEqual([]);
  });
});

describe("under contention", () => {
  it("200 agents' concurrent model calls through the worker never spend past a $1 budget and leave no reservation", async () => {
    const tenantId = await newTenant("Contention");
    const admin = systemActor(tenantId, "test");
    // A flat price per MTok keeps the numbers readable ($0.70 in, $1 out); compute at
    // $0.0036 an hour.
    await services.costs.createPrice(admin, {
      provider: "scripted",
      model: "scripted-small",
      inputMicrosPerMtok: 700_000,
      outputMicrosPerMtok: 1_000_000,
      effectiveFrom: new Date(Date.now() - 60_000).toISOString(),
    });
    await services.costs.updateSettings(admin, { computeMicrosPerHour: 3600 });
    const budget = await services.budgets.create(admin, {
      scope: "tenant",
      metric: "usd",
      window: "day",
      limitUsd: 1,
      enforcement: "hard",
      thresholds: [50, 80, 100],
      onExhausted: "refuse",
    });
    // Twenty-five model calls a run (twenty-four calls of an unknown tool, then
    // complete_task): about $4 of calls in all, so the budget binds; a first call's worst
    // case (its prompt bound: soul, instructions, the internal tools' schemas) is about
    // $0.004, so the 200 first calls fit in the budget at once.
    const script = Array.from({ length: 24 }, () => ({ call: "noop" }));
    const names = Array.from({ length: 200 }, (_, i) => `spender-${i}`);
    for (const n of names) await apply(tenantId, n, { script, max_tokens: 16 });
    const real = providerCache();
    let inFlight = 0;
    let peak = 0;
    let modelCalls = 0;
    // Every agent's first call waits at a gate until all 200 are in flight (their worst
    // cases fit in the budget together), so 200 calls race from there.
    let open!: () => void;
    const gate = new Promise<void>((r) => {
      open = r;
    });
    const safety = setTimeout(() => open(), 60_000);
    let gateOpen = false;
    const slow = (m: Parameters<ReturnType<typeof providerCache>>[0]): ModelProvider => ({
      name: "slow-scripted",
      complete: async (req) => {
        inFlight++;
        modelCalls++;
        peak = Math.max(peak, inFlight);
        try {
          if (!gateOpen) {
            if (inFlight >= names.length) {
              gateOpen = true;
              open();
            }
            await gate;
          }
          await new Promise((r) => setTimeout(r, 100));
          return await real(m).complete(req);
        } finally {
          inFlight--;
        }
      },
    });
    const workers: Worker[] = [];
    const pools: Database[] = [];
    let worstSeen = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const [w] = await q<{ used: string }>(`SELECT coalesce(max(spent + reserved), 0) AS used FROM budget_windows WHERE budget_id = $1`, [budget.body.id]);
        worstSeen = Math.max(worstSeen, Number(w!.used));
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    try {
      for (let i = 0; i < 2; i++) {
        const database = createDatabase(db.url, { max: 12 });
        pools.push(database);
        const jobs = createJobs({ connectionString: db.url, role: "worker", max: 2 });
        const s = createServices({ database, jobs, secureCookies: false });
        const runtime = agentRuntime({ database, jobs, tasks: s.tasks, provider: slow, workerId: `w-contention-${i}`, leaseTtlSeconds: 30 });
        workers.push(await startWorker({ jobs, services: s, logger: silent, runtime, concurrency: 100, tickMs: 1000, mailer: null }));
      }
      await Promise.all(names.map((n) => createTask(tenantId, `spend for ${n}`, n, { max_attempts: 2 })));
      await until(
        async () => (await q<{ n: number }>(`SELECT count(*)::int AS n FROM tasks WHERE tenant_id = $1 AND status NOT IN ('done', 'failed')`, [tenantId]))[0]!.n === 0,
        240_000,
        "every task done or failed",
      );
      await until(async () => (await q(`SELECT 1 FROM runs WHERE tenant_id = $1 AND status IN ('running', 'waiting')`, [tenantId])).length === 0, 30_000, "runs over");
    } finally {
      clearTimeout(safety);
      sampling = false;
      await sampler;
      for (const w of workers) await w.stop();
      for (const p of pools) await p.close();
    }
    const [total] = await q<{ cost: string; tokens: number }>(
      `SELECT coalesce(sum(cost_micros), 0) AS cost, count(*) FILTER (WHERE kind = 'tokens')::int AS tokens FROM cost_ledger WHERE tenant_id = $1`,
      [tenantId],
    );
    const [window] = await q<{ spent: string; reserved: string }>(`SELECT spent, reserved FROM budget_windows WHERE budget_id = $1`, [budget.body.id]);
    const outcomes = await q<{ code: string | null; n: number }>(
      `SELECT error->>'code' AS code, count(*)::int AS n FROM runs WHERE tenant_id = $1 GROUP BY 1 ORDER BY 1`,
      [tenantId],
    );
    console.log(JSON.stringify({ peakModelCallsInFlight: peak, modelCalls, spentMicros: Number(window!.spent), worstSeen, outcomes }));
    // The spend never passed $1, at any moment, and every charge is in the window.
    expect(Number(total!.cost)).toBeLessThanOrEqual(1_000_000);
    expect(worstSeen).toBeLessThanOrEqual(1_000_000);
    expect(Number(window!.spent)).toBe(Number(total!.cost));
    // Nothing is left held.
    expect(Number(window!.reserved)).toBe(0);
    expect(await q(`SELECT 1 FROM budget_reservations WHERE tenant_id = $1`, [tenantId])).toEqual([]);
    // The budget bound (some calls were refused), after most of it was spent.
    expect(outcomes.find((o) => o.code === "BUDGET_EXCEEDED")?.n ?? 0).toBeGreaterThan(0);
    expect(Number(window!.spent)).toBeGreaterThan(800_000);
    // Every model call made was charged, once.
    expect(total!.tokens).toBe(modelCalls);
    expect(peak).toBe(names.length);
  }, 300_000);
});
