import { createAnthropicProvider } from "./anthropic";
import { createOpenAIProvider } from "./openai";
import type { RetryPolicy } from "./retry";
import { createScriptedProvider } from "./scripted";
import type { ModelProvider, ScriptStep } from "./types";

export { createAnthropicProvider, toAnthropicParams } from "./anthropic";
export { createOpenAIProvider, toOpenAIParams } from "./openai";
export { backoffDelay, defaultRetryPolicy, parseRetryAfter, type RetryPolicy } from "./retry";
export {
  completeWithRouting,
  defaultEscalateWhen,
  type RouteAttempt,
  type RouteTarget,
  RoutingError,
  type RoutingOptions,
  type RoutingResult,
} from "./routing";
export { COMPLETE_TASK_TOOL, createScriptedProvider, scriptSchema, scriptStepSchema } from "./scripted";
export {
  type ContentBlock,
  type Message,
  ModelError,
  type ModelErrorKind,
  type ModelErrorOptions,
  type ModelProvider,
  type ModelRequest,
  type ModelResponse,
  type RetryInfo,
  type ScriptStep,
  type StopReason,
  type ToolDef,
  type Usage,
} from "./types";
export { normaliseAnthropicUsage, normaliseOpenAIUsage } from "./usage";

export interface ProviderSpec {
  provider: "anthropic" | "openai" | "openai-compatible" | "scripted";
  /** Anthropic: the API root (no /v1). OpenAI and compatible: up to and including /v1. */
  baseUrl?: string;
  /** Defaults to ANTHROPIC_API_KEY / OPENAI_API_KEY; never an env key for openai-compatible. */
  apiKey?: string;
  /** Retries after the first attempt (default 3, so at most 4 HTTP attempts). */
  maxRetries?: number;
  /** Backoff base (default 500 ms): retry n waits about base * 2^(n-1), with jitter. */
  retryBaseDelayMs?: number;
  /** Longest single wait (default 30 s); a longer retry-after is raised, not waited for. */
  maxRetryDelayMs?: number;
  defaultHeaders?: Record<string, string>;
  script?: ScriptStep[];
}

export function createProvider(spec: ProviderSpec): ModelProvider {
  const retry: Partial<RetryPolicy> = {
    ...(spec.maxRetries !== undefined ? { maxAttempts: Math.max(0, spec.maxRetries) + 1 } : {}),
    ...(spec.retryBaseDelayMs !== undefined ? { baseDelayMs: spec.retryBaseDelayMs } : {}),
    ...(spec.maxRetryDelayMs !== undefined ? { maxDelayMs: spec.maxRetryDelayMs } : {}),
  };
  const common = { apiKey: spec.apiKey, baseUrl: spec.baseUrl, retry, defaultHeaders: spec.defaultHeaders };
  switch (spec.provider) {
    case "anthropic":
      return createAnthropicProvider(common);
    case "openai":
    case "openai-compatible":
      return createOpenAIProvider({ ...common, flavour: spec.provider });
    case "scripted":
      return createScriptedProvider(spec.script);
    default:
      throw new Error(`unknown model provider: ${String((spec as { provider: unknown }).provider)}`);
  }
}
