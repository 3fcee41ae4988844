import type { ProposalStatus } from "@bosun/contracts";
import { Fragment, useState } from "react";
import { api, type Proposal, type ProposalDetail } from "../api";
import { Badge, CodeBlock, Empty, ErrorBanner, Loading, PageHeader, TimeAgo, useTitle } from "../components";
import { formatTime, useTimeZone } from "../format";
import { useAction, useLoad } from "../hooks";
import { Link, setQuery, useLocation } from "../router";
import { useSession } from "../session";

const STATUSES: ProposalStatus[] = ["open", "escalated", "approved", "rejected"];
const STANCE_KIND: Record<string, string> = { support: "ok", concern: "warn", block: "failed" };
const REASON: Record<string, string> = { unanimous_support: "every asked agent supported it", no_objection: "no block within its window", person: "decided by a person" };

/** Cross-domain proposals: what was proposed, who was asked and what they said; people decide open or escalated ones. */
export function ProposalsPage() {
  useTitle("Proposals");
  const { query } = useLocation();
  const status = query.get("status") ?? "";
  const [cursors, setCursors] = useState<string[]>([]);
  const cursor = cursors.at(-1);
  const list = useLoad(`proposals:${status}:${cursor ?? ""}`, () => api.proposals({ status, cursor }), { pollMs: 10_000 });
  const [open, setOpen] = useState<string | undefined>(query.get("open") ?? undefined);
  const tz = useTimeZone();

  return (
    <>
      <PageHeader title="Proposals" subtitle="Changes one agent proposes in another's domain; the owners respond, people decide the escalated ones." />
      <section className="panel" aria-labelledby="proposal-list-title">
        <div className="panel-head">
          <h2 id="proposal-list-title">Proposals</h2>
          <label className="field inline">
            <span>Status</span>
            <select
              value={status}
              onChange={(e) => {
                setCursors([]);
                setQuery({ status: e.target.value || undefined });
              }}
            >
              <option value="">Any status</option>
              {STATUSES.map((s) => (
                <option key={s} value={s}>
                  {s}
                </option>
              ))}
            </select>
          </label>
        </div>
        <ErrorBanner error={list.error} />
        {!list.data ? (
          list.error ? null : <Loading />
        ) : list.data.items.length === 0 ? (
          <Empty title={status ? `No ${status} proposal.` : "No proposals yet."}>Agents propose with the propose tool, or over POST /v1/proposals.</Empty>
        ) : (
          <div className="table-wrap">
            <table>
              <thead>
                <tr>
                  <th scope="col">Title</th>
                  <th scope="col">Status</th>
                  <th scope="col">Domains</th>
                  <th scope="col">Proposed by</th>
                  <th scope="col">Created</th>
                  <th scope="col">Decides by</th>
                </tr>
              </thead>
              <tbody>
                {list.data.items.map((p: Proposal) => (
                  <Fragment key={p.id}>
                    <tr>
                      <td>
                        <button type="button" className="link-button" aria-expanded={open === p.id} onClick={() => setOpen(open === p.id ? undefined : p.id)}>
                          {p.title}
                        </button>
                      </td>
                      <td>
                        <Badge value={p.status} kind={p.status === "approved" ? "ok" : p.status === "rejected" ? "failed" : p.status === "escalated" ? "escalated" : "waiting"} />
                      </td>
                      <td>
                        {p.domains.map((d) => (
                          <code key={d}>{d} </code>
                        ))}
                      </td>
                      <td>
                        {p.proposer.type} <code className="small">{p.proposer.id}</code>
                      </td>
                      <td>
                        <TimeAgo iso={p.createdAt} />
                      </td>
                      <td>{p.status === "open" ? formatTime(p.escalateAt, tz) : <span className="muted">—</span>}</td>
                    </tr>
                    {open === p.id ? (
                      <tr>
                        <td colSpan={6}>
                          <ProposalCard id={p.id} onDecided={list.reload} />
                        </td>
                      </tr>
                    ) : null}
                  </Fragment>
                ))}
              </tbody>
            </table>
          </div>
        )}
        <div className="form-actions">
          {cursors.length > 0 ? (
            <button type="button" onClick={() => setCursors(cursors.slice(0, -1))}>
              ← Newer
            </button>
          ) : null}
          {list.data?.nextCursor ? (
            <button type="button" onClick={() => setCursors([...cursors, list.data!.nextCursor!])}>
              Older →
            </button>
          ) : null}
        </div>
      </section>
    </>
  );
}

