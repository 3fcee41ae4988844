import type { Scope } from "@bosun/contracts";
import { type FormEvent, useState } from "react";
import { type ApiKey, api, type CreatedApiKey } from "../api";
import { Badge, ConfirmButton, CopyButton, Empty, ErrorBanner, Loading, PageHeader, TimeAgo, useTitle } from "../components";
import { formatTime, useTimeZone } from "../format";
import { useAction, useLoad } from "../hooks";
import { useAgentName, useSession } from "../session";

const SCOPES: Array<{ value: Scope; label: string; help: string }> = [
  { value: "read", label: "Read", help: "list and read everything" },
  { value: "write", label: "Write", help: "also create tasks, apply agents, send messages" },
  { value: "admin", label: "Admin", help: "also manage API keys and tenant settings" },
];

function keyState(k: ApiKey, now: number): "active" | "revoked" | "expired" {
  if (k.revokedAt) return "revoked";
  if (k.expiresAt && new Date(k.expiresAt).getTime() <= now) return "expired";
  return "active";
}

export function ApiKeysPage() {
  useTitle("API keys");
  const { can, me } = useSession();
  const keys = useLoad("api-keys", () => api.apiKeys(), { enabled: can("admin") });
  const [created, setCreated] = useState<CreatedApiKey>();
  const [showInactive, setShowInactive] = useState(false);
  const action = useAction();
  const agentName = useAgentName();
  const tz = useTimeZone();

  if (!can("admin")) {
    return (
      <>
        <PageHeader title="API keys" />
        <Empty title="Managing API keys needs an admin.">
          Your role in {me.tenant.name} is {me.role ?? "not set"}. Ask an owner or admin for a key.
        </Empty>
      </>
    );
  }

  const now = Date.now();
  const all = keys.data ?? [];
  const shown = all.filter((k) => showInactive || keyState(k, now) === "active");
  const inactive = all.length - all.filter((k) => keyState(k, now) === "active").length;

  return (
    <>
      <PageHeader title="API keys" subtitle="Keys for scripts, CI and agents. A key's secret is shown once, when it is created." />
      {created?.key ? (
        <section className="secret panel" role="status" aria-labelledby="secret-title">
          <h2 id="secret-title">Copy the key “{created.name}” now</h2>
          <p>This is the only time Bosun shows it. Store it in your secret manager; if it is lost, revoke it and create another.</p>
          <div className="secret-row">
            <code className="secret-value" data-testid="new-key-secret">
              {created.key}
            </code>
            <CopyButton text={created.key} />
          </div>
          <button type="button" onClick={() => setCreated(undefined)}>
            I have stored it
          </button>
        </section>
      ) : null}

      <CreateKeyForm
        onCreated={async (k) => {
          setCreated(k);
          await keys.reload();
        }}
      />

      <section className="panel" aria-labelledby="keys-title">
        <div className="panel-head">
          <h2 id="keys-title">Keys</h2>
          {inactive > 0 ? (
            <label className="check">
              <input type="checkbox" checked={showInactive} onChange={(e) => setShowInactive(e.target.checked)} /> Show revoked and expired ({inactive})
            </label>
          ) : null}
        </div>
        <ErrorBanner error={keys.error} />
        <ErrorBanner error={action.error} onDismiss={action.clear} />
        {!keys.data ? (
          keys.error ? null : <Loading />
        ) : shown.length === 0 ? (
          <Empty title="No active keys.">Create one above.</Empty>
        ) : (
          <div className="table-wrap">
            <table>
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Key</th>
                  <th scope="col">Scopes</th>
                  <th scope="col">Agent</th>
                  <th scope="col">Created</th>
                  <th scope="col">Last used</th>
                  <th scope="col">Expires</th>
                  <th scope="col">Status</th>
                  <th scope="col">
                    <span className="sr-only">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {shown.map((k) => {
                  const state = keyState(k, now);
                  return (
                    <tr key={k.id} className={state === "active" ? "" : "inactive"}>
                      <td>{k.name}</td>
                      <td>
                        <code>{k.prefix}…</code>
                      </td>
                      <td>{k.scopes.join(", ")}</td>
                      <td>{k.agentId ? agentName(k.agentId) : <span className="muted">—</span>}</td>
                      <td title={formatTime(k.createdAt, tz, true)}>{formatTime(k.createdAt, tz)}</td>
                      <td>{k.lastUsedAt ? <TimeAgo iso={k.lastUsedAt} /> : <span className="muted">never</span>}</td>
                      <td>{k.expiresAt ? formatTime(k.expiresAt, tz) : <span className="muted">never</span>}</td>
                      <td>
                        <Badge value={state} kind={state === "active" ? "active" : "retired"} />
                      </td>
                      <td>
                        {state === "active" ? (
                          <ConfirmButton
                            label="Revoke"
                            question={`Revoke “${k.name}”? It stops working at once.`}
                            confirmLabel="Yes, revoke"
                            busy={action.busy}
                            onConfirm={async () => {
                              if (await action.run(() => api.revokeApiKey(k.id))) await keys.reload();
                            }}
                          />
                        ) : null}
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        )}
      </section>
    </>
  );
}

function CreateKeyForm({ onCreated }: { onCreated(k: CreatedApiKey): Promise<void> }) {
  const { agentsById } = useSession();
  const agents = [...agentsById.values()].filter((a) => a.status !== "retired").sort((a, b) => a.name.localeCompare(b.name));
  const [name, setName] = useState("");
  const [scope, setScope] = useState<Scope>("read");
  const [agent, setAgent] = useState("");
  const [expires, setExpires] = useState("");
  const action = useAction();

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const k = await action.run(() =>
      api.createApiKey({
        name: name.trim(),
        scopes: [scope],
        ...(agent ? { agent } : {}),
        ...(expires ? { expiresAt: new Date(`${expires}T23:59:59Z`).toISOString() } : {}),
      }),
    );
    if (k) {
      setName("");
      setAgent("");
      setExpires("");
      await onCreated(k);
    }
  };

  return (
    <section className="panel" aria-labelledby="create-key-title">
      <h2 id="create-key-title">Create a key</h2>
      <form onSubmit={submit} className="grid-form">
        <label className="field">
          <span>Name</span>
          <input required maxLength={200} placeholder="ci-deploy" value={name} onChange={(e) => setName(e.target.value)} />
        </label>
        <label className="field">
          <span>Bind to an agent (optional)</span>
          <select value={agent} onChange={(e) => setAgent(e.target.value)} aria-describedby="agent-help">
            <option value="">No: a key for people and scripts</option>
            {agents.map((a) => (
              <option key={a.id} value={a.name}>
                {a.name}
              </option>
            ))}
          </select>
          <span id="agent-help" className="muted small">
            A bound key is the agent's own credential: it acts as that agent and cannot manage keys or agents.
          </span>
        </label>
        <fieldset className="field">
          <legend>Access</legend>
          {SCOPES.map((s) => (
            <label key={s.value} className="check">
              <input type="radio" name="scope" value={s.value} checked={scope === s.value} onChange={() => setScope(s.value)} /> <strong>{s.label}</strong>{" "}
              <span className="muted small">{s.help}</span>
            </label>
          ))}
        </fieldset>
        <label className="field">
          <span>Expires (optional, end of that day UTC)</span>
          <input type="date" value={expires} min={new Date().toISOString().slice(0, 10)} onChange={(e) => setExpires(e.target.value)} />
        </label>
        <div className="span-2">
          <ErrorBanner error={action.error} onDismiss={action.clear} />
          <div className="form-actions">
            <button type="submit" className="primary" disabled={action.busy}>
              {action.busy ? "Creating…" : "Create key"}
            </button>
          </div>
        </div>
      </form>
    </section>
  );
}
