import { Fragment, type FormEvent, useState } from "react";
import { type AuditEvent, type AuditVerification, api } from "../api";
import { CodeBlock, Empty, ErrorBanner, Loading, PageHeader, useTitle } from "../components";
import { formatTime, number, useTimeZone } from "../format";
import { useAction, useLoad } from "../hooks";
import { Link, setQuery, useLocation } from "../router";
import { useSession } from "../session";

const FILTERS = ["actorType", "actorId", "targetType", "targetId", "action", "from", "to"] as const;
type Filter = (typeof FILTERS)[number];
const ACTOR_TYPES = ["user", "api_key", "agent", "system"];

/** `datetime-local` values are the browser's local time; the API takes ISO instants. */
const toIso = (local: string) => {
  if (!local) return undefined;
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? local : d.toISOString();
};
const toLocal = (iso: string | null) => {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
};

/** Links from an audit target to its console page, where there is one. */
function targetHref(type: string, id: string): string | null {
  switch (type) {
    case "task":
      return `/tasks/${id}`;
    case "run":
      return `/runs/${id}`;
    default:
      return null;
  }
}

/**
 * The tenant's audit log (admins): filter by actor, target, action (exact or `prefix*`)
 * and time; page back through it; verify the hash chain and see the first broken link.
 */