/** One proposal with its responses; approve or reject it while it is open or escalated. */
export function ProposalCard({ id, onDecided }: { id: string; onDecided(): Promise<void> }) {
  const p = useLoad(`proposal:${id}`, () => api.proposal(id));
  if (!p.data) return p.error ? <ErrorBanner error={p.error} /> : <Loading />;
  return (
    <ProposalView
      proposal={p.data}
      onDecided={async () => {
        await p.reload();
        await onDecided();
      }}
    />
  );
}

function ProposalView({ proposal: p, onDecided }: { proposal: ProposalDetail; onDecided(): Promise<void> }) {
  const { can } = useSession();
  const tz = useTimeZone();
  const [comment, setComment] = useState("");
  const action = useAction();
  const titleId = `proposal-${p.id}`;
  const decide = async (decision: "approve" | "reject") => {
    if (await action.run(() => api.decideProposal(p.id, decision, comment.trim() || undefined))) await onDecided();
  };
  const undecided = p.status === "open" || p.status === "escalated";
  return (
    <article className="card proposal" aria-labelledby={titleId}>
      <h3 id={titleId} className="task-title">
        {p.title} <Badge value={p.status} kind={p.status === "approved" ? "ok" : p.status === "rejected" ? "failed" : p.status === "escalated" ? "escalated" : "waiting"} />
      </h3>
      {p.body ? <p className="prewrap">{p.body}</p> : null}
      <dl className="facts compact">
        <dt>Domains</dt>
        <dd>
          {p.domains.map((d) => (
            <code key={d}>{d} </code>
          ))}
        </dd>
        <dt>Proposed by</dt>
        <dd>
          {p.proposer.type} <code>{p.proposer.id}</code> · <TimeAgo iso={p.createdAt} />
        </dd>
        {undecided ? (
          <>
            <dt>Approves</dt>
            <dd>without a block by {formatTime(p.approveAt, tz)}</dd>
            <dt>Escalates</dt>
            <dd>{p.escalatedAt ? <>escalated <TimeAgo iso={p.escalatedAt} /></> : `if undecided by ${formatTime(p.escalateAt, tz)}`}</dd>
          </>
        ) : (
          <>
            <dt>Decided</dt>
            <dd>
              <TimeAgo iso={p.decidedAt} />
              {p.decisionReason ? ` · ${REASON[p.decisionReason] ?? p.decisionReason}` : ""}
              {p.decisionComment ? ` · “${p.decisionComment}”` : ""}
            </dd>
          </>
        )}
        {p.actionError ? (
          <>
            <dt>Action failed</dt>
            <dd className="error-text">{p.actionError}</dd>
          </>
        ) : null}
      </dl>
      {p.action ? (
        <details>
          <summary>What approving does ({p.action.type.replaceAll("_", " ")})</summary>
          <CodeBlock value={p.action} label="The proposal's action" />
        </details>
      ) : null}
      <h4>Responses</h4>
      {p.responses.length === 0 ? (
        <p className="muted small">No agent owns these domains, so nobody was asked.</p>
      ) : (
        <ul className="attention" aria-label={`Responses to ${p.title}`}>
          {p.responses.map((r) => (
            <li key={r.agentId}>
              {r.stance ? <Badge value={r.stance} kind={STANCE_KIND[r.stance]} /> : <Badge value="no answer yet" kind="waiting" />}
              <Link href={`/agents/${r.agent}`}>{r.agent}</Link>
              <span className="muted">
                {r.comment ? `“${r.comment}” · ` : ""}
                {r.respondedAt ? <TimeAgo iso={r.respondedAt} /> : "asked"}
              </span>
            </li>
          ))}
        </ul>
      )}
      <ErrorBanner error={action.error} onDismiss={action.clear} />
      {undecided && can("write") ? (
        <form
          className="decide"
          aria-label={`Decide ${p.title}`}
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
              Approve proposal
            </button>
            <button type="button" className="danger" disabled={action.busy} onClick={() => void decide("reject")}>
              Reject
            </button>
          </div>
        </form>
      ) : null}
    </article>
  );
}
