import type { TaskStatus } from "@bosun/contracts";
import { type FormEvent, useState } from "react";
import { api, type Page, type Task } from "../api";
import { Badge, ErrorBanner, LiveBadge, Loading, PageHeader, TimeAgo, useTitle } from "../components";
import { tasksInStatuses } from "../format";
import { useAction, useLoad } from "../hooks";
import { Link, setQuery, useLocation } from "../router";
import { useAgentName, useSession } from "../session";

const POLL_MS = 3000;
/** The board's columns, in the order a task moves through them. */
export const TASK_STATUSES: TaskStatus[] = ["queued", "claimed", "in_progress", "in_review", "escalated", "done", "failed", "cancelled"];
const OPEN: TaskStatus[] = ["queued", "claimed", "in_progress", "in_review", "escalated"];
const COLUMN_LIMIT = 50;

export function TasksPage() {
  useTitle("Tasks");
  const { query } = useLocation();
  const assignee = query.get("assignee") ?? "";
  const status = (query.get("status") ?? "") as TaskStatus | "";
  const [search, setSearch] = useState("");
  const [creating, setCreating] = useState(false);
  const [created, setCreated] = useState<{ id: string; title: string }>();
  const { can, agentsById } = useSession();
  // Cancelled tasks are rarely interesting: their column shows on request.
  const [showCancelled, setShowCancelled] = useState(false);
  const columns = status ? [status] : TASK_STATUSES.filter((s) => showCancelled || s !== "cancelled");

  const board = useLoad(
    `tasks:${assignee}:${columns.join(",")}`,
    async () => {
      const pages = await Promise.all(columns.map((s) => api.tasks({ status: s, assignee, limit: COLUMN_LIMIT })));
      return Object.fromEntries(columns.map((s, i) => [s, pages[i]!])) as Record<string, Page<Task>>;
    },
    { pollMs: POLL_MS },
  );

  const needle = search.trim().toLowerCase();
  const visible = (p: Page<Task> | undefined) =>
    (p?.items ?? []).filter((t) => !needle || t.title.toLowerCase().includes(needle) || t.id.includes(needle) || (t.domain ?? "").includes(needle));
  const agents = [...agentsById.values()].sort((a, b) => a.name.localeCompare(b.name));

  return (
    <>
      <PageHeader
        title="Tasks"
        subtitle="Work for your agents, by status. A task is claimable once its dependencies are done."
        actions={
          <>
            <LiveBadge everyMs={POLL_MS} updatedAt={board.updatedAt} loading={board.loading} />
            {can("write") && !creating ? (
              <button type="button" className="primary" onClick={() => setCreating(true)}>
                New task
              </button>
            ) : null}
          </>
        }
      />
      {created ? (
        <div className="notice" role="status">
          <span>
            Created <Link href={`/tasks/${created.id}`}>{created.title}</Link>.
          </span>
          <button type="button" className="link-button" onClick={() => setCreated(undefined)}>
            Dismiss
          </button>
        </div>
      ) : null}
      {creating ? (
        <CreateTaskForm
          onCancel={() => setCreating(false)}
          onCreated={async (t) => {
            setCreating(false);
            setCreated(t);
            await board.reload();
          }}
        />
      ) : null}

      <search className="filters">
        <label className="field inline">
          <span>Assignee</span>
          <select value={assignee} onChange={(e) => setQuery({ assignee: e.target.value || undefined })}>
            <option value="">Any agent</option>
            {agents.map((a) => (
              <option key={a.id} value={a.name}>
                {a.name}
              </option>
            ))}
          </select>
        </label>
        <label className="field inline">
          <span>Status</span>
          <select value={status} onChange={(e) => setQuery({ status: e.target.value || undefined })}>
            <option value="">All columns</option>
            {TASK_STATUSES.map((s) => (
              <option key={s} value={s}>
                {s.replace("_", " ")}
              </option>
            ))}
          </select>
        </label>
        <label className="field inline grow">
          <span>Search</span>
          <input type="search" placeholder="Title, id or domain" value={search} onChange={(e) => setSearch(e.target.value)} />
        </label>
        {!status ? (
          <label className="check">
            <input type="checkbox" checked={showCancelled} onChange={(e) => setShowCancelled(e.target.checked)} /> Show cancelled
          </label>
        ) : null}
      </search>

      <ErrorBanner error={board.error} />
      {!board.data ? (
        board.error ? null : <Loading />
      ) : (
        <div className={`board${columns.length === 1 ? " board-single" : ""}`}>
          {columns.map((s) => {
            const page = board.data?.[s];
            const tasks = visible(page);
            return (
              <section key={s} className={`column column-${s}`} aria-labelledby={`col-${s}`}>
                <h2 id={`col-${s}`} className="column-head">
                  <Badge value={s} />
                  <span className="column-count">
                    {tasks.length}
                    {page?.nextCursor ? "+" : ""}
                  </span>
                </h2>
                {tasks.length === 0 ? (
                  <p className="column-empty muted">No tasks</p>
                ) : (
                  <ul className="cards">
                    {tasks.map((t) => (
                      <li key={t.id}>
                        <TaskCard task={t} onChanged={board.reload} />
                      </li>
                    ))}
                  </ul>
                )}
                {page?.nextCursor ? <p className="muted small">Newest {COLUMN_LIMIT} shown.</p> : null}
              </section>
            );
          })}
        </div>
      )}
    </>
  );
}

