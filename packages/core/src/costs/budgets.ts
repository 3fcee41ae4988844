import type { AgentDescriptor, CreateBudgetBody, UpdateBudgetBody } from "@bosun/contracts";
import { type Database, repo, type Tx, withTenant } from "@bosun/db";
import { type Actor, requireScope } from "../actor";
import { audit } from "../audit";
import { conflict, forbidden, notFound, validation } from "../errors";
import { type IdempotencyRequest, runCreate } from "../idempotency";
import { newId } from "../ids";
import { decodeCursor, isString, page } from "../pagination";
import { usdToMicros } from "./money";

const c = repo.costs;
type BudgetRow = repo.costs.BudgetRow;

interface Ctx {
  requestId?: string | undefined;
}

/** A budget with its current window (null for per-invocation budgets: every run has its own). */
export function budgetView(b: BudgetRow, current: Pick<repo.costs.WindowRow, "windowStart" | "windowEnd" | "spent" | "reserved"> | null) {
  return {
    id: b.id,
    scope: b.scope,
    agent: b.agentName,
    metric: b.metric,
    window: b.period,
    limit: b.limitValue,
    unit: b.metric === "usd" ? ("usd_micros" as const) : ("calls" as const),
    enforcement: b.enforcement,
    thresholds: b.thresholds,
    onExhausted: b.onExhausted,
    source: b.source,
    current: current && {
      windowStart: current.windowStart.toISOString(),
      windowEnd: current.windowEnd?.toISOString() ?? null,
      spent: current.spent,
      reserved: current.reserved,
    },
    createdAt: b.createdAt.toISOString(),
    updatedAt: b.updatedAt.toISOString(),
  };
}

/** "per-invocation", "hourly", "daily", "monthly": a window kind as people say it. */
export const windowAdjective = (period: BudgetRow["period"]) => (period === "invocation" ? "per-invocation" : period === "day" ? "daily" : `${period}ly`);

type Desired = Pick<BudgetRow, "metric" | "period" | "limitValue" | "onExhausted">;

/**
 * The budgets an agent's descriptor declares. `calls_per_hour` and `usd_per_invocation`
 * only refuse; running out of a day's or a month's money pauses the agent, as DESIGN.md
 * describes (configurable with PATCH /v1/budgets/{id}).
 */
export function descriptorBudgets(b: AgentDescriptor["spec"]["budgets"]): Desired[] {
  const out: Desired[] = [];
  if (b?.calls_per_hour !== undefined) out.push({ metric: "calls", period: "hour", limitValue: b.calls_per_hour, onExhausted: "refuse" });
  if (b?.usd_per_invocation !== undefined) out.push({ metric: "usd", period: "invocation", limitValue: usdToMicros(b.usd_per_invocation), onExhausted: "refuse" });
  if (b?.usd_per_day !== undefined) out.push({ metric: "usd", period: "day", limitValue: usdToMicros(b.usd_per_day), onExhausted: "pause_agent" });
  if (b?.usd_per_month !== undefined) out.push({ metric: "usd", period: "month", limitValue: usdToMicros(b.usd_per_month), onExhausted: "pause_agent" });
  return out;
}

/**
 * Makes an agent's descriptor budgets match its descriptor, inside the apply's
 * transaction: new ones are created, changed limits updated (thresholds, enforcement and
 * onExhausted set over the API are kept), dropped ones deleted.
 */
export async function syncDescriptorBudgets(tx: Tx, p: { tenantId: string; agentId: string; descriptor: AgentDescriptor }): Promise<void> {
  const want = descriptorBudgets(p.descriptor.spec.budgets);
  const have = await c.descriptorBudgets(tx, p);
  const key = (b: Pick<BudgetRow, "metric" | "period">) => `${b.metric}:${b.period}`;
  const haveByKey = new Map(have.map((b) => [key(b), b]));
  for (const w of want) {
    const h = haveByKey.get(key(w));
    haveByKey.delete(key(w));
    if (!h) {
      await c.insertBudget(tx, {
        tenantId: p.tenantId,
        id: newId("bud"),
        scope: "agent",
        agentId: p.agentId,
        metric: w.metric,
        period: w.period,
        limitValue: w.limitValue,
        enforcement: "hard",
        thresholds: [50, 80, 100],
        onExhausted: w.onExhausted,
        source: "descriptor",
      });
    } else if (h.limitValue !== w.limitValue) {
      await c.updateBudget(tx, { tenantId: p.tenantId, id: h.id, patch: { limitValue: w.limitValue } });
    }
  }
  for (const gone of haveByKey.values()) await c.deleteBudget(tx, { tenantId: p.tenantId, id: gone.id });
}

