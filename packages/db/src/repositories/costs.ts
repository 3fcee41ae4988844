import type { Readable } from "node:stream";
import { to as copyTo } from "pg-copy-streams";
import pg from "pg";
import type { Db } from "../client";
import { type PreparedStatement, prepared, queryBatch, textLiteral } from "../tx";

/**
 * Cost governance queries: prices, budgets and their windows, reservations, the ledger,
 * alerts and rollups. Plain SQL: reserve and settle run around every model call, and
 * their locking (one conditional UPDATE per budget window) is the point.
 */

// ---------------------------------------------------------------------------------------
// Prices

export interface PriceRow {
  id: string;
  source: "catalogue" | "tenant";
  provider: string;
  model: string;
  inputMicrosPerMtok: number;
  outputMicrosPerMtok: number;
  cacheReadMicrosPerMtok: number;
  cacheWriteMicrosPerMtok: number;
  effectiveFrom: Date;
  note: string | null;
}

const PRICE_COLUMNS = `id, provider, model, input_micros_per_mtok::float8 AS "inputMicrosPerMtok", output_micros_per_mtok::float8 AS "outputMicrosPerMtok",
  cache_read_micros_per_mtok::float8 AS "cacheReadMicrosPerMtok", cache_write_micros_per_mtok::float8 AS "cacheWriteMicrosPerMtok",
  effective_from AS "effectiveFrom"`;
const PRICE_FIELDS = `id, provider, model, input_micros_per_mtok, output_micros_per_mtok, cache_read_micros_per_mtok, cache_write_micros_per_mtok, effective_from`;

/** Catalogue and tenant prices as one relation (the tenant's win at equal specificity). */
const ALL_PRICES = `(SELECT ${PRICE_FIELDS}, 'tenant' AS source, note FROM price_overrides WHERE tenant_id = $1
   UNION ALL SELECT ${PRICE_FIELDS}, 'catalogue' AS source, source AS note FROM model_prices) p`;
const SELECT_PRICE = `SELECT ${PRICE_COLUMNS}, source, note FROM ${ALL_PRICES}`;

/**
 * The price in effect at `at` for the first of `models` (most specific first: the exact
 * id, the id without its date suffix, `*`) that has one. A tenant's price beats the
 * catalogue's for the same model id; the latest version effective at `at` wins.
 */
export async function findPrice(db: Db, q: { tenantId: string; provider: string; models: string[]; at: Date }): Promise<PriceRow | undefined> {
  const { rows } = await db.$client.query<PriceRow>({
    name: "bosun_costs_find_price",
    text: `${SELECT_PRICE}
           WHERE provider = $2 AND model = ANY($3::text[]) AND effective_from <= $4
           ORDER BY array_position($3::text[], model), source = 'tenant' DESC, effective_from DESC LIMIT 1`,
    values: [q.tenantId, q.provider, q.models, q.at],
  });
  return rows[0];
}

/** Every price version visible to the tenant, by provider, model and date. */
export async function listPrices(
  db: Db,
  q: { tenantId: string; limit: number; after?: [string, string, string, string] | undefined; provider?: string | undefined },
): Promise<PriceRow[]> {
  const values: unknown[] = [q.tenantId, q.limit];
  const where: string[] = [];
  if (q.provider) where.push(`provider = $${values.push(q.provider)}`);
  if (q.after) where.push(`(provider, model, effective_from, id) > ($${values.push(q.after[0])}, $${values.push(q.after[1])}, $${values.push(q.after[2])}::timestamptz, $${values.push(q.after[3])})`);
  const { rows } = await db.$client.query<PriceRow>(
    `${SELECT_PRICE} ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY provider, model, effective_from, id LIMIT $2`,
    values,
  );
  return rows;
}

export async function insertPriceOverride(
  db: Db,
  p: Omit<PriceRow, "source" | "note"> & { tenantId: string; note: string | null; createdByType: string; createdById: string },
): Promise<PriceRow | undefined> {
  const { rows } = await db.$client.query<PriceRow>(
    `INSERT INTO price_overrides (tenant_id, id, provider, model, input_micros_per_mtok, output_micros_per_mtok, cache_read_micros_per_mtok,
                                  cache_write_micros_per_mtok, effective_from, note, created_by_type, created_by_id)
     VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12) ON CONFLICT DO NOTHING
     RETURNING ${PRICE_COLUMNS}, 'tenant' AS source, note`,
    [
      p.tenantId, p.id, p.provider, p.model, p.inputMicrosPerMtok, p.outputMicrosPerMtok, p.cacheReadMicrosPerMtok,
      p.cacheWriteMicrosPerMtok, p.effectiveFrom, p.note, p.createdByType, p.createdById,
    ],
  );
  return rows[0];
}

// ---------------------------------------------------------------------------------------
// Settings

export interface CostSettingsRow {
  timeZone: string;
  allowUnpricedModels: boolean;
  computeMicrosPerHour: number;
  alertEmails: string[];
}

/** The tenant's cost settings (defaults when it has none) and its time zone, in one read. */
export async function getCostSettings(db: Db, { tenantId }: { tenantId: string }): Promise<CostSettingsRow> {
  const { rows } = await db.$client.query<CostSettingsRow>({
    name: "bosun_costs_settings",
    text: `SELECT t.time_zone AS "timeZone", coalesce(s.allow_unpriced_models, false) AS "allowUnpricedModels",
                  coalesce(s.compute_micros_per_hour, 50000)::float8 AS "computeMicrosPerHour", coalesce(s.alert_emails, '[]'::jsonb) AS "alertEmails"
           FROM tenants t LEFT JOIN cost_settings s ON s.tenant_id = t.id WHERE t.id = $1`,
    values: [tenantId],
  });
  return rows[0]!;
}

