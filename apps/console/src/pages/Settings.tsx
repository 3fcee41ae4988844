import { type FormEvent, useMemo, useState } from "react";
import { api } from "../api";
import { Badge, Empty, ErrorBanner, Loading, PageHeader, TimeAgo, useTitle } from "../components";
import { formatTime } from "../format";
import { useAction, useLoad, useNow } from "../hooks";
import { useSession } from "../session";

function timeZones(current: string): string[] {
  let zones: string[] = [];
  try {
    zones = Intl.supportedValuesOf("timeZone");
  } catch {
    zones = [];
  }
  return [...new Set(["UTC", current, ...zones])].sort((a, b) => (a === "UTC" ? -1 : b === "UTC" ? 1 : a.localeCompare(b)));
}

export function SettingsPage() {
  useTitle("Settings");
  const { me, refresh, can } = useSession();
  const [name, setName] = useState(me.tenant.name);
  const [timeZone, setTimeZone] = useState(me.tenant.timeZone);
  const [saved, setSaved] = useState(false);
  const action = useAction();
  const zones = useMemo(() => timeZones(me.tenant.timeZone), [me.tenant.timeZone]);
  const now = useNow(1000);
  const admin = can("admin");
  const dirty = name.trim() !== me.tenant.name || timeZone !== me.tenant.timeZone;

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setSaved(false);
    const patch = {
      ...(name.trim() !== me.tenant.name ? { name: name.trim() } : {}),
      ...(timeZone !== me.tenant.timeZone ? { timeZone } : {}),
    };
    if (await action.run(() => api.updateTenant(patch))) {
      await refresh();
      setSaved(true);
    }
  };

  return (
    <>
      <PageHeader title="Settings" subtitle={`The tenant ${me.tenant.name} and your account.`} />
      <section className="panel" aria-labelledby="tenant-title">
        <h2 id="tenant-title">Tenant</h2>
        {!admin ? <p className="muted">Only an owner or admin can change these.</p> : null}
        <form onSubmit={submit} className="grid-form">
          <label className="field">
            <span>Name</span>
            <input required maxLength={200} value={name} disabled={!admin} onChange={(e) => setName(e.target.value)} />
          </label>
          <label className="field">
            <span>Time zone</span>
            <select value={timeZone} disabled={!admin} onChange={(e) => setTimeZone(e.target.value)} aria-describedby="tz-help">
              {zones.map((z) => (
                <option key={z} value={z}>
                  {z}
                </option>
              ))}
            </select>
            <span id="tz-help" className="muted small">
              The console shows times in this zone. Now there: <strong>{formatTime(new Date(now).toISOString(), timeZone, true)}</strong>
            </span>
          </label>
          <div className="span-2">
            <ErrorBanner error={action.error} onDismiss={action.clear} />
            {saved && !dirty ? (
              <p className="notice" role="status">
                Saved.
              </p>
            ) : null}
            {admin ? (
              <div className="form-actions">
                <button type="submit" className="primary" disabled={action.busy || !dirty}>
                  {action.busy ? "Saving…" : "Save"}
                </button>
              </div>
            ) : null}
          </div>
        </form>
        <p className="muted small">
          Tenant id <code>{me.tenant.id}</code> · created {formatTime(me.tenant.createdAt, me.tenant.timeZone)}
        </p>
      </section>
      {admin ? <DeploymentSection /> : null}
      <section className="panel" aria-labelledby="account-title">
        <h2 id="account-title">Your account</h2>
        <dl className="facts">
          <dt>Email</dt>
          <dd>{me.user?.email ?? "—"}</dd>
          <dt>Role here</dt>
          <dd>
            {me.role ?? "—"} <span className="muted">(scopes: {me.scopes.join(", ")})</span>
          </dd>
          <dt>Tenants</dt>
          <dd>
            <ul className="plain">
              {me.tenants.map((t) => (
                <li key={t.id}>
                  {t.name} <span className="muted">({t.role})</span>
                  {t.id === me.tenant.id ? <span className="muted"> · current</span> : null}
                </li>
              ))}
            </ul>
            {me.tenants.length > 1 ? <span className="muted small">Switch tenants from the menu at the top.</span> : null}
          </dd>
        </dl>
      </section>
    </>
  );
}

