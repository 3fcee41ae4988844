import { alertDelivery, type Mailer, rollupCosts } from "@bosun/core";
import { BOSS_SCHEMA } from "@bosun/jobs";
import nodemailer from "nodemailer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyAgent, createKey, createTenant, createTestApp, problem, type TestApp, type TestTenant } from "../../../test/helpers/app";
import { csvObjects } from "../../../test/helpers/csv";
import { startTestSmtp, type TestSmtp } from "../../../test/helpers/smtp";

/**
 * Usage that external agents report after the fact (`POST /v1/runs/{id}/usage`) is charged
 * to the cost ledger like the runtime's own calls: priced, counted against budgets (even past
 * a hard limit, since it happened already), alerting once, pausing, answering 402.
 */

let t: TestApp;
let acme: TestTenant;
let globex: TestTenant;
let smtp: TestSmtp;

const q = async <T = Record<string, unknown>>(sql: string, values: unknown[] = []) => (await t.db.database.pool.query(sql, values)).rows as T[];
const day = (offset: number) => new Date(Date.now() + offset * 86_400_000).toLocaleDateString("en-CA", { timeZone: "Europe/Paris" });
const post = (url: string, auth: Record<string, string>, payload: object, headers: Record<string, string> = {}) =>
  t.app.inject({ method: "POST", url, headers: { ...auth, ...headers }, payload });

/** µ$ per million tokens: input, output, cache read, cache write. */
const OPUS = { provider: "anthropic", model: "ext-opus", inputMicrosPerMtok: 3_000_000, outputMicrosPerMtok: 15_000_000, cacheReadMicrosPerMtok: 300_000, cacheWriteMicrosPerMtok: 3_750_000 };
const GPT = { provider: "openai", model: "ext-gpt", inputMicrosPerMtok: 2_000_000, outputMicrosPerMtok: 8_000_000, cacheReadMicrosPerMtok: 500_000, cacheWriteMicrosPerMtok: 2_000_000 };
/** 1000 × 3 + 10 000 × 0.3 + 2000 × 3.75 + 500 × 15 = 21 000 µ$. */
const REPORT = { provider: "anthropic", model: "ext-opus", inputTokens: 1000, outputTokens: 500, cacheReadTokens: 10_000, cacheWriteTokens: 2000 };
const REPORT_COST = 21_000;

/** An agent with its own key, and a way to open external runs for it. */
async function externalAgent(tenant: TestTenant, name: string) {
  const agent = await applyAgent(t.app, tenant, name);
  const key = await createKey(t.app, tenant, { scopes: ["write"], agent: name });
  const start = () => post(`/v1/agents/${name}/runs`, key.auth, { input: "external work" });
  const run = async () => {
    const res = await start();
    expect(res.statusCode, res.body).toBe(201);
    return res.json().id as string;
  };
  return { id: agent.id as string, auth: key.auth, start, run };
}

const report = (auth: Record<string, string>, runId: string, body: object, headers: Record<string, string> = {}) => post(`/v1/runs/${runId}/usage`, auth, body, headers);
const ledgerOf = (runId: string) =>
  q<{ cost_micros: string | null; unpriced: boolean; step_seq: number; input_tokens: string; cache_read_tokens: string; output_tokens: string }>(
    `SELECT cost_micros, unpriced, step_seq, input_tokens, cache_read_tokens, output_tokens FROM cost_ledger WHERE run_id = $1 ORDER BY step_seq`,
    [runId],
  );
const windowsOf = (budgetId: string) => q<{ spent: string; reserved: string }>(`SELECT spent, reserved FROM budget_windows WHERE budget_id = $1`, [budgetId]);

beforeAll(async () => {
  t = await createTestApp();
  acme = await createTenant(t.app, "Acme");
  globex = await createTenant(t.app, "Globex");
  smtp = await startTestSmtp();
  for (const tenant of [acme, globex]) {
    for (const price of [OPUS, GPT]) expect((await post("/v1/prices", tenant.auth, price)).statusCode).toBe(201);
  }
});
afterAll(async () => {
  await smtp?.close();
  await t?.close();
});

