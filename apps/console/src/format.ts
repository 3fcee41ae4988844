/** Formatting helpers. Times are shown in the tenant's time zone (Settings). */
import { createContext, useContext } from "react";

export const TimeZoneContext = createContext("UTC");

export function useTimeZone() {
  return useContext(TimeZoneContext);
}

const formatters = new Map<string, Intl.DateTimeFormat>();
function formatter(timeZone: string, withSeconds: boolean) {
  const key = `${timeZone}|${withSeconds}`;
  let f = formatters.get(key);
  if (!f) {
    try {
      f = new Intl.DateTimeFormat(undefined, {
        timeZone,
        year: "numeric",
        month: "short",
        day: "numeric",
        hour: "2-digit",
        minute: "2-digit",
        ...(withSeconds ? { second: "2-digit" } : {}),
      });
    } catch {
      f = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: withSeconds ? "medium" : "short", timeZone: "UTC" });
    }
    formatters.set(key, f);
  }
  return f;
}

/** `21 Nov 2026, 09:47` in the given zone. */
export function formatTime(iso: string | null | undefined, timeZone: string, withSeconds = false): string {
  if (!iso) return "—";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : formatter(timeZone, withSeconds).format(d);
}

/** `12 s ago`, `in 4 min`, `3 h ago`, `2 d ago`. */
export function relativeTime(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return "—";
  const diff = new Date(iso).getTime() - now;
  const abs = Math.abs(diff);
  const unit = abs < 60_000 ? [Math.round(abs / 1000), "s"] : abs < 3_600_000 ? [Math.round(abs / 60_000), "min"] : abs < 86_400_000 ? [Math.round(abs / 3_600_000), "h"] : [Math.round(abs / 86_400_000), "d"];
  const text = `${unit[0]} ${unit[1]}`;
  if (abs < 1500) return "just now";
  return diff < 0 ? `${text} ago` : `in ${text}`;
}

/** Milliseconds as `0 ms`, `850 ms`, `1.2 s`, `3 min 5 s`. */
export function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "—";
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;
  const min = Math.floor(ms / 60_000);
  const s = Math.round((ms % 60_000) / 1000);
  return min < 60 ? `${min} min ${s} s` : `${Math.floor(min / 60)} h ${min % 60} min`;
}

export const number = (n: number) => n.toLocaleString();

export const plural = (n: number, word: string) => `${number(n)} ${word}${n === 1 ? "" : "s"}`;

export const shortId = (id: string | null | undefined) => (id ? `${id.slice(0, 4)}…${id.slice(-6)}` : "—");

/** Pretty JSON for inputs, outputs and results; strings are shown as they are. */
export function pretty(v: unknown): string {
  if (v === undefined) return "";
  if (typeof v === "string") return v;
  return JSON.stringify(v, null, 2);
}

/**
 * Micro-dollars ($1 = 1,000,000) as dollars: cents from a dollar up, four decimals below
 * (model calls cost fractions of a cent), all six when smaller still. `usdExact` keeps
 * every micro-dollar (for titles and exports).
 */
export function usd(micros: number): string {
  const d = micros / 1_000_000;
  const abs = Math.abs(d);
  const digits = abs === 0 || abs >= 1 ? 2 : abs >= 0.01 ? 4 : 6;
  return `${d < 0 ? "−" : ""}$${abs.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits })}`;
}

export const usdExact = (micros: number) => `$${(micros / 1_000_000).toFixed(6)}`;

/** Today as YYYY-MM-DD in a time zone (cost days are tenant-local). */
export function today(timeZone: string, now = new Date()): string {
  try {
    return new Intl.DateTimeFormat("en-CA", { timeZone, year: "numeric", month: "2-digit", day: "2-digit" }).format(now);
  } catch {
    return now.toISOString().slice(0, 10);
  }
}

/** Days from `day` (YYYY-MM-DD), by calendar arithmetic. */
export function addDays(day: string, n: number): string {
  const d = new Date(`${day}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + n);
  return d.toISOString().slice(0, 10);
}

export const monthStart = (day: string) => `${day.slice(0, 8)}01`;

/** The last day of `day`'s month. */
export function monthEnd(day: string): string {
  const d = new Date(`${monthStart(day)}T00:00:00Z`);
  d.setUTCMonth(d.getUTCMonth() + 1, 0);
  return d.toISOString().slice(0, 10);
}

/**
 * Rows fetched by several requests (one per status, say) with each id once: a row that
 * changed between two requests comes back from both, and the newer one (`updatedAt`,
 * ISO 8601) is kept. First-seen order.
 */
export function newestById<T extends { id: string; updatedAt: string }>(rows: T[]): T[] {
  const byId = new Map<string, T>();
  for (const r of rows) {
    const seen = byId.get(r.id);
    if (!seen || Date.parse(r.updatedAt) > Date.parse(seen.updatedAt)) byId.set(r.id, r);
  }
  return [...byId.values()];
}

/**
 * Every task in one of `statuses`, read one status after another in the order given (the
 * lifecycle's): a task that moves on meanwhile (in progress, then in review) is found by a
 * later request, where requests sent at once could each miss it (the in-review one answered
 * before it got there, the in-progress one after it left). Found by two, it is kept once.
 */
export async function tasksInStatuses<T extends { id: string; updatedAt: string }>(statuses: readonly string[], page: (status: string) => Promise<{ items: T[] }>): Promise<T[]> {
  const items: T[] = [];
  for (const s of statuses) items.push(...(await page(s)).items);
  return newestById(items);
}