function TaskCard({ task: t, onChanged }: { task: Task; onChanged(): Promise<void> }) {
  const agentName = useAgentName();
  const { can } = useSession();
  const action = useAction();
  const needsPerson = t.status === "in_review" && t.reviewerAgentId === null;
  return (
    <article className="card task-card" aria-label={t.title}>
      <Link href={`/tasks/${t.id}`} className="task-title">
        {t.title}
      </Link>
      <div className="task-meta muted small">
        <span title="Priority">P{t.priority}</span>
        <span>{t.assigneeAgentId ? agentName(t.assigneeAgentId) : <code>{t.domain}</code>}</span>
        {t.claimedByAgentId && !t.assigneeAgentId ? <span>→ {agentName(t.claimedByAgentId)}</span> : null}
        <TimeAgo iso={t.updatedAt} />
      </div>
      {t.requiresReview ? <div className="small muted">review by {t.reviewerAgentId ? agentName(t.reviewerAgentId) : "a person"}</div> : null}
      {needsPerson && can("write") ? (
        <div className="card-actions">
          <button
            type="button"
            className="primary small-button"
            disabled={action.busy}
            onClick={async () => {
              if (await action.run(() => api.reviewTask(t.id, "approve"))) await onChanged();
            }}
          >
            Approve
          </button>
          <Link href={`/tasks/${t.id}#review`} className="button small-button">
            Request changes…
          </Link>
        </div>
      ) : null}
      <ErrorBanner error={action.error} onDismiss={action.clear} />
    </article>
  );
}

