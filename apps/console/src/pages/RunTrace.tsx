import { type CSSProperties, useEffect, useState } from "react";
import { api, type Run, type Step } from "../api";
import { Badge, CodeBlock, ConfirmButton, ErrorBanner, LiveBadge, Loading, PageHeader, useTitle } from "../components";
import { duration, formatTime, number, plural, useTimeZone } from "../format";
import { useAction, useLoad, useNow } from "../hooks";
import { Link } from "../router";
import { useAgentName, useSession } from "../session";
import { runDuration } from "./Runs";

const POLL_MS = 3000;
const LIVE = new Set(["running", "waiting"]);

interface Trace {
  root: Run;
  /** The tree in depth-first order, with each run's depth. */
  runs: Array<{ run: Run; depth: number; steps: Step[] }>;
}

async function loadTrace(id: string): Promise<Trace> {
  const detail = await api.run(id);
  const steps = await Promise.all(detail.tree.map((r) => api.steps(r.id)));
  const stepsOf = new Map(detail.tree.map((r, i) => [r.id, steps[i]!]));
  const children = new Map<string | null, Run[]>();
  for (const r of detail.tree) {
    const parent = r.id === r.rootRunId ? null : r.parentRunId;
    children.set(parent, [...(children.get(parent) ?? []), r]);
  }
  const runs: Trace["runs"] = [];
  const seen = new Set<string>();
  const visit = (r: Run, depth: number) => {
    if (seen.has(r.id)) return;
    seen.add(r.id);
    runs.push({ run: r, depth, steps: stepsOf.get(r.id) ?? [] });
    for (const c of children.get(r.id) ?? []) visit(c, depth + 1);
  };
  for (const r of children.get(null) ?? []) visit(r, 0);
  // Runs whose parent is not in the tree (should not happen) still show, at the end.
  for (const r of detail.tree) visit(r, 0);
  const root = detail.tree.find((r) => r.id === detail.rootRunId) ?? detail;
  return { root, runs };
}

const present = (v: unknown) => v !== null && v !== undefined;
const t = (iso: string | null | undefined) => (iso ? new Date(iso).getTime() : Number.NaN);

export function RunTracePage({ id }: { id: string }) {
  // Poll while any run of the tree is running or waiting; a finished trace stays put.
  const [polling, setPolling] = useState(true);
  const trace = useLoad(`trace:${id}`, () => loadTrace(id), { pollMs: polling ? POLL_MS : undefined });
  const isLive = trace.data ? trace.data.runs.some((r) => LIVE.has(r.run.status)) : true;
  useEffect(() => setPolling(isLive), [isLive]);
  const agentName = useAgentName();
  const now = useNow(1000);
  const tz = useTimeZone();
  const { can } = useSession();
  const action = useAction();
  const rootName = trace.data ? (trace.data.root.agent ?? agentName(trace.data.root.agentId)) : "";
  useTitle(trace.data ? `Trace of ${rootName}` : "Run trace");

  if (!trace.data) {
    return (
      <>
        <PageHeader title="Run trace" subtitle={<Link href="/runs">← Runs</Link>} />
        {trace.error ? <ErrorBanner error={trace.error} /> : <Loading label="Loading the trace…" />}
      </>
    );
  }
  const { root, runs } = trace.data;
  const live = isLive;
  const allSteps = runs.flatMap((r) => r.steps);
  const tokens = runs.reduce(
    (s, { run }) => ({ input: s.input + run.inputTokens, output: s.output + run.outputTokens }),
    { input: 0, output: 0 },
  );
  const cache = allSteps.reduce((s, st) => ({ read: s.read + st.cacheReadTokens, write: s.write + st.cacheWriteTokens }), { read: 0, write: 0 });
  const models = [...new Set(allSteps.map((s) => s.model).filter((m): m is string => !!m))];

  // The timeline spans the earliest start to the latest end in the tree (now, while live).
  const starts = runs.map(({ run }) => t(run.startedAt ?? run.createdAt));
  const ends = runs.flatMap(({ run, steps }) => [run.endedAt ? t(run.endedAt) : now, ...steps.map((s) => t(s.createdAt))]);
  const t0 = Math.min(...starts.filter(Number.isFinite));
  const t1 = Math.max(t0 + 1, ...ends.filter(Number.isFinite));
  const span = t1 - t0;
  const bar = (start: number, end: number): CSSProperties => {
    const left = Math.min(100, Math.max(0, ((start - t0) / span) * 100));
    const width = Math.max(0.8, Math.min(100 - left, ((end - start) / span) * 100));
    return { left: `${left}%`, width: `${width}%` };
  };
  const traceId = root.traceparent.split("-")[1];

  return (
    <>
      <PageHeader
        title={
          <>
            Trace of {rootName} <Badge value={root.status} />
          </>
        }
        subtitle={
          <>
            <Link href="/runs">← Runs</Link> · run <code>{root.id}</code>
            {root.taskId ? (
              <>
                {" "}
                · <Link href={`/tasks/${root.taskId}`}>its task</Link>
              </>
            ) : null}{" "}
            · started {formatTime(root.startedAt ?? root.createdAt, tz, true)}
          </>
        }
        actions={
          <>
            {live ? <LiveBadge everyMs={POLL_MS} updatedAt={trace.updatedAt} loading={trace.loading} /> : null}
            {live && can("write") ? (
              <ConfirmButton
                label="Cancel run"
                question="Cancel this run?"
                confirmLabel="Yes, cancel"
                busy={action.busy}
                onConfirm={async () => {
                  if (await action.run(() => api.cancelRun(root.id))) await trace.reload();
                }}
              />
            ) : null}
          </>
        }
      />
      <ErrorBanner error={action.error} onDismiss={action.clear} />
      <ErrorBanner error={trace.error} />

      <section className="stats" aria-label="Trace summary">
        <div className="stat">
          <span className="stat-label">Runs</span>
          <span className="stat-value">{runs.length}</span>
          <span className="stat-detail">{runs.length > 1 ? plural(runs.length - 1, "sub-agent run") : "no sub-agents"}</span>
        </div>
        <div className="stat">
          <span className="stat-label">Steps</span>
          <span className="stat-value">{allSteps.length}</span>
          <span className="stat-detail">{plural(allSteps.filter((s) => s.status === "error").length, "error")}</span>
        </div>
        <div className="stat">
          <span className="stat-label">Tokens in / out</span>
          <span className="stat-value">
            {number(tokens.input)} / {number(tokens.output)}
          </span>
          <span className="stat-detail">
            cache read {number(cache.read)} · write {number(cache.write)}
          </span>
        </div>
        <div className="stat">
          <span className="stat-label">Duration</span>
          <span className="stat-value">{duration(span)}</span>
          <span className="stat-detail">{models.length ? models.join(", ") : "no model calls"}</span>
        </div>
      </section>

      <section className="panel trace" aria-labelledby="timeline-title">
        <div className="panel-head">
          <h2 id="timeline-title">Timeline</h2>
          <span className="muted small">
            trace <code>{traceId}</code> · select a step to see its input and output
          </span>
        </div>
        <div className="trace-axis" aria-hidden="true">
          <span />
          <div className="trace-axis-scale">
            {[0, 0.25, 0.5, 0.75, 1].map((f) => (
              <span key={f} style={{ left: `${f * 100}%` }}>
                {duration(span * f)}
              </span>
            ))}
          </div>
        </div>
        <ol className="trace-runs">
          {runs.map(({ run, depth, steps }) => (
            <li key={run.id} className={`trace-run${run.id === id ? " trace-run-current" : ""}`} style={{ "--depth": depth } as CSSProperties}>
              <div className="trace-row trace-run-row">
                <div className="trace-label">
                  <Badge value={run.status} />
                  <strong>{run.agent ?? agentName(run.agentId)}</strong>
                  <span className="muted small">
                    {depth > 0 ? "sub-agent · " : ""}
                    {run.trigger} · {duration(runDuration(run, now))}
                  </span>
                </div>
                <div className="trace-track">
                  <span
                    className={`trace-bar trace-bar-run status-${run.status}`}
                    style={bar(t(run.startedAt ?? run.createdAt), run.endedAt ? t(run.endedAt) : now)}
                  />
                </div>
              </div>
              {steps.length === 0 ? (
                <p className="muted small trace-none">{LIVE.has(run.status) ? "No steps yet…" : "No steps recorded."}</p>
              ) : (
                <ol className="trace-steps">
                  {steps.map((s) => (
                    <li key={s.seq}>
                      <StepRow step={s} style={bar(t(s.createdAt) - (s.latencyMs ?? 0), t(s.createdAt))} />
                    </li>
                  ))}
                </ol>
              )}
              {present(run.result) || present(run.error) ? (
                <details className="trace-outcome">
                  <summary>{present(run.error) ? "Run error" : "Run result"}</summary>
                  <CodeBlock value={present(run.error) ? run.error : run.result} label={present(run.error) ? "Run error" : "Run result"} />
                </details>
              ) : null}
            </li>
          ))}
        </ol>
      </section>
    </>
  );
}

