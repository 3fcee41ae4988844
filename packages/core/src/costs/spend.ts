import { type BatchStatement, type Database, type QueryResult, repo, type Tx, withSystem } from "@bosun/db";
import type { Jobs } from "@bosun/jobs";
import type { Usage } from "@bosun/llm";
import { systemActor } from "../actor";
import { audit } from "../audit";
import { newId } from "../ids";
import { windowAdjective } from "./budgets";
import { computeCost, crossedThresholds, formatUsd, tokenCost, worstCaseCost } from "./money";
import { priceCandidates } from "./prices";

const c = repo.costs;
type BudgetRow = repo.costs.SpendBudget;
type PriceRow = repo.costs.PriceRow;
type WindowBounds = repo.costs.WindowBounds;

/** How long a reservation may live before the sweeper takes it for a dead worker's. */
export const RESERVATION_TTL_MS = 10 * 60_000;

/**
 * A call that may not go ahead: a hard budget would be passed (`BUDGET_EXCEEDED`), or the
 * model has no price and the tenant has not allowed unpriced models (`UNPRICED_MODEL`).
 */
export class SpendRefused extends Error {
  override readonly name = "SpendRefused";
  constructor(
    readonly code: "BUDGET_EXCEEDED" | "UNPRICED_MODEL",
    message: string,
    /** For BUDGET_EXCEEDED: the budget that refused, so the caller can apply its `onExhausted`. */
    readonly budget?: BudgetRow,
  ) {
    super(message);
  }
}

/** One model call a step may make (routing plans two: the small model, then the large). */
export interface PlannedCall {
  /** The descriptor's provider (`anthropic`, `openai`, `openai-compatible`, `scripted`). */
  provider: string;
  /** The model id asked for. */
  model: string;
  /** An upper bound on the prompt's tokens. */
  promptTokens: number;
  maxTokens: number;
}

export interface ReserveRequest {
  tenantId: string;
  agentId: string;
  runId: string;
  runCreatedAt: Date;
  taskId: string | null;
  /** `run_id:seq` of the first step the call writes: the reservation's and the charges' key. */
  key: string;
  calls: PlannedCall[];
  /** The most worker time the step can take (compute is charged like tokens). */
  computeMs: number;
  /** A gateway tool's declared fee, in micro-dollars (an `action` charge; see settleAction). */
  actionMicros?: number;
}

export interface Reservation {
  request: ReserveRequest;
  at: Date;
  /** Per planned call: its price (null: unpriced, allowed and flagged) and its worst case. */
  prices: (PriceRow | null)[];
  estimates: number[];
  computeRate: number;
  /** Every budget the charge counts against, in lock order, with what was reserved there. */
  windows: { budget: BudgetRow; window: WindowBounds; amount: number }[];
}

/** What a call actually used: one entry per attempt made, aligned with the planned calls. */
export interface ActualCall {
  /** The step the attempt was recorded as (its charge's key is `run_id:seq`). */
  seq: number;
  /** The exact model id the provider reported, when it answered. */
  model: string | null;
  /** Null when the attempt failed without a response (nothing to charge but the call). */
  usage: Usage | null;
}

export interface Settlement {
  costMicros: number;
  alerts: string[];
  pausedAgents: string[];
}

/** Usage an external agent reports after the call (see `chargeReported`). */
export interface ReportedCharge {
  tenantId: string;
  agentId: string;
  runId: string;
  runCreatedAt: Date;
  taskId: string | null;
  /** The ledger's idempotency key: the same key never charges twice. */
  key: string;
  /** The `usage` step the report was recorded as. */
  seq: number;
  provider: string;
  model: string;
  /** Non-overlapping categories (as packages/llm normalises both providers' conventions). */
  usage: Usage;
}

/** A hard budget whose window's spend has reached its limit. */
export interface ExhaustedBudget {
  budget: BudgetRow;
  spent: number;
  limitValue: number;
  message: string;
}

