import { useCallback, useEffect, useRef, useState } from "react";

export interface Loaded<T> {
  data: T | undefined;
  error: unknown;
  loading: boolean;
  /** When the data last arrived (for "updated 3 s ago"). */
  updatedAt: number | undefined;
  reload(): Promise<void>;
}

/**
 * Loads `fn()` whenever `key` changes and, with `pollMs`, again every `pollMs` while the
 * tab is visible (live views: fleet, tasks, runs). A slow answer that arrives after a
 * newer request started is dropped, so filters never show stale results.
 */
export function useLoad<T>(key: string, fn: () => Promise<T>, opts: { pollMs?: number; enabled?: boolean } = {}): Loaded<T> {
  const [state, setState] = useState<{ key: string; data: T | undefined; error: unknown; updatedAt: number | undefined }>({
    key,
    data: undefined,
    error: undefined,
    updatedAt: undefined,
  });
  const [loading, setLoading] = useState(true);
  const fnRef = useRef(fn);
  fnRef.current = fn;
  const seq = useRef(0);
  const enabled = opts.enabled !== false;

  const load = useCallback(async (forKey: string) => {
    const mine = ++seq.current;
    setLoading(true);
    try {
      const data = await fnRef.current();
      if (mine === seq.current) setState({ key: forKey, data, error: undefined, updatedAt: Date.now() });
    } catch (error) {
      // Keep the last good data on a failed poll; the error is shown beside it.
      if (mine === seq.current) setState((s) => ({ ...s, key: forKey, error, data: s.key === forKey ? s.data : undefined }));
    } finally {
      if (mine === seq.current) setLoading(false);
    }
  }, []);

  useEffect(() => {
    if (!enabled) return;
    void load(key);
    if (!opts.pollMs) return;
    const timer = window.setInterval(() => {
      if (document.visibilityState === "visible") void load(key);
    }, opts.pollMs);
    const onVisible = () => {
      if (document.visibilityState === "visible") void load(key);
    };
    document.addEventListener("visibilitychange", onVisible);
    return () => {
      window.clearInterval(timer);
      document.removeEventListener("visibilitychange", onVisible);
    };
  }, [key, opts.pollMs, enabled, load]);

  const reload = useCallback(() => load(key), [key, load]);
  const current = state.key === key;
  return { data: current ? state.data : undefined, error: current ? state.error : undefined, loading, updatedAt: current ? state.updatedAt : undefined, reload };
}

/** Re-renders every `ms` (relative times such as "12 s ago" stay true). */
export function useNow(ms = 1000): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = window.setInterval(() => setNow(Date.now()), ms);
    return () => window.clearInterval(t);
  }, [ms]);
  return now;
}

/** Runs an action (a button's click), tracking busy state and its error. */
export function useAction() {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  const run = useCallback(async <T>(fn: () => Promise<T>): Promise<T | undefined> => {
    setBusy(true);
    setError(undefined);
    try {
      return await fn();
    } catch (e) {
      setError(e);
      return undefined;
    } finally {
      setBusy(false);
    }
  }, []);
  return { busy, error, run, clear: () => setError(undefined) };
}
