import type { AgentStatus } from "@bosun/contracts";
import { useState } from "react";
import { api } from "../api";
import { Badge, Empty, ErrorBanner, Loading, PageHeader, TimeAgo, useTitle } from "../components";
import { useLoad } from "../hooks";
import { Link, navigate, setQuery, useLocation } from "../router";
import { useSession } from "../session";
import { ApplyForm, DESCRIPTOR_TEMPLATE } from "./ApplyForm";

const STATUSES: AgentStatus[] = ["active", "paused", "shadow", "retired"];

export function AgentsPage() {
  useTitle("Agents");
  const { query } = useLocation();
  const status = query.get("status") ?? "";
  const [search, setSearch] = useState("");
  const [applying, setApplying] = useState(query.get("apply") === "1");
  const { can, refreshAgents } = useSession();
  const { data, error } = useLoad(`agents:${status}`, () => api.agents({ status }));

  const needle = search.trim().toLowerCase();
  const agents = (data?.items ?? []).filter(
    (a) => !needle || a.name.includes(needle) || a.owner.toLowerCase().includes(needle) || a.descriptor.spec.domains.some((d) => d.toLowerCase().includes(needle)),
  );

  return (
    <>
      <PageHeader
        title="Agents"
        subtitle="Every agent is declared by a descriptor; each change is a revision."
        actions={
          can("write") && !applying ? (
            <button type="button" className="primary" onClick={() => setApplying(true)}>
              Apply a descriptor
            </button>
          ) : null
        }
      />
      {applying ? (
        <section className="panel" aria-labelledby="apply-title">
          <h2 id="apply-title">Apply a descriptor</h2>
          <p className="muted">Paste a descriptor to create an agent or update one (matched by metadata.name).</p>
          <ApplyForm
            initial={DESCRIPTOR_TEMPLATE}
            onApplied={async (r) => {
              await refreshAgents();
              navigate(`/agents/${r.name}?applied=${r.changed ? r.revision : "same"}`);
            }}
            onCancel={() => setApplying(false)}
          />
        </section>
      ) : null}

      <search className="filters">
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
        <label className="field inline grow">
          <span>Search</span>
          <input type="search" placeholder="Name, owner or domain" value={search} onChange={(e) => setSearch(e.target.value)} />
        </label>
      </search>

      <ErrorBanner error={error} />
      {!data ? (
        error ? null : <Loading />
      ) : agents.length === 0 ? (
        <Empty title={data.items.length === 0 ? "No agents here yet." : "No agent matches these filters."}>
          {data.items.length === 0 && can("write") ? "Apply a descriptor to add your first agent." : null}
        </Empty>
      ) : (
        <div className="table-wrap">
          <table>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Status</th>
                <th scope="col">Owner</th>
                <th scope="col">Model</th>
                <th scope="col">Domains</th>
                <th scope="col">Schedule</th>
                <th scope="col">Revision</th>
                <th scope="col">Updated</th>
              </tr>
            </thead>
            <tbody>
              {agents.map((a) => (
                <tr key={a.id}>
                  <td>
                    <Link href={`/agents/${a.name}`}>
                      <strong>{a.name}</strong>
                    </Link>
                    {a.descriptor.metadata.description ? <div className="muted small">{a.descriptor.metadata.description}</div> : null}
                  </td>
                  <td>
                    <Badge value={a.status} />
                  </td>
                  <td>{a.owner}</td>
                  <td>
                    <code>{a.descriptor.spec.model.name}</code>
                  </td>
                  <td>{a.descriptor.spec.domains.join(", ") || <span className="muted">—</span>}</td>
                  <td>{a.descriptor.spec.schedule ? `every ${a.descriptor.spec.schedule.every}` : <span className="muted">on demand</span>}</td>
                  <td>{a.revision}</td>
                  <td>
                    <TimeAgo iso={a.updatedAt} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          {data.nextCursor ? <p className="muted small">Showing the first {data.items.length} agents.</p> : null}
        </div>
      )}
    </>
  );
}
