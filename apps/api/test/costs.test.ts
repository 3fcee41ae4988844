import { agentRuntime, providerCache, rollupCosts, spendEngine } from "@bosun/core";
import { withTenant } from "@bosun/db";
import { normaliseOpenAIUsage } from "@bosun/llm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyAgent, createKey, createTenant, createTestApp, problem, type TestApp, type TestTenant } from "../../../test/helpers/app";
import { csvObjects, parseCsv } from "../../../test/helpers/csv";

let t: TestApp;
let acme: TestTenant;

const q = async <T = Record<string, unknown>>(sql: string, values: unknown[] = []) => (await t.db.database.pool.query(sql, values)).rows as T[];
const get = (url: string, auth = acme.auth) => t.app.inject({ method: "GET", url, headers: auth });
const send = (method: "POST" | "PATCH" | "DELETE", url: string, payload?: object, headers: Record<string, string> = {}) =>
  t.app.inject({ method, url, headers: { ...acme.auth, ...headers }, ...(payload ? { payload } : {}) });

/** Today and its neighbours in the tenant's time zone (createTenant uses Europe/Paris). */
const day = (offset: number) => new Date(Date.now() + offset * 86_400_000).toLocaleDateString("en-CA", { timeZone: "Europe/Paris" });

beforeAll(async () => {
  t = await createTestApp();
  acme = await createTenant(t.app, "Acme");
});
afterAll(() => t?.close());

