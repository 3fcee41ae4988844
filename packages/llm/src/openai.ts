import OpenAI, { APIConnectionError, APIError, APIUserAbortError } from "openai";
import type {
  ChatCompletionChunk,
  ChatCompletionCreateParamsStreaming,
  ChatCompletionMessageParam,
} from "openai/resources/chat/completions";
import { defaultRetryPolicy, httpModelError, type RetryPolicy, withRetries } from "./retry";
import { forEachEvent } from "./stream";
import { parseToolInput } from "./tool-input";
import {
  type ContentBlock,
  type Message,
  ModelError,
  type ModelProvider,
  type ModelRequest,
  type ModelResponse,
  type StopReason,
} from "./types";
import { normaliseOpenAIUsage, unreportedUsage } from "./usage";

export interface OpenAIProviderOptions {
  /** "openai" talks to api.openai.com; "openai-compatible" to any server speaking Chat Completions. */
  flavour: "openai" | "openai-compatible";
  apiKey?: string;
  baseUrl?: string;
  retry?: Partial<RetryPolicy>;
  defaultHeaders?: Record<string, string>;
}

const stopReasons: Record<string, StopReason> = {
  stop: "end_turn",
  tool_calls: "tool_use",
  function_call: "tool_use",
  length: "max_tokens",
  content_filter: "refusal",
};

/**
 * Our messages as Chat Completions messages. Tool results become `tool` messages, placed
 * before any text of the same user turn (they must directly follow the assistant's
 * tool_calls). Chat Completions has no error flag on a tool result, so an error result is
 * prefixed with "Error: ".
 */
export function toOpenAIMessages(system: string, messages: Message[]): ChatCompletionMessageParam[] {
  const out: ChatCompletionMessageParam[] = [];
  if (system) out.push({ role: "system", content: system });
  for (const m of messages) {
    const text = m.content
      .filter((b) => b.type === "text")
      .map((b) => b.text)
      .join("\n");
    if (m.role === "assistant") {
      const calls = m.content.flatMap((b) =>
        b.type === "tool_use"
          ? [{ id: b.id, type: "function" as const, function: { name: b.name, arguments: JSON.stringify(b.input) } }]
          : [],
      );
      out.push({ role: "assistant", content: text || null, ...(calls.length ? { tool_calls: calls } : {}) });
      continue;
    }
    for (const b of m.content) {
      if (b.type === "tool_result") {
        out.push({ role: "tool", tool_call_id: b.toolUseId, content: b.isError ? `Error: ${b.content}` : b.content });
      }
    }
    if (text) out.push({ role: "user", content: text });
  }
  return out;
}

export function toOpenAIParams(req: ModelRequest, flavour: OpenAIProviderOptions["flavour"]): ChatCompletionCreateParamsStreaming {
  return {
    model: req.model,
    messages: toOpenAIMessages(req.system, req.messages),
    // OpenAI deprecated max_tokens for max_completion_tokens; compatible servers (vLLM,
    // Ollama, older gateways) reliably understand only max_tokens.
    ...(flavour === "openai" ? { max_completion_tokens: req.maxTokens } : { max_tokens: req.maxTokens }),
    ...(req.tools?.length
      ? {
          tools: req.tools.map((t) => ({
            type: "function" as const,
            function: { name: t.name, description: t.description, parameters: t.inputSchema },
          })),
        }
      : {}),
    stream: true,
    stream_options: { include_usage: true },
  };
}

function classifier(provider: string) {
  return (err: unknown): ModelError => {
    if (err instanceof APIUserAbortError) {
      return new ModelError(`${provider}: request aborted`, { kind: "aborted", retryable: false, provider, cause: err });
    }
    if (err instanceof APIConnectionError) {
      return new ModelError(`${provider}: connection failed: ${err.message}`, { kind: "server", provider, cause: err });
    }
    if (err instanceof APIError) {
      // A 429 for an exhausted quota will not clear by waiting.
      const type = err.code === "insufficient_quota" ? "insufficient_quota" : err.type;
      return httpModelError(provider, `${provider}: ${err.message}`, err.status, err.headers, type, err);
    }
    const message = err instanceof Error ? err.message : String(err);
    return new ModelError(`${provider}: ${message}`, { kind: "other", retryable: false, provider, cause: err });
  };
}