export interface ReportedSettlement {
  /** False when a report under the same key was charged before (nothing changed). */
  charged: boolean;
  /** Null when not charged now, or for an unpriced model (allowed, recorded flagged). */
  costMicros: number | null;
  unpriced: boolean;
  alerts: string[];
  pausedAgents: string[];
  /** The hard budgets exhausted after this charge: the agent must stop. */
  exhausted: ExhaustedBudget[];
}

/** The prices a request's calls need looked up: one per call, each model's candidate names. */
export const priceLookups = (req: Pick<ReserveRequest, "calls">): repo.costs.PriceLookup[] =>
  req.calls.map((call) => ({ provider: call.provider, models: priceCandidates(call.model) }));

/** Whether call `i` was answered by a model other than the one planned (priced apart: findPrice). */
const answeredByOther = (r: Reservation, a: ActualCall, i: number) => Boolean(a.usage && a.model && r.request.calls[i] && a.model !== r.request.calls[i]!.model);

/**
 * Reserve-then-settle around every model call. `reserve` runs before the call, in its own
 * (fenced) transaction: it prices the call, refuses an unpriced model, and holds the
 * worst case on every budget that applies, locking their windows in one fixed order (the
 * agent's budgets, then the tenant's, each by id) so two calls never wait on each other
 * in a cycle, and the tenant's windows, which every call contends for, last and briefly.
 * `settle` runs in the transaction that writes the call's step: it appends the ledger
 * rows (idempotent by key), moves the actual cost from reserved to spent in the same
 * order, and claims the alerts of the thresholds it crossed.
 */
