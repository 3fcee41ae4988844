import type { AgentStatus, TaskStatus } from "@bosun/contracts";
import { type Agent, api, type InboxItem, type Page, type Run, type Task } from "../api";
import { Badge, BudgetGauge, Empty, ErrorBanner, LiveBadge, Loading, PageHeader, TimeAgo, useTitle } from "../components";
import { monthStart, number, plural, today, usd, useTimeZone } from "../format";
import { useAction, useLoad } from "../hooks";
import { Link } from "../router";
import { useAgentName, useSession } from "../session";

const POLL_MS = 3000;
/** A queued task nobody has claimed for this long is worth a look. */
const STALE_QUEUED_MS = 15 * 60_000;
const WATCHED: TaskStatus[] = ["queued", "claimed", "in_progress", "in_review", "escalated", "failed"];
const AGENT_STATUSES: AgentStatus[] = ["active", "paused", "shadow", "retired"];

interface FleetData {
  agents: Agent[];
  running: Run[];
  recent: Run[];
  tasks: Record<string, Page<Task>>;
  /** What waits in the inbox; null when it could not be read (the rest of the fleet still shows). */
  inbox: Page<InboxItem> | null;
}

async function loadFleet(): Promise<FleetData> {
  const [inbox, agents, running, waiting, recent, ...tasks] = await Promise.all([
    api.inbox().catch(() => null),
    api.agents(),
    api.runs({ status: "running", limit: 50 }),
    api.runs({ status: "waiting", limit: 50 }),
    api.runs({ limit: 8 }),
    ...WATCHED.map((status) => api.tasks({ status, limit: 100 })),
  ]);
  return {
    agents: agents.items,
    running: [...running.items, ...waiting.items],
    recent: recent.items,
    tasks: Object.fromEntries(WATCHED.map((s, i) => [s, tasks[i]!])),
    inbox,
  };
}

/** A task whose lease ran out (its worker died) or that has waited long in the queue. */
function staleness(t: Task, now: number): string | null {
  if ((t.status === "claimed" || t.status === "in_progress") && t.leaseExpiresAt && new Date(t.leaseExpiresAt).getTime() < now) {
    return "lease expired";
  }
  if (t.status === "queued" && now - new Date(t.createdAt).getTime() > STALE_QUEUED_MS) return "queued for over 15 min";
  return null;
}

const count = (p: Page<Task> | undefined) => (p ? `${number(p.items.length)}${p.nextCursor ? "+" : ""}` : "…");

