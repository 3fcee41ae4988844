/**
 * The one interface every model provider speaks. Adapters translate it to and from a wire
 * protocol; the runtime, the cost path and the step log only ever see these shapes.
 */

export type ContentBlock =
  | { type: "text"; text: string }
  | { type: "tool_use"; id: string; name: string; input: Record<string, unknown> }
  | { type: "tool_result"; toolUseId: string; content: string; isError?: boolean };

export interface Message {
  role: "user" | "assistant";
  content: ContentBlock[];
}

export interface ToolDef {
  name: string;
  description: string;
  /** A JSON Schema object describing the tool's input. */
  inputSchema: Record<string, unknown>;
}

export interface ModelRequest {
  /** The exact model id to ask for, e.g. "claude-opus-4-7". */
  model: string;
  /** The stable prefix (soul + instructions). Anthropic marks it `cache_control: ephemeral`. */
  system: string;
  messages: Message[];
  tools?: ToolDef[];
  maxTokens: number;
  /** The caller's cancellation: raises ModelError kind "aborted". */
  signal?: AbortSignal;
  /**
   * A deadline for the whole call, retries and backoff included: raises ModelError kind
   * "timeout". A retry whose wait would outlast the deadline is not attempted.
   */
  timeoutMs?: number;
  /**
   * Text deltas as they stream in. If an attempt fails mid-stream and is retried, the new
   * attempt streams from the start again: `onRetry` tells you when to discard what you have.
   */
  onText?: (delta: string) => void;
  /** Called before each retry's wait (logging, resetting a partial stream display). */
  onRetry?: (info: RetryInfo) => void;
}

export interface RetryInfo {
  /** The attempt that just failed (1-based). */
  attempt: number;
  delayMs: number;
  error: ModelError;
}

/**
 * Token usage in non-overlapping categories:
 * totalTokens = inputTokens + cacheReadTokens + cacheWriteTokens + outputTokens,
 * which equals the provider's own total. `raw` keeps the provider's numbers as received.
 */
export interface Usage {
  /** Input tokens neither read from nor written to a prompt cache. */
  inputTokens: number;
  cacheReadTokens: number;
  cacheWriteTokens: number;
  outputTokens: number;
  totalTokens: number;
  /** The provider's usage object as received. */
  raw: Record<string, unknown>;
  /**
   * Set when the provider reported no usage at all (some OpenAI-compatible servers do not):
   * the zeros are then unknown, not free, and the cost path must not record them as $0.
   */
  unreported?: true;
}

export type StopReason = "end_turn" | "tool_use" | "max_tokens" | "stop_sequence" | "refusal" | "other";

export interface ModelResponse {
  /** Text and tool_use blocks, in the order the model produced them. */
  content: ContentBlock[];
  stopReason: StopReason;
  /** The exact model id the provider reported (pinning): record this, not the requested one. */
  model: string;
  /** The model id that was asked for. */
  requestedModel: string;
  provider: string;
  usage: Usage;
  /** Wall time of the whole call, retries and backoff included. */
  latencyMs: number;
  /** HTTP attempts, including retries. */
  attempts: number;
  /** The provider's id for this response, when it gives one. */
  id?: string;
}

export interface ModelProvider {
  readonly name: string;
  complete(req: ModelRequest): Promise<ModelResponse>;
}

export type ModelErrorKind =
  | "rate_limited"
  | "overloaded"
  | "server"
  | "timeout"
  | "aborted"
  | "bad_request"
  | "auth"
  | "other";

const retryableByDefault: ReadonlySet<ModelErrorKind> = new Set(["rate_limited", "overloaded", "server"]);

export interface ModelErrorOptions {
  kind: ModelErrorKind;
  /** HTTP status, when the failure was an HTTP response. */
  status?: number;
  /** Defaults to true for rate_limited, overloaded and server. */
  retryable?: boolean;
  /** HTTP attempts made before giving up. */
  attempts?: number;
  provider?: string;
  /** What the provider asked us to wait (retry-after), when it said. */
  retryAfterMs?: number;
  cause?: unknown;
}

/**
 * Every failure of a provider call. Connection failures and streams cut short are kind
 * "server" (retryable). `retryable` says whether trying again later may succeed; the
 * provider has already retried `attempts - 1` times.
 */
export class ModelError extends Error {
  override readonly name: string = "ModelError";
  readonly kind: ModelErrorKind;
  readonly status?: number;
  readonly retryable: boolean;
  attempts: number;
  readonly provider?: string;
  readonly retryAfterMs?: number;

  constructor(message: string, opts: ModelErrorOptions) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.kind = opts.kind;
    this.status = opts.status;
    this.retryable = opts.retryable ?? retryableByDefault.has(opts.kind);
    this.attempts = opts.attempts ?? 1;
    this.provider = opts.provider;
    this.retryAfterMs = opts.retryAfterMs;
  }
}

/** `{ call }` makes the scripted provider call a tool; `{ say }` makes it answer with text. */
export type ScriptStep = { call: string; input?: Record<string, unknown> } | { say: string };