describe("budgets over HTTP", () => {
  it("creates, reads, changes and deletes a budget, with its current window", async () => {
    await applyAgent(t.app, acme, "recon");
    const created = await send("POST", "/v1/budgets", { scope: "agent", agent: "recon", window: "day", limitUsd: 25.5, thresholds: [90, 50] }, { "idempotency-key": "budget-1" });
    expect(created.statusCode).toBe(201);
    const b = created.json();
    expect(b).toMatchObject({
      scope: "agent",
      agent: "recon",
      metric: "usd",
      window: "day",
      limit: 25_500_000,
      unit: "usd_micros",
      enforcement: "hard",
      thresholds: [50, 90],
      onExhausted: "refuse",
      source: "api",
      current: { spent: 0, reserved: 0 },
    });
    expect(b.id).toMatch(/^bud_[0-9a-z]{26}$/);
    // The window is today in the tenant's time zone.
    expect(new Date(b.current.windowStart).toLocaleString("en-GB", { timeZone: "Europe/Paris" })).toMatch(/, 00:00:00$/);
    const replay = await send("POST", "/v1/budgets", { scope: "agent", agent: "recon", window: "day", limitUsd: 25.5, thresholds: [90, 50] }, { "idempotency-key": "budget-1" });
    expect(replay.headers["idempotent-replayed"]).toBe("true");
    expect(replay.json().id).toBe(b.id);

    expect((await get(`/v1/budgets/${b.id}`)).json()).toMatchObject({ id: b.id, limit: 25_500_000 });
    const patched = await send("PATCH", `/v1/budgets/${b.id}`, { limitUsd: 30, enforcement: "soft" });
    expect(patched.json()).toMatchObject({ limit: 30_000_000, enforcement: "soft" });
    const calls = await send("POST", "/v1/budgets", { scope: "tenant", metric: "calls", window: "hour", limitCalls: 1000 });
    expect(calls.json()).toMatchObject({ scope: "tenant", agent: null, metric: "calls", unit: "calls", limit: 1000 });
    const list = await get("/v1/budgets?limit=1");
    expect(list.json().items).toHaveLength(1);
    const rest = await get(`/v1/budgets?limit=10&cursor=${list.json().nextCursor}`);
    expect([...list.json().items, ...rest.json().items].map((x: { id: string }) => x.id).sort()).toEqual([b.id, calls.json().id].sort());
    expect((await get("/v1/budgets?agent=recon")).json().items.map((x: { id: string }) => x.id)).toEqual([b.id]);

    const deleted = await send("DELETE", `/v1/budgets/${b.id}`);
    expect(deleted.statusCode).toBe(200);
    expect((await get(`/v1/budgets/${b.id}`)).statusCode).toBe(404);
    const audit = await q<{ action: string }>(`SELECT action FROM audit_events WHERE tenant_id = $1 AND target_id = $2 ORDER BY pos`, [acme.tenantId, b.id]);
    expect(audit.map((a) => a.action)).toEqual(["budget.create", "budget.update", "budget.delete"]);
  });

  it("refuses budgets that do not make sense", async () => {
    const cases: [object, string][] = [
      [{ scope: "agent", window: "day", limitUsd: 1 }, "agent"],
      [{ scope: "tenant", agent: "recon", window: "day", limitUsd: 1 }, "agent"],
      [{ scope: "tenant", metric: "calls", window: "day", limitUsd: 1 }, "limitCalls"],
      [{ scope: "tenant", window: "day", limitCalls: 5 }, "limitUsd"],
      [{ scope: "tenant", window: "day", limitUsd: 0.0000001 }, "limitUsd"],
      [{ scope: "tenant", window: "week", limitUsd: 1 }, "window"],
      [{ scope: "tenant", window: "day", limitUsd: 1, thresholds: [50, 50] }, "thresholds"],
      [{ scope: "agent", agent: "nobody", window: "day", limitUsd: 1 }, "agent"],
    ];
    for (const [body, path] of cases) {
      const res = await send("POST", "/v1/budgets", body);
      expect(res.statusCode, JSON.stringify(body)).toBe(422);
      expect(problem(res).errors?.map((e) => e.path), JSON.stringify(body)).toContain(path);
    }
  });

  it("shows the descriptor's budgets, whose limits change only with the descriptor", async () => {
    await applyAgent(t.app, acme, "described", { budgets: { usd_per_day: 40, calls_per_hour: 200 } });
    const items = (await get("/v1/budgets?agent=described")).json().items as { id: string; window: string; limit: number; source: string }[];
    expect(items.map((i) => [i.window, i.limit, i.source]).sort()).toEqual([
      ["day", 40_000_000, "descriptor"],
      ["hour", 200, "descriptor"],
    ]);
    const day = items.find((i) => i.window === "day")!;
    const limit = await send("PATCH", `/v1/budgets/${day.id}`, { limitUsd: 1 });
    expect(limit.statusCode).toBe(409);
    expect(problem(limit).detail).toMatch(/descriptor/);
    expect((await send("DELETE", `/v1/budgets/${day.id}`)).statusCode).toBe(409);
    const soft = await send("PATCH", `/v1/budgets/${day.id}`, { enforcement: "soft", thresholds: [75] });
    expect(soft.json()).toMatchObject({ enforcement: "soft", thresholds: [75], limit: 40_000_000 });
    // A later apply keeps what was set over the API and updates the limit.
    await applyAgent(t.app, acme, "described", { budgets: { usd_per_day: 45, calls_per_hour: 200 } });
    expect((await get(`/v1/budgets/${day.id}`)).json()).toMatchObject({ enforcement: "soft", thresholds: [75], limit: 45_000_000 });
  });

  it("keeps an agent's own key away from the tenant's money", async () => {
    const agentKey = await createKey(t.app, acme, { scopes: ["admin"], agent: "recon" });
    expect((await get("/v1/budgets", agentKey.auth)).statusCode).toBe(403);
    expect((await get(`/v1/costs?from=${day(0)}&to=${day(0)}`, agentKey.auth)).statusCode).toBe(403);
    // Prices are not secret.
    expect((await get("/v1/prices", agentKey.auth)).statusCode).toBe(200);
  });
});

