import { type FormEvent, useMemo, useState } from "react";
import { api } from "../api";
import { ErrorBanner, PageHeader, useTitle } from "../components";
import { formatTime } from "../format";
import { useAction, useNow } from "../hooks";
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
