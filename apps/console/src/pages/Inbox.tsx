import { useState } from "react";
import { type Approval, api, type InboxItem } from "../api";
import { Badge, CodeBlock, Empty, ErrorBanner, inboxChanged, LiveBadge, Loading, PageHeader, TimeAgo, useTitle } from "../components";
import { formatTime, shortId, usd, useTimeZone } from "../format";
import { useAction, useLoad } from "../hooks";
import { Link } from "../router";
import { useSession } from "../session";
import { ProposalCard } from "./Proposals";

const POLL_MS = 3000;

interface InboxData {
  approvals: Approval[];
  items: InboxItem[];
  more: boolean;
}

/** Pending approvals with their tool calls (from /v1/approvals), and the rest of /v1/inbox. */
async function loadInbox(): Promise<InboxData> {
  const [approvals, inbox] = await Promise.all([api.approvals({ status: "pending" }), api.inbox()]);
  return { approvals: approvals.items, items: inbox.items, more: inbox.nextCursor !== null };
}

/**
 * What waits for a person: approvals of tool calls (approve or deny, with a comment),
 * escalated tasks and tasks blocked by a dependency that failed or was cancelled,
 * escalated proposals (decide them here) and agents a budget paused.
 * Polled every 3 s, so an approval shows up while its run waits.
 */
export function InboxPage() {
  useTitle("Inbox");
  const inbox = useLoad("inbox", loadInbox, { pollMs: POLL_MS });
  const [done, setDone] = useState<string>();
  const reload = async () => {
    await inbox.reload();
    inboxChanged();
  };

  const header = (
    <PageHeader
      title="Inbox"
      subtitle="Approvals, escalations and paused agents: what waits for a person."
      actions={<LiveBadge everyMs={POLL_MS} updatedAt={inbox.updatedAt} loading={inbox.loading} />}
    />
  );
  if (!inbox.data) {
    return (
      <>
        {header}
        {inbox.error ? <ErrorBanner error={inbox.error} /> : <Loading />}
      </>
    );
  }
  const { approvals, items } = inbox.data;
  const tasks = items.filter((i) => i.kind === "task");
  const proposals = items.filter((i) => i.kind === "proposal");
  const agents = items.filter((i) => i.kind === "agent");

  return (
    <>
      {header}
      <ErrorBanner error={inbox.error} />
      {done ? (
        <div className="notice" role="status">
          {done}
          <button type="button" className="link-button" onClick={() => setDone(undefined)}>
            Dismiss
          </button>
        </div>
      ) : null}
      {inbox.data.more ? <p className="muted small">Showing the newest 100 items.</p> : null}

      <section className="panel" aria-labelledby="approvals-title">
        <h2 id="approvals-title">Approvals ({approvals.length})</h2>
        {approvals.length === 0 ? (
          <Empty title="No approval is waiting.">A run that calls a tool a policy or its descriptor guards waits here for a person.</Empty>
        ) : (
          <div className="cards inbox-cards">
            {approvals.map((a) => (
              <ApprovalCard
                key={a.id}
                approval={a}
                onDecided={async (d) => {
                  setDone(`${d.status === "approved" ? "Approved" : "Denied"} ${d.tool} for ${d.agent ?? "the agent"}: its run resumes.`);
                  await reload();
                }}
              />
            ))}
          </div>
        )}
      </section>

      <section className="panel" aria-labelledby="escalated-title">
        <h2 id="escalated-title">Escalated and blocked tasks ({tasks.length})</h2>
        {tasks.length === 0 ? (
          <Empty title="No escalated task.">
            A task that used up its attempts lands here, and so does a queued one whose dependency failed or was cancelled.
          </Empty>
        ) : (
          <ul className="attention">
            {tasks.map((t) => (
              <li key={t.id}>
                <Badge value={t.summary?.startsWith("blocked:") ? "blocked" : "escalated"} />
                <Link href={`/tasks/${t.id}`}>{t.title}</Link>
                <span className="muted">
                  {t.agent ? `${t.agent} · ` : ""}
                  {t.summary ? `${t.summary} · ` : ""}
                  <TimeAgo iso={t.createdAt} />
                </span>
              </li>
            ))}
          </ul>
        )}
      </section>

      <section className="panel" aria-labelledby="proposals-title">
        <div className="panel-head">
          <h2 id="proposals-title">Escalated proposals ({proposals.length})</h2>
          <Link href="/proposals">All proposals →</Link>
        </div>
        {proposals.length === 0 ? (
          <Empty title="No escalated proposal.">A proposal nobody decided within its window goes to people.</Empty>
        ) : (
          <div className="cards inbox-cards">
            {proposals.map((p) => (
              <ProposalCard key={p.id} id={p.id} onDecided={reload} />
            ))}
          </div>
        )}
      </section>

      <section className="panel" aria-labelledby="paused-title">
        <h2 id="paused-title">Agents paused by a budget ({agents.length})</h2>
        {agents.length === 0 ? (
          <Empty title="No agent is paused by a budget." />
        ) : (
          <ul className="attention">
            {agents.map((a) => (
              <li key={a.id}>
                <Badge value="paused" />
                <Link href={`/agents/${a.agent ?? ""}`}>{a.agent ?? shortId(a.id)}</Link>
                <span className="muted">
                  {a.summary ?? "paused by a budget"} · <TimeAgo iso={a.createdAt} />
                </span>
                <span className="row-actions">
                  <Link href={`/agents/${a.agent ?? ""}`} className="button">
                    Review and resume…
                  </Link>
                </span>
              </li>
            ))}
          </ul>
        )}
      </section>
    </>
  );
}

