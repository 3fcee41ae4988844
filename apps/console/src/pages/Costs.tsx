import type { ReactNode } from "react";
import { api, type Costs, costExportUrl } from "../api";
import { Empty, ErrorBanner, Loading, PageHeader, useTitle } from "../components";
import { addDays, formatTime, monthEnd, monthStart, number, today, usd, usdExact, useTimeZone } from "../format";
import { useLoad } from "../hooks";
import { Link, setQuery, useLocation } from "../router";

type Group = Costs["groups"][number];
const PARTS = [
  { key: "tokensMicros", label: "tokens" },
  { key: "actionsMicros", label: "actions" },
  { key: "computeMicros", label: "compute" },
] as const;
const DAY = /^\d{4}-\d{2}-\d{2}$/;

/** The period's presets, in tenant-local days. */
function presets(now: string): Array<{ label: string; from: string; to: string }> {
  const lastMonth = addDays(monthStart(now), -1);
  return [
    { label: "This month", from: monthStart(now), to: now },
    { label: "Last month", from: monthStart(lastMonth), to: lastMonth },
    { label: "Last 7 days", from: addDays(now, -6), to: now },
    { label: "Last 30 days", from: addDays(now, -29), to: now },
  ];
}

export function CostsPage() {
  useTitle("Costs");
  const tz = useTimeZone();
  const { query } = useLocation();
  const now = today(tz);
  const qFrom = query.get("from") ?? "";
  const qTo = query.get("to") ?? "";
  const from = DAY.test(qFrom) ? qFrom : monthStart(now);
  const to = DAY.test(qTo) && qTo >= from ? qTo : from <= now ? now : monthEnd(from);
  const costs = useLoad(`costs:${from}:${to}`, async () => {
    const [byDay, byAgent, byModel] = await Promise.all(
      (["day", "agent", "model"] as const).map((groupBy) => api.costs({ from, to, groupBy })),
    );
    return { byDay: byDay!, byAgent: byAgent!, byModel: byModel! };
  });

  const preset = presets(now).find((p) => p.from === from && p.to === to);
  return (
    <>
      <PageHeader
        title="Costs"
        subtitle={`Spend over days in ${tz}: model tokens, paid actions and worker compute.`}
        actions={
          <>
            <a className="button primary" href={costExportUrl(from, to)} download>
              Export CSV
            </a>
            <a className="button" href={costExportUrl(from, to, "rollups")} download>
              Daily totals CSV
            </a>
          </>
        }
      />
      <section className="filters" aria-label="Period">
        <div className="segmented">
          {presets(now).map((p) => (
            <button key={p.label} type="button" aria-pressed={preset?.label === p.label} onClick={() => setQuery({ from: p.from, to: p.to })}>
              {p.label}
            </button>
          ))}
        </div>
        <label className="field inline">
          <span>From</span>
          <input type="date" value={from} max={to} onChange={(e) => e.target.value && setQuery({ from: e.target.value })} />
        </label>
        <label className="field inline">
          <span>To</span>
          <input type="date" value={to} min={from} onChange={(e) => e.target.value && setQuery({ to: e.target.value })} />
        </label>
      </section>
      <ErrorBanner error={costs.error} />
      {!costs.data ? costs.error ? null : <Loading /> : <CostReport {...costs.data} from={from} to={to} />}
    </>
  );
}