export async function upsertCostSettings(
  db: Db,
  p: { tenantId: string; allowUnpricedModels?: boolean | undefined; computeMicrosPerHour?: number | undefined; alertEmails?: string[] | undefined },
): Promise<void> {
  await db.$client.query(
    `INSERT INTO cost_settings (tenant_id, allow_unpriced_models, compute_micros_per_hour, alert_emails)
     VALUES ($1, coalesce($2, false), coalesce($3, 50000), coalesce($4::jsonb, '[]'::jsonb))
     ON CONFLICT (tenant_id) DO UPDATE SET
       allow_unpriced_models = coalesce($2, cost_settings.allow_unpriced_models),
       compute_micros_per_hour = coalesce($3, cost_settings.compute_micros_per_hour),
       alert_emails = coalesce($4::jsonb, cost_settings.alert_emails),
       updated_at = now()`,
    [p.tenantId, p.allowUnpricedModels ?? null, p.computeMicrosPerHour ?? null, p.alertEmails ? JSON.stringify(p.alertEmails) : null],
  );
}

// ---------------------------------------------------------------------------------------
// Budgets

export type BudgetPeriod = "invocation" | "hour" | "day" | "month";

export interface BudgetRow {
  tenantId: string;
  id: string;
  scope: "tenant" | "agent";
  agentId: string | null;
  agentName: string | null;
  metric: "usd" | "calls";
  period: BudgetPeriod;
  limitValue: number;
  enforcement: "hard" | "soft";
  thresholds: number[];
  onExhausted: "pause_agent" | "refuse";
  source: "api" | "descriptor";
  createdAt: Date;
  updatedAt: Date;
}

const BUDGET_COLUMNS = `b.tenant_id AS "tenantId", b.id, b.scope, b.agent_id AS "agentId", a.name AS "agentName", b.metric, b.period,
  b.limit_value::float8 AS "limitValue", b.enforcement, b.thresholds, b.on_exhausted AS "onExhausted", b.source,
  b.created_at AS "createdAt", b.updated_at AS "updatedAt"`;
const BUDGET_FROM = `budgets b LEFT JOIN agents a ON a.tenant_id = b.tenant_id AND a.id = b.agent_id`;

export async function getBudget(db: Db, { tenantId, id }: { tenantId: string; id: string }): Promise<BudgetRow | undefined> {
  const { rows } = await db.$client.query<BudgetRow>(`SELECT ${BUDGET_COLUMNS} FROM ${BUDGET_FROM} WHERE b.tenant_id = $1 AND b.id = $2`, [tenantId, id]);
  return rows[0];
}

export async function listBudgets(
  db: Db,
  q: { tenantId: string; limit: number; after?: string | undefined; agentId?: string | undefined },
): Promise<BudgetRow[]> {
  const values: unknown[] = [q.tenantId, q.limit];
  const where = ["b.tenant_id = $1"];
  if (q.after) where.push(`b.id > $${values.push(q.after)}`);
  if (q.agentId) where.push(`b.agent_id = $${values.push(q.agentId)}`);
  const { rows } = await db.$client.query<BudgetRow>(`SELECT ${BUDGET_COLUMNS} FROM ${BUDGET_FROM} WHERE ${where.join(" AND ")} ORDER BY b.id LIMIT $2`, values);
  return rows;
}

export type BudgetInsert = Omit<BudgetRow, "agentName" | "createdAt" | "updatedAt">;

export async function insertBudget(db: Db, b: BudgetInsert): Promise<void> {
  await db.$client.query(
    `INSERT INTO budgets (tenant_id, id, scope, agent_id, metric, period, limit_value, enforcement, thresholds, on_exhausted, source)
     VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)`,
    [b.tenantId, b.id, b.scope, b.agentId, b.metric, b.period, b.limitValue, b.enforcement, JSON.stringify(b.thresholds), b.onExhausted, b.source],
  );
}

export async function updateBudget(
  db: Db,
  { tenantId, id, patch }: { tenantId: string; id: string; patch: Partial<Pick<BudgetRow, "limitValue" | "enforcement" | "thresholds" | "onExhausted">> },
): Promise<void> {
  await db.$client.query(
    `UPDATE budgets SET limit_value = coalesce($3, limit_value), enforcement = coalesce($4, enforcement),
       thresholds = coalesce($5::jsonb, thresholds), on_exhausted = coalesce($6, on_exhausted), updated_at = now()
     WHERE tenant_id = $1 AND id = $2`,
    [tenantId, id, patch.limitValue ?? null, patch.enforcement ?? null, patch.thresholds ? JSON.stringify(patch.thresholds) : null, patch.onExhausted ?? null],
  );
}

export async function deleteBudget(db: Db, { tenantId, id }: { tenantId: string; id: string }): Promise<void> {
  await db.$client.query(`DELETE FROM budgets WHERE tenant_id = $1 AND id = $2`, [tenantId, id]);
}

/** An agent's descriptor budgets, to reconcile with its current descriptor. */
export async function descriptorBudgets(db: Db, { tenantId, agentId }: { tenantId: string; agentId: string }): Promise<BudgetRow[]> {
  const { rows } = await db.$client.query<BudgetRow>(
    `SELECT ${BUDGET_COLUMNS} FROM ${BUDGET_FROM} WHERE b.tenant_id = $1 AND b.agent_id = $2 AND b.source = 'descriptor' ORDER BY b.id`,
    [tenantId, agentId],
  );
  return rows;
}

// ---------------------------------------------------------------------------------------
// Windows

export interface WindowBounds {
  key: string;
  start: Date;
  end: Date | null;
}

/**
 * The calendar windows containing `at` in time zone `tz`: hour, day and month, each as
 * [start, end) in UTC, computed by Postgres (`AT TIME ZONE`), so daylight-saving days are
 * 23 or 25 hours long and a month starts at local midnight on the 1st.
 */
