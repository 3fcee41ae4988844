import Anthropic, { APIConnectionError, APIError, APIUserAbortError } from "@anthropic-ai/sdk";
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
import { normaliseAnthropicUsage } from "./usage";

export interface AnthropicProviderOptions {
  apiKey?: string;
  baseUrl?: string;
  retry?: Partial<RetryPolicy>;
  defaultHeaders?: Record<string, string>;
}

const PROVIDER = "anthropic";

const stopReasons: Record<string, StopReason> = {
  end_turn: "end_turn",
  tool_use: "tool_use",
  max_tokens: "max_tokens",
  stop_sequence: "stop_sequence",
  refusal: "refusal",
};

export function toAnthropicMessages(messages: Message[]): Anthropic.MessageParam[] {
  return messages.map((m) => ({
    role: m.role,
    content: m.content.map((b): Anthropic.ContentBlockParam => {
      if (b.type === "text") return { type: "text", text: b.text };
      if (b.type === "tool_use") return { type: "tool_use", id: b.id, name: b.name, input: b.input };
      return { type: "tool_result", tool_use_id: b.toolUseId, content: b.content, ...(b.isError ? { is_error: true } : {}) };
    }),
  }));
}

export function toAnthropicParams(req: ModelRequest): Anthropic.MessageCreateParamsStreaming {
  return {
    model: req.model,
    max_tokens: req.maxTokens,
    // The system prompt is the stable prefix (tools, then system, are hashed in that order),
    // so one breakpoint here caches the tool definitions and the soul for later turns.
    ...(req.system ? { system: [{ type: "text", text: req.system, cache_control: { type: "ephemeral" } }] } : {}),
    messages: toAnthropicMessages(req.messages),
    ...(req.tools?.length
      ? {
          tools: req.tools.map((t) => ({
            name: t.name,
            description: t.description,
            input_schema: t.inputSchema as Anthropic.Tool.InputSchema,
          })),
        }
      : {}),
    stream: true,
  };
}

function classify(err: unknown): ModelError {
  if (err instanceof APIUserAbortError) {
    return new ModelError(`${PROVIDER}: request aborted`, { kind: "aborted", retryable: false, provider: PROVIDER, cause: err });
  }
  if (err instanceof APIConnectionError) {
    return new ModelError(`${PROVIDER}: connection failed: ${err.message}`, { kind: "server", provider: PROVIDER, cause: err });
  }
  if (err instanceof APIError) {
    // apiMessage is the body's error.message; err.message would be the whole body as JSON
    // for errors that arrive as SSE events.
    const what = err.apiMessage ? `${err.status ?? "stream"} ${err.type ?? "error"}: ${err.apiMessage}` : err.message;
    return httpModelError(PROVIDER, `${PROVIDER}: ${what}`, err.status, err.headers, err.type, err);
  }
  const message = err instanceof Error ? err.message : String(err);
  return new ModelError(`${PROVIDER}: ${message}`, { kind: "other", retryable: false, provider: PROVIDER, cause: err });
}

type BlockInProgress = { type: "text"; text: string } | { type: "tool_use"; id: string; name: string; json: string } | { type: "skip" };

/** Folds one streamed message into a response; throws if the stream ends before message_stop. */
async function aggregate(
  stream: AsyncIterable<Anthropic.RawMessageStreamEvent>,
  onText: ((delta: string) => void) | undefined,
) {
  let id: string | undefined;
  let model: string | undefined;
  let usage: Record<string, unknown> = {};
  let stop: string | null = null;
  let finished = false;
  const blocks: BlockInProgress[] = [];

  await forEachEvent(PROVIDER, stream, (e) => e instanceof APIError, (ev) => {
    switch (ev.type) {
      case "message_start":
        id = ev.message.id;
        model = ev.message.model;
        usage = { ...ev.message.usage };
        break;
      case "content_block_start": {
        const b = ev.content_block;
        blocks[ev.index] =
          b.type === "text"
            ? { type: "text", text: b.text }
            : b.type === "tool_use"
              ? { type: "tool_use", id: b.id, name: b.name, json: "" }
              : { type: "skip" };
        if (b.type === "text" && b.text) onText?.(b.text);
        break;
      }
      case "content_block_delta": {
        const b = blocks[ev.index];
        if (ev.delta.type === "text_delta" && b?.type === "text") {
          b.text += ev.delta.text;
          onText?.(ev.delta.text);
        } else if (ev.delta.type === "input_json_delta" && b?.type === "tool_use") {
          b.json += ev.delta.partial_json;
        }
        break;
      }
      case "message_delta":
        stop = ev.delta.stop_reason;
        // message_delta counters are cumulative whole-message totals, omitted when they do
        // not apply: overwrite when present, never add.
        for (const [k, v] of Object.entries(ev.usage)) if (v !== null && v !== undefined) usage[k] = v;
        break;
      case "message_stop":
        finished = true;
        break;
      default:
        break;
    }
  });
  if (!finished) {
    throw new ModelError(`${PROVIDER}: stream ended before message_stop`, { kind: "server", provider: PROVIDER });
  }
  const stopReason: StopReason = (stop && stopReasons[stop]) || "other";
  const content: ContentBlock[] = [];
  for (const b of blocks) {
    if (b?.type === "text") content.push({ type: "text", text: b.text });
    if (b?.type === "tool_use") {
      const input = parseToolInput(PROVIDER, b.name, b.json, stopReason);
      if (input) content.push({ type: "tool_use", id: b.id, name: b.name, input });
    }
  }
  return { id, model, usage, stopReason, content };
}

export function createAnthropicProvider(opts: AnthropicProviderOptions = {}): ModelProvider {
  const policy: RetryPolicy = { ...defaultRetryPolicy, ...opts.retry };
  const apiKey = opts.apiKey ?? process.env["ANTHROPIC_API_KEY"];
  // Without an explicit key the SDK would go looking for credential profiles on disk:
  // a control plane should fail plainly instead.
  const client = apiKey
    ? new Anthropic({
        apiKey,
        // The descriptor's base URL, else ANTHROPIC_BASE_URL (a proxy or gateway), as the SDK reads it.
        baseURL: opts.baseUrl || process.env["ANTHROPIC_BASE_URL"] || null,
        maxRetries: 0,
        timeout: 10 * 60_000,
        defaultHeaders: opts.defaultHeaders,
      })
    : undefined;

  return {
    name: PROVIDER,
    async complete(req: ModelRequest): Promise<ModelResponse> {
      if (!client) {
        throw new ModelError(`${PROVIDER}: no API key (set ANTHROPIC_API_KEY or pass apiKey)`, {
          kind: "auth",
          retryable: false,
          attempts: 0,
          provider: PROVIDER,
        });
      }
      const started = performance.now();
      const params = toAnthropicParams(req);
      const { value, attempts } = await withRetries(
        PROVIDER,
        policy,
        req,
        async (signal) => aggregate(await client.messages.create(params, { signal }), req.onText),
        classify,
      );
      let usage: ModelResponse["usage"];
      try {
        usage = normaliseAnthropicUsage(value.usage);
      } catch (err) {
        throw new ModelError(`${PROVIDER}: ${(err as Error).message}`, { kind: "other", retryable: false, attempts, provider: PROVIDER });
      }
      return {
        content: value.content,
        stopReason: value.stopReason,
        model: value.model || req.model,
        requestedModel: req.model,
        provider: PROVIDER,
        usage,
        latencyMs: Math.round(performance.now() - started),
        attempts,
        ...(value.id ? { id: value.id } : {}),
      };
    },
  };
}