function StepRow({ step: s, style }: { step: Step; style: CSSProperties }) {
  const tz = useTimeZone();
  const tokens = s.inputTokens + s.outputTokens + s.cacheReadTokens + s.cacheWriteTokens;
  return (
    <details className={`trace-step${s.status === "error" ? " trace-step-error" : ""}`}>
      <summary className="trace-row">
        <div className="trace-label">
          <span className="seq muted">#{s.seq}</span>
          <Badge value={s.kind} kind={`kind-${s.kind}`} />
          <span className="step-name">{s.name ?? s.kind}</span>
          {s.status === "error" ? <Badge value="error" kind="failed" /> : null}
          <span className="muted small step-facts">
            {s.model && s.model !== s.name ? <code>{s.model}</code> : null}
            {tokens ? ` ${number(s.inputTokens)} in / ${number(s.outputTokens)} out` : ""}
            {s.latencyMs !== null ? ` · ${duration(s.latencyMs)}` : ""}
          </span>
        </div>
        <div className="trace-track">
          <span className={`trace-bar trace-bar-step kind-${s.kind}${s.status === "error" ? " status-failed" : ""}`} style={style} />
        </div>
      </summary>
      <div className="step-detail">
        <dl className="facts compact">
          <dt>Status</dt>
          <dd>{s.status}</dd>
          <dt>At</dt>
          <dd>{formatTime(s.createdAt, tz, true)}</dd>
          {s.provider ? (
            <>
              <dt>Provider</dt>
              <dd>{s.provider}</dd>
            </>
          ) : null}
          {s.model ? (
            <>
              <dt>Model</dt>
              <dd>
                <code>{s.model}</code>
              </dd>
            </>
          ) : null}
          <dt>Tokens</dt>
          <dd>
            {number(s.inputTokens)} input · {number(s.outputTokens)} output · {number(s.cacheReadTokens)} cache read · {number(s.cacheWriteTokens)} cache write
          </dd>
          <dt>Latency</dt>
          <dd>{duration(s.latencyMs)}</dd>
        </dl>
        <div className="io">
          <div>
            <h4>Input</h4>
            <CodeBlock value={s.input} label={`Input of step ${s.seq}`} />
          </div>
          <div>
            <h4>Output</h4>
            <CodeBlock value={s.output} label={`Output of step ${s.seq}`} />
          </div>
        </div>
      </div>
    </details>
  );
}