export async function calendarWindows(db: Db, { tz, at }: { tz: string; at: Date }): Promise<Record<"hour" | "day" | "month", WindowBounds>> {
  const { rows } = await db.$client.query<Record<string, Date>>({
    name: "bosun_costs_calendar_windows",
    text: `SELECT (date_trunc('hour', l) AT TIME ZONE $2) AS hs, ((date_trunc('hour', l) + interval '1 hour') AT TIME ZONE $2) AS he,
                  (date_trunc('day', l) AT TIME ZONE $2) AS ds, ((date_trunc('day', l) + interval '1 day') AT TIME ZONE $2) AS de,
                  (date_trunc('month', l) AT TIME ZONE $2) AS ms, ((date_trunc('month', l) + interval '1 month') AT TIME ZONE $2) AS me
           FROM (SELECT $1::timestamptz AT TIME ZONE $2 AS l) x`,
    values: [at, tz],
  });
  const r = rows[0]!;
  const w = (start: Date, end: Date): WindowBounds => ({ key: start.toISOString(), start, end });
  return { hour: w(r.hs!, r.he!), day: w(r.ds!, r.de!), month: w(r.ms!, r.me!) };
}

export type SpendBudget = Omit<BudgetRow, "createdAt" | "updatedAt">;

export interface SpendContext extends Omit<CostSettingsRow, "alertEmails"> {
  /**
   * The budgets a charge of this agent counts against, in lock order: the agent's first,
   * then the tenant's (which every agent's calls contend for, so they are locked last and
   * held the shortest), each by id.
   */
  budgets: SpendBudget[];
  calendar: Record<"hour" | "day" | "month", WindowBounds>;
}

/**
 * The spend context's SELECT: `extra` adds columns. $1 tenant, $2 agent, $3 at; the
 * tenant row is `x` (its time zone `x.tz`).
 */
const spendContextSql = (extra: string) =>
  `SELECT x.tz AS "timeZone", coalesce(s.allow_unpriced_models, false) AS "allowUnpricedModels",
          coalesce(s.compute_micros_per_hour, 50000)::float8 AS "computeMicrosPerHour",
          coalesce((SELECT json_agg(json_build_object('tenantId', b.tenant_id, 'id', b.id, 'scope', b.scope, 'agentId', b.agent_id,
                        'agentName', a.name, 'metric', b.metric, 'period', b.period, 'limitValue', b.limit_value, 'enforcement', b.enforcement,
                        'thresholds', b.thresholds, 'onExhausted', b.on_exhausted, 'source', b.source) ORDER BY b.scope = 'tenant', b.id)
                    FROM budgets b LEFT JOIN agents a ON a.tenant_id = b.tenant_id AND a.id = b.agent_id
                    WHERE b.tenant_id = $1 AND (b.scope = 'tenant' OR b.agent_id = $2)), '[]') AS budgets,
          (date_trunc('hour', x.l) AT TIME ZONE x.tz) AS hs, ((date_trunc('hour', x.l) + interval '1 hour') AT TIME ZONE x.tz) AS he,
          (date_trunc('day', x.l) AT TIME ZONE x.tz) AS ds, ((date_trunc('day', x.l) + interval '1 day') AT TIME ZONE x.tz) AS de,
          (date_trunc('month', x.l) AT TIME ZONE x.tz) AS ms, ((date_trunc('month', x.l) + interval '1 month') AT TIME ZONE x.tz) AS me${extra}
   FROM (SELECT t.id, t.time_zone AS tz, $3::timestamptz AT TIME ZONE t.time_zone AS l FROM tenants t WHERE t.id = $1) x
   LEFT JOIN cost_settings s ON s.tenant_id = x.id`;

type SpendContextResult = Omit<SpendContext, "calendar"> & Record<"hs" | "he" | "ds" | "de" | "ms" | "me", Date>;

const toSpendContext = (r: SpendContextResult): SpendContext => {
  const w = (start: Date, end: Date): WindowBounds => ({ key: start.toISOString(), start, end });
  return {
    timeZone: r.timeZone,
    allowUnpricedModels: r.allowUnpricedModels,
    computeMicrosPerHour: r.computeMicrosPerHour,
    budgets: r.budgets.map((b) => ({ ...b, limitValue: Number(b.limitValue) })),
    calendar: { hour: w(r.hs, r.he), day: w(r.ds, r.de), month: w(r.ms, r.me) },
  };
};

/**
 * Everything a reservation needs before it locks anything, in one round trip: the
 * tenant's time zone and cost settings, the budgets that apply (in lock order), and the
 * calendar windows containing `at` (as calendarWindows computes them).
 */
export async function spendContext(db: Db, { tenantId, agentId, at }: { tenantId: string; agentId: string; at: Date }): Promise<SpendContext> {
  const { rows } = await db.$client.query<SpendContextResult>({ name: "bosun_costs_spend_context", text: spendContextSql(""), values: [tenantId, agentId, at] });
  return toSpendContext(rows[0]!);
}

/**
 * The spend context and, in the same round trip, the price in effect at `at` for each of
 * `lookups` (one per model a call may make: routing plans two), chosen as findPrice
 * chooses; undefined where there is none.
 */
export async function spendContextWithPrices(
  db: Db,
  { tenantId, agentId, at, lookups }: { tenantId: string; agentId: string; at: Date; lookups: PriceLookup[] },
): Promise<SpendContextWithPrices> {
  const { rows } = await db.$client.query<SpendContextPricesRow>({
    name: "bosun_costs_spend_context_prices",
    text: SPEND_CONTEXT_PRICES_SQL,
    values: [tenantId, agentId, at, JSON.stringify(lookups)],
  });
  return spendContextPricesFrom(rows[0]!);
}

/**
 * spendContextWithPrices as a prepared statement, to send with a transaction's BEGIN;
 * `spendContextPricesRead` reads its result. `onlyIf`: an SQL condition (named, for the
 * statement's name); when false, no row.
 */
export function spendContextWithPricesRead(
  p: { tenantId: string; agentId: string; at: Date; lookups: PriceLookup[] },
  onlyIf?: { name: string; sql: string },
): PreparedStatement {
  const args = [pg.escapeLiteral(p.tenantId), pg.escapeLiteral(p.agentId), pg.escapeLiteral(p.at.toISOString()), pg.escapeLiteral(JSON.stringify(p.lookups))];
  if (!onlyIf) return prepared("bosun_b_spend_context_prices", SPEND_CONTEXT_PRICES_SQL, args);
  return prepared(`bosun_b_spend_context_prices_if_${onlyIf.name}`, `SELECT * FROM (${SPEND_CONTEXT_PRICES_SQL}) c WHERE ${onlyIf.sql}`, args);
}

