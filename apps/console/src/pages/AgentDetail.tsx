import { type FormEvent, useState } from "react";
import { stringify } from "yaml";
import { type Agent, type AgentMemory, api, type Revision, type RevisionDiff } from "../api";
import {
  Badge,
  BudgetGauge,
  budgetAmount,
  CodeBlock,
  ConfirmButton,
  CopyButton,
  Empty,
  ErrorBanner,
  LiveBadge,
  Loading,
  PageHeader,
  TimeAgo,
  UsageBar,
  useTitle,
  WINDOW_LABEL,
} from "../components";
import { formatTime, pretty, useTimeZone } from "../format";
import { useAction, useLoad } from "../hooks";
import { Link, setQuery, useLocation } from "../router";
import { useAgentName, useSession } from "../session";
import { ApplyForm } from "./ApplyForm";
import { RunList } from "./Fleet";

const POLL_MS = 3000;

export function AgentDetailPage({ name }: { name: string }) {
  useTitle(name);
  const { query } = useLocation();
  const applied = query.get("applied");
  const { can, refreshAgents } = useSession();
  const agent = useLoad(`agent:${name}`, () => api.agent(name));
  const revisions = useLoad(`revisions:${name}:${agent.data?.revision ?? 0}`, () => api.revisions(name), { enabled: !!agent.data });
  const [editing, setEditing] = useState(false);
  const action = useAction();

  if (!agent.data) {
    return (
      <>
        <PageHeader title={name} subtitle={<Link href="/agents">← Agents</Link>} />
        {agent.error ? <ErrorBanner error={agent.error} /> : <Loading />}
      </>
    );
  }
  const a = agent.data;
  const act = async (kind: "pause" | "resume" | "retire") => {
    const updated = await action.run(() => api.agentAction(name, kind));
    if (updated) {
      await agent.reload();
      await refreshAgents();
    }
  };

  return (
    <>
      <PageHeader
        title={
          <>
            {a.name} <Badge value={a.status} />
          </>
        }
        subtitle={
          <>
            <Link href="/agents">← Agents</Link> · owned by {a.owner} · revision {a.revision} · <code>{a.descriptor.spec.model.name}</code>
          </>
        }
        actions={
          can("write") && a.status !== "retired" ? (
            <>
              {a.status === "paused" ? (
                <button type="button" className="primary" disabled={action.busy} onClick={() => act("resume")}>
                  Resume
                </button>
              ) : (
                <button type="button" disabled={action.busy} onClick={() => act("pause")}>
                  Pause
                </button>
              )}
              <button type="button" disabled={action.busy || editing} onClick={() => setEditing(true)}>
                Edit descriptor
              </button>
              <ConfirmButton label="Retire" question={`Retire ${a.name} for good?`} confirmLabel="Yes, retire" busy={action.busy} onConfirm={() => act("retire")} />
            </>
          ) : null
        }
      />
      {applied ? (
        <div className="notice" role="status">
          {applied === "same" ? "No change: the descriptor matches the current revision." : `Applied: revision ${applied} is now current.`}
          <button type="button" className="link-button" onClick={() => setQuery({ applied: undefined })}>
            Dismiss
          </button>
        </div>
      ) : null}
      <ErrorBanner error={action.error} onDismiss={action.clear} />

      {editing ? (
        <section className="panel" aria-labelledby="edit-title">
          <h2 id="edit-title">Edit descriptor</h2>
          <ApplyForm
            initial={stringify(a.descriptor)}
            fixedName={a.name}
            onApplied={async (r) => {
              setEditing(false);
              setQuery({ applied: r.changed ? String(r.revision) : "same" });
              await agent.reload();
              await refreshAgents();
            }}
            onCancel={() => setEditing(false)}
          />
        </section>
      ) : null}

      <Overview agent={a} />
      <AgentBudgets name={name} />
      <AgentMemoryPanel name={name} />
      <div className="columns">
        <RecentRuns name={name} />
        <AgentTasks name={name} />
      </div>
      <DescriptorView agent={a} />
      <section className="panel" aria-labelledby="revisions-title">
        <h2 id="revisions-title">Revisions</h2>
        <ErrorBanner error={revisions.error} />
        {revisions.data ? <Revisions key={revisions.data.length} name={name} revisions={revisions.data} /> : revisions.error ? null : <Loading />}
      </section>
      {can("write") && a.status !== "retired" ? <Talk name={name} /> : null}
    </>
  );
}

