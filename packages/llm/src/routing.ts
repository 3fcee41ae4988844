import { ModelError, type ModelErrorKind, type ModelProvider, type ModelRequest, type ModelResponse } from "./types";

export interface RouteTarget {
  provider: ModelProvider;
  model: string;
}

export interface RouteAttempt {
  /** The exact model id the provider reported, or the requested one if it never answered. */
  model: string;
  requestedModel: string;
  provider: string;
  /** True only for the attempt whose response is returned. */
  ok: boolean;
  /** Why this attempt was not used: the error, or why its answer was escalated. */
  error?: string;
  errorKind?: ModelErrorKind;
  /**
   * The response, also when it was escalated: its tokens were spent and must be charged.
   */
  response?: ModelResponse;
}

export interface RoutingOptions {
  small: RouteTarget;
  large: RouteTarget;
  request: Omit<ModelRequest, "model">;
  /** Escalate a response the small model did give. Default: it hit max_tokens or refused. */
  escalateWhen?: (r: ModelResponse) => boolean;
}

export interface RoutingResult {
  response: ModelResponse;
  attempts: RouteAttempt[];
}

/** Both route attempts failed; `routeAttempts` lists them (with any tokens spent). */
export class RoutingError extends ModelError {
  override readonly name = "RoutingError";
  constructor(
    last: ModelError,
    readonly routeAttempts: RouteAttempt[],
  ) {
    super(last.message, {
      kind: last.kind,
      status: last.status,
      retryable: last.retryable,
      attempts: last.attempts,
      provider: last.provider,
      retryAfterMs: last.retryAfterMs,
      cause: last,
    });
  }
}

export const defaultEscalateWhen = (r: ModelResponse) => r.stopReason === "max_tokens" || r.stopReason === "refusal";

const asModelError = (err: unknown, provider: string): ModelError =>
  err instanceof ModelError
    ? err
    : new ModelError(err instanceof Error ? err.message : String(err), { kind: "other", retryable: false, provider, cause: err });

/**
 * Complexity routing: the small model first; on its failure (after its own retries) or
 * when `escalateWhen` rejects its answer, the large model. Every attempt is returned so
 * the step log records (and the ledger charges) both. A caller's abort is never escalated.
 */
export async function completeWithRouting(opts: RoutingOptions): Promise<RoutingResult> {
  const escalateWhen = opts.escalateWhen ?? defaultEscalateWhen;
  const attempts: RouteAttempt[] = [];
  const base = (t: RouteTarget) => ({ model: t.model, requestedModel: t.model, provider: t.provider.name });

  try {
    const r = await opts.small.provider.complete({ ...opts.request, model: opts.small.model });
    if (!escalateWhen(r)) {
      attempts.push({ ...base(opts.small), model: r.model, ok: true, response: r });
      return { response: r, attempts };
    }
    attempts.push({ ...base(opts.small), model: r.model, ok: false, error: `escalated (stop reason ${r.stopReason})`, response: r });
  } catch (err) {
    const e = asModelError(err, opts.small.provider.name);
    if (e.kind === "aborted") throw new RoutingError(e, [{ ...base(opts.small), ok: false, error: e.message, errorKind: e.kind }]);
    attempts.push({ ...base(opts.small), ok: false, error: e.message, errorKind: e.kind });
  }

  try {
    const r = await opts.large.provider.complete({ ...opts.request, model: opts.large.model });
    attempts.push({ ...base(opts.large), model: r.model, ok: true, response: r });
    return { response: r, attempts };
  } catch (err) {
    const e = asModelError(err, opts.large.provider.name);
    attempts.push({ ...base(opts.large), ok: false, error: e.message, errorKind: e.kind });
    throw new RoutingError(e, attempts);
  }
}
