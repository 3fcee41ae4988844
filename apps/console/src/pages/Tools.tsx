import { type FormEvent, useState } from "react";
import { api, type McpRefreshResult, type McpServer, type McpTool } from "../api";
import { Badge, CodeBlock, Empty, ErrorBanner, Loading, PageHeader, TimeAgo, useTitle } from "../components";
import { usd } from "../format";
import { useAction, useLoad } from "../hooks";
import { setQuery, useLocation } from "../router";
import { useSession } from "../session";

/** Splits an argument line on spaces, keeping "quoted parts" together. */
function splitArgs(s: string): string[] {
  return [...s.matchAll(/"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2] ?? "");
}

/**
 * MCP servers behind the tool gateway and the catalogue they feed: register a server,
 * refresh its tool list (a changed schema is a new version) and look at each tool's versions.
 */
export function ToolsPage() {
  useTitle("Tools");
  const { can } = useSession();
  const { query } = useLocation();
  const selected = query.get("server") ?? undefined;
  const servers = useLoad("mcp-servers", () => api.mcpServers());
  const [creating, setCreating] = useState(false);
  const [refreshed, setRefreshed] = useState<McpRefreshResult>();
  const action = useAction();
  const admin = can("admin");

  const refresh = async (name: string) => {
    setRefreshed(undefined);
    const r = await action.run(() => api.refreshMcpServer(name));
    await servers.reload();
    if (r) {
      setRefreshed(r);
      setQuery({ server: name });
    }
  };

  return (
    <>
      <PageHeader
        title="Tools"
        subtitle="MCP servers behind the gateway, and every version of the tools they offer agents."
        actions={
          admin && !creating ? (
            <button type="button" className="primary" onClick={() => setCreating(true)}>
              Register a server
            </button>
          ) : null
        }
      />
      {creating ? (
        <section className="panel" aria-labelledby="new-server-title">
          <h2 id="new-server-title">Register an MCP server</h2>
          <ServerForm
            onDone={async (created) => {
              setCreating(false);
              if (created) {
                await servers.reload();
                setQuery({ server: created.name });
              }
            }}
          />
        </section>
      ) : null}

      <section className="panel" aria-labelledby="servers-title">
        <h2 id="servers-title">MCP servers</h2>
        <ErrorBanner error={servers.error} />
        <ErrorBanner error={action.error} onDismiss={action.clear} />
        {refreshed ? (
          <div className="notice" role="status">
            Refreshed {refreshed.server.name}: {refreshed.added.length} added, {refreshed.changed.length} changed, {refreshed.unchanged.length} unchanged,{" "}
            {refreshed.removed.length} removed.
            <button type="button" className="link-button" onClick={() => setRefreshed(undefined)}>
              Dismiss
            </button>
          </div>
        ) : null}
        {!servers.data ? (
          servers.error ? null : <Loading />
        ) : servers.data.length === 0 ? (
          <Empty title="No MCP server registered.">{admin ? "Register one above: a stdio command or an HTTP URL." : "An admin registers them."}</Empty>
        ) : (
          <div className="table-wrap">
            <table aria-label="MCP servers">
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Transport</th>
                  <th scope="col">Command or URL</th>
                  <th scope="col">Status</th>
                  <th scope="col">Tools listed</th>
                  <th scope="col">
                    <span className="sr-only">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {servers.data.map((s: McpServer) => (
                  <tr key={s.id} aria-current={selected === s.name ? "true" : undefined}>
                    <td>
                      <strong>{s.name}</strong>
                      {s.secretNames.length ? <div className="muted small">secrets: {s.secretNames.join(", ")}</div> : null}
                    </td>
                    <td>{s.transport}</td>
                    <td>
                      <code className="small">{s.transport === "stdio" ? [s.command, ...s.args].join(" ") : s.url}</code>
                    </td>
                    <td>
                      <Badge value={s.status} kind={s.status === "active" ? "ok" : "paused"} />
                      {s.lastError ? <div className="error-text small">{s.lastError}</div> : null}
                    </td>
                    <td>
                      <TimeAgo iso={s.lastListedAt} />
                    </td>
                    <td>
                      <span className="row-actions">
                        <button type="button" onClick={() => setQuery({ server: selected === s.name ? undefined : s.name })} aria-pressed={selected === s.name}>
                          Tools<span className="sr-only"> of {s.name}</span>
                        </button>
                        {admin ? (
                          <button type="button" disabled={action.busy} onClick={() => void refresh(s.name)}>
                            Refresh<span className="sr-only"> {s.name}</span>
                          </button>
                        ) : null}
                      </span>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>

      {selected ? <ServerTools key={`${selected}:${refreshed?.server.updatedAt ?? ""}`} server={selected} /> : null}
    </>
  );
}

function ServerTools({ server }: { server: string }) {
  const tools = useLoad(`mcp-tools:${server}`, () => api.mcpTools(server));
  const [showOld, setShowOld] = useState(false);
  const [open, setOpen] = useState<string>();
  const list = (tools.data ?? []).filter((t) => showOld || t.current);
  return (
    <section className="panel" aria-labelledby="tools-title">
      <div className="panel-head">
        <h2 id="tools-title">Tools of {server}</h2>
        <label className="check">
          <input type="checkbox" checked={showOld} onChange={(e) => setShowOld(e.target.checked)} /> Show older versions
        </label>
      </div>
      <ErrorBanner error={tools.error} />
      {!tools.data ? (
        tools.error ? null : <Loading />
      ) : list.length === 0 ? (
        <Empty title="No tools listed yet.">Refresh the server to list its tools.</Empty>
      ) : (
        <div className="table-wrap">
          <table aria-label={`Tools of ${server}`}>
            <thead>
              <tr>
                <th scope="col">Tool</th>
                <th scope="col">Version</th>
                <th scope="col">Side effect</th>
                <th scope="col">Fee per call</th>
                <th scope="col">Schema</th>
                <th scope="col">Seen</th>
              </tr>
            </thead>
            <tbody>
              {list.map((t: McpTool) => {
                const key = `${t.name}@${t.version}`;
                return (
                  <tr key={key}>
                    <td>
                      <strong>{t.name}</strong>
                      <div className="muted small">
                        <code>{t.ref}</code>
                      </div>
                      {t.description ? <div className="small">{t.description}</div> : null}
                    </td>
                    <td>
                      v{t.version} {t.current ? <Badge value="current" kind="ok" /> : <Badge value="older" kind="waiting" />}
                    </td>
                    <td>{t.sideEffect}</td>
                    <td className="num">{usd(t.feeMicros)}</td>
                    <td>
                      <button type="button" className="small-button" aria-expanded={open === key} onClick={() => setOpen(open === key ? undefined : key)}>
                        <code>{t.schemaHash.slice(0, 10)}</code>
                        <span className="sr-only"> input schema of {key}</span>
                      </button>
                      {open === key ? <CodeBlock value={t.inputSchema} label={`Input schema of ${key}`} /> : null}
                    </td>
                    <td className="small">
                      first <TimeAgo iso={t.firstSeenAt} />, last <TimeAgo iso={t.lastSeenAt} />
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

function ServerForm({ onDone }: { onDone(created: McpServer | undefined): Promise<void> }) {
  const [name, setName] = useState("");
  const [transport, setTransport] = useState<"stdio" | "http">("stdio");
  const [command, setCommand] = useState("");
  const [args, setArgs] = useState("");
  const [url, setUrl] = useState("");
  const action = useAction();
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const body = transport === "stdio" ? { name, transport, command, ...(args.trim() ? { args: splitArgs(args) } : {}) } : { name, transport, url };
    const created = await action.run(() => api.createMcpServer(body));
    if (created) await onDone(created);
  };
  return (
    <form onSubmit={submit} className="grid-form" aria-label="Register an MCP server">
      <div>
        <label className="field">
          <span>Name</span>
          <input required maxLength={32} value={name} onChange={(e) => setName(e.target.value)} aria-describedby="server-name-help" />
        </label>
        <span id="server-name-help" className="muted small">
          lowercase letters, digits and dashes; tools become mcp://gateway/{name || "name"}/…
        </span>
      </div>
      <fieldset className="field">
        <legend>Transport</legend>
        <label className="check">
          <input type="radio" name="transport" checked={transport === "stdio"} onChange={() => setTransport("stdio")} /> stdio (a command)
        </label>
        <label className="check">
          <input type="radio" name="transport" checked={transport === "http"} onChange={() => setTransport("http")} /> Streamable HTTP (a URL)
        </label>
      </fieldset>
      {transport === "stdio" ? (
        <>
          <label className="field">
            <span>Command</span>
            <input required maxLength={500} value={command} onChange={(e) => setCommand(e.target.value)} placeholder="mcp-server-everything" />
          </label>
          <label className="field">
            <span>Arguments</span>
            <input value={args} onChange={(e) => setArgs(e.target.value)} placeholder='stdio "a quoted arg"' />
          </label>
        </>
      ) : (
        <label className="field span-2">
          <span>URL</span>
          <input required type="url" maxLength={2000} value={url} onChange={(e) => setUrl(e.target.value)} placeholder="https://mcp.example.com/mcp" />
        </label>
      )}
      <div className="span-2">
        <p className="muted small">Secrets (env vars or headers) are set over the API; they are stored encrypted and never shown.</p>
        <ErrorBanner error={action.error} onDismiss={action.clear} />
        <div className="form-actions">
          <button type="submit" className="primary" disabled={action.busy}>
            {action.busy ? "Registering…" : "Register server"}
          </button>
          <button type="button" onClick={() => void onDone(undefined)} disabled={action.busy}>
            Cancel
          </button>
        </div>
      </div>
    </form>
  );
}