function CostReport({ byDay, byAgent, byModel, from, to }: { byDay: Costs; byAgent: Costs; byModel: Costs; from: string; to: string }) {
  const tz = useTimeZone();
  const sum = (k: (typeof PARTS)[number]["key"]) => byAgent.groups.reduce((n, g) => n + g[k], 0);
  const unpriced = byAgent.groups.reduce((n, g) => n + g.unpricedCharges, 0);
  const charges = byAgent.groups.reduce((n, g) => n + g.charges, 0);
  const days: Group[] = [];
  const byKey = new Map(byDay.groups.map((g) => [g.key, g]));
  for (let d = from; d <= to && days.length < 400; d = addDays(d, 1)) days.push(byKey.get(d) ?? emptyGroup(d));

  return (
    <>
      <section className="stats" aria-label="Totals">
        <div className="stat">
          <span className="stat-label">Total spend</span>
          <span className="stat-value" title={usdExact(byAgent.totalMicros)} data-testid="cost-total">
            {usd(byAgent.totalMicros)}
          </span>
          <span className="stat-detail">
            {number(charges)} charges, {from} to {to}
          </span>
        </div>
        {PARTS.map((p) => (
          <div key={p.key} className="stat">
            <span className="stat-label">{p.label[0]!.toUpperCase() + p.label.slice(1)}</span>
            <span className="stat-value" title={usdExact(sum(p.key))}>
              {usd(sum(p.key))}
            </span>
            <span className="stat-detail">{p.key === "tokensMicros" ? "model calls" : p.key === "actionsMicros" ? "paid tool calls" : "worker time"}</span>
          </div>
        ))}
      </section>
      <p className="muted small">
        {byAgent.asOf ? `Totals include the ledger up to ${formatTime(byAgent.asOf, tz)} (rolled up every minute or so). ` : "Totals are rolled up from the ledger every minute or so. "}
        {unpriced > 0 ? <strong>{number(unpriced)} calls to unpriced models have an unknown cost, not counted here.</strong> : null}
      </p>

      <section className="panel" aria-labelledby="by-day-title">
        <h2 id="by-day-title">By day</h2>
        {byDay.totalMicros === 0 ? <Empty title="No spend in this period." /> : <DayChart days={days} />}
      </section>
      <div className="columns">
        <section className="panel" aria-labelledby="by-agent-title">
          <h2 id="by-agent-title">By agent</h2>
          {byAgent.groups.length === 0 ? (
            <Empty title="No agent spent anything in this period." />
          ) : (
            <>
              <ul className="legend" aria-label="Split">
                {PARTS.map((p) => (
                  <li key={p.key}>
                    <span className={`swatch swatch-${p.label}`} aria-hidden="true" /> {p.label}
                  </li>
                ))}
              </ul>
              <Bars groups={byAgent.groups} split label={(g) => <Link href={`/agents/${g.label}`}>{g.label}</Link>} />
            </>
          )}
        </section>
        <section className="panel" aria-labelledby="by-model-title">
          <h2 id="by-model-title">By model</h2>
          {byModel.groups.length === 0 ? <Empty title="No model calls in this period." /> : <Bars groups={byModel.groups} label={(g) => <code>{g.label}</code>} />}
        </section>
      </div>
    </>
  );
}

function emptyGroup(day: string): Group {
  return {
    key: day,
    label: day,
    costMicros: 0,
    tokensMicros: 0,
    actionsMicros: 0,
    computeMicros: 0,
    charges: 0,
    unpricedCharges: 0,
    inputTokens: 0,
    cacheReadTokens: 0,
    cacheWriteTokens: 0,
    outputTokens: 0,
    computeMs: 0,
  };
}

/** One column per day, scaled to the period's busiest day; the amount on hover and for screen readers. */
function DayChart({ days }: { days: Group[] }) {
  const max = Math.max(...days.map((d) => d.costMicros), 1);
  return (
    <figure className="day-chart" aria-label="Spend by day">
      <ol className="day-bars">
        {days.map((d) => (
          <li key={d.key} title={`${d.key}: ${usd(d.costMicros)}`}>
            <span className="day-bar" style={{ height: `${d.costMicros > 0 ? Math.max(2, (d.costMicros / max) * 100) : 0}%` }} />
            <span className="sr-only">
              {d.key}: {usd(d.costMicros)}
            </span>
          </li>
        ))}
      </ol>
      <figcaption className="day-axis muted small">
        <span>{days[0]?.key}</span>
        <span>busiest day {usd(max)}</span>
        <span>{days[days.length - 1]?.key}</span>
      </figcaption>
    </figure>
  );
}

/** Horizontal bars, biggest first, scaled to the biggest; `split` stacks tokens, actions and compute. */
function Bars({ groups, label, split = false }: { groups: Group[]; label: (g: Group) => ReactNode; split?: boolean }) {
  const sorted = [...groups].sort((a, b) => b.costMicros - a.costMicros);
  const max = Math.max(...sorted.map((g) => g.costMicros), 1);
  return (
    <ul className="bars">
      {sorted.map((g) => (
        <li key={g.key} className="bar-row">
          <span className="bar-label">{label(g)}</span>
          <span className="bar-track" aria-hidden="true">
            {split ? (
              PARTS.map((p) => <span key={p.key} className={`bar bar-${p.label}`} style={{ width: `${(g[p.key] / max) * 100}%` }} />)
            ) : (
              <span className="bar bar-tokens" style={{ width: `${(g.costMicros / max) * 100}%` }} />
            )}
          </span>
          <span className="bar-amount num" title={usdExact(g.costMicros)}>
            {usd(g.costMicros)}
          </span>
          {split ? (
            <span className="bar-split muted small">
              {PARTS.map((p) => `${p.label} ${usd(g[p.key])}`).join(" · ")}
              {g.unpricedCharges > 0 ? ` · ${number(g.unpricedCharges)} unpriced` : ""}
            </span>
          ) : (
            <span className="bar-split muted small">
              {number(g.charges)} charges
              {g.inputTokens + g.outputTokens > 0 ? ` · ${number(g.inputTokens + g.cacheReadTokens + g.cacheWriteTokens)} in / ${number(g.outputTokens)} out tokens` : ""}
            </span>
          )}
        </li>
      ))}
    </ul>
  );
}