/** The agent's own budgets (from its descriptor or the API) with their current windows. */
function AgentBudgets({ name }: { name: string }) {
  const budgets = useLoad(`budgets:${name}`, () => api.budgets({ agent: name }), { pollMs: 10_000 });
  const mine = (budgets.data ?? []).filter((b) => b.scope === "agent");
  return (
    <section className="panel" aria-labelledby="budgets-title">
      <div className="panel-head">
        <h2 id="budgets-title">Budgets</h2>
        <Link href="/budgets">All budgets →</Link>
      </div>
      <ErrorBanner error={budgets.error} />
      {!budgets.data ? (
        budgets.error ? null : <Loading />
      ) : mine.length === 0 ? (
        <Empty title="No budget on this agent.">Declare spec.budgets in its descriptor, or add one on Budgets & alerts.</Empty>
      ) : (
        <ul className="budget-list">
          {mine.map((b) => (
            <li key={b.id}>
              <span>
                {budgetAmount(b, b.limit)} {WINDOW_LABEL[b.window]} <span className="muted small">· {b.enforcement} · {b.source}</span>
              </span>
              <BudgetGauge budget={b} />
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

/** The memory layers (soul, working memory, active context, archive) with their usage, and the last dream. */
function AgentMemoryPanel({ name }: { name: string }) {
  const memory = useLoad(`memory:${name}`, () => api.memory(name), { pollMs: 10_000 });
  return (
    <section className="panel" aria-labelledby="memory-title">
      <div className="panel-head">
        <h2 id="memory-title">Memory</h2>
        {memory.data ? <span className="muted small">tokens counted by {memory.data.tokenizer}</span> : null}
      </div>
      <ErrorBanner error={memory.error} />
      {!memory.data ? memory.error ? null : <Loading /> : <MemoryLayers m={memory.data} />}
    </section>
  );
}

function MemoryLayers({ m }: { m: AgentMemory }) {
  const [open, setOpen] = useState<string>();
  return (
    <>
      <dl className="memory-layers">
        <dt>Soul</dt>
        <dd>
          <UsageBar label="Soul" used={m.soul.tokens} limit={m.soul.limit} />
          <span className="muted small">always loaded, from the descriptor</span>
        </dd>
        <dt>Working memory</dt>
        <dd>
          <UsageBar label="Working memory" used={m.working.tokens} limit={m.working.limit} />
          <span className="muted small">
            {m.working.items.length} {m.working.items.length === 1 ? "item" : "items"}, curated by the agent; a write over the limit is refused
          </span>
        </dd>
        <dt>Active context</dt>
        <dd>
          {m.context.limit.toLocaleString()} tokens per run <span className="muted small">· task, messages, threads and proposals, assembled for each run</span>
        </dd>
        <dt>Archive</dt>
        <dd>
          {m.archive.items.toLocaleString()} {m.archive.items === 1 ? "item" : "items"} · {m.archive.tokens.toLocaleString()} tokens{" "}
          <span className="muted small">· searched on demand, kept {m.archive.retentionDays} days</span>
        </dd>
        <dt>Last dream</dt>
        <dd>
          {m.dreams.lastAt ? (
            <>
              <TimeAgo iso={m.dreams.lastAt} />
              {m.dreams.lastRunId ? (
                <>
                  {" "}
                  · <Link href={`/runs/${m.dreams.lastRunId}`}>its run</Link>
                </>
              ) : null}
            </>
          ) : (
            <span className="muted">never</span>
          )}
          <span className="muted small"> · {m.dreams.changesSince.toLocaleString()} working-memory writes since</span>
        </dd>
      </dl>
      <h3>Working memory items</h3>
      {m.working.items.length === 0 ? (
        <Empty title="Working memory is empty.">The agent writes here with its memory tool.</Empty>
      ) : (
        <ul className="run-list" aria-label="Working memory items">
          {m.working.items.map((i) => (
            <li key={i.id}>
              <button type="button" className="run-row link-button" aria-expanded={open === i.id} onClick={() => setOpen(open === i.id ? undefined : i.id)}>
                <span className="run-agent">{i.title}</span>
                <span className="muted">
                  {i.tokens.toLocaleString()} tokens · v{i.version} · {i.source}
                </span>
                <span className="muted run-time">
                  <TimeAgo iso={i.updatedAt} />
                </span>
              </button>
              {open === i.id ? <CodeBlock value={i.content} label={i.title} /> : null}
            </li>
          ))}
        </ul>
      )}
    </>
  );
}

function Overview({ agent }: { agent: Agent }) {
  const tz = useTimeZone();
  const s = agent.descriptor.spec;
  const b = s.budgets;
  return (
    <section className="panel" aria-labelledby="overview-title">
      <h2 id="overview-title">Overview</h2>
      {agent.descriptor.metadata.description ? <p>{agent.descriptor.metadata.description}</p> : null}
      <div className="overview">
        <div className="overview-soul">
          <h3>Soul</h3>
          {s.soul ? <blockquote className="soul">{s.soul}</blockquote> : <p className="muted">No soul written.</p>}
          <h3>Drives</h3>
          {s.drives.length === 0 ? (
            <p className="muted">No drives: the agent works only when given tasks or messages.</p>
          ) : (
            <ul className="drives">
              {s.drives.map((d) => (
                <li key={d.name}>
                  <strong>{d.name}</strong>
                  {d.every ? <span className="muted"> · every {d.every}</span> : null}
                  <div>{d.question}</div>
                </li>
              ))}
            </ul>
          )}
        </div>
        <dl className="facts">
          <dt>Model</dt>
          <dd>
            {s.model.provider} · <code>{s.model.name}</code>
            {s.model.pinned_revision ? ` @ ${s.model.pinned_revision}` : ""}
            {s.model.escalate_to ? (
              <div className="muted small">
                escalates to <code>{s.model.escalate_to.name}</code>
              </div>
            ) : null}
          </dd>
          <dt>Memory</dt>
          <dd>
            {s.memory.type}, kept {s.memory.retention_days} days, {s.memory.working_tokens.toLocaleString()} working tokens
          </dd>
          <dt>Budget limits</dt>
          <dd>
            {b && Object.values(b).some((v) => v !== undefined) ? (
              <ul className="plain">
                {b.usd_per_invocation !== undefined ? <li>${b.usd_per_invocation} per invocation</li> : null}
                {b.usd_per_day !== undefined ? <li>${b.usd_per_day} per day</li> : null}
                {b.usd_per_month !== undefined ? <li>${b.usd_per_month} per month</li> : null}
                {b.calls_per_hour !== undefined ? <li>{b.calls_per_hour} calls per hour</li> : null}
              </ul>
            ) : (
              <span className="muted">none declared</span>
            )}
          </dd>
          <dt>Approval</dt>
          <dd>
            {s.approval?.on_action_value_usd_gt !== undefined ? `actions over $${s.approval.on_action_value_usd_gt}` : null}
            {s.approval?.tools?.length ? ` · tools ${s.approval.tools.join(", ")}` : null}
            {!s.approval ? <span className="muted">none</span> : null}
          </dd>
          <dt>Domains</dt>
          <dd>{s.domains.length ? s.domains.map((d) => <code key={d}>{d} </code>) : <span className="muted">none</span>}</dd>
          <dt>Tools</dt>
          <dd>{s.tools.length ? s.tools.map((t) => <code key={t}>{t} </code>) : <span className="muted">internal tools only</span>}</dd>
          <dt>Schedule</dt>
          <dd>{s.schedule ? `every ${s.schedule.every}` : <span className="muted">on demand</span>}</dd>
          <dt>Next wake</dt>
          <dd>{agent.nextWakeAt ? <span title={formatTime(agent.nextWakeAt, tz, true)}>{formatTime(agent.nextWakeAt, tz)}</span> : <span className="muted">—</span>}</dd>
        </dl>
      </div>
    </section>
  );
}

function RecentRuns({ name }: { name: string }) {
  const runs = useLoad(`agent-runs:${name}`, () => api.runs({ agent: name, limit: 10 }), { pollMs: POLL_MS });
  const agentName = useAgentName();
  return (
    <section className="panel" aria-labelledby="runs-title">
      <div className="panel-head">
        <h2 id="runs-title">Recent runs</h2>
        <LiveBadge everyMs={POLL_MS} updatedAt={runs.updatedAt} loading={runs.loading} />
      </div>
      <ErrorBanner error={runs.error} />
      {!runs.data ? (
        runs.error ? null : <Loading />
      ) : runs.data.items.length === 0 ? (
        <Empty title="No runs yet.">The agent runs when it gets a task or a message, or when its schedule comes due.</Empty>
      ) : (
        <RunList runs={runs.data.items} agentName={agentName} />
      )}
      <p>
        <Link href={`/runs?agent=${name}`}>All runs of {name} →</Link>
      </p>
    </section>
  );
}

function AgentTasks({ name }: { name: string }) {
  const tasks = useLoad(`agent-tasks:${name}`, () => api.tasks({ assignee: name, limit: 10 }), { pollMs: POLL_MS });
  return (
    <section className="panel" aria-labelledby="tasks-title">
      <h2 id="tasks-title">Assigned tasks</h2>
      <ErrorBanner error={tasks.error} />
      {!tasks.data ? (
        tasks.error ? null : <Loading />
      ) : tasks.data.items.length === 0 ? (
        <Empty title="No tasks assigned.">Tasks given to a domain this agent covers are not listed here.</Empty>
      ) : (
        <ul className="run-list">
          {tasks.data.items.map((t) => (
            <li key={t.id}>
              <Link href={`/tasks/${t.id}`} className="run-row">
                <Badge value={t.status} />
                <span className="run-agent">{t.title}</span>
                <span className="muted run-time">
                  <TimeAgo iso={t.updatedAt} />
                </span>
              </Link>
            </li>
          ))}
        </ul>
      )}
      <p>
        <Link href={`/tasks?assignee=${name}`}>Board for {name} →</Link>
      </p>
    </section>
  );
}

function DescriptorView({ agent }: { agent: Agent }) {
  const [format, setFormat] = useState<"yaml" | "json">("yaml");
  const text = format === "yaml" ? stringify(agent.descriptor) : pretty(agent.descriptor);
  return (
    <section className="panel" aria-labelledby="descriptor-title">
      <div className="panel-head">
        <h2 id="descriptor-title">Descriptor</h2>
        <div className="segmented">
          <button type="button" aria-pressed={format === "yaml"} onClick={() => setFormat("yaml")}>
            YAML
          </button>
          <button type="button" aria-pressed={format === "json"} onClick={() => setFormat("json")}>
            JSON
          </button>
          <CopyButton text={text} />
        </div>
      </div>
      <p className="muted small">
        Revision {agent.revision} · spec hash <code>{agent.specHash.slice(0, 12)}</code>
      </p>
      <CodeBlock value={text} label={`Descriptor as ${format.toUpperCase()}`} />
    </section>
  );
}

function Revisions({ name, revisions }: { name: string; revisions: Revision[] }) {
  const tz = useTimeZone();
  const { me } = useSession();
  const latest = revisions.at(-1)?.revision ?? 1;
  const [from, setFrom] = useState(Math.max(1, latest - 1));
  const [to, setTo] = useState(latest);
  const diff = useLoad<RevisionDiff | null>(`diff:${name}:${from}:${to}`, () => (from === to ? Promise.resolve(null) : api.diff(name, from, to)), {
    enabled: revisions.length > 1,
  });
  const options = revisions.map((r) => (
    <option key={r.revision} value={r.revision}>
      revision {r.revision}
    </option>
  ));
  return (
    <>
      <div className="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">Revision</th>
              <th scope="col">Spec hash</th>
              <th scope="col">By</th>
              <th scope="col">Applied</th>
            </tr>
          </thead>
          <tbody>
            {[...revisions].reverse().map((r) => (
              <tr key={r.revision}>
                <td>
                  {r.revision}
                  {r.revision === latest ? <span className="muted"> (current)</span> : null}
                </td>
                <td>
                  <code>{r.specHash.slice(0, 12)}</code>
                </td>
                <td>
                  {r.createdBy.id === me.actor.id ? (
                    "you"
                  ) : (
                    <>
                      {r.createdBy.type.replace("_", " ")} <code className="small">{r.createdBy.id.slice(0, 14)}</code>
                    </>
                  )}
                </td>
                <td title={formatTime(r.createdAt, tz, true)}>{formatTime(r.createdAt, tz)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {revisions.length < 2 ? (
        <p className="muted">Only one revision so far: apply a changed descriptor to compare revisions.</p>
      ) : (
        <div className="diff-box">
          <h3>Compare revisions</h3>
          <div className="filters">
            <label className="field inline">
              <span>From</span>
              <select value={from} onChange={(e) => setFrom(Number(e.target.value))}>
                {options}
              </select>
            </label>
            <label className="field inline">
              <span>To</span>
              <select value={to} onChange={(e) => setTo(Number(e.target.value))}>
                {options}
              </select>
            </label>
          </div>
          <ErrorBanner error={diff.error} />
          {from === to ? (
            <p className="muted">Pick two different revisions.</p>
          ) : !diff.data ? (
            diff.error ? null : <Loading />
          ) : diff.data.changes.length === 0 ? (
            <p className="muted">
              No differences between revision {from} and revision {to}.
            </p>
          ) : (
            <div className="table-wrap">
              <table className="diff" aria-label={`Changes from revision ${from} to revision ${to}`}>
                <thead>
                  <tr>
                    <th scope="col">Field</th>
                    <th scope="col">Change</th>
                    <th scope="col">Revision {from}</th>
                    <th scope="col">Revision {to}</th>
                  </tr>
                </thead>
                <tbody>
                  {diff.data.changes.map((c) => (
                    <tr key={`${c.path}:${c.op}`}>
                      <td>
                        <code>{c.path}</code>
                      </td>
                      <td>
                        <Badge value={c.op} kind={`diff-${c.op}`} />
                      </td>
                      <td className="diff-from">{c.op === "add" ? <span className="muted">—</span> : <pre>{pretty(c.from)}</pre>}</td>
                      <td className="diff-to">{c.op === "remove" ? <span className="muted">—</span> : <pre>{pretty(c.to)}</pre>}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </div>
      )}
    </>
  );
}

/** A direct message (the agent wakes to read it) or a run started with an input. */
function Talk({ name }: { name: string }) {
  const [text, setText] = useState("");
  const [done, setDone] = useState<{ kind: "message" | "run"; id: string }>();
  const action = useAction();
  const send = async (e: FormEvent, kind: "message" | "run") => {
    e.preventDefault();
    const r = await action.run<{ id: string }>(() => (kind === "message" ? api.sendMessage(name, text) : api.startRun(name, text)));
    if (r) {
      setDone({ kind, id: r.id });
      setText("");
    }
  };
  return (
    <section className="panel" aria-labelledby="talk-title">
      <h2 id="talk-title">Talk to {name}</h2>
      <form onSubmit={(e) => send(e, "message")}>
        <label className="field">
          <span>Message or run input</span>
          <textarea rows={3} value={text} required onChange={(e) => setText(e.target.value)} />
        </label>
        <ErrorBanner error={action.error} onDismiss={action.clear} />
        {done ? (
          <p className="notice" role="status">
            {done.kind === "message" ? (
              "Message sent: the agent wakes to read it."
            ) : (
              <span>
                Run started: <Link href={`/runs/${done.id}`}>open its trace</Link>.
              </span>
            )}
          </p>
        ) : null}
        <div className="form-actions">
          <button type="submit" className="primary" disabled={action.busy || !text.trim()}>
            Send message
          </button>
          <button type="button" disabled={action.busy || !text.trim()} onClick={(e) => send(e, "run")}>
            Start a run with this input
          </button>
        </div>
      </form>
    </section>
  );
}