describe("prices and settings over HTTP", () => {
  it("lists the seeded catalogue and adds a tenant price that wins over it", async () => {
    const all: { provider: string; model: string; source: string; inputMicrosPerMtok: number; id: string }[] = [];
    let cursor: string | null = null;
    do {
      const res = await get(`/v1/prices?limit=20${cursor ? `&cursor=${cursor}` : ""}`);
      expect(res.statusCode).toBe(200);
      all.push(...res.json().items);
      cursor = res.json().nextCursor;
    } while (cursor);
    const opus = all.find((p) => p.provider === "anthropic" && p.model === "claude-opus-4-7");
    expect(opus).toMatchObject({ source: "catalogue", inputMicrosPerMtok: 5_000_000, outputMicrosPerMtok: 25_000_000, cacheReadMicrosPerMtok: 500_000, cacheWriteMicrosPerMtok: 6_250_000 });
    expect(all.find((p) => p.provider === "openai" && p.model === "gpt-5.4")).toMatchObject({ inputMicrosPerMtok: 2_500_000, cacheReadMicrosPerMtok: 250_000 });
    expect(all.filter((p) => p.provider === "scripted").map((p) => p.model).sort()).toEqual(["*", "scripted-large", "scripted-small"]);
    // Versions: claude-sonnet-5-5's cache reads were cut on 2026-10-07.
    expect(all.filter((p) => p.model === "claude-sonnet-5-5").map((p) => (p as unknown as { cacheReadMicrosPerMtok: number }).cacheReadMicrosPerMtok)).toEqual([200_000, 100_000]);

    const body = { provider: "anthropic", model: "claude-opus-4-7", inputMicrosPerMtok: 4_000_000, outputMicrosPerMtok: 20_000_000, effectiveFrom: "2026-12-01T00:00:00Z", note: "negotiated" };
    const created = await send("POST", "/v1/prices", body);
    expect(created.statusCode).toBe(201);
    expect(created.json()).toMatchObject({ source: "tenant", cacheReadMicrosPerMtok: 4_000_000, note: "negotiated", effectiveFrom: "2026-12-01T00:00:00.000Z" });
    expect((await send("POST", "/v1/prices", body)).statusCode).toBe(409);
    expect((await get("/v1/prices?provider=anthropic&limit=200")).json().items.filter((p: { model: string }) => p.model === "claude-opus-4-7")).toHaveLength(2);
  });

  it("reads and changes the cost settings", async () => {
    expect((await get("/v1/costs/settings")).json()).toEqual({ allowUnpricedModels: false, computeMicrosPerHour: 50_000, alertEmails: [], timeZone: "Europe/Paris" });
    const res = await send("PATCH", "/v1/costs/settings", { allowUnpricedModels: true, alertEmails: ["finance@acme.example"] });
    expect(res.json()).toMatchObject({ allowUnpricedModels: true, computeMicrosPerHour: 50_000, alertEmails: ["finance@acme.example"] });
    expect((await send("PATCH", "/v1/costs/settings", { computeMicrosPerHour: 36_000 })).json()).toMatchObject({ allowUnpricedModels: true, computeMicrosPerHour: 36_000 });
  });
});