/** What spendContextWithPricesRead read (undefined: its condition was false). */
export const spendContextPricesRead = (r: pg.QueryResult | undefined): SpendContextWithPrices | undefined =>
  r?.rows[0] ? spendContextPricesFrom(r.rows[0] as SpendContextPricesRow) : undefined;

export interface PriceLookup {
  provider: string;
  models: string[];
}
export type SpendContextWithPrices = SpendContext & { prices: (PriceRow | undefined)[] };
type SpendContextPricesRow = SpendContextResult & { prices: (Omit<PriceRow, "effectiveFrom"> & { effectiveFrom: string | null })[] };

// Each lookup's candidates are a json array: the calls' lists differ in length, and a
// Postgres array of arrays may not. ALL_PRICES reads the tenant's overrides as $1.
const SPEND_CONTEXT_PRICES_SQL = spendContextSql(`,
          (SELECT coalesce(json_agg(pr ORDER BY q.i), '[]')
           FROM jsonb_array_elements($4::jsonb) WITH ORDINALITY q(c, i)
           CROSS JOIN LATERAL (SELECT q.c->>'provider' AS want_provider, ARRAY(SELECT jsonb_array_elements_text(q.c->'models')) AS want_models) k
           LEFT JOIN LATERAL (
             ${SELECT_PRICE} WHERE provider = k.want_provider AND model = ANY(k.want_models) AND effective_from <= $3::timestamptz
             ORDER BY array_position(k.want_models, model), source = 'tenant' DESC, effective_from DESC LIMIT 1) pr ON true) AS prices`);

function spendContextPricesFrom(r: SpendContextPricesRow): SpendContextWithPrices {
  return {
    ...toSpendContext(r),
    // A lookup with no price comes back as null (or a row of nulls): undefined, as findPrice's.
    prices: r.prices.map((p) => (p?.id == null ? undefined : { ...p, effectiveFrom: new Date(p.effectiveFrom!) })),
  };
}

export interface WindowState {
  spent: number;
  reserved: number;
  limitValue: number;
}

/**
 * Reserves `amount` on a budget window (creating the window if it is new) and releases
 * `release` from it, in one statement: for a hard budget only if `spent + reserved`
 * stays within the limit. Returns the window after the change, or undefined when the
 * reservation would pass a hard limit (nothing changed then).
 */
export async function reserveOnWindow(
  db: Db,
  p: { tenantId: string; budgetId: string; window: WindowBounds; limit: number; amount: number; release: number; soft: boolean },
): Promise<WindowState | undefined> {
  const { rows } = await db.$client.query<WindowState>({
    name: "bosun_costs_reserve",
    text: `INSERT INTO budget_windows AS w (tenant_id, budget_id, window_key, window_start, window_end, limit_value, spent, reserved)
           SELECT $1, $2, $3, $4::timestamptz, $5::timestamptz, $6::bigint, 0, $7::bigint WHERE $9::boolean OR $7::bigint <= $6::bigint
           ON CONFLICT (tenant_id, budget_id, window_key) DO UPDATE
             SET reserved = w.reserved - $8::bigint + $7::bigint, limit_value = $6::bigint, updated_at = now()
             WHERE $9::boolean OR w.spent + w.reserved - $8::bigint + $7::bigint <= $6::bigint
           RETURNING w.spent::float8 AS spent, w.reserved::float8 AS reserved, w.limit_value::float8 AS "limitValue"`,
    values: [p.tenantId, p.budgetId, p.window.key, p.window.start, p.window.end, p.limit, p.amount, p.release, p.soft],
  });
  return rows[0];
}

/**
 * Settles on one window: releases what the call held there and adds what it cost.
 * Returns the window after the change (undefined if its budget was deleted meanwhile).
 */
export async function settleOnWindow(
  db: Db,
  p: { tenantId: string; budgetId: string; window: WindowBounds; limit: number; release: number; spend: number },
): Promise<WindowState | undefined> {
  const { rows } = await db.$client.query<WindowState>({
    name: "bosun_costs_settle",
    text: `INSERT INTO budget_windows AS w (tenant_id, budget_id, window_key, window_start, window_end, limit_value, spent, reserved)
           SELECT $1::text, $2::text, $3, $4::timestamptz, $5::timestamptz, $6::bigint, $8::bigint, 0
           WHERE EXISTS (SELECT 1 FROM budgets WHERE tenant_id = $1::text AND id = $2::text)
           ON CONFLICT (tenant_id, budget_id, window_key) DO UPDATE
             SET reserved = w.reserved - $7::bigint, spent = w.spent + $8::bigint, updated_at = now()
           RETURNING w.spent::float8 AS spent, w.reserved::float8 AS reserved, w.limit_value::float8 AS "limitValue"`,
    values: [p.tenantId, p.budgetId, p.window.key, p.window.start, p.window.end, p.limit, p.release, p.spend],
  });
  return rows[0];
}

/** Releases held amounts (a reservation that will not be settled), in lock order. */
export async function releaseOnWindow(db: Db, p: { tenantId: string; budgetId: string; windowKey: string; release: number }): Promise<void> {
  await db.$client.query({
    name: "bosun_costs_release",
    text: `UPDATE budget_windows SET reserved = reserved - $4, updated_at = now() WHERE tenant_id = $1 AND budget_id = $2 AND window_key = $3`,
    values: [p.tenantId, p.budgetId, p.windowKey, p.release],
  });
}

export interface WindowRow extends WindowState {
  budgetId: string;
  windowKey: string;
  windowStart: Date;
  windowEnd: Date | null;
}

export async function getWindows(db: Db, q: { tenantId: string; pairs: { budgetId: string; windowKey: string }[] }): Promise<WindowRow[]> {
  if (q.pairs.length === 0) return [];
  const { rows } = await db.$client.query<WindowRow>(
    `SELECT budget_id AS "budgetId", window_key AS "windowKey", window_start AS "windowStart", window_end AS "windowEnd",
            spent::float8 AS spent, reserved::float8 AS reserved, limit_value::float8 AS "limitValue"
     FROM budget_windows w JOIN unnest($2::text[], $3::text[]) AS x(b, k) ON w.budget_id = x.b AND w.window_key = x.k
     WHERE w.tenant_id = $1`,
    [q.tenantId, q.pairs.map((p) => p.budgetId), q.pairs.map((p) => p.windowKey)],
  );
  return rows;
}