export function FleetPage() {
  useTitle("Fleet");
  const { data, error, loading, updatedAt, reload } = useLoad("fleet", loadFleet, { pollMs: POLL_MS });
  const agentName = useAgentName();
  const { can, refreshAgents } = useSession();
  const action = useAction();

  if (!data) {
    return (
      <>
        <PageHeader title="Fleet" />
        {error ? <ErrorBanner error={error} /> : <Loading />}
      </>
    );
  }

  const now = Date.now();
  const byStatus = (s: AgentStatus) => data.agents.filter((a) => a.status === s);
  const busyAgents = new Set(data.running.map((r) => r.agentId));
  const escalated = data.tasks.escalated?.items ?? [];
  const review = (data.tasks.in_review?.items ?? []).filter((t) => t.reviewerAgentId === null);
  const stale = ["queued", "claimed", "in_progress"]
    .flatMap((s) => data.tasks[s]?.items ?? [])
    .map((t) => ({ t, why: staleness(t, now) }))
    .filter((x): x is { t: Task; why: string } => x.why !== null);
  const paused = byStatus("paused");
  const attention = escalated.length + review.length + stale.length + paused.length;
  const inboxItems = data.inbox?.items ?? [];
  const more = data.inbox?.nextCursor ? "+" : "";
  const approvals = inboxItems.filter((i) => i.kind === "approval");
  const proposals = inboxItems.filter((i) => i.kind === "proposal");
  const open = ["queued", "claimed", "in_progress"].reduce((n, s) => n + (data.tasks[s]?.items.length ?? 0), 0);

  const act = async (fn: () => Promise<unknown>) => {
    await action.run(fn);
    await Promise.all([reload(), refreshAgents()]);
  };

  return (
    <>
      <PageHeader title="Fleet" subtitle="What your agents are doing and what needs you." actions={<LiveBadge everyMs={POLL_MS} updatedAt={updatedAt} loading={loading} />} />
      <ErrorBanner error={error} />
      <ErrorBanner error={action.error} onDismiss={action.clear} />

      <section className="stats" aria-label="Summary">
        <Stat label="Active agents" value={String(byStatus("active").length)} detail={`${data.agents.length} in all`} href="/agents" />
        <Stat label="Runs in progress" value={String(data.running.length)} detail={`${data.running.filter((r) => r.status === "waiting").length} waiting`} href="/runs" />
        <Stat label="Open tasks" value={String(open)} detail={`${count(data.tasks.queued)} queued`} href="/tasks" />
        <Stat
          label="Pending approvals"
          value={data.inbox ? `${approvals.length}${more}` : "—"}
          detail={data.inbox ? `${inboxItems.length}${more} in the inbox` : "inbox unavailable"}
          tone={approvals.length > 0 ? "warn" : undefined}
          href="/inbox"
        />
        <Stat label="Needs you" value={String(attention)} detail="reviews, escalations, stale work" tone={attention > 0 ? "warn" : undefined} href="#attention" />
      </section>

      <Spend />

      <section className="panel" id="attention" aria-labelledby="attention-title">
        <h2 id="attention-title">Needs attention</h2>
        {approvals.length + proposals.length > 0 ? (
          <p className="notice notice-warn">
            <Link href="/inbox">
              {approvals.length > 0 ? `${approvals.length}${more} tool ${approvals.length === 1 ? "call waits" : "calls wait"} for approval` : ""}
              {approvals.length > 0 && proposals.length > 0 ? " and " : ""}
              {proposals.length > 0 ? `${proposals.length} escalated ${proposals.length === 1 ? "proposal waits" : "proposals wait"} for a decision` : ""}
            </Link>{" "}
            in the inbox.
          </p>
        ) : null}
        {attention === 0 && approvals.length + proposals.length > 0 ? null : attention === 0 ? (
          <Empty title="Nothing needs you right now.">Escalated tasks, reviews waiting for a person, stale tasks and paused agents show up here.</Empty>
        ) : (
          <ul className="attention">
            {escalated.map((t) => (
              <li key={t.id}>
                <Badge value="escalated" />
                <Link href={`/tasks/${t.id}`}>{t.title}</Link>
                <span className="muted">
                  after {t.attempts} of {t.maxAttempts} attempts · <TimeAgo iso={t.updatedAt} />
                </span>
              </li>
            ))}
            {review.map((t) => (
              <li key={t.id}>
                <Badge value="in_review" />
                <Link href={`/tasks/${t.id}`}>{t.title}</Link>
                <span className="muted">waits for a person's review</span>
                {can("write") ? (
                  <span className="row-actions">
                    <button type="button" className="primary" disabled={action.busy} onClick={() => act(() => api.reviewTask(t.id, "approve"))}>
                      Approve
                    </button>
                    <Link href={`/tasks/${t.id}`} className="button">
                      Review…
                    </Link>
                  </span>
                ) : null}
              </li>
            ))}
            {stale.map(({ t, why }) => (
              <li key={t.id}>
                <Badge value="stale" kind="warn" />
                <Link href={`/tasks/${t.id}`}>{t.title}</Link>
                <span className="muted">
                  {why} · {t.assigneeAgentId ? agentName(t.assigneeAgentId) : (t.domain ?? "")}
                </span>
              </li>
            ))}
            {paused.map((a) => (
              <li key={a.id}>
                <Badge value="paused" />
                <Link href={`/agents/${a.name}`}>{a.name}</Link>
                <span className="muted">
                  paused <TimeAgo iso={a.updatedAt} />
                </span>
                {can("write") ? (
                  <span className="row-actions">
                    <button type="button" disabled={action.busy} onClick={() => act(() => api.agentAction(a.name, "resume"))}>
                      Resume
                    </button>
                  </span>
                ) : null}
              </li>
            ))}
          </ul>
        )}
      </section>

      <div className="columns">
        <section className="panel" aria-labelledby="running-title">
          <h2 id="running-title">Runs in progress</h2>
          {data.running.length === 0 ? (
            <Empty title="No run in progress.">Agents wake when they get a task, a message or their schedule comes due.</Empty>
          ) : (
            <RunList runs={data.running} agentName={agentName} />
          )}
          <h3>Recent runs</h3>
          {data.recent.length === 0 ? <Empty title="No runs yet." /> : <RunList runs={data.recent} agentName={agentName} />}
          <p>
            <Link href="/runs">All runs →</Link>
          </p>
        </section>

        <section className="panel" aria-labelledby="agents-title">
          <h2 id="agents-title">Agents by status</h2>
          {data.agents.length === 0 ? (
            <Empty title="No agents yet.">
              <Link href="/agents">Apply a descriptor</Link> to add your first agent.
            </Empty>
          ) : (
            AGENT_STATUSES.filter((s) => byStatus(s).length > 0).map((s) => (
              <div key={s} className="agent-group">
                <h3>
                  <Badge value={s} /> {byStatus(s).length}
                </h3>
                <ul className="agent-chips">
                  {byStatus(s).map((a) => (
                    <li key={a.id}>
                      <Link href={`/agents/${a.name}`} className="chip">
                        <span className={`dot ${busyAgents.has(a.id) ? "dot-busy" : "dot-idle"}`} aria-hidden="true" />
                        {a.name}
                        <span className="sr-only">{busyAgents.has(a.id) ? " (running)" : " (idle)"}</span>
                      </Link>
                    </li>
                  ))}
                </ul>
              </div>
            ))
          )}
          <h3>Tasks by status</h3>
          <ul className="task-counts">
            {WATCHED.map((s) => (
              <li key={s}>
                <Link href={`/tasks?status=${s}`} className="chip">
                  <Badge value={s} /> <strong>{count(data.tasks[s])}</strong>
                </Link>
              </li>
            ))}
          </ul>
        </section>
      </div>
    </>
  );
}

