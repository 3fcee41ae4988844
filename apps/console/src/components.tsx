/** Small shared pieces: errors, empty and loading states, badges, confirmations. */
import { type ReactNode, useEffect, useRef, useState } from "react";
import { ApiError, type Budget } from "./api";
import { formatTime, plural, pretty, relativeTime, usd, useTimeZone } from "./format";
import { useNow } from "./hooks";

/** A readable error: what went wrong, the machine code and the request id to quote. */
export function ErrorBanner({ error, onDismiss }: { error: unknown; onDismiss?: () => void }) {
  if (!error) return null;
  const e =
    error instanceof ApiError ? error : new ApiError(0, "CLIENT", error instanceof Error ? error.message : String(error), undefined);
  return (
    <div className="error" role="alert">
      <div className="error-head">
        <strong>{e.status === 0 ? "Something went wrong" : errorTitle(e)}</strong>
        <code className="error-code">{e.code}</code>
        {onDismiss ? (
          <button type="button" className="link-button error-dismiss" onClick={onDismiss} aria-label="Dismiss error">
            ✕
          </button>
        ) : null}
      </div>
      <p>{e.detail}</p>
      {e.issues.length > 0 ? (
        <ul className="error-issues">
          {e.issues.map((i) => (
            <li key={`${i.path}:${i.message}`}>
              <code>{i.path || "(body)"}</code> {i.message}
            </li>
          ))}
        </ul>
      ) : null}
      {e.requestId ? (
        <p className="muted small">
          Request id <code>{e.requestId}</code>
        </p>
      ) : null}
    </div>
  );
}

function errorTitle(e: ApiError): string {
  switch (e.code) {
    case "FORBIDDEN":
      return "You are not allowed to do this";
    case "NOT_FOUND":
      return "Not found";
    case "VALIDATION":
      return "Some values are not valid";
    case "CONFLICT":
      return "Conflict";
    case "UNAUTHORIZED":
      return "You are signed out";
    case "RATE_LIMITED":
      return "Too many requests";
    default:
      return e.status >= 500 ? "The server failed" : "The request was refused";
  }
}

export function Loading({ label = "Loading…" }: { label?: string }) {
  return (
    <p className="loading" aria-live="polite">
      <span className="spinner" aria-hidden="true" /> {label}
    </p>
  );
}

export function Empty({ title, children }: { title: string; children?: ReactNode }) {
  return (
    <div className="empty">
      <p className="empty-title">{title}</p>
      {children ? <div className="muted">{children}</div> : null}
    </div>
  );
}

export function Badge({ value, kind }: { value: string; kind?: string }) {
  return <span className={`badge badge-${kind ?? value}`}>{value.replaceAll("_", " ")}</span>;
}

/** A time shown relatively ("12 s ago") with the exact time, in the tenant's zone, on hover. */
export function TimeAgo({ iso }: { iso: string | null | undefined }) {
  const tz = useTimeZone();
  useNow(5000);
  if (!iso) return <span className="muted">—</span>;
  return (
    <time dateTime={iso} title={formatTime(iso, tz, true)}>
      {relativeTime(iso)}
    </time>
  );
}

/** "Live · refreshed every 3 s" with the time of the last answer. */
export function LiveBadge({ everyMs, updatedAt, loading }: { everyMs: number; updatedAt: number | undefined; loading: boolean }) {
  const now = useNow(1000);
  const age = updatedAt ? Math.max(0, Math.round((now - updatedAt) / 1000)) : undefined;
  return (
    <span className="live" title="This page polls the API for changes">
      <span className={`live-dot${loading ? " live-dot-busy" : ""}`} aria-hidden="true" />
      Live · refreshes every {Math.round(everyMs / 1000)} s{age !== undefined ? ` · updated ${age} s ago` : ""}
    </span>
  );
}

/**
 * A destructive action in two steps: the first press asks, the second does it. Inline
 * rather than window.confirm, so it is keyboard- and screen-reader-friendly.
 */
export function ConfirmButton({
  label,
  question,
  confirmLabel,
  onConfirm,
  busy,
  danger = true,
}: {
  label: string;
  question: string;
  confirmLabel?: string;
  onConfirm: () => void | Promise<void>;
  busy?: boolean;
  danger?: boolean;
}) {
  const [asking, setAsking] = useState(false);
  const confirmRef = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    if (asking) confirmRef.current?.focus();
  }, [asking]);
  if (!asking) {
    return (
      <button type="button" className={danger ? "danger" : ""} onClick={() => setAsking(true)} disabled={busy}>
        {label}
      </button>
    );
  }
  return (
    <span className="confirm">
      <span className="confirm-question">{question}</span>
      <button
        ref={confirmRef}
        type="button"
        className={danger ? "danger" : "primary"}
        disabled={busy}
        onClick={async () => {
          await onConfirm();
          setAsking(false);
        }}
      >
        {confirmLabel ?? label}
      </button>
      <button type="button" onClick={() => setAsking(false)} disabled={busy}>
        Cancel
      </button>
    </span>
  );
}