// ---------------------------------------------------------------------------------------
// Reservations

export interface Hold {
  budgetId: string;
  windowKey: string;
  amount: number;
}

export interface ReservationRow {
  tenantId: string;
  id: string;
  key: string;
  agentId: string;
  runId: string | null;
  holds: Hold[];
  estimateMicros: number;
  createdAt: Date;
  expiresAt: Date;
}

const RESERVATION_COLUMNS = `tenant_id AS "tenantId", id, key, agent_id AS "agentId", run_id AS "runId", holds,
  estimate_micros::float8 AS "estimateMicros", created_at AS "createdAt", expires_at AS "expiresAt"`;

/** Records a reservation; false when one is already held under its key (a dead worker's). */
export async function insertReservation(db: Db, r: Omit<ReservationRow, "createdAt">): Promise<boolean> {
  const { rowCount } = await db.$client.query({
    name: "bosun_costs_insert_reservation",
    text: `INSERT INTO budget_reservations (tenant_id, id, key, agent_id, run_id, holds, estimate_micros, expires_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)
           ON CONFLICT (tenant_id, key) DO NOTHING`,
    values: [r.tenantId, r.id, r.key, r.agentId, r.runId, JSON.stringify(r.holds), r.estimateMicros, r.expiresAt],
  });
  return rowCount === 1;
}

/** Removes and returns the reservation under `key` (undefined if settled, released or swept already). */
export async function takeReservation(db: Db, { tenantId, key }: { tenantId: string; key: string }): Promise<ReservationRow | undefined> {
  const { rows } = await db.$client.query<ReservationRow>({
    name: "bosun_costs_take_reservation",
    text: `DELETE FROM budget_reservations WHERE tenant_id = $1 AND key = $2 RETURNING ${RESERVATION_COLUMNS}`,
    values: [tenantId, key],
  });
  return rows[0];
}

/** Reservations past their expiry, across tenants (system sweep). */
export async function expiredReservations(db: Db, { limit }: { limit: number }): Promise<{ tenantId: string; key: string }[]> {
  const { rows } = await db.$client.query<{ tenantId: string; key: string }>(
    `SELECT tenant_id AS "tenantId", key FROM budget_reservations WHERE expires_at < now() ORDER BY expires_at LIMIT $1`,
    [limit],
  );
  return rows;
}

/** Removes and returns an expired reservation (undefined if it was settled or taken meanwhile). */
export async function takeExpiredReservation(db: Db, { tenantId, key }: { tenantId: string; key: string }): Promise<ReservationRow | undefined> {
  const { rows } = await db.$client.query<ReservationRow>(
    `DELETE FROM budget_reservations WHERE tenant_id = $1 AND key = $2 AND expires_at < now() RETURNING ${RESERVATION_COLUMNS}`,
    [tenantId, key],
  );
  return rows[0];
}

// ---------------------------------------------------------------------------------------
// Ledger

export interface ChargeRow {
  tenantId: string;
  id: string;
  runCreatedAt: Date;
  idempotencyKey: string;
  kind: "tokens" | "action" | "compute";
  agentId: string;
  runId: string | null;
  stepSeq: number | null;
  taskId: string | null;
  provider: string | null;
  model: string | null;
  priceId: string | null;
  inputTokens: number;
  cacheReadTokens: number;
  cacheWriteTokens: number;
  outputTokens: number;
  rawUsage: unknown;
  computeMs: number | null;
  rateMicrosPerHour: number | null;
  description: string | null;
  costMicros: number | null;
  unpriced: boolean;
  estimated: boolean;
}

/**
 * Appends charges (a charge whose idempotency key is already in the ledger is skipped) and
 * takes the call's reservation, in one statement. Returns the keys inserted and what the
 * reservation held (nothing if it was released or swept already).
 */
export async function chargeAndTake(db: Db, p: { tenantId: string; reservationKey: string; rows: ChargeRow[] }): Promise<{ inserted: Set<string>; holds: Hold[] }> {
  const [r] = await queryBatch(db.$client as pg.PoolClient, [chargeAndTakeStatement(p)]);
  return chargeAndTakeFrom(r!);
}

/** chargeAndTake as a statement for a batch (a model step's, with its BEGIN); chargeAndTakeFrom reads its result. */
export function chargeAndTakeStatement(p: { tenantId: string; reservationKey: string; rows: ChargeRow[] }): PreparedStatement {
  const rows = p.rows.map((r) => {
    // Text that Postgres cannot hold fails as it would as a parameter (textLiteral).
    for (const v of [r.idempotencyKey, r.provider, r.model, r.description]) if (v) textLiteral(v);
    return {
      tenant_id: r.tenantId,
      id: r.id,
      run_created_at: r.runCreatedAt,
      idempotency_key: r.idempotencyKey,
      kind: r.kind,
      agent_id: r.agentId,
      run_id: r.runId,
      step_seq: r.stepSeq,
      task_id: r.taskId,
      provider: r.provider,
      model: r.model,
      price_id: r.priceId,
      input_tokens: r.inputTokens,
      cache_read_tokens: r.cacheReadTokens,
      cache_write_tokens: r.cacheWriteTokens,
      output_tokens: r.outputTokens,
      raw_usage: r.rawUsage ?? null,
      compute_ms: r.computeMs,
      rate_micros_per_hour: r.rateMicrosPerHour,
      description: r.description,
      cost_micros: r.costMicros,
      unpriced: r.unpriced,
      estimated: r.estimated,
    };
  });
  return prepared(
    "bosun_b_charge_and_take",
    `WITH taken AS (DELETE FROM budget_reservations WHERE tenant_id = $1 AND key = $2 RETURNING holds),
     ins AS (
       INSERT INTO cost_ledger (tenant_id, id, run_created_at, idempotency_key, kind, agent_id, run_id, step_seq, task_id, provider, model,
         price_id, input_tokens, cache_read_tokens, cache_write_tokens, output_tokens, raw_usage, compute_ms, rate_micros_per_hour,
         description, cost_micros, unpriced, estimated)
       SELECT * FROM json_to_recordset($3::json) AS x (tenant_id text, id text, run_created_at timestamptz, idempotency_key text, kind text,
         agent_id text, run_id text, step_seq int, task_id text, provider text, model text, price_id text, input_tokens bigint,
         cache_read_tokens bigint, cache_write_tokens bigint, output_tokens bigint, raw_usage jsonb, compute_ms bigint,
         rate_micros_per_hour bigint, description text, cost_micros bigint, unpriced boolean, estimated boolean)
       ON CONFLICT DO NOTHING RETURNING idempotency_key)
     SELECT (SELECT array_agg(idempotency_key) FROM ins) AS keys, (SELECT holds FROM taken) AS holds`,
    [textLiteral(p.tenantId), textLiteral(p.reservationKey), pg.escapeLiteral(JSON.stringify(rows))],
  );
}