/** Today's and this month's spend, against the tenant's budgets (polled less often than the fleet). */
function Spend() {
  const tz = useTimeZone();
  const day = today(tz);
  const spend = useLoad(
    `spend:${day}`,
    async () => {
      const [month, budgets] = await Promise.all([api.costs({ from: monthStart(day), to: day, groupBy: "day" }), api.budgets()]);
      return { month, budgets: budgets.filter((b) => b.scope === "tenant") };
    },
    { pollMs: 15_000 },
  );
  if (!spend.data) return spend.error ? <ErrorBanner error={spend.error} /> : null;
  const { month, budgets } = spend.data;
  const todayMicros = month.groups.find((g) => g.key === day)?.costMicros ?? 0;
  const limitOf = (w: "day" | "month") => budgets.find((b) => b.window === w && b.unit === "usd_micros");
  const detail = (w: "day" | "month", fallback: string) => {
    const b = limitOf(w);
    return b ? `of ${usd(b.limit)} tenant budget` : fallback;
  };
  return (
    <section className="panel" aria-labelledby="spend-title">
      <div className="panel-head">
        <h2 id="spend-title">Spend</h2>
        <Link href="/costs">Costs →</Link>
      </div>
      <div className="stats">
        <Stat label="Spent today" value={usd(todayMicros)} detail={detail("day", day)} href={`/costs?from=${day}&to=${day}`} />
        <Stat label="Spent this month" value={usd(month.totalMicros)} detail={detail("month", "no tenant budget")} href="/costs" />
      </div>
      {budgets.length > 0 ? (
        <ul className="budget-list">
          {budgets.map((b) => (
            <li key={b.id}>
              <Link href="/budgets">Tenant {b.window === "invocation" ? "per run" : `per ${b.window}`}</Link>
              <BudgetGauge budget={b} />
            </li>
          ))}
        </ul>
      ) : (
        <p className="muted small">
          No tenant budget. <Link href="/budgets">Set one</Link> to cap or watch the fleet's spend.
        </p>
      )}
    </section>
  );
}

function Stat({ label, value, detail, href, tone }: { label: string; value: string; detail: string; href: string; tone?: "warn" }) {
  const body = (
    <>
      <span className="stat-label">{label}</span>
      <span className="stat-value">{value}</span>
      <span className="stat-detail">{detail}</span>
    </>
  );
  const className = `stat${tone ? ` stat-${tone}` : ""}`;
  // In-page anchors stay plain links; pages go through the router.
  return href.startsWith("#") ? (
    <a href={href} className={className}>
      {body}
    </a>
  ) : (
    <Link href={href} className={className}>
      {body}
    </Link>
  );
}

export function RunList({ runs, agentName }: { runs: Run[]; agentName: (id: string) => string }) {
  return (
    <ul className="run-list">
      {runs.map((r) => (
        <li key={r.id}>
          <Link href={`/runs/${r.id}`} className="run-row">
            <Badge value={r.status} />
            <span className="run-agent">{r.agent ?? agentName(r.agentId)}</span>
            <span className="muted">
              {r.trigger}
              {r.parentRunId ? " · sub-agent" : ""} · {plural(r.stepCount, "step")} · {number(r.inputTokens + r.outputTokens)} tokens
            </span>
            <span className="muted run-time">
              <TimeAgo iso={r.startedAt ?? r.createdAt} />
            </span>
          </Link>
        </li>
      ))}
    </ul>
  );
}