/** GET/POST /v1/budgets, GET/PATCH/DELETE /v1/budgets/{id}. */
export const budgetService = (deps: { database: Database; clock?: () => Date }) => {
  const { database } = deps;
  const clock = deps.clock ?? (() => new Date());

  /** Budgets are the tenant's money: managed by people and keys, not by agents. */
  function assertCanManage(actor: Actor) {
    requireScope(actor, "admin");
    if (actor.agentId) throw forbidden("an agent cannot manage budgets");
  }

  function assertCanRead(actor: Actor) {
    requireScope(actor, "read");
    if (actor.agentId) throw forbidden("an agent's key cannot read the tenant's budgets");
  }

  async function load(tx: Tx, actor: Actor, id: string) {
    const b = await c.getBudget(tx, { tenantId: actor.tenantId, id });
    if (!b) throw notFound(`budget ${id}`);
    return b;
  }

  /** Views with each budget's current window (the one containing now, in the tenant's time zone). */
  async function views(tx: Tx, tenantId: string, rows: BudgetRow[]) {
    if (rows.length === 0) return [];
    const { timeZone } = await c.getCostSettings(tx, { tenantId });
    const cal = await c.calendarWindows(tx, { tz: timeZone, at: clock() });
    const pairs = rows.filter((b) => b.period !== "invocation").map((b) => ({ budgetId: b.id, windowKey: cal[b.period as "hour" | "day" | "month"].key }));
    const windows = new Map((await c.getWindows(tx, { tenantId, pairs })).map((w) => [w.budgetId, w]));
    return rows.map((b) => {
      if (b.period === "invocation") return budgetView(b, null);
      const bounds = cal[b.period];
      const w = windows.get(b.id);
      return budgetView(b, w ?? { windowStart: bounds.start, windowEnd: bounds.end, spent: 0, reserved: 0 });
    });
  }

  function limitOf(metric: "usd" | "calls", body: { limitUsd?: number | undefined; limitCalls?: number | undefined }) {
    if (metric === "usd") {
      if (body.limitCalls !== undefined) throw validation("a usd budget takes limitUsd", [{ path: "limitCalls", message: "not for a usd budget" }]);
      return body.limitUsd === undefined ? undefined : usdToMicros(body.limitUsd);
    }
    if (body.limitUsd !== undefined) throw validation("a calls budget takes limitCalls", [{ path: "limitUsd", message: "not for a calls budget" }]);
    return body.limitCalls;
  }

  return {
    async list(actor: Actor, q: { limit: number; cursor?: string | undefined; agent?: string | undefined }) {
      assertCanRead(actor);
      const after = decodeCursor(q.cursor, isString);
      return withTenant(database, actor.tenantId, async (tx) => {
        let agentId: string | undefined;
        if (q.agent) {
          const a = await repo.getAgentByName(tx, { tenantId: actor.tenantId, name: q.agent });
          if (!a) throw notFound(`agent '${q.agent}'`);
          agentId = a.id;
        }
        const rows = await c.listBudgets(tx, { tenantId: actor.tenantId, limit: q.limit + 1, after, agentId });
        const p = page(rows, q.limit, (b) => b.id);
        return { items: await views(tx, actor.tenantId, p.items), nextCursor: p.nextCursor };
      });
    },

    async get(actor: Actor, id: string) {
      assertCanRead(actor);
      return withTenant(database, actor.tenantId, async (tx) => (await views(tx, actor.tenantId, [await load(tx, actor, id)]))[0]!);
    },

    async create(actor: Actor, body: CreateBudgetBody, ctx: Ctx & { idempotency?: IdempotencyRequest | undefined } = {}) {
      assertCanManage(actor);
      return runCreate(database, actor.tenantId, ctx.idempotency, async (tx) => {
        let agentId: string | null = null;
        if (body.scope === "agent") {
          const a = await repo.getAgentByName(tx, { tenantId: actor.tenantId, name: body.agent! });
          if (!a) throw validation(`agent '${body.agent}' does not exist`, [{ path: "agent", message: "no such agent" }]);
          agentId = a.id;
        }
        const id = newId("bud");
        await c.insertBudget(tx, {
          tenantId: actor.tenantId,
          id,
          scope: body.scope,
          agentId,
          metric: body.metric,
          period: body.window,
          limitValue: limitOf(body.metric, body)!,
          enforcement: body.enforcement,
          thresholds: [...body.thresholds].sort((a, b) => a - b),
          onExhausted: body.onExhausted,
          source: "api",
        });
        const view = (await views(tx, actor.tenantId, [await load(tx, actor, id)]))[0]!;
        await audit(tx, actor, { action: "budget.create", targetType: "budget", targetId: id, after: view }, ctx.requestId);
        return { status: 201, body: view };
      });
    },

    /**
     * Changes a budget. A descriptor budget's limit and window follow its descriptor; its
     * enforcement, thresholds and onExhausted may be changed here.
     */
    async update(actor: Actor, id: string, body: UpdateBudgetBody, ctx: Ctx = {}) {
      assertCanManage(actor);
      return withTenant(database, actor.tenantId, async (tx) => {
        const b = await load(tx, actor, id);
        const limitValue = limitOf(b.metric, body);
        if (limitValue !== undefined && b.source === "descriptor") {
          throw conflict(`budget ${id} comes from agent ${b.agentName}'s descriptor (spec.budgets): change its limit there`);
        }
        const [before] = await views(tx, actor.tenantId, [b]);
        await c.updateBudget(tx, {
          tenantId: actor.tenantId,
          id,
          patch: {
            limitValue,
            enforcement: body.enforcement,
            thresholds: body.thresholds ? [...body.thresholds].sort((x, y) => x - y) : undefined,
            onExhausted: body.onExhausted,
          },
        });
        const [after] = await views(tx, actor.tenantId, [await load(tx, actor, id)]);
        await audit(tx, actor, { action: "budget.update", targetType: "budget", targetId: id, before, after }, ctx.requestId);
        return after!;
      });
    },

    async remove(actor: Actor, id: string, ctx: Ctx = {}) {
      assertCanManage(actor);
      return withTenant(database, actor.tenantId, async (tx) => {
        const b = await load(tx, actor, id);
        if (b.source === "descriptor") {
          throw conflict(`budget ${id} comes from agent ${b.agentName}'s descriptor (spec.budgets): remove it there`);
        }
        const [before] = await views(tx, actor.tenantId, [b]);
        await c.deleteBudget(tx, { tenantId: actor.tenantId, id });
        await audit(tx, actor, { action: "budget.delete", targetType: "budget", targetId: id, before }, ctx.requestId);
        return before!;
      });
    },
  };
};

export type BudgetService = ReturnType<typeof budgetService>;
