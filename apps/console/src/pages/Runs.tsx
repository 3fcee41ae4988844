import { useState } from "react";
import { api, type Run } from "../api";
import { Badge, Empty, ErrorBanner, LiveBadge, Loading, PageHeader, TimeAgo, useTitle } from "../components";
import { duration, number } from "../format";
import { useLoad, useNow } from "../hooks";
import { Link, setQuery, useLocation } from "../router";
import { useAgentName, useSession } from "../session";

const POLL_MS = 3000;
const STATUSES = ["running", "waiting", "succeeded", "failed", "cancelled"];

export const runDuration = (r: Run, now: number) =>
  r.startedAt ? (r.endedAt ? new Date(r.endedAt).getTime() : now) - new Date(r.startedAt).getTime() : null;

export function RunsPage() {
  useTitle("Runs");
  const { query } = useLocation();
  const agent = query.get("agent") ?? "";
  const status = query.get("status") ?? "";
  const [pages, setPages] = useState(1);
  const { agentsById } = useSession();
  const agentName = useAgentName();
  const now = useNow(1000);
  const runs = useLoad(
    `runs:${agent}:${status}:${pages}`,
    async () => {
      const items: Run[] = [];
      let cursor: string | undefined;
      let more = false;
      for (let i = 0; i < pages; i++) {
        const p = await api.runs({ agent, status, limit: 50, cursor });
        items.push(...p.items);
        more = p.nextCursor !== null;
        if (!p.nextCursor) break;
        cursor = p.nextCursor;
      }
      return { items, more };
    },
    { pollMs: POLL_MS },
  );
  const agents = [...agentsById.values()].sort((a, b) => a.name.localeCompare(b.name));

  return (
    <>
      <PageHeader
        title="Runs"
        subtitle="Every wake of an agent is a run; open one to see its trace."
        actions={<LiveBadge everyMs={POLL_MS} updatedAt={runs.updatedAt} loading={runs.loading} />}
      />
      <search className="filters">
        <label className="field inline">
          <span>Agent</span>
          <select value={agent} onChange={(e) => setQuery({ agent: e.target.value || undefined })}>
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
            <option value="">Any</option>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </label>
      </search>
      <ErrorBanner error={runs.error} />
      {!runs.data ? (
        runs.error ? null : <Loading />
      ) : runs.data.items.length === 0 ? (
        <Empty title={agent || status ? "No run matches these filters." : "No runs yet."}>Agents run when they get a task or a message, or on their schedule.</Empty>
      ) : (
        <div className="table-wrap">
          <table>
            <thead>
              <tr>
                <th scope="col">Status</th>
                <th scope="col">Agent</th>
                <th scope="col">Trigger</th>
                <th scope="col">Model</th>
                <th scope="col" className="num">
                  Steps
                </th>
                <th scope="col" className="num">
                  Tokens in / out
                </th>
                <th scope="col">Started</th>
                <th scope="col" className="num">
                  Duration
                </th>
              </tr>
            </thead>
            <tbody>
              {runs.data.items.map((r) => (
                <tr key={r.id}>
                  <td>
                    <Link href={`/runs/${r.id}`} aria-label={`Trace of run ${r.id}`}>
                      <Badge value={r.status} />
                    </Link>
                  </td>
                  <td>
                    <Link href={`/runs/${r.id}`}>{r.agent ?? agentName(r.agentId)}</Link>
                    {r.parentRunId ? <div className="muted small">sub-agent run</div> : null}
                  </td>
                  <td>{r.taskId ? <Link href={`/tasks/${r.taskId}`}>{r.trigger}</Link> : r.trigger}</td>
                  <td>{r.model ? <code>{r.model}</code> : <span className="muted">—</span>}</td>
                  <td className="num">{r.stepCount}</td>
                  <td className="num">
                    {number(r.inputTokens)} / {number(r.outputTokens)}
                  </td>
                  <td>
                    <TimeAgo iso={r.startedAt ?? r.createdAt} />
                  </td>
                  <td className="num">{duration(runDuration(r, now))}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {runs.data.more ? (
            <p>
              <button type="button" onClick={() => setPages((p) => p + 1)}>
                Show older runs
              </button>
            </p>
          ) : null}
        </div>
      )}
      <p className="muted small">Running and waiting runs are in progress; a waiting run holds no worker while it waits for a sub-agent.</p>
    </>
  );
}
