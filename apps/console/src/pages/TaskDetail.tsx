import { type FormEvent, useEffect, useState } from "react";
import { api, type TaskDetail } from "../api";
import { Badge, CodeBlock, ConfirmButton, ErrorBanner, LiveBadge, Loading, PageHeader, TimeAgo, useTitle } from "../components";
import { formatTime, useTimeZone } from "../format";
import { useAction, useLoad } from "../hooks";
import { Link } from "../router";
import { useAgentName, useSession } from "../session";

const POLL_MS = 3000;
const FINISHED = new Set(["done", "failed", "cancelled"]);

export function TaskDetailPage({ id }: { id: string }) {
  const task = useLoad(`task:${id}`, () => api.task(id), { pollMs: POLL_MS });
  useTitle(task.data?.title ?? "Task");
  const { can, me } = useSession();
  const action = useAction();
  const agentName = useAgentName();
  const tz = useTimeZone();
  const [editing, setEditing] = useState(false);

  // The board links to #review; scroll there once the section exists.
  const hasReview = task.data?.status === "in_review";
  useEffect(() => {
    if (hasReview && window.location.hash === "#review") document.getElementById("review")?.scrollIntoView();
  }, [hasReview]);

  if (!task.data) {
    return (
      <>
        <PageHeader title="Task" subtitle={<Link href="/tasks">← Tasks</Link>} />
        {task.error ? <ErrorBanner error={task.error} /> : <Loading />}
      </>
    );
  }
  const t = task.data;
  const finished = FINISHED.has(t.status);
  const personReviews = t.status === "in_review" && t.reviewerAgentId === null;

  return (
    <>
      <PageHeader
        title={
          <>
            {t.title} <Badge value={t.status} />
          </>
        }
        subtitle={
          <>
            <Link href="/tasks">← Tasks</Link> · <code>{t.id}</code>
          </>
        }
        actions={
          <>
            {!finished ? <LiveBadge everyMs={POLL_MS} updatedAt={task.updatedAt} loading={task.loading} /> : null}
            {can("write") && !finished ? (
              <>
                <button type="button" disabled={editing} onClick={() => setEditing(true)}>
                  Edit
                </button>
                <ConfirmButton
                  label="Cancel task"
                  question="Cancel this task?"
                  confirmLabel="Yes, cancel it"
                  busy={action.busy}
                  onConfirm={async () => {
                    if (await action.run(() => api.cancelTask(t.id))) await task.reload();
                  }}
                />
              </>
            ) : null}
          </>
        }
      />
      <ErrorBanner error={action.error} onDismiss={action.clear} />
      <ErrorBanner error={task.error} />

      {editing ? (
        <EditTask
          task={t}
          onDone={async () => {
            setEditing(false);
            await task.reload();
          }}
        />
      ) : null}

      {personReviews && can("write") ? <Review task={t} onDone={task.reload} /> : null}

      <div className="columns">
        <section className="panel" aria-labelledby="facts-title">
          <h2 id="facts-title">Details</h2>
          <dl className="facts">
            <dt>Status</dt>
            <dd>
              <Badge value={t.status} /> <span className="muted">since</span> <TimeAgo iso={t.updatedAt} />
            </dd>
            <dt>For</dt>
            <dd>
              {t.assigneeAgentId ? (
                <Link href={`/agents/${agentName(t.assigneeAgentId)}`}>{agentName(t.assigneeAgentId)}</Link>
              ) : (
                <>
                  domain <code>{t.domain}</code>
                </>
              )}
            </dd>
            <dt>Claimed by</dt>
            <dd>{t.claimedByAgentId ? agentName(t.claimedByAgentId) : <span className="muted">nobody yet</span>}</dd>
            <dt>Priority</dt>
            <dd>{t.priority}</dd>
            <dt>Attempts</dt>
            <dd>
              {t.attempts} of {t.maxAttempts}
            </dd>
            <dt>Review</dt>
            <dd>{t.requiresReview ? `by ${t.reviewerAgentId ? agentName(t.reviewerAgentId) : "a person"}` : <span className="muted">not required</span>}</dd>
            {t.leaseExpiresAt ? (
              <>
                <dt>Lease</dt>
                <dd>
                  expires <TimeAgo iso={t.leaseExpiresAt} /> (epoch {t.leaseEpoch})
                </dd>
              </>
            ) : null}
            <dt>Run</dt>
            <dd>{t.runId ? <Link href={`/runs/${t.runId}`}>Open the run trace</Link> : <span className="muted">not started</span>}</dd>
            <dt>Created</dt>
            <dd>
              {formatTime(t.createdAt, tz)} by {t.createdBy.id === me.actor.id ? "you" : t.createdBy.type === "agent" ? agentName(t.createdBy.id) : t.createdBy.type.replace("_", " ")}
            </dd>
            {t.completedAt ? (
              <>
                <dt>Finished</dt>
                <dd>{formatTime(t.completedAt, tz)}</dd>
              </>
            ) : null}
          </dl>
        </section>
        <section className="panel" aria-labelledby="deps-title">
          <h2 id="deps-title">Depends on</h2>
          {t.dependencies.length === 0 ? (
            <p className="muted">No dependencies: the task can be claimed at once.</p>
          ) : (
            <ul className="run-list">
              {t.dependencies.map((d) => (
                <li key={d.id}>
                  <Link href={`/tasks/${d.id}`} className="run-row">
                    <Badge value={d.status} />
                    <span className="run-agent">{d.title}</span>
                  </Link>
                </li>
              ))}
            </ul>
          )}
          {t.status === "queued" && t.dependencies.some((d) => d.status !== "done") ? (
            <p className="muted small">Waiting for its dependencies to be done.</p>
          ) : null}
        </section>
      </div>

      <section className="panel" aria-labelledby="body-title">
        <h2 id="body-title">Details given</h2>
        {t.body ? <p className="prewrap">{t.body}</p> : <p className="muted">No details.</p>}
        {t.reviewComment ? (
          <>
            <h3>Review comment</h3>
            <p className="prewrap">{t.reviewComment}</p>
          </>
        ) : null}
        {t.result !== null && t.result !== undefined ? (
          <>
            <h3>Result</h3>
            <CodeBlock value={t.result} label="Result" />
          </>
        ) : null}
        {t.failure !== null && t.failure !== undefined ? (
          <>
            <h3>Failure</h3>
            <CodeBlock value={t.failure} label="Failure" />
          </>
        ) : null}
      </section>
    </>
  );
}