async function aggregate(provider: string, stream: AsyncIterable<ChatCompletionChunk>, onText: ((d: string) => void) | undefined) {
  let id: string | undefined;
  let model: string | undefined;
  let usage: unknown;
  let finish: string | null = null;
  let text = "";
  let refusal = "";
  const calls: Array<{ id: string; name: string; args: string }> = [];

  await forEachEvent(provider, stream, (e) => e instanceof APIError, (chunk) => {
    id ??= chunk.id;
    if (chunk.model) model = chunk.model;
    // With include_usage, the last chunk carries the usage and no choices; every other
    // chunk has usage null. Some servers send choices: null on that chunk.
    if (chunk.usage) usage = chunk.usage;
    for (const choice of chunk.choices ?? []) {
      if (choice.index !== 0) continue;
      const d = choice.delta ?? {};
      if (d.content) {
        text += d.content;
        onText?.(d.content);
      }
      if (d.refusal) refusal += d.refusal;
      for (const tc of d.tool_calls ?? []) {
        const call = calls[tc.index] ?? { id: "", name: "", args: "" };
        calls[tc.index] = call;
        if (tc.id) call.id = tc.id;
        // The name arrives whole, once; some servers repeat it on every fragment.
        if (tc.function?.name && !call.name) call.name = tc.function.name;
        if (tc.function?.arguments) call.args += tc.function.arguments;
      }
      if (choice.finish_reason) finish = choice.finish_reason;
    }
  });
  if (!finish) {
    throw new ModelError(`${provider}: stream ended without a finish_reason`, { kind: "server", provider });
  }
  const stopReason: StopReason = refusal ? "refusal" : (stopReasons[finish] ?? "other");
  const content: ContentBlock[] = [];
  if (text) content.push({ type: "text", text });
  if (refusal) content.push({ type: "text", text: refusal });
  calls.forEach((c, i) => {
    if (!c) return;
    const input = parseToolInput(provider, c.name, c.args, stopReason);
    if (input) content.push({ type: "tool_use", id: c.id || `call_${i}`, name: c.name, input });
  });
  return { id, model, usage, stopReason, content };
}

export function createOpenAIProvider(opts: OpenAIProviderOptions): ModelProvider {
  const provider = opts.flavour;
  const policy: RetryPolicy = { ...defaultRetryPolicy, ...opts.retry };
  if (provider === "openai-compatible" && !opts.baseUrl) {
    throw new Error("openai-compatible provider needs a baseUrl");
  }
  // Never send OPENAI_API_KEY to some other server: a compatible server gets only the key
  // it was configured with, and no Authorization header at all without one.
  const apiKey = provider === "openai" ? (opts.apiKey ?? process.env["OPENAI_API_KEY"]) : opts.apiKey;
  const client =
    apiKey || provider === "openai-compatible"
      ? new OpenAI({
          apiKey: apiKey ?? "unused",
          // The descriptor's base URL, else (for OpenAI itself) OPENAI_BASE_URL, as the SDK reads it.
          baseURL: opts.baseUrl || (provider === "openai" ? process.env["OPENAI_BASE_URL"] : undefined) || null,
          maxRetries: 0,
          timeout: 10 * 60_000,
          defaultHeaders: { ...opts.defaultHeaders, ...(apiKey ? {} : { Authorization: null }) },
        })
      : undefined;
  const classify = classifier(provider);

  return {
    name: provider,
    async complete(req: ModelRequest): Promise<ModelResponse> {
      if (!client) {
        throw new ModelError(`${provider}: no API key (set OPENAI_API_KEY or pass apiKey)`, {
          kind: "auth",
          retryable: false,
          attempts: 0,
          provider,
        });
      }
      const started = performance.now();
      const params = toOpenAIParams(req, opts.flavour);
      const { value, attempts } = await withRetries(
        provider,
        policy,
        req,
        async (signal) => aggregate(provider, await client.chat.completions.create(params, { signal }), req.onText),
        classify,
      );
      let usage: ModelResponse["usage"];
      try {
        usage = value.usage ? normaliseOpenAIUsage(value.usage) : unreportedUsage();
      } catch (err) {
        throw new ModelError(`${provider}: ${(err as Error).message}`, { kind: "other", retryable: false, attempts, provider });
      }
      return {
        content: value.content,
        stopReason: value.stopReason,
        model: value.model || req.model,
        requestedModel: req.model,
        provider,
        usage,
        latencyMs: Math.round(performance.now() - started),
        attempts,
        ...(value.id ? { id: value.id } : {}),
      };
    },
  };
}