export function spendEngine(deps: { jobs: Pick<Jobs, "enqueue">; clock?: () => Date }) {
  const clock = deps.clock ?? (() => new Date());

  /**
   * `savepoint`: take one (named so) before the first write, and roll back to it when the
   * reservation is refused, so that a caller that goes on to commit keeps only its own writes.
   * `read`: the spend context read already in this transaction (spendContextWithPricesRead,
   * at `at`), used when it priced the same models this request plans.
   */
  async function reserve(
    tx: Tx,
    req: ReserveRequest,
    opts: { savepoint?: string; read?: { at: Date; lookups: repo.costs.PriceLookup[]; context: repo.costs.SpendContextWithPrices } } = {},
  ): Promise<Reservation> {
    const lookups = priceLookups(req);
    const pre = opts.read && JSON.stringify(opts.read.lookups) === JSON.stringify(lookups) ? opts.read : undefined;
    const at = pre?.at ?? clock();
    // The settings, budgets, windows and every planned model's price: one round trip.
    const ctx = pre?.context ?? (await c.spendContextWithPrices(tx, { tenantId: req.tenantId, agentId: req.agentId, at, lookups }));
    const prices: (PriceRow | null)[] = [];
    for (const [i, call] of req.calls.entries()) {
      const price = ctx.prices[i];
      if (!price && !ctx.allowUnpricedModels) {
        throw new SpendRefused(
          "UNPRICED_MODEL",
          `no price for ${call.provider} model '${call.model}': add one (POST /v1/prices) or allow unpriced models (PATCH /v1/costs/settings); the call was not made`,
        );
      }
      prices.push(price ?? null);
    }
    const estimates = req.calls.map((call, i) => (prices[i] ? worstCaseCost(prices[i], call.promptTokens, call.maxTokens) : 0));
    const usd = estimates.reduce((a, b) => a + b, 0) + computeCost(req.computeMs, ctx.computeMicrosPerHour) + (req.actionMicros ?? 0);
    const windows = ctx.budgets.map((budget) => ({
      budget,
      window: budget.period === "invocation" ? { key: `run:${req.runId}`, start: req.runCreatedAt, end: null } : ctx.calendar[budget.period],
      amount: budget.metric === "usd" ? usd : req.calls.length,
    }));
    const r: Reservation = { request: req, at, prices, estimates, computeRate: ctx.computeMicrosPerHour, windows };
    const holds = windows.filter((w) => w.amount > 0).map((w) => ({ budgetId: w.budget.id, windowKey: w.window.key, amount: w.amount }));
    if (holds.length === 0) return r;

    if (opts.savepoint) await tx.$client.query(`SAVEPOINT ${opts.savepoint}`);
    try {
      return await hold(tx, req, r, holds, usd);
    } catch (err) {
      if (opts.savepoint && err instanceof SpendRefused) await tx.$client.query(`ROLLBACK TO SAVEPOINT ${opts.savepoint}`);
      throw err;
    }
  }

  /** reserve's writes: the reservation row, then each window's hold, in lock order. */
  async function hold(tx: Tx, req: ReserveRequest, r: Reservation, holds: repo.costs.Hold[], usd: number): Promise<Reservation> {
    const { windows } = r;
    // The reservation row first: the windows' locks (the tenant's above all) are held from
    // their UPDATE to the commit, so nothing else should come after them.
    const row = { tenantId: req.tenantId, id: newId("rsv"), key: req.key, agentId: req.agentId, runId: req.runId, holds, estimateMicros: usd, expiresAt: new Date(Date.now() + RESERVATION_TTL_MS) };
    const release = new Map<string, number>();
    if (!(await c.insertReservation(tx, row))) {
      // One is held under this key already: a dead worker's, for this same step. It is
      // released in the same ordered pass, rather than left for the sweeper.
      const stale = await c.takeReservation(tx, { tenantId: req.tenantId, key: req.key });
      for (const h of stale?.holds ?? []) release.set(`${h.budgetId}|${h.windowKey}`, (release.get(`${h.budgetId}|${h.windowKey}`) ?? 0) + h.amount);
      await c.insertReservation(tx, row);
    }
    for (const { budget, window, amount } of windows) {
      const rel = release.get(`${budget.id}|${window.key}`) ?? 0;
      release.delete(`${budget.id}|${window.key}`);
      if (amount === 0 && rel === 0) continue;
      const held = await c.reserveOnWindow(tx, { tenantId: req.tenantId, budgetId: budget.id, window, limit: budget.limitValue, amount, release: rel, soft: budget.enforcement === "soft" });
      if (!held) throw new SpendRefused("BUDGET_EXCEEDED", await refusal(tx, req.tenantId, budget, window, amount), budget);
    }
    // What the dead worker held in windows that have since rolled over (rare: out of the
    // usual order, but these windows are past, so no current call waits on them).
    for (const [id, amount] of release) {
      const [budgetId, windowKey] = id.split("|") as [string, string];
      await c.releaseOnWindow(tx, { tenantId: req.tenantId, budgetId, windowKey, release: amount });
    }
    return r;
  }

  async function refusal(tx: Tx, tenantId: string, b: BudgetRow, w: WindowBounds, amount: number) {
    const [state] = await c.getWindows(tx, { tenantId, pairs: [{ budgetId: b.id, windowKey: w.key }] });
    const fmt = (n: number) => (b.metric === "usd" ? formatUsd(n) : `${n} call${n === 1 ? "" : "s"}`);
    const used = (state?.spent ?? 0) + (state?.reserved ?? 0);
    const whose = b.scope === "tenant" ? "the tenant's" : `agent ${b.agentName ?? b.agentId}'s`;
    return `${whose} ${windowAdjective(b.period)} ${b.metric === "usd" ? "budget" : "call limit"} of ${fmt(b.limitValue)} (${b.id}) would be passed: ${fmt(used)} spent or held, this call may take ${fmt(amount)}`;
  }

  async function settle(tx: Tx, r: Reservation, actual: { calls: ActualCall[]; computeMs: number }): Promise<Settlement> {
    const req = r.request;
    // Providers report pinned snapshots: price the model that answered if it has its own price.
    const answered = new Map<number, PriceRow | null>();
    for (const [i, a] of actual.calls.entries()) {
      if (answeredByOther(r, a, i)) {
        answered.set(i, (await c.findPrice(tx, { tenantId: req.tenantId, provider: req.calls[i]!.provider, models: priceCandidates(a.model!), at: r.at })) ?? null);
      }
    }
    const charge = charges(r, actual, answered);
    return charged(tx, r, charge, await c.chargeAndTake(tx, { tenantId: req.tenantId, reservationKey: req.key, rows: charge.rows }));
  }

  /**
   * settle in two halves: its statement (the ledger rows appended, the reservation taken),
   * for the caller to send with its transaction's BEGIN, and `finish`, the rest, given that
   * statement's result. Undefined when a price must be looked up first (a model other than
   * the planned one answered): settle does that.
   */
  function settleStatement(
    r: Reservation,
    actual: { calls: ActualCall[]; computeMs: number },
  ): { statement: BatchStatement; finish: (tx: Tx, result: QueryResult) => Promise<Settlement> } | undefined {
    if (actual.calls.some((a, i) => answeredByOther(r, a, i))) return undefined;
    const charge = charges(r, actual, new Map());
    return {
      statement: c.chargeAndTakeStatement({ tenantId: r.request.tenantId, reservationKey: r.request.key, rows: charge.rows }),
      finish: (tx, result) => charged(tx, r, charge, c.chargeAndTakeFrom(result)),
    };
  }

  /** A settle's ledger rows (each call's tokens, then the compute). `answered`: the prices of models other than the planned ones, by call. */
  function charges(r: Reservation, actual: { calls: ActualCall[]; computeMs: number }, answered: Map<number, PriceRow | null>) {
    const req = r.request;
    const rows: repo.costs.ChargeRow[] = [];
    const base = {
      tenantId: req.tenantId,
      runCreatedAt: req.runCreatedAt,
      agentId: req.agentId,
      runId: req.runId,
      taskId: req.taskId,
      rawUsage: null as unknown,
      computeMs: null as number | null,
      rateMicrosPerHour: null as number | null,
      description: null as string | null,
      unpriced: false,
      estimated: false,
      inputTokens: 0,
      cacheReadTokens: 0,
      cacheWriteTokens: 0,
      outputTokens: 0,
    };
    for (const [i, a] of actual.calls.entries()) {
      const planned = req.calls[i];
      if (!planned || !a.usage) continue;
      const price = answered.get(i) ?? r.prices[i] ?? null;
      const unreported = a.usage.unreported === true;
      rows.push({
        ...base,
        id: newId("chg"),
        idempotencyKey: `${req.runId}:${a.seq}`,
        kind: "tokens",
        stepSeq: a.seq,
        provider: planned.provider,
        model: a.model ?? planned.model,
        priceId: price?.id ?? null,
        inputTokens: a.usage.inputTokens,
        cacheReadTokens: a.usage.cacheReadTokens,
        cacheWriteTokens: a.usage.cacheWriteTokens,
        outputTokens: a.usage.outputTokens,
        rawUsage: a.usage.raw,
        // No usage reported means unknown, not free: charge the worst case and say so.
        costMicros: !price ? null : unreported ? (r.estimates[i] ?? 0) : tokenCost(price, a.usage),
        unpriced: !price,
        estimated: unreported && price !== null,
      });
    }
    const lastSeq = actual.calls.at(-1)?.seq ?? Number(req.key.split(":").pop());
    const computeKey = `${req.runId}:${lastSeq}:compute`;
    const computeMs = Math.max(0, Math.round(actual.computeMs));
    rows.push({
      ...base,
      id: newId("chg"),
      idempotencyKey: computeKey,
      kind: "compute",
      stepSeq: lastSeq,
      provider: null,
      model: null,
      priceId: null,
      computeMs,
      rateMicrosPerHour: r.computeRate,
      costMicros: computeCost(computeMs, r.computeRate),
    });
    return { rows, computeKey, calls: actual.calls.length };
  }

  /** After the ledger insert: what it added moves from reserved to spent. */
  function charged(tx: Tx, r: Reservation, charge: ReturnType<typeof charges>, taken: { inserted: Set<string>; holds: repo.costs.Hold[] }): Promise<Settlement> {
    const { inserted, holds } = taken;
    // A replayed settle finds its charges in the ledger already: it only releases.
    const usd = charge.rows.reduce((n, row) => n + (inserted.has(row.idempotencyKey) ? (row.costMicros ?? 0) : 0), 0);
    const calls = inserted.has(charge.computeKey) ? charge.calls : 0;
    // No holds: the sweeper took the reservation (a very slow call); the spend still counts.
    return applyToBudgets(tx, r, holds, { usd, calls });
  }

  /** Moves held amounts to spent on each window, in lock order, and claims crossed thresholds. */
  async function applyToBudgets(tx: Tx, r: Reservation, holds: repo.costs.Hold[], spent: { usd: number; calls: number }): Promise<Settlement> {
    const req = r.request;
    const out: Settlement = { costMicros: spent.usd, alerts: [], pausedAgents: [] };
    const held = new Map(holds.map((h) => [`${h.budgetId}|${h.windowKey}`, h.amount]));
    for (const { budget, window } of r.windows) {
      const release = held.get(`${budget.id}|${window.key}`) ?? 0;
      const spend = budget.metric === "usd" ? spent.usd : spent.calls;
      if (release === 0 && spend === 0) continue;
      const after = await c.settleOnWindow(tx, { tenantId: req.tenantId, budgetId: budget.id, window, limit: budget.limitValue, release, spend });
      if (!after) continue;
      const before = after.spent - spend;
      for (const threshold of crossedThresholds(budget.thresholds, after.limitValue, before, after.spent)) {
        const alertId = await c.claimAlert(tx, {
          tenantId: req.tenantId,
          id: newId("alr"),
          budgetId: budget.id,
          windowKey: window.key,
          threshold,
          agentId: budget.agentId ?? req.agentId,
          windowStart: window.start,
          windowEnd: window.end,
          spent: after.spent,
          limitValue: after.limitValue,
        });
        if (alertId) {
          await deps.jobs.enqueue(tx, "alert.send", { tenantId: req.tenantId, alertId });
          out.alerts.push(alertId);
        }
      }
      if (before < after.limitValue && after.spent >= after.limitValue) out.pausedAgents.push(...(await exhausted(tx, budget)));
    }
    return out;
  }

  /**
   * A budget ran out (its spend reached the limit, or it refused a call): with
   * `onExhausted: pause_agent`, the agents it covers are paused, audited as the budget's doing.
   */
  async function exhausted(tx: Tx, budget: BudgetRow): Promise<string[]> {
    if (budget.onExhausted !== "pause_agent") return [];
    const paused = await c.pauseAgents(tx, { tenantId: budget.tenantId, agentId: budget.agentId });
    for (const a of paused) {
      await deps.jobs.enqueue(tx, "agent.schedule.sync", { tenantId: budget.tenantId, agentId: a.id, revision: a.revision });
      await audit(tx, systemActor(budget.tenantId, "budget"), {
        action: "agent.pause",
        targetType: "agent",
        targetId: a.id,
        before: { status: "active" },
        after: { status: "paused", reason: `budget ${budget.id} exhausted` },
      });
    }
    return paused.map((a) => a.id);
  }

  /** Gives back what a call held without charging anything (it was never made). */
  async function release(tx: Tx, r: Reservation): Promise<void> {
    if (r.windows.length === 0) return;
    const taken = await c.takeReservation(tx, { tenantId: r.request.tenantId, key: r.request.key });
    for (const h of taken?.holds ?? []) {
      await c.releaseOnWindow(tx, { tenantId: r.request.tenantId, budgetId: h.budgetId, windowKey: h.windowKey, release: h.amount });
    }
  }

  /**
   * Charges usage reported after the fact (an external agent's model call, `POST
   * /v1/runs/{id}/usage`). It happened already, so nothing can refuse it: the spend is
   * recorded even past a hard limit, the windows' `spent` moves (no reservation, so
   * nothing is released), crossed thresholds are claimed like any settle's, and a budget
   * it exhausts pauses its agents per `onExhausted`. Only an unpriced model the tenant has
   * not allowed is refused (nothing is recorded, so the report can be sent again once the
   * model has a price). Idempotent by `key`: a second report under it charges nothing.
   * Runs in the caller's transaction, after the run's row is locked.
   */
  async function chargeReported(tx: Tx, u: ReportedCharge): Promise<ReportedSettlement> {
    const at = clock();
    const ctx = await c.spendContextWithPrices(tx, { tenantId: u.tenantId, agentId: u.agentId, at, lookups: [{ provider: u.provider, models: priceCandidates(u.model) }] });
    const price = ctx.prices[0] ?? null;
    if (!price && !ctx.allowUnpricedModels) {
      throw new SpendRefused(
        "UNPRICED_MODEL",
        `no price for ${u.provider} model '${u.model}': add one (POST /v1/prices) or allow unpriced models (PATCH /v1/costs/settings), then send the report again; it was not recorded`,
      );
    }
    const costMicros = price ? tokenCost(price, u.usage) : null;
    const row: repo.costs.ChargeRow = {
      tenantId: u.tenantId,
      id: newId("chg"),
      runCreatedAt: u.runCreatedAt,
      idempotencyKey: u.key,
      kind: "tokens",
      agentId: u.agentId,
      runId: u.runId,
      stepSeq: u.seq,
      taskId: u.taskId,
      provider: u.provider,
      model: u.model,
      priceId: price?.id ?? null,
      inputTokens: u.usage.inputTokens,
      cacheReadTokens: u.usage.cacheReadTokens,
      cacheWriteTokens: u.usage.cacheWriteTokens,
      outputTokens: u.usage.outputTokens,
      rawUsage: u.usage.raw,
      computeMs: null,
      rateMicrosPerHour: null,
      description: "reported by the agent",
      // Unpriced (allowed): recorded and flagged, never as $0.
      costMicros,
      unpriced: !price,
      estimated: false,
    };
    // No reservation is held under this key: the statement only appends the charge.
    const { inserted } = await c.chargeAndTake(tx, { tenantId: u.tenantId, reservationKey: `reported:${u.key}`, rows: [row] });
    const windows = ctx.budgets.map((budget) => ({
      budget,
      window: budget.period === "invocation" ? { key: `run:${u.runId}`, start: u.runCreatedAt, end: null } : ctx.calendar[budget.period],
      amount: 0,
    }));
    const charged = inserted.has(u.key);
    const r: Reservation = {
      request: { tenantId: u.tenantId, agentId: u.agentId, runId: u.runId, runCreatedAt: u.runCreatedAt, taskId: u.taskId, key: u.key, calls: [], computeMs: 0 },
      at,
      prices: [price],
      estimates: [0],
      computeRate: ctx.computeMicrosPerHour,
      windows,
    };
    const s = charged ? await applyToBudgets(tx, r, [], { usd: costMicros ?? 0, calls: 1 }) : { costMicros: 0, alerts: [], pausedAgents: [] };
    const out = await exhaustedWindows(tx, windows);
    // A budget that stays exhausted keeps its agents paused (an operator may have resumed them).
    if (charged) for (const e of out) for (const id of await exhausted(tx, e.budget)) if (!s.pausedAgents.includes(id)) s.pausedAgents.push(id);
    return { ...s, charged, costMicros: charged ? costMicros : null, unpriced: !price, exhausted: out };
  }

  /** The hard budgets among `windows` whose spend has reached their limit. */
  async function exhaustedWindows(tx: Tx, windows: { budget: BudgetRow; window: WindowBounds }[]): Promise<ExhaustedBudget[]> {
    const hard = windows.filter((w) => w.budget.enforcement === "hard");
    if (!hard.length) return [];
    const tenantId = hard[0]!.budget.tenantId;
    const states = await c.getWindows(tx, { tenantId, pairs: hard.map((w) => ({ budgetId: w.budget.id, windowKey: w.window.key })) });
    const out: ExhaustedBudget[] = [];
    for (const w of hard) {
      const st = states.find((x) => x.budgetId === w.budget.id && x.windowKey === w.window.key);
      if (st && st.spent >= st.limitValue) {
        const fmt = (n: number) => (w.budget.metric === "usd" ? formatUsd(n) : `${n} call${n === 1 ? "" : "s"}`);
        const whose = w.budget.scope === "tenant" ? "the tenant's" : `agent ${w.budget.agentName ?? w.budget.agentId}'s`;
        out.push({
          budget: w.budget,
          spent: st.spent,
          limitValue: st.limitValue,
          message: `${whose} ${windowAdjective(w.budget.period)} ${w.budget.metric === "usd" ? "budget" : "call limit"} of ${fmt(st.limitValue)} (${w.budget.id}) is exhausted: ${fmt(st.spent)} spent`,
        });
      }
    }
    return out;
  }

  /**
   * The agent's hard budgets exhausted right now (the calendar windows containing now;
   * with `runId`, that run's invocation budgets too): an external agent may not start
   * work, or is told to stop, while one is.
   */
  async function exhaustedFor(tx: Tx, q: { tenantId: string; agentId: string; runId?: string }): Promise<ExhaustedBudget[]> {
    const ctx = await c.spendContext(tx, { tenantId: q.tenantId, agentId: q.agentId, at: clock() });
    const windows = ctx.budgets.flatMap((budget) => {
      if (budget.period !== "invocation") return [{ budget, window: ctx.calendar[budget.period] }];
      return q.runId ? [{ budget, window: { key: `run:${q.runId}`, start: new Date(0), end: null } }] : [];
    });
    return exhaustedWindows(tx, windows);
  }

  /**
   * Settles a gateway tool's fee reserved with `actionMicros` (and no model calls): one
   * `action` ledger row under `<run_id>:<seq>:action`, in the transaction that writes the
   * tool's step, so a replayed step never charges twice. A call that never reached the
   * server is `release`d instead.
   */
  async function settleAction(tx: Tx, r: Reservation, a: { seq: number; description: string }): Promise<Settlement> {
    const req = r.request;
    const key = `${req.runId}:${a.seq}:action`;
    const fee = req.actionMicros ?? 0;
    const row: repo.costs.ChargeRow = {
      tenantId: req.tenantId,
      id: newId("chg"),
      runCreatedAt: req.runCreatedAt,
      idempotencyKey: key,
      kind: "action",
      agentId: req.agentId,
      runId: req.runId,
      stepSeq: a.seq,
      taskId: req.taskId,
      provider: null,
      model: null,
      priceId: null,
      inputTokens: 0,
      cacheReadTokens: 0,
      cacheWriteTokens: 0,
      outputTokens: 0,
      rawUsage: null,
      computeMs: null,
      rateMicrosPerHour: null,
      description: a.description,
      costMicros: fee,
      unpriced: false,
      estimated: false,
    };
    const { inserted, holds } = await c.chargeAndTake(tx, { tenantId: req.tenantId, reservationKey: req.key, rows: [row] });
    return applyToBudgets(tx, r, holds, { usd: inserted.has(key) ? fee : 0, calls: 0 });
  }

  /** The engine's clock (injectable in tests): the time a reservation is made at. */
  const now = () => clock();
  return { reserve, settle, settleStatement, release, exhausted, chargeReported, exhaustedFor, settleAction, now };
}

export type SpendEngine = ReturnType<typeof spendEngine>;

/**
 * The sweeper: releases reservations whose call outlived any deadline (its worker died),
 * across tenants, and keeps the ledger's monthly partitions ahead. A dead worker's call
 * left no usage to charge; the run that resumes makes the call again and pays for it.
 * Each reservation is released in its own transaction, in the order it was taken, so the
 * sweeper locks windows in the same order as every reserve and settle.
 */
export async function sweepReservations(database: Database): Promise<{ released: number }> {
  const expired = await withSystem(database, (tx) => c.expiredReservations(tx, { limit: 500 }));
  let released = 0;
  for (const e of expired) {
    released += await withSystem(database, async (tx) => {
      const r = await c.takeExpiredReservation(tx, e);
      for (const h of r?.holds ?? []) await c.releaseOnWindow(tx, { tenantId: e.tenantId, budgetId: h.budgetId, windowKey: h.windowKey, release: h.amount });
      return r ? 1 : 0;
    });
  }
  await withSystem(database, (tx) => tx.$client.query("SELECT bosun_ensure_partitions('cost_ledger', 2)"));
  return { released };
}
