import { type FormEvent, useState } from "react";
import { api, type Budget, type BudgetAlert } from "../api";
import { Badge, BudgetGauge, budgetAmount, ConfirmButton, Empty, ErrorBanner, Loading, PageHeader, TimeAgo, useTitle, WINDOW_LABEL } from "../components";
import { formatTime, useTimeZone } from "../format";
import { useAction, useLoad } from "../hooks";
import { Link } from "../router";
import { useSession } from "../session";

const POLL_MS = 10_000;
const EXHAUSTED_LABEL: Record<Budget["onExhausted"], string> = { pause_agent: "pause the agents", refuse: "refuse new spend" };

export function BudgetsPage() {
  useTitle("Budgets & alerts");
  const { can } = useSession();
  const budgets = useLoad("budgets", () => api.budgets(), { pollMs: POLL_MS });
  const alerts = useLoad("alerts", () => api.alerts(), { pollMs: POLL_MS });
  const [editing, setEditing] = useState<string>();
  const [creating, setCreating] = useState(false);
  const action = useAction();
  const admin = can("admin");
  const byId = new Map((budgets.data ?? []).map((b) => [b.id, b]));

  return (
    <>
      <PageHeader
        title="Budgets & alerts"
        subtitle="Limits on spend per run, hour, day or month, for the tenant or one agent; alerts when a threshold is crossed."
        actions={
          admin && !creating ? (
            <button type="button" className="primary" onClick={() => setCreating(true)}>
              New budget
            </button>
          ) : null
        }
      />
      {creating ? (
        <section className="panel" aria-labelledby="new-budget-title">
          <h2 id="new-budget-title">New budget</h2>
          <BudgetForm
            onDone={async (saved) => {
              setCreating(false);
              if (saved) await budgets.reload();
            }}
          />
        </section>
      ) : null}

      <section className="panel" aria-labelledby="budgets-title">
        <h2 id="budgets-title">Budgets</h2>
        <ErrorBanner error={budgets.error} />
        <ErrorBanner error={action.error} onDismiss={action.clear} />
        {!budgets.data ? (
          budgets.error ? null : <Loading />
        ) : budgets.data.length === 0 ? (
          <Empty title="No budgets yet.">{admin ? "Add one above, or declare spec.budgets in an agent's descriptor." : "Agents' descriptors can declare budgets too."}</Empty>
        ) : (
          <div className="table-wrap">
            <table>
              <thead>
                <tr>
                  <th scope="col">Scope</th>
                  <th scope="col">Window</th>
                  <th scope="col">Limit</th>
                  <th scope="col">Spent (and reserved)</th>
                  <th scope="col">Enforcement</th>
                  <th scope="col">Alerts at</th>
                  <th scope="col">At 100 %</th>
                  <th scope="col">Source</th>
                  {admin ? (
                    <th scope="col">
                      <span className="sr-only">Actions</span>
                    </th>
                  ) : null}
                </tr>
              </thead>
              <tbody>
                {budgets.data.map((b) =>
                  editing === b.id ? (
                    <tr key={b.id}>
                      <td colSpan={admin ? 9 : 8}>
                        <BudgetForm
                          budget={b}
                          onDone={async (saved) => {
                            setEditing(undefined);
                            if (saved) await budgets.reload();
                          }}
                        />
                      </td>
                    </tr>
                  ) : (
                    <tr key={b.id}>
                      <td>{b.scope === "tenant" ? "whole tenant" : b.agent ? <Link href={`/agents/${b.agent}`}>{b.agent}</Link> : "agent"}</td>
                      <td>{WINDOW_LABEL[b.window]}</td>
                      <td className="num">{budgetAmount(b, b.limit)}</td>
                      <td className="gauge-cell">
                        <BudgetGauge budget={b} />
                      </td>
                      <td>
                        <Badge value={b.enforcement} kind={b.enforcement === "hard" ? "failed" : "warn"} />
                      </td>
                      <td>{b.thresholds.map((t) => `${t} %`).join(", ")}</td>
                      <td>{EXHAUSTED_LABEL[b.onExhausted]}</td>
                      <td>
                        <span title={b.source === "descriptor" ? "Follows the agent's descriptor: change it there" : undefined}>{b.source}</span>
                      </td>
                      {admin ? (
                        <td>
                          <span className="row-actions">
                            <button type="button" onClick={() => setEditing(b.id)} disabled={action.busy}>
                              Edit
                            </button>
                            <ConfirmButton
                              label="Delete"
                              question="Delete this budget?"
                              confirmLabel="Yes, delete"
                              busy={action.busy}
                              onConfirm={async () => {
                                if (await action.run(() => api.deleteBudget(b.id))) await budgets.reload();
                              }}
                            />
                          </span>
                        </td>
                      ) : null}
                    </tr>
                  ),
                )}
              </tbody>
            </table>
          </div>
        )}
      </section>

      <section className="panel" aria-labelledby="alerts-title">
        <h2 id="alerts-title">Alerts</h2>
        <ErrorBanner error={alerts.error} />
        {!alerts.data ? alerts.error ? null : <Loading /> : alerts.data.items.length === 0 ? <Empty title="No alerts yet.">A budget alerts once per window at each of its thresholds.</Empty> : <AlertTable alerts={alerts.data.items} byId={byId} />}
      </section>
    </>
  );
}