/**
 * What the deployment's workers report about themselves: SMTP and model providers are the
 * workers' configuration (their environment), so they are shown as reported, read-only.
 */
function DeploymentSection() {
  const { data, error, loading, reload } = useLoad("deployment", () => api.deployment(), { pollMs: 30_000 });
  const online = data?.workers.filter((w) => w.online) ?? [];
  return (
    <section className="panel" aria-labelledby="deployment-title">
      <h2 id="deployment-title">Deployment</h2>
      <p className="muted">Set on the worker processes (their environment), not per tenant; shown as the workers report it.</p>
      <ErrorBanner error={error} onDismiss={() => void reload()} />
      {!data ? (
        loading ? (
          <Loading label="Loading the deployment…" />
        ) : null
      ) : (
        <>
          <dl className="facts">
            <dt>Workers</dt>
            <dd data-testid="workers-online">
              {online.length === 0 ? <Badge value="no worker online" kind="warn" /> : <Badge value={`${online.length} online`} kind="ok" />}
              {data.note ? <span className="muted small"> {data.note}</span> : null}
            </dd>
            <dt>SMTP</dt>
            <dd data-testid="smtp-state">
              {!data.smtp ? (
                <span className="muted">unknown until a worker is online</span>
              ) : data.smtp.configured ? (
                <>
                  <Badge value="configured" kind="ok" />{" "}
                  {data.smtp.host ? (
                    <code>
                      {data.smtp.secure ? "smtps" : "smtp"}://{data.smtp.host}
                      {data.smtp.port ? `:${data.smtp.port}` : ""}
                    </code>
                  ) : null}
                  {data.smtp.from ? <span className="muted"> · from {data.smtp.from}</span> : null}
                </>
              ) : (
                <>
                  <Badge value="not configured" kind="warn" />{" "}
                  <span className="muted">budget alerts are listed but not emailed; set SMTP_URL on the worker.</span>
                </>
              )}
            </dd>
            <dt>Model providers</dt>
            <dd>
              {data.providers.length === 0 ? (
                <span className="muted">unknown until a worker is online</span>
              ) : (
                <ul className="plain" aria-label="Model providers">
                  {data.providers.map((p) => (
                    <li key={p.name} data-testid={`provider-${p.name}`}>
                      <strong>{p.name}</strong> {p.configured ? <Badge value="configured" kind="ok" /> : <Badge value="not configured" kind="warn" />}{" "}
                      <span className="muted small">{p.note}</span>
                    </li>
                  ))}
                </ul>
              )}
            </dd>
          </dl>
          {data.workers.length === 0 ? (
            <Empty title="No worker has reported yet.">Start one with npm run start:worker (or npm start).</Empty>
          ) : (
            <div className="table-wrap">
              <table aria-label="Workers">
                <thead>
                  <tr>
                    <th scope="col">Worker</th>
                    <th scope="col">State</th>
                    <th scope="col">Host</th>
                    <th scope="col">Version</th>
                    <th scope="col">Started</th>
                    <th scope="col">Last seen</th>
                  </tr>
                </thead>
                <tbody>
                  {data.workers.map((w) => (
                    <tr key={w.id}>
                      <td>
                        <code>{w.id}</code>
                      </td>
                      <td>{w.online ? <Badge value="online" kind="ok" /> : <Badge value="offline" kind="paused" />}</td>
                      <td>
                        {w.host} <span className="muted">pid {w.pid}</span>
                      </td>
                      <td>{w.version}</td>
                      <td>
                        <TimeAgo iso={w.startedAt} />
                      </td>
                      <td>
                        <TimeAgo iso={w.lastSeenAt} />
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </>
      )}
    </section>
  );
}