function Review({ task, onDone }: { task: TaskDetail; onDone(): Promise<void> }) {
  const [comment, setComment] = useState("");
  const action = useAction();
  const decide = async (e: FormEvent | null, decision: "approve" | "request_changes") => {
    e?.preventDefault();
    const r = await action.run(() => api.reviewTask(task.id, decision, comment.trim() || undefined));
    if (r) {
      setComment("");
      await onDone();
    }
  };
  return (
    <section className="panel review" id="review" aria-labelledby="review-title">
      <h2 id="review-title">Your review</h2>
      <p>The agent finished this task; it is done once you approve it. Requesting changes sends it back to the queue with your comment.</p>
      {task.result !== null ? <CodeBlock value={task.result} label="Result to review" /> : null}
      <form onSubmit={(e) => decide(e, "request_changes")}>
        <label className="field">
          <span>Comment (needed to request changes)</span>
          <textarea rows={3} value={comment} onChange={(e) => setComment(e.target.value)} />
        </label>
        <ErrorBanner error={action.error} onDismiss={action.clear} />
        <div className="form-actions">
          <button type="button" className="primary" disabled={action.busy} onClick={() => decide(null, "approve")}>
            Approve
          </button>
          <button type="submit" disabled={action.busy || !comment.trim()}>
            Request changes
          </button>
        </div>
      </form>
    </section>
  );
}

function EditTask({ task, onDone }: { task: TaskDetail; onDone(): Promise<void> }) {
  const [title, setTitle] = useState(task.title);
  const [body, setBody] = useState(task.body);
  const [priority, setPriority] = useState(task.priority);
  const [deps, setDeps] = useState("");
  const action = useAction();
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const add = deps.split(/[\s,]+/).filter(Boolean);
    const patch = {
      ...(title !== task.title ? { title } : {}),
      ...(body !== task.body ? { body } : {}),
      ...(priority !== task.priority ? { priority } : {}),
      ...(add.length ? { add_depends_on: add } : {}),
    };
    if (Object.keys(patch).length === 0) return onDone();
    if (await action.run(() => api.updateTask(task.id, patch))) await onDone();
  };
  return (
    <section className="panel" aria-labelledby="edit-task-title">
      <h2 id="edit-task-title">Edit task</h2>
      <form onSubmit={submit} className="grid-form">
        <label className="field span-2">
          <span>Title</span>
          <input required value={title} onChange={(e) => setTitle(e.target.value)} />
        </label>
        <label className="field span-2">
          <span>Details</span>
          <textarea rows={3} value={body} onChange={(e) => setBody(e.target.value)} />
        </label>
        <label className="field">
          <span>Priority</span>
          <input type="number" min={0} max={100} value={priority} onChange={(e) => setPriority(Number(e.target.value))} />
        </label>
        {task.status === "queued" ? (
          <label className="field">
            <span>Add dependencies (task ids)</span>
            <input placeholder="tsk_…" value={deps} onChange={(e) => setDeps(e.target.value)} />
          </label>
        ) : null}
        <div className="span-2">
          <ErrorBanner error={action.error} onDismiss={action.clear} />
          <div className="form-actions">
            <button type="submit" className="primary" disabled={action.busy}>
              Save
            </button>
            <button type="button" onClick={() => onDone()}>
              Close
            </button>
          </div>
        </div>
      </form>
    </section>
  );
}