export function CopyButton({ text, label = "Copy" }: { text: string; label?: string }) {
  const [done, setDone] = useState<"copied" | "failed" | undefined>();
  return (
    <button
      type="button"
      onClick={async () => {
        try {
          await navigator.clipboard.writeText(text);
          setDone("copied");
        } catch {
          setDone("failed");
        }
        window.setTimeout(() => setDone(undefined), 2000);
      }}
    >
      {done === "copied" ? "Copied" : done === "failed" ? "Select and copy" : label}
    </button>
  );
}

/** JSON (or text) in a scrollable block. */
export function CodeBlock({ value, label }: { value: unknown; label?: string }) {
  const text = pretty(value);
  return (
    <pre className="code" title={label}>
      {text === "" ? <span className="muted">(empty)</span> : text}
    </pre>
  );
}

export function PageHeader({ title, subtitle, actions }: { title: ReactNode; subtitle?: ReactNode; actions?: ReactNode }) {
  return (
    <div className="page-header">
      <div>
        <h1>{title}</h1>
        {subtitle ? <p className="muted">{subtitle}</p> : null}
      </div>
      {actions ? <div className="page-actions">{actions}</div> : null}
    </div>
  );
}

/** Sets the document title ("Agents · Bosun"), so tabs and history entries are recognisable. */
export function useTitle(title: string) {
  useEffect(() => {
    document.title = `${title} · Bosun`;
  }, [title]);
}

/** A budget's amount in its unit: dollars or model calls. */
export function budgetAmount(b: Pick<Budget, "unit">, n: number): string {
  return b.unit === "usd_micros" ? usd(n) : plural(n, "call");
}

export const WINDOW_LABEL: Record<Budget["window"], string> = { invocation: "per run", hour: "per hour", day: "per day", month: "per month" };

/**
 * How much of a budget's current window is used: spent (solid) and reserved by calls in
 * flight (hatched), against the limit, with the alert thresholds as ticks. Per-run budgets
 * have no running window and say so.
 */
export function BudgetGauge({ budget: b }: { budget: Budget }) {
  if (!b.current) return <span className="muted small">checked on each run</span>;
  const { spent, reserved } = b.current;
  const pct = (n: number) => (b.limit > 0 ? Math.min(100, (n / b.limit) * 100) : n > 0 ? 100 : 0);
  const used = b.limit > 0 ? Math.round(((spent + reserved) / b.limit) * 100) : 0;
  const tone = used >= 100 ? "bad" : used >= 80 ? "warn" : "ok";
  const text = `${budgetAmount(b, spent)} of ${budgetAmount(b, b.limit)}${reserved > 0 ? ` (+${budgetAmount(b, reserved)} reserved)` : ""}`;
  return (
    <div className="gauge-wrap">
      <div className={`gauge gauge-${tone}`} role="img" aria-label={`${used} % used: ${text}`}>
        <span className="gauge-spent" style={{ width: `${pct(spent)}%` }} />
        <span className="gauge-reserved" style={{ width: `${Math.max(0, pct(spent + reserved) - pct(spent))}%` }} />
        {b.thresholds
          .filter((t) => t < 100)
          .map((t) => (
            <span key={t} className="gauge-tick" style={{ left: `${t}%` }} />
          ))}
      </div>
      <span className="gauge-text small">
        {text} · {used} %
      </span>
    </div>
  );
}

/**
 * How much of a bounded layer is used (memory tokens against their limit): a bar with the
 * numbers beside it, and its text as the bar's accessible name.
 */
export function UsageBar({ used, limit, unit = "tokens", label }: { used: number; limit: number; unit?: string; label: string }) {
  const pct = limit > 0 ? Math.round((used / limit) * 100) : used > 0 ? 100 : 0;
  const tone = pct >= 100 ? "bad" : pct >= 80 ? "warn" : "ok";
  const text = `${used.toLocaleString()} of ${limit.toLocaleString()} ${unit}`;
  return (
    <div className="gauge-wrap">
      <div className={`gauge gauge-${tone}`} role="img" aria-label={`${label}: ${pct} % used, ${text}`}>
        <span className="gauge-spent" style={{ width: `${Math.min(100, pct)}%` }} />
      </div>
      <span className="gauge-text small">
        {text} · {pct} %
      </span>
    </div>
  );
}

/** Tells the header's inbox count (and anything else listening) that the inbox changed. */
export const INBOX_CHANGED = "bosun:inbox-changed";
export const inboxChanged = () => window.dispatchEvent(new Event(INBOX_CHANGED));