describe("costs and the CSV export", () => {
  let ledgerTotal: number;

  beforeAll(async () => {
    // Real charges: three agents run a task each through the runtime.
    const runtime = agentRuntime({ database: t.db.database, jobs: t.jobs, tasks: t.services.tasks, provider: providerCache(), workerId: "w-costs-api" });
    for (const name of ["alpha-spender", "beta-spender", "gamma-spender"]) {
      const a = await applyAgent(t.app, acme, name, name === "gamma-spender" ? { model: { provider: "scripted", name: "scripted-large" } } : {});
      await t.app.inject({ method: "POST", url: "/v1/tasks", headers: acme.auth, payload: { title: `work for ${name}`, assignee: name } });
      await runtime.wake({ tenantId: acme.tenantId, agentId: a.id });
    }
    // And charges whose text would be a formula in a spreadsheet, or needs quoting.
    await t.app.inject({ method: "PATCH", url: "/v1/costs/settings", headers: acme.auth, payload: { allowUnpricedModels: true } });
    const spender = (await q<{ id: string }>(`SELECT id FROM agents WHERE tenant_id = $1 AND name = 'alpha-spender'`, [acme.tenantId]))[0]!;
    const spend = spendEngine({ jobs: t.jobs });
    const hostile = ["=HYPERLINK(\"http://evil.example\",\"x\")", "+1+1", "-2+3", "@SUM(A1:A9)", 'quote " and, comma\r\nand a new line'];
    for (const [i, model] of hostile.entries()) {
      await withTenant(t.db.database, acme.tenantId, async (tx) => {
        const runId = `run_${String(i).padStart(26, "h")}`;
        const r = await spend.reserve(tx, {
          tenantId: acme.tenantId,
          agentId: spender.id,
          runId,
          runCreatedAt: new Date(),
          taskId: null,
          key: `${runId}:0`,
          calls: [{ provider: "openai-compatible", model, promptTokens: 100, maxTokens: 10 }],
          computeMs: 50,
        });
        await spend.settle(tx, r, { calls: [{ seq: 0, model, usage: normaliseOpenAIUsage({ prompt_tokens: 100, completion_tokens: 10, prompt_tokens_details: { cached_tokens: 40 } }) }], computeMs: 50 });
      });
    }
    const [sum] = await q<{ total: string }>(`SELECT sum(cost_micros) AS total FROM cost_ledger WHERE tenant_id = $1`, [acme.tenantId]);
    ledgerTotal = Number(sum!.total);
    expect(ledgerTotal).toBeGreaterThan(0);
    await rollupCosts(t.db.database);
  });

  it("groups costs by agent, model, day and kind, each agent split into tokens, actions and compute", async () => {
    const range = `from=${day(-1)}&to=${day(1)}`;
    const byAgent = (await get(`/v1/costs?${range}&groupBy=agent`)).json();
    expect(byAgent).toMatchObject({ groupBy: "agent", timeZone: "Europe/Paris", totalMicros: ledgerTotal });
    expect(byAgent.asOf).not.toBeNull();
    const perAgent = await q<{ agent: string; kind: string; cost: string }>(
      `SELECT a.name AS agent, l.kind, sum(l.cost_micros) AS cost FROM cost_ledger l JOIN agents a ON a.id = l.agent_id WHERE l.tenant_id = $1 GROUP BY 1, 2`,
      [acme.tenantId],
    );
    for (const g of byAgent.groups as { label: string; costMicros: number; tokensMicros: number; actionsMicros: number; computeMicros: number }[]) {
      const of = (kind: string) => Number(perAgent.find((p) => p.agent === g.label && p.kind === kind)?.cost ?? 0);
      expect({ agent: g.label, tokens: g.tokensMicros, compute: g.computeMicros, actions: g.actionsMicros, total: g.costMicros }).toEqual({
        agent: g.label,
        tokens: of("tokens"),
        compute: of("compute"),
        actions: 0,
        total: of("tokens") + of("compute"),
      });
    }
    expect((byAgent.groups as { label: string }[]).map((g) => g.label).sort()).toEqual(["alpha-spender", "beta-spender", "gamma-spender"]);
    const byModel = (await get(`/v1/costs?${range}&groupBy=model`)).json();
    expect((byModel.groups as { key: string }[]).map((g) => g.key)).toEqual(expect.arrayContaining(["scripted/scripted-small", "scripted/scripted-large", "compute"]));
    expect((byModel.groups as { unpricedCharges: number }[]).reduce((n, g) => n + g.unpricedCharges, 0)).toBe(5);
    const byKind = (await get(`/v1/costs?${range}&groupBy=kind`)).json();
    expect(byKind.totalMicros).toBe(ledgerTotal);
    const byDay = (await get(`/v1/costs?${range}&groupBy=day`)).json();
    expect(byDay.groups.map((g: { key: string }) => g.key)).toEqual([day(0)]);
    const none = (await get(`/v1/costs?from=2020-01-01&to=2020-01-31`)).json();
    expect(none).toMatchObject({ totalMicros: 0, groups: [] });
    expect((await get(`/v1/costs?from=${day(1)}&to=${day(-1)}`)).statusCode).toBe(422);
  });

  it("exports the ledger as RFC 4180 CSV that adds up to the ledger to the micro-dollar", async () => {
    const res = await get(`/v1/costs/export.csv?from=${day(-1)}&to=${day(1)}`);
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toBe("text/csv; charset=utf-8");
    expect(res.headers["content-disposition"]).toMatch(/attachment; filename="bosun-ledger-.*\.csv"/);
    const rows = csvObjects(res.body);
    const ledger = await q<{ id: string; cost_micros: string | null; input_tokens: string; cache_read_tokens: string; cache_write_tokens: string; output_tokens: string }>(
      `SELECT id, cost_micros, input_tokens, cache_read_tokens, cache_write_tokens, output_tokens FROM cost_ledger WHERE tenant_id = $1`,
      [acme.tenantId],
    );
    expect(rows).toHaveLength(ledger.length);
    expect(Object.keys(rows[0]!)).toEqual(
      expect.arrayContaining(["id", "created_at", "kind", "agent", "run_id", "task_id", "provider", "model", "price_id", "input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens", "total_tokens", "compute_ms", "cost_micros", "cost_usd", "unpriced", "idempotency_key"]),
    );
    const sum = (xs: (string | null)[]) => xs.reduce((n, x) => n + (x ? Number(x) : 0), 0);
    expect(sum(rows.map((r) => r.cost_micros!))).toBe(ledgerTotal);
    for (const col of ["input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens"] as const) {
      expect(sum(rows.map((r) => r[col]!)), col).toBe(sum(ledger.map((l) => l[col])));
    }
    for (const r of rows) {
      expect(Number(r.total_tokens)).toBe(Number(r.input_tokens) + Number(r.cache_read_tokens) + Number(r.cache_write_tokens) + Number(r.output_tokens));
      if (r.cost_micros) expect(r.cost_usd).toBe((Number(r.cost_micros) / 1e6).toFixed(6));
    }
    // Cache tokens are their own columns: the OpenAI rows' 40 cached tokens are not in input_tokens.
    const hostile = rows.filter((r) => r.provider === "openai-compatible" && r.kind === "tokens");
    expect(hostile.map((r) => [r.input_tokens, r.cache_read_tokens, r.unpriced, r.cost_micros])).toEqual(Array(5).fill(["60", "40", "t", ""]));
    // Formula injection: cells starting with =, +, - or @ are neutralised with a leading quote.
    expect(hostile.map((r) => r.model).sort()).toEqual(
      ["'=HYPERLINK(\"http://evil.example\",\"x\")", "'+1+1", "'-2+3", "'@SUM(A1:A9)", 'quote " and, comma\r\nand a new line'].sort(),
    );
    for (const r of rows) for (const v of Object.values(r)) expect(v).not.toMatch(/^[=+@]/);
    // Records end with CRLF; the line break inside the quoted field is data.
    expect(res.body.endsWith("\r\n")).toBe(true);
    expect(parseCsv(res.body).length).toBe(ledger.length + 1);
  });

  it("exports the daily rollups, which add up to the same total", async () => {
    const res = await get(`/v1/costs/export.csv?from=${day(-1)}&to=${day(1)}&rows=rollups`);
    const rows = csvObjects(res.body);
    expect(Object.keys(rows[0]!)).toEqual(
      expect.arrayContaining(["day", "agent", "kind", "provider", "model", "charges", "input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens", "cost_micros"]),
    );
    expect(rows.reduce((n, r) => n + Number(r.cost_micros), 0)).toBe(ledgerTotal);
    expect(rows.every((r) => r.day === day(0))).toBe(true);
  });
});