function CreateTaskForm({ onCreated, onCancel }: { onCreated(t: { id: string; title: string }): void; onCancel(): void }) {
  const { agentsById } = useSession();
  const agents = [...agentsById.values()].filter((a) => a.status !== "retired").sort((a, b) => a.name.localeCompare(b.name));
  const [title, setTitle] = useState("");
  const [body, setBody] = useState("");
  const [target, setTarget] = useState<"agent" | "domain">("agent");
  const [assignee, setAssignee] = useState("");
  const [domain, setDomain] = useState("");
  const [priority, setPriority] = useState(50);
  const [deps, setDeps] = useState<string[]>([]);
  const [extraDeps, setExtraDeps] = useState("");
  const [requiresReview, setRequiresReview] = useState(false);
  const [reviewer, setReviewer] = useState("");
  const [maxAttempts, setMaxAttempts] = useState(3);
  const action = useAction();
  // One status after another in the lifecycle's order (tasksInStatuses). A task sent back
  // (changes requested, an expired lease) can still slip between two requests: the list is
  // read again every few seconds while the form is open.
  const open = useLoad("open-tasks", () => tasksInStatuses(OPEN, (status) => api.tasks({ status, limit: 50 })), { pollMs: 3000 });

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const dependsOn = [...deps, ...extraDeps.split(/[\s,]+/).filter(Boolean)];
    const t = await action.run(() =>
      api.createTask({
        title: title.trim(),
        body,
        priority,
        ...(target === "agent" ? { assignee } : { domain: domain.trim() }),
        depends_on: [...new Set(dependsOn)],
        requires_review: requiresReview,
        ...(requiresReview && reviewer ? { reviewer } : {}),
        max_attempts: maxAttempts,
      }),
    );
    if (t) onCreated({ id: t.id, title: t.title });
  };

  return (
    <section className="panel" aria-labelledby="new-task-title">
      <h2 id="new-task-title">New task</h2>
      <form onSubmit={submit} className="grid-form">
        <label className="field span-2">
          <span>Title</span>
          <input required maxLength={500} value={title} onChange={(e) => setTitle(e.target.value)} />
        </label>
        <label className="field span-2">
          <span>Details</span>
          <textarea rows={3} value={body} onChange={(e) => setBody(e.target.value)} />
        </label>
        <fieldset className="field">
          <legend>Who does it</legend>
          <label className="check">
            <input type="radio" name="target" checked={target === "agent"} onChange={() => setTarget("agent")} /> An agent
          </label>
          <label className="check">
            <input type="radio" name="target" checked={target === "domain"} onChange={() => setTarget("domain")} /> Any agent covering a domain
          </label>
        </fieldset>
        {target === "agent" ? (
          <label className="field">
            <span>Assignee</span>
            <select required value={assignee} onChange={(e) => setAssignee(e.target.value)}>
              <option value="">Choose an agent…</option>
              {agents.map((a) => (
                <option key={a.id} value={a.name}>
                  {a.name}
                  {a.status !== "active" ? ` (${a.status})` : ""}
                </option>
              ))}
            </select>
          </label>
        ) : (
          <label className="field">
            <span>Domain</span>
            <input required placeholder="finance/invoices" value={domain} onChange={(e) => setDomain(e.target.value)} />
          </label>
        )}
        <label className="field">
          <span>Priority (0–100, higher first)</span>
          <input type="number" min={0} max={100} required value={priority} onChange={(e) => setPriority(Number(e.target.value))} />
        </label>
        <label className="field">
          <span>Attempts before escalation</span>
          <input type="number" min={1} max={100} required value={maxAttempts} onChange={(e) => setMaxAttempts(Number(e.target.value))} />
        </label>
        <fieldset className="field span-2">
          <legend>Depends on</legend>
          {open.data && open.data.length > 0 ? (
            <div className="dep-list">
              {open.data.map((t) => (
                <label key={t.id} className="check">
                  <input
                    type="checkbox"
                    checked={deps.includes(t.id)}
                    onChange={(e) => setDeps(e.target.checked ? [...deps, t.id] : deps.filter((d) => d !== t.id))}
                  />{" "}
                  {t.title} <Badge value={t.status} />
                </label>
              ))}
            </div>
          ) : (
            <p className="muted small">{open.data ? "No unfinished tasks to wait for." : "Loading tasks…"}</p>
          )}
          <label className="field">
            <span>Other task ids (comma-separated)</span>
            <input placeholder="tsk_…" value={extraDeps} onChange={(e) => setExtraDeps(e.target.value)} />
          </label>
        </fieldset>
        <fieldset className="field span-2">
          <legend>Review</legend>
          <label className="check">
            <input type="checkbox" checked={requiresReview} onChange={(e) => setRequiresReview(e.target.checked)} /> Requires review before it is done
          </label>
          {requiresReview ? (
            <label className="field">
              <span>Reviewer</span>
              <select value={reviewer} onChange={(e) => setReviewer(e.target.value)}>
                <option value="">A person (in this console)</option>
                {agents.map((a) => (
                  <option key={a.id} value={a.name}>
                    {a.name}
                  </option>
                ))}
              </select>
            </label>
          ) : null}
        </fieldset>
        <div className="span-2">
          <ErrorBanner error={action.error} onDismiss={action.clear} />
          <div className="form-actions">
            <button type="submit" className="primary" disabled={action.busy}>
              {action.busy ? "Creating…" : "Create task"}
            </button>
            <button type="button" onClick={onCancel}>
              Cancel
            </button>
          </div>
        </div>
      </form>
    </section>
  );
}