function ApprovalCard({ approval: a, onDecided }: { approval: Approval; onDecided(a: Approval): Promise<void> }) {
  const { can } = useSession();
  const tz = useTimeZone();
  const [comment, setComment] = useState("");
  const action = useAction();
  const titleId = `approval-${a.id}`;
  const decide = async (decision: "approve" | "deny") => {
    const decided = await action.run(() => api.decideApproval(a.id, decision, comment.trim() || undefined));
    if (decided) await onDecided(decided);
  };
  return (
    <article className="card approval" aria-labelledby={titleId}>
      <h3 id={titleId} className="task-title">
        {a.tool} by {a.agent ?? shortId(a.agentId)}
      </h3>
      <p>{a.reason}</p>
      <dl className="facts compact">
        <dt>Agent</dt>
        <dd>{a.agent ? <Link href={`/agents/${a.agent}`}>{a.agent}</Link> : shortId(a.agentId)}</dd>
        <dt>Run</dt>
        <dd>
          <Link href={`/runs/${a.runId}`}>{shortId(a.runId)}</Link> {a.runStatus ? <Badge value={a.runStatus} /> : null}
        </dd>
        <dt>Tool</dt>
        <dd>
          <code>{a.ref}</code>
        </dd>
        {a.rule ? (
          <>
            <dt>Rule</dt>
            <dd>
              {a.rule.source} · <code>{a.rule.name}</code>
            </dd>
          </>
        ) : null}
        {a.actionValueUsd !== null ? (
          <>
            <dt>Action value</dt>
            <dd>{usd(Math.round(a.actionValueUsd * 1_000_000))}</dd>
          </>
        ) : null}
        <dt>Asked</dt>
        <dd>
          <TimeAgo iso={a.createdAt} />
        </dd>
        <dt>Expires</dt>
        <dd>{a.expiresAt ? <span title={formatTime(a.expiresAt, tz, true)}>{formatTime(a.expiresAt, tz)}</span> : "never"}</dd>
      </dl>
      <details open>
        <summary>Tool call input</summary>
        <CodeBlock value={a.input} label="The call's input" />
      </details>
      <ErrorBanner error={action.error} onDismiss={action.clear} />
      {can("write") ? (
        <form
          className="decide"
          aria-label={`Decide ${a.tool} by ${a.agent ?? a.agentId}`}
          onSubmit={(e) => {
            e.preventDefault();
            void decide("approve");
          }}
        >
          <label className="field">
            <span>Comment (optional)</span>
            <textarea rows={2} maxLength={10_000} value={comment} onChange={(e) => setComment(e.target.value)} />
          </label>
          <div className="form-actions">
            <button type="submit" className="primary" disabled={action.busy}>
              Approve
            </button>
            <button type="button" className="danger" disabled={action.busy} onClick={() => void decide("deny")}>
              Deny
            </button>
          </div>
        </form>
      ) : (
        <p className="muted small">Deciding needs the write scope.</p>
      )}
    </article>
  );
}
