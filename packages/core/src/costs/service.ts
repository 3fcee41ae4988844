import { PassThrough, type Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { type Database, repo, type Tx, withSystem, withTenant } from "@bosun/db";
import { type Actor, requireScope } from "../actor";
import { audit } from "../audit";
import { conflict, forbidden, notFound } from "../errors";
import { newId } from "../ids";
import { decodeCursor, isString, page } from "../pagination";
import { alertView } from "./alerts";
import { priceView } from "./prices";

const c = repo.costs;

interface Ctx {
  requestId?: string | undefined;
}

const isPriceCursor = (v: unknown): v is [string, string, string, string] => Array.isArray(v) && v.length === 4 && v.every((x) => typeof x === "string");

/** Prices, cost settings, alerts, cost reports and exports: the read side of cost governance. */
export const costService = (deps: { database: Database }) => {
  const { database } = deps;

  function assertCanRead(actor: Actor) {
    requireScope(actor, "read");
    if (actor.agentId) throw forbidden("an agent's key cannot read the tenant's costs");
  }

  function assertCanManage(actor: Actor) {
    requireScope(actor, "admin");
    if (actor.agentId) throw forbidden("an agent cannot change prices or cost settings");
  }

  async function agentIdOf(tx: Tx, actor: Actor, name: string | undefined) {
    if (!name) return undefined;
    const a = await repo.getAgentByName(tx, { tenantId: actor.tenantId, name });
    if (!a) throw notFound(`agent '${name}'`);
    return a.id;
  }

  async function settingsView(tx: Tx, tenantId: string) {
    const s = await c.getCostSettings(tx, { tenantId });
    return { allowUnpricedModels: s.allowUnpricedModels, computeMicrosPerHour: s.computeMicrosPerHour, alertEmails: s.alertEmails, timeZone: s.timeZone };
  }

  return {
    /** The catalogue and the tenant's own prices, every version. */
    async listPrices(actor: Actor, q: { limit: number; cursor?: string | undefined; provider?: string | undefined }) {
      requireScope(actor, "read");
      const after = decodeCursor(q.cursor, isPriceCursor);
      const rows = await withTenant(database, actor.tenantId, (tx) => c.listPrices(tx, { tenantId: actor.tenantId, limit: q.limit + 1, after, provider: q.provider }));
      const p = page(rows, q.limit, (r) => [r.provider, r.model, r.effectiveFrom.toISOString(), r.id]);
      return { items: p.items.map(priceView), nextCursor: p.nextCursor };
    },

    /** A tenant price (a negotiated rate, a self-hosted model): it wins over the catalogue from its effective date. */
    async createPrice(
      actor: Actor,
      body: {
        provider: string;
        model: string;
        inputMicrosPerMtok: number;
        outputMicrosPerMtok: number;
        cacheReadMicrosPerMtok?: number | undefined;
        cacheWriteMicrosPerMtok?: number | undefined;
        effectiveFrom?: string | undefined;
        note?: string | undefined;
      },
      ctx: Ctx = {},
    ) {
      assertCanManage(actor);
      return withTenant(database, actor.tenantId, async (tx) => {
        const row = await c.insertPriceOverride(tx, {
          tenantId: actor.tenantId,
          id: newId("prc"),
          provider: body.provider,
          model: body.model,
          inputMicrosPerMtok: body.inputMicrosPerMtok,
          outputMicrosPerMtok: body.outputMicrosPerMtok,
          cacheReadMicrosPerMtok: body.cacheReadMicrosPerMtok ?? body.inputMicrosPerMtok,
          cacheWriteMicrosPerMtok: body.cacheWriteMicrosPerMtok ?? body.inputMicrosPerMtok,
          effectiveFrom: body.effectiveFrom ? new Date(body.effectiveFrom) : new Date(),
          note: body.note ?? null,
          createdByType: actor.type,
          createdById: actor.id,
        });
        if (!row) throw conflict(`the tenant already has a price for ${body.provider} model '${body.model}' from that date`);
        const view = priceView(row);
        await audit(tx, actor, { action: "price.create", targetType: "price", targetId: row.id, after: view }, ctx.requestId);
        return view;
      });
    },

    async getSettings(actor: Actor) {
      assertCanRead(actor);
      return withTenant(database, actor.tenantId, (tx) => settingsView(tx, actor.tenantId));
    },

    async updateSettings(
      actor: Actor,
      body: { allowUnpricedModels?: boolean | undefined; computeMicrosPerHour?: number | undefined; alertEmails?: string[] | undefined },
      ctx: Ctx = {},
    ) {
      assertCanManage(actor);
      return withTenant(database, actor.tenantId, async (tx) => {
        const before = await settingsView(tx, actor.tenantId);
        await c.upsertCostSettings(tx, { tenantId: actor.tenantId, ...body });
        const after = await settingsView(tx, actor.tenantId);
        await audit(tx, actor, { action: "costs.settings", targetType: "tenant", targetId: actor.tenantId, before, after }, ctx.requestId);
        return after;
      });
    },

    async listAlerts(actor: Actor, q: { limit: number; cursor?: string | undefined; budget?: string | undefined; agent?: string | undefined }) {
      assertCanRead(actor);
      const before = decodeCursor(q.cursor, isString);
      return withTenant(database, actor.tenantId, async (tx) => {
        const agentId = await agentIdOf(tx, actor, q.agent);
        const rows = await c.listAlerts(tx, { tenantId: actor.tenantId, limit: q.limit + 1, before, budgetId: q.budget, agentId });
        const p = page(rows, q.limit, (a) => a.id);
        return { items: p.items.map(alertView), nextCursor: p.nextCursor };
      });
    },

    /** Totals over tenant-local days [from, to] from the daily rollups, grouped, split by kind. */
    async costs(actor: Actor, q: { from: string; to: string; groupBy: repo.costs.CostGroup; agent?: string | undefined }) {
      assertCanRead(actor);
      return withTenant(database, actor.tenantId, async (tx) => {
        const agentId = await agentIdOf(tx, actor, q.agent);
        const { timeZone } = await c.getCostSettings(tx, { tenantId: actor.tenantId });
        const groups = await c.costsByGroup(tx, { tenantId: actor.tenantId, from: q.from, to: q.to, groupBy: q.groupBy, agentId });
        const asOf = await c.getRollupWatermark(tx);
        return {
          from: q.from,
          to: q.to,
          groupBy: q.groupBy,
          timeZone,
          asOf: asOf && asOf.getTime() > 0 ? asOf.toISOString() : null,
          totalMicros: groups.reduce((n, g) => n + g.costMicros, 0),
          groups,
        };
      });
    },

    /**
     * The ledger (or its daily rollups) over tenant-local days [from, to] as CSV, streamed
     * straight from `COPY … TO STDOUT` in a tenant transaction: memory stays flat however
     * many rows there are, and a slow reader slows the copy rather than buffering it.
     */
    exportCsv(actor: Actor, q: { from: string; to: string; rows: "ledger" | "rollups" }): Readable {
      assertCanRead(actor);
      const out = new PassThrough();
      withTenant(database, actor.tenantId, async (tx) => {
        const { timeZone } = await c.getCostSettings(tx, { tenantId: actor.tenantId });
        const { rows } = await tx.$client.query<{ f: Date; t: Date }>(
          `SELECT ($1::date::timestamp AT TIME ZONE $3) AS f, (($2::date + 1)::timestamp AT TIME ZONE $3) AS t`,
          [q.from, q.to, timeZone],
        );
        const sql = c.exportQuery({
          tenantId: actor.tenantId,
          fromIso: rows[0]!.f.toISOString(),
          toIso: rows[0]!.t.toISOString(),
          fromDay: q.from,
          toDay: q.to,
          rows: q.rows,
        });
        await pipeline(c.copyCsv(tx, sql), crlfRecords(), out);
      }).catch((err) => out.destroy(err));
      return out;
    },
  };
};

export type CostService = ReturnType<typeof costService>;

const CRLF = Buffer.from("\r\n");

/**
 * Postgres ends CSV records with LF; RFC 4180 wants CRLF. Rewrites the record separators
 * only: a newline inside a quoted field is data and stays. Quote state carries across
 * chunks; a doubled quote ("") toggles twice, so it needs no special case.
 */
function crlfRecords(): Transform {
  let quoted = false;
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      const parts: Buffer[] = [];
      let start = 0;
      let pos = 0;
      let nextQuote = chunk.indexOf(0x22, 0);
      for (;;) {
        if (quoted) {
          if (nextQuote === -1) break;
          quoted = false;
          pos = nextQuote + 1;
          nextQuote = chunk.indexOf(0x22, pos);
          continue;
        }
        const nl = chunk.indexOf(0x0a, pos);
        if (nl !== -1 && (nextQuote === -1 || nl < nextQuote)) {
          parts.push(chunk.subarray(start, nl), CRLF);
          start = pos = nl + 1;
          continue;
        }
        if (nextQuote === -1) break;
        quoted = true;
        pos = nextQuote + 1;
        nextQuote = chunk.indexOf(0x22, pos);
      }
      parts.push(chunk.subarray(start));
      done(null, Buffer.concat(parts));
    },
  });
}

const ROLLUP_LOCK = 4_242_003;

/**
 * The `costs.rollup` job: rebuilds the daily rollups of every day the ledger touched since
 * the last pass. One writer at a time (an advisory lock; a second caller returns at once).
 * A ledger row carries its transaction's start time, so a pass re-reads ten minutes before
 * its watermark to catch rows that committed late.
 */
export async function rollupCosts(database: Database): Promise<{ skipped: boolean; rows: number }> {
  return withSystem(database, async (tx) => {
    const lock = await tx.$client.query<{ ok: boolean }>("SELECT pg_try_advisory_xact_lock($1) AS ok", [ROLLUP_LOCK]);
    if (!lock.rows[0]!.ok) return { skipped: true, rows: 0 };
    const now = (await tx.$client.query<{ now: Date }>("SELECT now() AS now")).rows[0]!.now;
    const watermark = (await c.getRollupWatermark(tx)) ?? new Date(0);
    const rows = await c.rebuildRollups(tx, { since: new Date(watermark.getTime() - 10 * 60_000) });
    await c.setRollupWatermark(tx, now);
    return { skipped: false, rows };
  });
}