function AlertTable({ alerts, byId }: { alerts: BudgetAlert[]; byId: Map<string, Budget> }) {
  const tz = useTimeZone();
  const amount = (a: BudgetAlert, n: number) => {
    const b = byId.get(a.budgetId);
    return b ? budgetAmount(b, n) : String(n);
  };
  return (
    <div className="table-wrap">
      <table>
        <thead>
          <tr>
            <th scope="col">When</th>
            <th scope="col">Budget</th>
            <th scope="col">Threshold</th>
            <th scope="col">Spent of limit</th>
            <th scope="col">Window from</th>
            <th scope="col">Email</th>
          </tr>
        </thead>
        <tbody>
          {alerts.map((a) => {
            const b = byId.get(a.budgetId);
            return (
              <tr key={a.id}>
                <td>
                  <TimeAgo iso={a.createdAt} />
                </td>
                <td>
                  {a.agent ?? "whole tenant"}
                  {b ? <span className="muted"> · {WINDOW_LABEL[b.window]}</span> : null}
                </td>
                <td className="num">{a.threshold} %</td>
                <td className="num">
                  {amount(a, a.spent)} of {amount(a, a.limit)}
                </td>
                <td>{formatTime(a.windowStart, tz)}</td>
                <td>
                  <Badge value={a.status} kind={a.status === "sent" ? "ok" : a.status === "failed" ? "failed" : "warn"} />
                  {a.lastError ? <div className="muted small">{a.lastError}</div> : null}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

const parseThresholds = (s: string) =>
  s
    .split(/[\s,%]+/)
    .filter(Boolean)
    .map(Number);

/** Creates a budget, or edits one's limit, enforcement, thresholds and action at 100 %. */
function BudgetForm({ budget, onDone }: { budget?: Budget; onDone(saved: boolean): Promise<void> }) {
  const { agentsById } = useSession();
  const agents = [...agentsById.values()].filter((a) => a.status !== "retired").sort((a, b) => a.name.localeCompare(b.name));
  const [scope, setScope] = useState<Budget["scope"]>(budget?.scope ?? "tenant");
  const [agent, setAgent] = useState(budget?.agent ?? "");
  const [metric, setMetric] = useState<Budget["metric"]>(budget?.metric ?? "usd");
  const [win, setWin] = useState<Budget["window"]>(budget?.window ?? "month");
  const initialLimit = budget ? String(budget.unit === "usd_micros" ? budget.limit / 1_000_000 : budget.limit) : "";
  const [limit, setLimit] = useState(initialLimit);
  const [enforcement, setEnforcement] = useState<Budget["enforcement"]>(budget?.enforcement ?? "hard");
  const [thresholds, setThresholds] = useState((budget?.thresholds ?? [50, 80, 100]).join(", "));
  const [onExhausted, setOnExhausted] = useState<Budget["onExhausted"]>(budget?.onExhausted ?? "refuse");
  const action = useAction();
  const id = budget?.id ?? "new";

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const amount = metric === "usd" ? { limitUsd: Number(limit) } : { limitCalls: Number(limit) };
    // An edit sends the limit only when it changed (a descriptor budget's limit is its descriptor's).
    const changed = !budget || limit !== initialLimit;
    const common = { ...(changed ? amount : {}), enforcement, thresholds: parseThresholds(thresholds), onExhausted };
    const saved = await action.run(() =>
      budget ? api.updateBudget(budget.id, common) : api.createBudget({ scope, ...(scope === "agent" ? { agent } : {}), metric, window: win, ...common }),
    );
    if (saved) await onDone(true);
  };

  return (
    <form onSubmit={submit} className="grid-form" aria-label={budget ? "Edit budget" : "New budget"}>
      {budget ? (
        <p className="span-2">
          <strong>{budget.scope === "tenant" ? "Whole tenant" : budget.agent}</strong>, {WINDOW_LABEL[budget.window]}
          {budget.source === "descriptor" ? <span className="muted"> · from the agent's descriptor: its limit is changed there</span> : null}
        </p>
      ) : (
        <>
          <fieldset className="field">
            <legend>Scope</legend>
            <label className="check">
              <input type="radio" name={`scope-${id}`} checked={scope === "tenant"} onChange={() => setScope("tenant")} /> Whole tenant
            </label>
            <label className="check">
              <input type="radio" name={`scope-${id}`} checked={scope === "agent"} onChange={() => setScope("agent")} /> One agent
            </label>
          </fieldset>
          <label className="field">
            <span>Agent</span>
            <select value={agent} disabled={scope !== "agent"} required={scope === "agent"} onChange={(e) => setAgent(e.target.value)}>
              <option value="">Choose an agent</option>
              {agents.map((a) => (
                <option key={a.id} value={a.name}>
                  {a.name}
                </option>
              ))}
            </select>
          </label>
          <label className="field">
            <span>Window</span>
            <select value={win} onChange={(e) => setWin(e.target.value as Budget["window"])}>
              <option value="invocation">Per run</option>
              <option value="hour">Per hour</option>
              <option value="day">Per day</option>
              <option value="month">Per month</option>
            </select>
          </label>
          <label className="field">
            <span>Measure</span>
            <select value={metric} onChange={(e) => setMetric(e.target.value as Budget["metric"])}>
              <option value="usd">Dollars</option>
              <option value="calls">Model calls</option>
            </select>
          </label>
        </>
      )}
      <label className="field">
        <span>{metric === "usd" ? "Limit (US$)" : "Limit (model calls)"}</span>
        <input required type="number" min={0} step={metric === "usd" ? "0.000001" : "1"} value={limit} onChange={(e) => setLimit(e.target.value)} />
      </label>
      <label className="field">
        <span>Alert thresholds (% of the limit)</span>
        <input required value={thresholds} onChange={(e) => setThresholds(e.target.value)} placeholder="50, 80, 100" />
      </label>
      <label className="field">
        <span>Enforcement</span>
        <select value={enforcement} onChange={(e) => setEnforcement(e.target.value as Budget["enforcement"])}>
          <option value="hard">Hard: refuse a call that could pass the limit</option>
          <option value="soft">Soft: only alert</option>
        </select>
      </label>
      <label className="field">
        <span>At 100 %</span>
        <select value={onExhausted} onChange={(e) => setOnExhausted(e.target.value as Budget["onExhausted"])}>
          <option value="refuse">Refuse new spend</option>
          <option value="pause_agent">Pause the agents in scope</option>
        </select>
      </label>
      <div className="span-2">
        <ErrorBanner error={action.error} onDismiss={action.clear} />
        <div className="form-actions">
          <button type="submit" className="primary" disabled={action.busy}>
            {action.busy ? "Saving…" : budget ? "Save budget" : "Create budget"}
          </button>
          <button type="button" onClick={() => void onDone(false)} disabled={action.busy}>
            Cancel
          </button>
        </div>
      </div>
    </form>
  );
}