export function chargeAndTakeFrom(r: pg.QueryResult): { inserted: Set<string>; holds: Hold[] } {
  const row = r.rows[0] as { keys: string[] | null; holds: Hold[] | null } | undefined;
  return { inserted: new Set(row?.keys ?? []), holds: row?.holds ?? [] };
}

/** What drove a window's spend: the largest cost by model and by run, for an alert. */
export async function topCostDrivers(
  db: Db,
  q: { tenantId: string; agentId: string | null; from: Date; to: Date | null; runId?: string | null | undefined; limit: number },
): Promise<{ by: "model" | "agent" | "run"; label: string; costMicros: number; charges: number }[]> {
  const { rows } = await db.$client.query<{ by: "model" | "agent" | "run"; label: string; costMicros: number; charges: number }>(
    `WITH l AS (
       SELECT l.*, a.name AS agent_name FROM cost_ledger l JOIN agents a ON a.tenant_id = l.tenant_id AND a.id = l.agent_id
       WHERE l.tenant_id = $1 AND ($2::text IS NULL OR l.agent_id = $2) AND ($6::text IS NULL OR l.run_id = $6)
         AND l.created_at >= $3 AND ($4::timestamptz IS NULL OR l.created_at < $4) AND l.cost_micros IS NOT NULL)
     (SELECT 'model' AS by, coalesce(provider || '/' || model, kind) AS label, sum(cost_micros)::float8 AS "costMicros", count(*)::int AS charges
        FROM l GROUP BY 2 HAVING sum(cost_micros) > 0 ORDER BY 3 DESC, 2 LIMIT $5)
     UNION ALL
     (SELECT 'agent', agent_name, sum(cost_micros)::float8, count(*)::int FROM l WHERE $2::text IS NULL GROUP BY 2 HAVING sum(cost_micros) > 0 ORDER BY 3 DESC, 2 LIMIT $5)
     UNION ALL
     (SELECT 'run', run_id, sum(cost_micros)::float8, count(*)::int FROM l WHERE run_id IS NOT NULL GROUP BY 2 HAVING sum(cost_micros) > 0 ORDER BY 3 DESC, 2 LIMIT $5)`,
    [q.tenantId, q.agentId, q.from, q.to, q.limit, q.runId ?? null],
  );
  return rows;
}

// ---------------------------------------------------------------------------------------
// Alerts

export interface AlertRow {
  tenantId: string;
  id: string;
  budgetId: string;
  windowKey: string;
  threshold: number;
  agentId: string | null;
  agentName: string | null;
  windowStart: Date;
  windowEnd: Date | null;
  spent: number;
  limitValue: number;
  status: "pending" | "sent" | "unsent" | "failed";
  attempts: number;
  lastError: string | null;
  sentAt: Date | null;
  createdAt: Date;
}

const ALERT_COLUMNS = `x.tenant_id AS "tenantId", x.id, x.budget_id AS "budgetId", x.window_key AS "windowKey", x.threshold, x.agent_id AS "agentId",
  a.name AS "agentName", x.window_start AS "windowStart", x.window_end AS "windowEnd", x.spent::float8 AS spent, x.limit_value::float8 AS "limitValue",
  x.status, x.attempts, x.last_error AS "lastError", x.sent_at AS "sentAt", x.created_at AS "createdAt"`;
const ALERT_FROM = `budget_alerts x LEFT JOIN agents a ON a.tenant_id = x.tenant_id AND a.id = x.agent_id`;

/** Claims a threshold crossing; returns the new alert's id, or undefined if it was claimed before. */
export async function claimAlert(
  db: Db,
  a: { tenantId: string; id: string; budgetId: string; windowKey: string; threshold: number; agentId: string | null; windowStart: Date; windowEnd: Date | null; spent: number; limitValue: number },
): Promise<string | undefined> {
  const { rows } = await db.$client.query<{ id: string }>(
    `INSERT INTO budget_alerts (tenant_id, id, budget_id, window_key, threshold, agent_id, window_start, window_end, spent, limit_value)
     VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) ON CONFLICT DO NOTHING RETURNING id`,
    [a.tenantId, a.id, a.budgetId, a.windowKey, a.threshold, a.agentId, a.windowStart, a.windowEnd, a.spent, a.limitValue],
  );
  return rows[0]?.id;
}

export async function getAlert(db: Db, { tenantId, id }: { tenantId: string; id: string }): Promise<AlertRow | undefined> {
  const { rows } = await db.$client.query<AlertRow>(`SELECT ${ALERT_COLUMNS} FROM ${ALERT_FROM} WHERE x.tenant_id = $1 AND x.id = $2`, [tenantId, id]);
  return rows[0];
}

