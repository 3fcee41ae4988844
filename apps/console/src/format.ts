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
