import { setTimeout as sleep } from "node:timers/promises";
import { ModelError, type ModelErrorKind, type ModelRequest } from "./types";

/**
 * Our own retry loop (the SDKs run with maxRetries: 0) so every provider retries the same
 * way and the number of HTTP attempts is known and recorded on the step.
 */
export interface RetryPolicy {
  /** Total HTTP attempts, the first included. */
  maxAttempts: number;
  /** Backoff before retry n is about baseDelayMs * 2^(n-1), with jitter. */
  baseDelayMs: number;
  /**
   * Cap on any one wait. A retry-after longer than this is not waited for in process: the
   * error is raised (with retryAfterMs) so the caller can reschedule the work instead.
   */
  maxDelayMs: number;
}

export const defaultRetryPolicy: RetryPolicy = { maxAttempts: 4, baseDelayMs: 500, maxDelayMs: 30_000 };

/** "Equal jitter": half the exponential delay fixed, half random, so retries spread out. */
export function backoffDelay(policy: RetryPolicy, failedAttempt: number, random: () => number = Math.random): number {
  const exp = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (failedAttempt - 1));
  return Math.round(exp / 2 + (random() * exp) / 2);
}

/** `retry-after-ms` (milliseconds) wins over `retry-after` (seconds, or an HTTP date). */
export function parseRetryAfter(headers: Headers | undefined | null, now = Date.now()): number | undefined {
  if (!headers) return undefined;
  const ms = headers.get("retry-after-ms");
  if (ms !== null && ms.trim() !== "") {
    const n = Number(ms);
    if (Number.isFinite(n) && n >= 0) return n;
  }
  const ra = headers.get("retry-after");
  if (ra === null || ra.trim() === "") return undefined;
  const seconds = Number(ra);
  if (Number.isFinite(seconds)) return seconds >= 0 ? seconds * 1000 : undefined;
  const date = Date.parse(ra);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** The error kind an HTTP status means, when the body does not say more. */
export function kindForStatus(status: number): ModelErrorKind {
  if (status === 429) return "rate_limited";
  if (status === 529) return "overloaded";
  if (status >= 500 || status === 408) return "server";
  if (status === 401 || status === 403) return "auth";
  if (status === 400 || status === 404 || status === 413 || status === 422) return "bad_request";
  return "other";
}

/** Error `type`s that SSE error events and error bodies carry (both wire protocols). */
export function kindForErrorType(type: string | null | undefined): ModelErrorKind | undefined {
  switch (type) {
    case "rate_limit_error":
    case "rate_limit_exceeded":
    case "tokens":
    case "requests":
      return "rate_limited";
    case "overloaded_error":
      return "overloaded";
    case "api_error":
    case "server_error":
    case "timeout_error":
      return "server";
    case "invalid_request_error":
    case "not_found_error":
    case "request_too_large":
      return "bad_request";
    case "authentication_error":
    case "permission_error":
      return "auth";
    case "insufficient_quota":
    case "billing_error":
      return "other";
    default:
      return undefined;
  }
}

const typesThatOverrideStatus: ReadonlySet<string> = new Set(["overloaded_error", "insufficient_quota", "billing_error"]);

/** A ModelError for an HTTP failure, honouring the `x-should-retry` header when present. */
export function httpModelError(
  provider: string,
  message: string,
  status: number | undefined,
  headers: Headers | undefined | null,
  errorType: string | null | undefined,
  cause: unknown,
): ModelError {
  // The status decides (OpenAI sends a 401 with type invalid_request_error), except for
  // types that say more than it: overloaded, or a quota that waiting will not refill.
  // Errors sent as SSE events have no status of their own: their type decides.
  const byType = kindForErrorType(errorType);
  const kind =
    status === undefined
      ? (byType ?? "server")
      : errorType && typesThatOverrideStatus.has(errorType)
        ? (byType ?? kindForStatus(status))
        : kindForStatus(status);
  const shouldRetry = headers?.get("x-should-retry");
  const retryable =
    shouldRetry === "true" ? true : shouldRetry === "false" ? false : ["rate_limited", "overloaded", "server"].includes(kind);
  return new ModelError(message, {
    kind,
    status,
    retryable,
    provider,
    retryAfterMs: parseRetryAfter(headers),
    cause,
  });
}

export interface AttemptResult<T> {
  value: T;
  attempts: number;
}

/**
 * Runs `attempt` until it succeeds, the error is not retryable, attempts run out, or the
 * caller's signal / the request's deadline fires. `classify` turns whatever the SDK threw
 * into a ModelError; aborts and deadlines are recognised here, from our own signals, not
 * from the SDK's error (the SDKs end a stream silently when its signal fires).
 */
export async function withRetries<T>(
  provider: string,
  policy: RetryPolicy,
  req: Pick<ModelRequest, "signal" | "timeoutMs" | "onRetry">,
  attempt: (signal: AbortSignal) => Promise<T>,
  classify: (err: unknown) => ModelError,
): Promise<AttemptResult<T>> {
  const started = Date.now();
  const deadline = req.timeoutMs !== undefined ? AbortSignal.timeout(req.timeoutMs) : undefined;
  const signals = [req.signal, deadline].filter((s): s is AbortSignal => s !== undefined);
  const signal = AbortSignal.any(signals);

  const stopped = (attempts: number, cause: unknown): ModelError | undefined => {
    if (req.signal?.aborted) {
      return new ModelError(`${provider}: request aborted`, { kind: "aborted", retryable: false, attempts, provider, cause });
    }
    if (deadline?.aborted) {
      return new ModelError(`${provider}: request timed out after ${req.timeoutMs} ms`, {
        kind: "timeout",
        retryable: true,
        attempts,
        provider,
        cause,
      });
    }
    return undefined;
  };

  for (let n = 1; ; n++) {
    const early = stopped(n - 1, undefined);
    if (early) throw early;
    try {
      return { value: await attempt(signal), attempts: n };
    } catch (err) {
      const stop = stopped(n, err);
      if (stop) throw stop;
      const e = err instanceof ModelError ? err : classify(err);
      e.attempts = n;
      if (!e.retryable || n >= policy.maxAttempts) throw e;
      const delayMs = e.retryAfterMs ?? backoffDelay(policy, n);
      if (delayMs > policy.maxDelayMs) throw e;
      if (req.timeoutMs !== undefined && Date.now() - started + delayMs >= req.timeoutMs) throw e;
      req.onRetry?.({ attempt: n, delayMs, error: e });
      try {
        await sleep(delayMs, undefined, { signal });
      } catch (sleepErr) {
        throw stopped(n, sleepErr) ?? sleepErr;
      }
    }
  }
}