export async function listAlerts(
  db: Db,
  q: { tenantId: string; limit: number; before?: string | undefined; budgetId?: string | undefined; agentId?: string | undefined },
): Promise<AlertRow[]> {
  const values: unknown[] = [q.tenantId, q.limit];
  const where = ["x.tenant_id = $1"];
  if (q.before) where.push(`x.id < $${values.push(q.before)}`);
  if (q.budgetId) where.push(`x.budget_id = $${values.push(q.budgetId)}`);
  if (q.agentId) where.push(`x.agent_id = $${values.push(q.agentId)}`);
  const { rows } = await db.$client.query<AlertRow>(`SELECT ${ALERT_COLUMNS} FROM ${ALERT_FROM} WHERE ${where.join(" AND ")} ORDER BY x.id DESC LIMIT $2`, values);
  return rows;
}

/**
 * Takes the right to deliver an alert for `leaseSeconds`: only one delivery attempt is in
 * flight at a time, and a sent alert is never taken again.
 */
export async function beginAlertDelivery(db: Db, { tenantId, id, leaseSeconds }: { tenantId: string; id: string; leaseSeconds: number }): Promise<boolean> {
  const { rowCount } = await db.$client.query(
    `UPDATE budget_alerts SET attempts = attempts + 1, sending_until = now() + make_interval(secs => $3)
     WHERE tenant_id = $1 AND id = $2 AND status IN ('pending', 'failed') AND (sending_until IS NULL OR sending_until < now())`,
    [tenantId, id, leaseSeconds],
  );
  return rowCount === 1;
}

export async function finishAlertDelivery(
  db: Db,
  { tenantId, id, status, error }: { tenantId: string; id: string; status: "sent" | "unsent" | "failed"; error?: string | null },
): Promise<void> {
  await db.$client.query(
    `UPDATE budget_alerts SET status = $3, last_error = $4, sending_until = NULL, sent_at = CASE WHEN $3 = 'sent' THEN now() ELSE sent_at END
     WHERE tenant_id = $1 AND id = $2`,
    [tenantId, id, status, error ?? null],
  );
}

/** Where a tenant's alerts go: its owners' and admins' addresses. */
export async function adminEmails(db: Db, { tenantId }: { tenantId: string }): Promise<string[]> {
  const { rows } = await db.$client.query<{ email: string }>(
    `SELECT u.email FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.tenant_id = $1 AND m.role IN ('owner', 'admin') ORDER BY m.created_at`,
    [tenantId],
  );
  return rows.map((r) => r.email);
}

// ---------------------------------------------------------------------------------------
// Rollups and reports

/**
 * Recomputes the daily rollups of every (tenant, local day) that has ledger rows created
 * since `since`, from the ledger itself: a day is rebuilt whole, so re-running is harmless
 * and a late commit is picked up by the next pass (see the caller's overlap). System.
 */
export async function rebuildRollups(db: Db, { since }: { since: Date }): Promise<number> {
  // Recomputes every touched day's groups from the ledger and upserts them whole. (A
  // DELETE and an INSERT in one statement collided: both run on the same snapshot, so the
  // insert met the very keys the delete was removing.) The ledger is append-only, so a
  // group never disappears and an upsert leaves nothing stale.
  const { rowCount } = await db.$client.query(
    `WITH touched AS (
       SELECT DISTINCT l.tenant_id, (l.created_at AT TIME ZONE t.time_zone)::date AS day, t.time_zone
       FROM cost_ledger l JOIN tenants t ON t.id = l.tenant_id WHERE l.created_at >= $1)
     INSERT INTO cost_daily (tenant_id, day, agent_id, kind, provider, model, cost_micros, charges, unpriced_charges,
                             input_tokens, cache_read_tokens, cache_write_tokens, output_tokens, compute_ms)
     SELECT l.tenant_id, x.day, l.agent_id, l.kind, coalesce(l.provider, ''), coalesce(l.model, ''), coalesce(sum(l.cost_micros), 0),
            count(*), count(*) FILTER (WHERE l.unpriced), sum(l.input_tokens), sum(l.cache_read_tokens), sum(l.cache_write_tokens),
            sum(l.output_tokens), coalesce(sum(l.compute_ms), 0)
     FROM touched x JOIN cost_ledger l ON l.tenant_id = x.tenant_id
       AND l.created_at >= (x.day::timestamp AT TIME ZONE x.time_zone) AND l.created_at < ((x.day + 1)::timestamp AT TIME ZONE x.time_zone)
     GROUP BY l.tenant_id, x.day, l.agent_id, l.kind, coalesce(l.provider, ''), coalesce(l.model, '')
     ON CONFLICT (tenant_id, day, agent_id, kind, provider, model) DO UPDATE SET
       cost_micros = EXCLUDED.cost_micros, charges = EXCLUDED.charges, unpriced_charges = EXCLUDED.unpriced_charges,
       input_tokens = EXCLUDED.input_tokens, cache_read_tokens = EXCLUDED.cache_read_tokens,
       cache_write_tokens = EXCLUDED.cache_write_tokens, output_tokens = EXCLUDED.output_tokens, compute_ms = EXCLUDED.compute_ms`,
    [since],
  );
  return rowCount ?? 0;
}

export type CostGroup = "agent" | "model" | "day" | "kind";

export interface CostGroupRow {
  key: string;
  label: string;
  costMicros: number;
  tokensMicros: number;
  actionsMicros: number;
  computeMicros: number;
  charges: number;
  unpricedCharges: number;
  inputTokens: number;
  cacheReadTokens: number;
  cacheWriteTokens: number;
  outputTokens: number;
  computeMs: number;
}

const GROUP_KEY: Record<CostGroup, [string, string]> = {
  agent: ["d.agent_id", "coalesce(a.name, d.agent_id)"],
  model: ["CASE WHEN d.model = '' THEN d.kind ELSE d.provider || '/' || d.model END", "CASE WHEN d.model = '' THEN d.kind ELSE d.provider || '/' || d.model END"],
  day: ["d.day::text", "d.day::text"],
  kind: ["d.kind", "d.kind"],
};