describe("usage reported by external agents", () => {
  it("charges each report to the ledger once per cache token, and it shows in GET /v1/costs and the CSV export", async () => {
    const bot = await externalAgent(acme, "ext-charged");
    const runId = await bot.run();
    const flat = await report(bot.auth, runId, REPORT);
    expect(flat.statusCode, flat.body).toBe(201);
    expect(flat.json()).toMatchObject({ kind: "usage", seq: 0, inputTokens: 1000, cacheReadTokens: 10_000, cacheWriteTokens: 2000, outputTokens: 500 });
    // OpenAI's own usage object: prompt_tokens include the 4000 cached ones, which are charged once, at the cache price.
    const openai = await report(bot.auth, runId, { provider: "openai", model: "ext-gpt", usage: { prompt_tokens: 5000, completion_tokens: 100, total_tokens: 5100, prompt_tokens_details: { cached_tokens: 4000 } } });
    expect(openai.statusCode, openai.body).toBe(201);
    expect(openai.json()).toMatchObject({ seq: 1, inputTokens: 1000, cacheReadTokens: 4000, outputTokens: 100 });
    // Anthropic's: input_tokens exclude the cache.
    const anthropic = await report(bot.auth, runId, { provider: "anthropic", model: "ext-opus", usage: { input_tokens: 100, cache_read_input_tokens: 4000, output_tokens: 10 } });
    expect(anthropic.json()).toMatchObject({ seq: 2, inputTokens: 100, cacheReadTokens: 4000, outputTokens: 10 });
    const ledger = await ledgerOf(runId);
    // 1000 × 2 + 4000 × 0.5 + 100 × 8 = 4800; 100 × 3 + 4000 × 0.3 + 10 × 15 = 1650.
    expect(ledger.map((l) => [l.step_seq, Number(l.cost_micros), l.unpriced])).toEqual([
      [0, REPORT_COST, false],
      [1, 4800, false],
      [2, 1650, false],
    ]);
    const total = REPORT_COST + 4800 + 1650;

    await rollupCosts(t.db.database);
    const costs = await t.app.inject({ url: `/v1/costs?from=${day(-1)}&to=${day(1)}&groupBy=agent`, headers: acme.auth });
    expect(costs.json().groups.find((g: { label: string }) => g.label === "ext-charged")).toMatchObject({ costMicros: total, tokensMicros: total, computeMicros: 0 });
    const byModel = (await t.app.inject({ url: `/v1/costs?from=${day(-1)}&to=${day(1)}&groupBy=model`, headers: acme.auth })).json();
    expect(byModel.groups.find((g: { key: string }) => g.key === "openai/ext-gpt")).toMatchObject({ costMicros: 4800, inputTokens: 1000, cacheReadTokens: 4000 });

    const csv = await t.app.inject({ url: `/v1/costs/export.csv?from=${day(-1)}&to=${day(1)}`, headers: acme.auth });
    const rows = csvObjects(csv.body).filter((r) => r.run_id === runId);
    expect(rows.map((r) => [r.step_seq, r.model, r.cost_micros, r.input_tokens, r.cache_read_tokens])).toEqual([
      ["0", "ext-opus", String(REPORT_COST), "1000", "10000"],
      ["1", "ext-gpt", "4800", "1000", "4000"],
      ["2", "ext-opus", "1650", "100", "4000"],
    ]);
    // The run's totals count the cache once too.
    const run = (await t.app.inject({ url: `/v1/runs/${runId}`, headers: bot.auth })).json();
    expect(run).toMatchObject({ stepCount: 3, inputTokens: 13_000 + 5000 + 4100, outputTokens: 610 });
  });

  it("charges the same report once, by report id or Idempotency-Key, even sent at the same time", async () => {
    const bot = await externalAgent(acme, "ext-retry");
    const runId = await bot.run();
    const first = await report(bot.auth, runId, { ...REPORT, reportId: "call-1" });
    expect(first.statusCode).toBe(201);
    const again = await report(bot.auth, runId, { ...REPORT, reportId: "call-1" });
    expect(again.statusCode).toBe(201);
    expect(again.headers["idempotent-replayed"]).toBe("true");
    expect(again.json().seq).toBe(first.json().seq);
    // The same id for a different report is refused.
    const other = await report(bot.auth, runId, { ...REPORT, outputTokens: 7, reportId: "call-1" });
    expect(other.statusCode).toBe(422);
    expect(problem(other).code).toBe("IDEMPOTENCY_CONFLICT");
    // With the header instead, five copies at once.
    const copies = await Promise.all(Array.from({ length: 5 }, () => report(bot.auth, runId, REPORT, { "idempotency-key": "call-2" })));
    expect(copies.map((c) => c.statusCode)).toEqual([201, 201, 201, 201, 201]);
    expect(new Set(copies.map((c) => c.json().seq)).size).toBe(1);
    expect(copies.filter((c) => c.headers["idempotent-replayed"] === "true")).toHaveLength(4);
    expect((await ledgerOf(runId)).map((l) => Number(l.cost_micros))).toEqual([REPORT_COST, REPORT_COST]);
    expect((await t.app.inject({ url: `/v1/runs/${runId}`, headers: bot.auth })).json().stepCount).toBe(2);
    // Without an id, each report is a new call.
    await report(bot.auth, runId, REPORT);
    expect(await ledgerOf(runId)).toHaveLength(3);
    // A retry after the run finished still gets its answer, and charges nothing.
    expect((await post(`/v1/runs/${runId}/finish`, bot.auth, { status: "succeeded" })).statusCode).toBe(200);
    const late = await report(bot.auth, runId, { ...REPORT, reportId: "call-1" });
    expect(late.statusCode).toBe(201);
    expect(await ledgerOf(runId)).toHaveLength(3);
    expect((await report(bot.auth, runId, REPORT)).statusCode).toBe(409);
    // Each charged report is one audit event; replays add none.
    const events = await q<{ after: { seq: number; costMicros: number } }>(
      "SELECT after FROM audit_events WHERE target_id = $1 AND action = 'run.usage' ORDER BY after->>'seq'",
      [runId],
    );
    expect(events.map((e) => e.after.costMicros)).toEqual([REPORT_COST, REPORT_COST, REPORT_COST]);
  });

  it("past a hard budget: records the spend, answers 402, pauses the agent, and alerts each threshold once", async () => {
    expect((await t.app.inject({ method: "PATCH", url: "/v1/costs/settings", headers: acme.auth, payload: { alertEmails: ["finance@acme.example"] } })).statusCode).toBe(200);
    const bot = await externalAgent(acme, "ext-spender");
    const budget = await post("/v1/budgets", acme.auth, { scope: "agent", agent: "ext-spender", window: "day", limitUsd: 0.05, enforcement: "hard", thresholds: [50, 100], onExhausted: "pause_agent" });
    expect(budget.statusCode, budget.body).toBe(201);
    const budgetId = budget.json().id as string;
    const runId = await bot.run();
    // 21 000 µ$ each against 50 000: 42 %, 84 % (crosses 50), 126 % (crosses 100).
    expect((await report(bot.auth, runId, REPORT)).statusCode).toBe(201);
    expect((await report(bot.auth, runId, REPORT)).statusCode).toBe(201);
    const over = await report(bot.auth, runId, { ...REPORT, reportId: "over" });
    expect(over.statusCode, over.body).toBe(402);
    expect(over.headers["content-type"]).toMatch(/application\/problem\+json/);
    expect(problem(over).code).toBe("BUDGET_EXCEEDED");
    expect(problem(over).detail).toMatch(/recorded as step 2.*agent ext-spender's daily budget of \$0\.05.*exhausted: \$0\.063 spent/);
    // Recorded in full, past the limit.
    expect((await ledgerOf(runId)).map((l) => Number(l.cost_micros))).toEqual([REPORT_COST, REPORT_COST, REPORT_COST]);
    expect((await windowsOf(budgetId)).map((w) => [Number(w.spent), Number(w.reserved)])).toEqual([[3 * REPORT_COST, 0]]);
    // The agent is paused, by the budget.
    expect((await t.app.inject({ url: "/v1/agents/ext-spender", headers: acme.auth })).json().status).toBe("paused");
    const pauses = await q<{ actor_id: string }>(`SELECT actor_id FROM audit_events WHERE tenant_id = $1 AND action = 'agent.pause' AND target_id = $2`, [acme.tenantId, bot.id]);
    expect(pauses).toHaveLength(1);
    // Later reports on the open run are still recorded, and still answered 402; the retry of one too, charging nothing.
    expect((await report(bot.auth, runId, REPORT)).statusCode).toBe(402);
    expect((await report(bot.auth, runId, { ...REPORT, reportId: "over" })).statusCode).toBe(402);
    expect(await ledgerOf(runId)).toHaveLength(4);
    expect((await windowsOf(budgetId)).map((w) => Number(w.spent))).toEqual([4 * REPORT_COST]);
    // No new run while paused.
    expect((await bot.start()).statusCode).toBe(409);

    // Each threshold claimed once, one alert.send job each, and one mail each however often delivery runs.
    const alerts = await q<{ id: string; threshold: number }>(`SELECT id, threshold FROM budget_alerts WHERE budget_id = $1 ORDER BY threshold`, [budgetId]);
    expect(alerts.map((a) => a.threshold)).toEqual([50, 100]);
    const jobs = await q<{ alert: string }>(`SELECT data->>'alertId' AS alert FROM ${BOSS_SCHEMA}.job WHERE name = 'alert.send' AND data->>'alertId' = ANY($1)`, [alerts.map((a) => a.id)]);
    expect(jobs.map((j) => j.alert).sort()).toEqual(alerts.map((a) => a.id).sort());
    const transport = nodemailer.createTransport(smtp.url);
    const mailer: Mailer = { send: async (m) => void (await transport.sendMail({ from: "alerts@bosun.test", ...m })) };
    const delivery = alertDelivery({ database: t.db.database, mailer, publicUrl: "http://bosun.test" });
    for (const a of [...alerts, ...alerts]) await delivery.deliver({ tenantId: acme.tenantId, alertId: a.id });
    const mails = smtp.received.filter((m) => alerts.some((a) => m.messageId === `<${a.id}@bosun.alerts>`));
    expect(mails).toHaveLength(2);
    expect(mails.every((m) => m.to.includes("finance@acme.example"))).toBe(true);
    expect(mails.map((m) => m.text).join("\n")).toMatch(/ext-spender/);
  });

  it("refuses new external runs while a hard budget with onExhausted: refuse is spent", async () => {
    const bot = await externalAgent(acme, "ext-refused");
    const budget = await post("/v1/budgets", acme.auth, { scope: "agent", agent: "ext-refused", metric: "calls", window: "hour", limitCalls: 2, onExhausted: "refuse" });
    expect(budget.statusCode, budget.body).toBe(201);
    const runId = await bot.run();
    expect((await report(bot.auth, runId, REPORT)).statusCode).toBe(201);
    const second = await report(bot.auth, runId, REPORT);
    expect(second.statusCode).toBe(402);
    expect(problem(second).detail).toMatch(/hourly call limit of 2 calls .*exhausted: 2 calls spent/);
    // Not paused (the budget refuses instead): starting is refused with 402.
    expect((await t.app.inject({ url: "/v1/agents/ext-refused", headers: acme.auth })).json().status).toBe("active");
    const start = await bot.start();
    expect(start.statusCode).toBe(402);
    expect(problem(start).code).toBe("BUDGET_EXCEEDED");
  });

  it("follows the tenant's unpriced-model setting: refused and not recorded, or recorded flagged, never as $0", async () => {
    const bot = await externalAgent(globex, "ext-unpriced");
    const runId = await bot.run();
    const body = { provider: "acme-llm", model: "mystery-1", inputTokens: 100, outputTokens: 10 };
    const refused = await report(bot.auth, runId, body);
    expect(refused.statusCode).toBe(422);
    expect(problem(refused).code).toBe("VALIDATION");
    expect(problem(refused).detail).toMatch(/no price for acme-llm model 'mystery-1'.*POST \/v1\/prices.*not recorded/);
    expect(problem(refused).errors?.[0]?.path).toBe("model");
    expect(await ledgerOf(runId)).toHaveLength(0);
    expect((await t.app.inject({ url: `/v1/runs/${runId}`, headers: bot.auth })).json().stepCount).toBe(0);

    await t.app.inject({ method: "PATCH", url: "/v1/costs/settings", headers: globex.auth, payload: { allowUnpricedModels: true } });
    expect((await report(bot.auth, runId, body)).statusCode).toBe(201);
    expect((await ledgerOf(runId)).map((l) => [l.cost_micros, l.unpriced])).toEqual([[null, true]]);
  });

  it("keeps budgets exact under many clients reporting at once", async () => {
    const initech = await createTenant(t.app, "Initech");
    expect((await post("/v1/prices", initech.auth, OPUS)).statusCode).toBe(201);
    const tenantBudget = (await post("/v1/budgets", initech.auth, { scope: "tenant", window: "month", limitUsd: 1000, enforcement: "soft" })).json().id as string;
    const tenantCalls = (await post("/v1/budgets", initech.auth, { scope: "tenant", metric: "calls", window: "day", limitCalls: 100_000 })).json().id as string;
    const bots: Awaited<ReturnType<typeof externalAgent>>[] = [];
    for (const name of ["ext-many-a", "ext-many-b", "ext-many-c"]) bots.push(await externalAgent(initech, name));
    const agentBudgets: string[] = [];
    for (const b of ["ext-many-a", "ext-many-b", "ext-many-c"]) {
      agentBudgets.push((await post("/v1/budgets", initech.auth, { scope: "agent", agent: b, window: "day", limitUsd: 100 })).json().id as string);
    }
    const runs = await Promise.all(bots.flatMap((b) => [b.run(), b.run()]));
    const perRun = 10;
    const res = await Promise.all(runs.flatMap((runId, i) => Array.from({ length: perRun }, (_, n) => report(bots[Math.floor(i / 2)]!.auth, runId, { ...REPORT, reportId: `r${n}` }))));
    expect(res.filter((r) => r.statusCode !== 201).map((r) => r.body)).toEqual([]);
    const reports = runs.length * perRun;
    const [ledger] = await q<{ n: number; total: string }>(`SELECT count(*)::int AS n, sum(cost_micros) AS total FROM cost_ledger WHERE tenant_id = $1`, [initech.tenantId]);
    expect(ledger).toEqual({ n: reports, total: String(reports * REPORT_COST) });
    expect((await windowsOf(tenantBudget)).map((w) => Number(w.spent))).toEqual([reports * REPORT_COST]);
    expect((await windowsOf(tenantCalls)).map((w) => Number(w.spent))).toEqual([reports]);
    for (const id of agentBudgets) expect((await windowsOf(id)).map((w) => Number(w.spent))).toEqual([2 * perRun * REPORT_COST]);
  });

  it("lets no other tenant report on a run", async () => {
    const bot = await externalAgent(acme, "ext-private");
    const runId = await bot.run();
    const stranger = await externalAgent(globex, "ext-stranger");
    const res = await report(stranger.auth, runId, REPORT);
    expect(res.statusCode).toBe(404);
    expect(problem(res).code).toBe("NOT_FOUND");
    const admin = await report(globex.auth, runId, REPORT);
    expect(admin.statusCode).toBe(404);
    // Nor another agent of the same tenant.
    const sibling = await externalAgent(acme, "ext-sibling");
    expect((await report(sibling.auth, runId, REPORT)).statusCode).toBe(404);
    expect(await ledgerOf(runId)).toHaveLength(0);
  });

  it("refuses malformed provider usage with problem+json", async () => {
    const bot = await externalAgent(acme, "ext-malformed");
    const runId = await bot.run();
    const cases: [object, string][] = [
      [{ provider: "openai", model: "ext-gpt", usage: { prompt_tokens: -5, completion_tokens: 1 } }, "usage"],
      [{ provider: "anthropic", model: "ext-opus", usage: { input_tokens: "many" } }, "usage"],
      [{ provider: "anthropic", model: "ext-opus", usage: { input_tokens: 1 }, inputTokens: 1 }, "inputTokens"],
      [{ provider: "anthropic", model: "ext-opus", inputTokens: 1 }, "outputTokens"],
      [{ provider: "anthropic", model: "ext-opus", inputTokens: 1, outputTokens: 1, reportId: "has space" }, "reportId"],
    ];
    for (const [body, path] of cases) {
      const res = await report(bot.auth, runId, body);
      expect(res.statusCode, JSON.stringify(body)).toBe(422);
      expect(problem(res).errors?.map((e) => e.path), JSON.stringify(body)).toContain(path);
    }
    expect(await ledgerOf(runId)).toHaveLength(0);
  });
});
