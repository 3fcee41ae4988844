import { type FormEvent, useState } from "react";
import { api, type Policy } from "../api";
import { Badge, ConfirmButton, Empty, ErrorBanner, Loading, PageHeader, useTitle } from "../components";
import { duration } from "../format";
import { useAction, useLoad } from "../hooks";
import { Link } from "../router";
import { useSession } from "../session";

const DECISION_KIND: Record<Policy["decision"], string> = { allow: "ok", deny: "failed", require_approval: "waiting" };

/** What a policy matches, in words. */
function describeMatch(m: Policy["match"]): string {
  const parts = [m.tool ? `tool ${m.tool}` : null, m.sideEffect ? `${m.sideEffect} tools` : null, m.actionValueUsdGt !== null ? `value over $${m.actionValueUsdGt}` : null].filter(Boolean);
  return parts.length ? parts.join(", ") : "every tool call";
}

/**
 * Tool-call policies: allow, deny or require a person's approval, by tool (glob), side
 * effect and action value, for the tenant or one agent. Admins change them; everyone reads.
 */
export function PoliciesPage() {
  useTitle("Policies");
  const { can } = useSession();
  const policies = useLoad("policies", () => api.policies());
  const [creating, setCreating] = useState(false);
  const action = useAction();
  const admin = can("admin");

  return (
    <>
      <PageHeader
        title="Policies"
        subtitle={
          <>
            Rules on agents' tool calls: allow, deny, or hold for a person's approval in the <Link href="/inbox">Inbox</Link>.
          </>
        }
        actions={
          admin && !creating ? (
            <button type="button" className="primary" onClick={() => setCreating(true)}>
              New policy
            </button>
          ) : null
        }
      />
      {creating ? (
        <section className="panel" aria-labelledby="new-policy-title">
          <h2 id="new-policy-title">New policy</h2>
          <PolicyForm
            onDone={async (saved) => {
              setCreating(false);
              if (saved) await policies.reload();
            }}
          />
        </section>
      ) : null}
      <section className="panel" aria-labelledby="policies-title">
        <h2 id="policies-title">Policies</h2>
        <ErrorBanner error={policies.error} />
        <ErrorBanner error={action.error} onDismiss={action.clear} />
        {!policies.data ? (
          policies.error ? null : <Loading />
        ) : policies.data.length === 0 ? (
          <Empty title="No policies.">Without one, tool calls run unless an agent's descriptor asks for approval (spec.approval).</Empty>
        ) : (
          <div className="table-wrap">
            <table aria-label="Policies">
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Applies to</th>
                  <th scope="col">Matches</th>
                  <th scope="col">Decision</th>
                  <th scope="col">Priority</th>
                  {admin ? (
                    <th scope="col">
                      <span className="sr-only">Actions</span>
                    </th>
                  ) : null}
                </tr>
              </thead>
              <tbody>
                {policies.data.map((p) => (
                  <tr key={p.id}>
                    <td>
                      <strong>{p.name}</strong>
                      {p.description ? <div className="muted small">{p.description}</div> : null}
                    </td>
                    <td>{p.agent ? <Link href={`/agents/${p.agent}`}>{p.agent}</Link> : "every agent"}</td>
                    <td>{describeMatch(p.match)}</td>
                    <td>
                      <Badge value={p.decision} kind={DECISION_KIND[p.decision]} />
                      {p.decision === "require_approval" && p.approvalExpiresSeconds ? (
                        <div className="muted small">expires after {duration(p.approvalExpiresSeconds * 1000)}</div>
                      ) : null}
                    </td>
                    <td className="num">{p.priority}</td>
                    {admin ? (
                      <td>
                        <ConfirmButton
                          label="Delete"
                          question={`Delete ${p.name}?`}
                          confirmLabel="Yes, delete"
                          busy={action.busy}
                          onConfirm={async () => {
                            if (await action.run(() => api.deletePolicy(p.id))) await policies.reload();
                          }}
                        />
                      </td>
                    ) : null}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
    </>
  );
}

function PolicyForm({ onDone }: { onDone(saved: boolean): Promise<void> }) {
  const { agentsById } = useSession();
  const agents = [...agentsById.values()].filter((a) => a.status !== "retired").sort((a, b) => a.name.localeCompare(b.name));
  const [name, setName] = useState("");
  const [agent, setAgent] = useState("");
  const [tool, setTool] = useState("");
  const [sideEffect, setSideEffect] = useState("");
  const [valueOver, setValueOver] = useState("");
  const [decision, setDecision] = useState<Policy["decision"]>("require_approval");
  const [priority, setPriority] = useState("100");
  const [expires, setExpires] = useState("");
  const [description, setDescription] = useState("");
  const action = useAction();

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const match = {
      ...(tool.trim() ? { tool: tool.trim() } : {}),
      ...(sideEffect ? { sideEffect } : {}),
      ...(valueOver.trim() ? { actionValueUsdGt: Number(valueOver) } : {}),
    };
    const body = {
      name: name.trim(),
      ...(agent ? { agent } : {}),
      match,
      decision,
      priority: Number(priority),
      ...(decision === "require_approval" && expires.trim() ? { approvalExpiresIn: expires.trim() } : {}),
      ...(description.trim() ? { description: description.trim() } : {}),
    };
    if (await action.run(() => api.createPolicy(body))) await onDone(true);
  };

  return (
    <form onSubmit={submit} className="grid-form" aria-label="New policy">
      <label className="field">
        <span>Name</span>
        <input required maxLength={100} value={name} onChange={(e) => setName(e.target.value)} placeholder="ask-before-payments" />
      </label>
      <label className="field">
        <span>Applies to</span>
        <select value={agent} onChange={(e) => setAgent(e.target.value)}>
          <option value="">Every agent</option>
          {agents.map((a) => (
            <option key={a.id} value={a.name}>
              {a.name}
            </option>
          ))}
        </select>
      </label>
      <label className="field">
        <span>Tool (glob on its ref)</span>
        <input maxLength={500} value={tool} onChange={(e) => setTool(e.target.value)} placeholder="create_task, mcp://gateway/github/*" />
      </label>
      <label className="field">
        <span>Side effect</span>
        <select value={sideEffect} onChange={(e) => setSideEffect(e.target.value)}>
          <option value="">Any</option>
          <option value="external">External (acts outside Bosun)</option>
          <option value="internal">Internal</option>
        </select>
      </label>
      <label className="field">
        <span>Action value over (US$)</span>
        <input type="number" min={0} step="0.000001" value={valueOver} onChange={(e) => setValueOver(e.target.value)} />
      </label>
      <label className="field">
        <span>Decision</span>
        <select value={decision} onChange={(e) => setDecision(e.target.value as Policy["decision"])}>
          <option value="require_approval">Require a person's approval</option>
          <option value="deny">Deny</option>
          <option value="allow">Allow</option>
        </select>
      </label>
      <label className="field">
        <span>Priority (lower first)</span>
        <input required type="number" min={0} max={10_000} step={1} value={priority} onChange={(e) => setPriority(e.target.value)} />
      </label>
      <label className="field">
        <span>Approval expires after</span>
        <input value={expires} disabled={decision !== "require_approval"} onChange={(e) => setExpires(e.target.value)} placeholder="24h (default)" />
      </label>
      <label className="field span-2">
        <span>Description</span>
        <input maxLength={2000} value={description} onChange={(e) => setDescription(e.target.value)} />
      </label>
      <div className="span-2">
        <ErrorBanner error={action.error} onDismiss={action.clear} />
        <div className="form-actions">
          <button type="submit" className="primary" disabled={action.busy}>
            {action.busy ? "Saving…" : "Create policy"}
          </button>
          <button type="button" onClick={() => void onDone(false)} disabled={action.busy}>
            Cancel
          </button>
        </div>
      </div>
    </form>
  );
}