/** Totals from the daily rollups over local days [from, to], grouped; each group split by kind. */
export async function costsByGroup(
  db: Db,
  q: { tenantId: string; from: string; to: string; groupBy: CostGroup; agentId?: string | undefined },
): Promise<CostGroupRow[]> {
  const [key, label] = GROUP_KEY[q.groupBy];
  const { rows } = await db.$client.query<CostGroupRow>(
    `SELECT ${key} AS key, min(${label}) AS label, sum(d.cost_micros)::float8 AS "costMicros",
            coalesce(sum(d.cost_micros) FILTER (WHERE d.kind = 'tokens'), 0)::float8 AS "tokensMicros",
            coalesce(sum(d.cost_micros) FILTER (WHERE d.kind = 'action'), 0)::float8 AS "actionsMicros",
            coalesce(sum(d.cost_micros) FILTER (WHERE d.kind = 'compute'), 0)::float8 AS "computeMicros",
            sum(d.charges)::float8 AS charges, sum(d.unpriced_charges)::float8 AS "unpricedCharges",
            sum(d.input_tokens)::float8 AS "inputTokens", sum(d.cache_read_tokens)::float8 AS "cacheReadTokens",
            sum(d.cache_write_tokens)::float8 AS "cacheWriteTokens", sum(d.output_tokens)::float8 AS "outputTokens",
            sum(d.compute_ms)::float8 AS "computeMs"
     FROM cost_daily d LEFT JOIN agents a ON a.tenant_id = d.tenant_id AND a.id = d.agent_id
     WHERE d.tenant_id = $1 AND d.day BETWEEN $2::date AND $3::date AND ($4::text IS NULL OR d.agent_id = $4)
     GROUP BY 1 ORDER BY ${q.groupBy === "day" ? "1" : `"costMicros" DESC, 1`}`,
    [q.tenantId, q.from, q.to, q.agentId ?? null],
  );
  return rows;
}

export async function getRollupWatermark(db: Db): Promise<Date | null> {
  const { rows } = await db.$client.query<{ at: Date }>(`SELECT rolled_up_to AS at FROM cost_rollup_state WHERE id = 1`);
  return rows[0]?.at ?? null;
}

export async function setRollupWatermark(db: Db, at: Date): Promise<void> {
  await db.$client.query(
    `INSERT INTO cost_rollup_state (id, rolled_up_to) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET rolled_up_to = $1, updated_at = now()`,
    [at],
  );
}

/**
 * The SELECT behind a CSV export, for `COPY (…) TO STDOUT`: every usage column, text cells
 * that a spreadsheet would read as a formula (starting with =, +, -, @, tab or CR)
 * prefixed with a quote. Bounds are bound by the caller with literal-safe values only:
 * COPY takes no parameters, so the tenant id and dates are validated and inlined.
 */
export function exportQuery(q: { tenantId: string; fromIso: string; toIso: string; fromDay: string; toDay: string; rows: "ledger" | "rollups" }): string {
  for (const v of [q.tenantId, q.fromIso, q.toIso, q.fromDay, q.toDay]) {
    if (!/^[0-9A-Za-z_:.+-]+$/.test(v)) throw new Error(`exportQuery: unsafe literal ${JSON.stringify(v)}`);
  }
  const safe = (col: string) => `CASE WHEN ${col} ~ '^[=+@\\t\\r-]' THEN '''' || ${col} ELSE ${col} END`;
  if (q.rows === "rollups") {
    return `SELECT d.day, d.agent_id, ${safe("a.name")} AS agent, d.kind, ${safe("d.provider")} AS provider, ${safe("d.model")} AS model,
              d.charges, d.unpriced_charges, d.input_tokens, d.cache_read_tokens, d.cache_write_tokens, d.output_tokens, d.compute_ms,
              d.cost_micros, to_char(d.cost_micros / 1000000.0, 'FM999999999990.000000') AS cost_usd
            FROM cost_daily d LEFT JOIN agents a ON a.tenant_id = d.tenant_id AND a.id = d.agent_id
            WHERE d.tenant_id = '${q.tenantId}' AND d.day BETWEEN '${q.fromDay}' AND '${q.toDay}'
            ORDER BY d.day, d.agent_id, d.kind, d.provider, d.model`;
  }
  return `SELECT l.id, to_char(l.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS created_at, l.kind, l.agent_id, ${safe("a.name")} AS agent,
            l.run_id, l.step_seq, l.task_id, ${safe("l.provider")} AS provider, ${safe("l.model")} AS model, l.price_id,
            l.input_tokens, l.cache_read_tokens, l.cache_write_tokens, l.output_tokens,
            l.input_tokens + l.cache_read_tokens + l.cache_write_tokens + l.output_tokens AS total_tokens,
            l.compute_ms, l.rate_micros_per_hour, ${safe("l.description")} AS description, l.cost_micros,
            to_char(l.cost_micros / 1000000.0, 'FM999999999990.000000') AS cost_usd, l.unpriced, l.estimated, l.idempotency_key
          FROM cost_ledger l LEFT JOIN agents a ON a.tenant_id = l.tenant_id AND a.id = l.agent_id
          WHERE l.tenant_id = '${q.tenantId}' AND l.created_at >= '${q.fromIso}' AND l.created_at < '${q.toIso}'
          ORDER BY l.created_at, l.id`;
}

/** Pauses the active agents a budget covers (one agent, or the whole tenant); returns them. */
export async function pauseAgents(db: Db, { tenantId, agentId }: { tenantId: string; agentId: string | null }): Promise<{ id: string; revision: number }[]> {
  const { rows } = await db.$client.query<{ id: string; revision: number }>(
    `UPDATE agents SET status = 'paused', updated_at = now()
     WHERE tenant_id = $1 AND status = 'active' AND ($2::text IS NULL OR id = $2) RETURNING id, revision`,
    [tenantId, agentId],
  );
  return rows;
}

/**
 * Streams a query's rows as CSV with a header (`COPY (…) TO STDOUT`), RFC 4180 quoting
 * done by Postgres. Runs on the transaction's connection: RLS applies as to any query.
 */
export function copyCsv(db: Db, query: string): Readable {
  return db.$client.query(copyTo(`COPY (${query}) TO STDOUT WITH (FORMAT csv, HEADER true)`));
}