export function AuditPage() {
  useTitle("Audit");
  const { can } = useSession();
  const { query } = useLocation();
  const tz = useTimeZone();
  const filters = Object.fromEntries(FILTERS.map((f) => [f, query.get(f) ?? ""])) as Record<Filter, string>;
  const [draft, setDraft] = useState<Record<Filter, string>>({ ...filters, from: toLocal(filters.from), to: toLocal(filters.to) });
  const [cursors, setCursors] = useState<string[]>([]);
  const cursor = cursors.at(-1);
  const key = `audit:${FILTERS.map((f) => filters[f]).join("|")}:${cursor ?? ""}`;
  const events = useLoad(key, () => api.audit({ ...filters, cursor }), { enabled: can("admin") });
  const [open, setOpen] = useState<string>();
  const verify = useAction();
  const [verdict, setVerdict] = useState<AuditVerification>();

  if (!can("admin")) {
    return (
      <>
        <PageHeader title="Audit" />
        <Empty title="The audit log is for admins.">Ask an owner or admin of this tenant.</Empty>
      </>
    );
  }

  const apply = (e: FormEvent) => {
    e.preventDefault();
    setCursors([]);
    setQuery({ ...draft, from: toIso(draft.from), to: toIso(draft.to) });
  };
  const clear = () => {
    setCursors([]);
    setDraft({ actorType: "", actorId: "", targetType: "", targetId: "", action: "", from: "", to: "" });
    setQuery(Object.fromEntries(FILTERS.map((f) => [f, undefined])));
  };
  const filtered = FILTERS.some((f) => filters[f]);
  const field = (f: Filter, label: string, props: Record<string, unknown> = {}) => (
    <label className="field">
      <span>{label}</span>
      <input value={draft[f]} onChange={(e) => setDraft({ ...draft, [f]: e.target.value })} {...props} />
    </label>
  );

  return (
    <>
      <PageHeader
        title="Audit"
        subtitle="Every change and external action, hash-chained: who did what to what, and when."
        actions={
          <button
            type="button"
            className="primary"
            disabled={verify.busy}
            onClick={async () => {
              setVerdict(undefined);
              const v = await verify.run(() => api.verifyAudit());
              if (v) setVerdict(v);
            }}
          >
            {verify.busy ? "Verifying…" : "Verify chain"}
          </button>
        }
      />
      <ErrorBanner error={verify.error} onDismiss={verify.clear} />
      {verdict ? <Verdict v={verdict} onDismiss={() => setVerdict(undefined)} /> : null}

      <section className="panel" aria-labelledby="audit-filter-title">
        <h2 id="audit-filter-title">Filter</h2>
        <form className="filters audit-filters" onSubmit={apply} aria-label="Filter the audit log">
          <label className="field">
            <span>Actor type</span>
            <select value={draft.actorType} onChange={(e) => setDraft({ ...draft, actorType: e.target.value })}>
              <option value="">Any</option>
              {ACTOR_TYPES.map((t) => (
                <option key={t} value={t}>
                  {t.replace("_", " ")}
                </option>
              ))}
            </select>
          </label>
          {field("actorId", "Actor id", { placeholder: "usr_…, key_…, agt_…", maxLength: 200 })}
          {field("action", "Action", { placeholder: "task.create or task.*", maxLength: 200 })}
          {field("targetType", "Target type", { placeholder: "task, agent, approval…", maxLength: 100 })}
          {field("targetId", "Target id", { maxLength: 200 })}
          {field("from", "From (your local time)", { type: "datetime-local" })}
          {field("to", "To (your local time)", { type: "datetime-local" })}
          <div className="form-actions">
            <button type="submit" className="primary">
              Apply filters
            </button>
            {filtered ? (
              <button type="button" onClick={clear}>
                Clear
              </button>
            ) : null}
          </div>
        </form>
      </section>

      <section className="panel" aria-labelledby="audit-events-title">
        <h2 id="audit-events-title">Events</h2>
        <ErrorBanner error={events.error} />
        {!events.data ? (
          events.error ? null : <Loading />
        ) : events.data.items.length === 0 ? (
          <Empty title={filtered ? "No event matches these filters." : "No audit events yet."} />
        ) : (
          <div className="table-wrap">
            <table aria-label="Audit events">
              <thead>
                <tr>
                  <th scope="col">#</th>
                  <th scope="col">When</th>
                  <th scope="col">Actor</th>
                  <th scope="col">Action</th>
                  <th scope="col">Target</th>
                  <th scope="col">
                    <span className="sr-only">Details</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {events.data.items.map((e: AuditEvent) => {
                  const href = targetHref(e.target.type, e.target.id);
                  return (
                    <Fragment key={e.id}>
                      <tr>
                        <td className="num">{e.seq}</td>
                        <td>
                          <span title={formatTime(e.createdAt, tz, true)}>{formatTime(e.createdAt, tz, true)}</span>
                        </td>
                        <td>
                          {e.actor.type.replace("_", " ")} <code className="small">{e.actor.id}</code>
                        </td>
                        <td>
                          <code>{e.action}</code>
                        </td>
                        <td>
                          {e.target.type} {href ? <Link href={href}>{e.target.id}</Link> : <code className="small">{e.target.id}</code>}
                        </td>
                        <td>
                          <button type="button" className="small-button" aria-expanded={open === e.id} onClick={() => setOpen(open === e.id ? undefined : e.id)}>
                            {open === e.id ? "Hide" : "Details"}
                            <span className="sr-only"> of event {e.seq}</span>
                          </button>
                        </td>
                      </tr>
                      {open === e.id ? (
                        <tr>
                          <td colSpan={6}>
                            <div className="columns">
                              <div>
                                <h4>Before</h4>
                                <CodeBlock value={e.before ?? null} label="Before" />
                              </div>
                              <div>
                                <h4>After</h4>
                                <CodeBlock value={e.after ?? null} label="After" />
                              </div>
                            </div>
                            <p className="muted small">
                              {e.requestId ? (
                                <>
                                  Request <code>{e.requestId}</code> ·{" "}
                                </>
                              ) : null}
                              hash <code>{e.hash.slice(0, 16)}…</code> · previous <code>{e.prevHash.slice(0, 16)}…</code>
                            </p>
                          </td>
                        </tr>
                      ) : null}
                    </Fragment>
                  );
                })}
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
          {events.data?.nextCursor ? (
            <button type="button" onClick={() => setCursors([...cursors, events.data!.nextCursor!])}>
              Older →
            </button>
          ) : null}
          <span className="muted small">{cursors.length > 0 ? `page ${cursors.length + 1}` : ""}</span>
        </div>
      </section>
    </>
  );
}

function Verdict({ v, onDismiss }: { v: AuditVerification; onDismiss(): void }) {
  const b = v.firstBroken;
  return (
    <div className={v.ok ? "notice" : "error"} role={v.ok ? "status" : "alert"}>
      {v.ok ? (
        <p>
          <strong>The chain is intact.</strong> {number(v.checked)} events checked, up to #{v.head.seq} (<code>{v.head.hash.slice(0, 16)}…</code>).
        </p>
      ) : (
        <>
          <p>
            <strong>The chain is broken at #{b?.seq ?? "?"}</strong>
            {b?.id ? (
              <>
                {" "}
                (event <code>{b.id}</code>)
              </>
            ) : null}
            : {b ? b.reason.replaceAll("_", " ") : "unknown reason"}. {number(v.checked)} events checked.
          </p>
          {b ? (
            <p className="small">
              expected <code>{b.expected}</code>, found <code>{b.actual}</code>
            </p>
          ) : null}
        </>
      )}
      <button type="button" className="link-button" onClick={onDismiss}>
        Dismiss
      </button>
    </div>
  );
}
