/**
 * Local HTTP servers that speak the Anthropic Messages and OpenAI Chat Completions wire
 * protocols, so the tests drive the official SDKs end to end: JSON and SSE bodies,
 * usage fields, error bodies and headers as the real APIs send them.
 *
 * A test queues one handler per expected HTTP request; every request is recorded.
 */
import { once } from "node:events";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingMessage["headers"];
  // biome-ignore lint/suspicious/noExplicitAny: a JSON body the assertions dig into.
  body: any;
}

export type Handler = (req: RecordedRequest, res: ServerResponse) => void | Promise<void>;

export interface FakeServer {
  url: string;
  requests: RecordedRequest[];
  queue(...handlers: Handler[]): void;
  close(): Promise<void>;
}

export async function startFakeServer(): Promise<FakeServer> {
  const requests: RecordedRequest[] = [];
  const handlers: Handler[] = [];
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString("utf8");
    const recorded: RecordedRequest = {
      method: req.method ?? "",
      path: req.url ?? "",
      headers: req.headers,
      body: text ? JSON.parse(text) : undefined,
    };
    requests.push(recorded);
    const handler = handlers.shift();
    if (!handler) {
      res.writeHead(500, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: "no handler queued for this request" }));
      return;
    }
    try {
      await handler(recorded, res);
    } catch {
      res.destroy();
    }
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    queue: (...h) => handlers.push(...h),
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, "close");
    },
  };
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Writes SSE events one by one with a short pause, so the client really reads a stream. */
async function writeSSE(res: ServerResponse, events: Array<{ event?: string; data: string }>, end = true, gapMs = 2) {
  res.writeHead(200, {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache",
    connection: "keep-alive",
  });
  res.flushHeaders();
  for (const e of events) {
    res.write(`${e.event ? `event: ${e.event}\n` : ""}data: ${e.data}\n\n`);
    await pause(gapMs);
  }
  if (end) res.end();
}

/** Never answers (until the client gives up and the server is closed). */
export const hang: Handler = () => new Promise(() => {});

/** Splits a string into n roughly equal pieces (for fragmented deltas). */
export function fragments(s: string, n: number): string[] {
  const size = Math.ceil(s.length / n);
  const out: string[] = [];
  for (let i = 0; i < s.length; i += size) out.push(s.slice(i, i + size));
  return out;
}

// ─── Anthropic Messages API ────────────────────────────────────────────────────────────

export type AnthropicBlock =
  | { type: "text"; text: string }
  | { type: "tool_use"; id: string; name: string; input: Record<string, unknown> };

export interface AnthropicReply {
  model: string;
  content: AnthropicBlock[];
  stop_reason: "end_turn" | "tool_use" | "max_tokens" | "stop_sequence" | "refusal" | "pause_turn";
  usage: {
    input_tokens: number;
    output_tokens: number;
    cache_creation_input_tokens?: number;
    cache_read_input_tokens?: number;
  };
  /** How many text_delta / input_json_delta events each block is split into. */
  pieces?: number;
  /** Stop after this many events and close the connection (a stream cut short). */
  cutAfterEvents?: number;
  /** Send these events, then stall forever (for abort and timeout tests). */
  stallAfterEvents?: number;
  /** Replace the end of the stream with an SSE error event of this type. */
  errorEvent?: string;
}

let msgSeq = 0;

/** Answers like the Messages API: SSE when the request has stream: true, else one JSON message. */
export function anthropicReply(reply: AnthropicReply): Handler {
  return async (req, res) => {
    const id = `msg_01Fake${String(++msgSeq).padStart(6, "0")}`;
    const usage = {
      input_tokens: reply.usage.input_tokens,
      cache_creation_input_tokens: reply.usage.cache_creation_input_tokens ?? 0,
      cache_read_input_tokens: reply.usage.cache_read_input_tokens ?? 0,
      cache_creation: { ephemeral_5m_input_tokens: reply.usage.cache_creation_input_tokens ?? 0, ephemeral_1h_input_tokens: 0 },
      output_tokens: reply.usage.output_tokens,
      service_tier: "standard",
    };
    if (!req.body?.stream) {
      res.writeHead(200, { "content-type": "application/json", "request-id": `req_${id}` });
      res.end(
        JSON.stringify({
          id,
          type: "message",
          role: "assistant",
          model: reply.model,
          content: reply.content,
          stop_reason: reply.stop_reason,
          stop_sequence: null,
          usage,
        }),
      );
      return;
    }
    const pieces = reply.pieces ?? 3;
    const ev = (type: string, payload: object) => ({ event: type, data: JSON.stringify({ type, ...payload }) });
    const events = [
      ev("message_start", {
        message: {
          id,
          type: "message",
          role: "assistant",
          model: reply.model,
          content: [],
          stop_reason: null,
          stop_sequence: null,
          usage: { ...usage, output_tokens: 1 },
        },
      }),
      ev("ping", {}),
    ];
    reply.content.forEach((b, index) => {
      if (b.type === "text") {
        events.push(ev("content_block_start", { index, content_block: { type: "text", text: "" } }));
        for (const t of fragments(b.text, pieces)) {
          events.push(ev("content_block_delta", { index, delta: { type: "text_delta", text: t } }));
        }
      } else {
        events.push(ev("content_block_start", { index, content_block: { type: "tool_use", id: b.id, name: b.name, input: {} } }));
        events.push(ev("content_block_delta", { index, delta: { type: "input_json_delta", partial_json: "" } }));
        for (const j of fragments(JSON.stringify(b.input), pieces)) {
          events.push(ev("content_block_delta", { index, delta: { type: "input_json_delta", partial_json: j } }));
        }
      }
      events.push(ev("content_block_stop", { index }));
    });
    events.push(
      ev("message_delta", {
        delta: { stop_reason: reply.stop_reason, stop_sequence: null },
        usage: { output_tokens: reply.usage.output_tokens },
      }),
      ev("message_stop", {}),
    );
    if (reply.errorEvent) {
      events.splice(3);
      events.push({
        event: "error",
        data: JSON.stringify({ type: "error", error: { type: reply.errorEvent, message: "Overloaded" } }),
      });
    }
    if (reply.cutAfterEvents !== undefined) {
      await writeSSE(res, events.slice(0, reply.cutAfterEvents), false);
      res.destroy();
      return;
    }
    if (reply.stallAfterEvents !== undefined) {
      await writeSSE(res, events.slice(0, reply.stallAfterEvents), false);
      return new Promise(() => {});
    }
    await writeSSE(res, events);
  };
}

const anthropicErrorTypes: Record<number, string> = {
  400: "invalid_request_error",
  401: "authentication_error",
  403: "permission_error",
  404: "not_found_error",
  429: "rate_limit_error",
  500: "api_error",
  529: "overloaded_error",
};

/** An error as the Messages API sends it. */
export function anthropicError(status: number, headers: Record<string, string> = {}, message?: string): Handler {
  return (_req, res) => {
    const type = anthropicErrorTypes[status] ?? "api_error";
    res.writeHead(status, { "content-type": "application/json", "request-id": "req_err", ...headers });
    res.end(JSON.stringify({ type: "error", error: { type, message: message ?? `${type} (fake)` }, request_id: "req_err" }));
  };
}

// ─── OpenAI Chat Completions ───────────────────────────────────────────────────────────

export interface OpenAIReply {
  model: string;
  content?: string;
  tool_calls?: Array<{ id: string; name: string; arguments: string }>;
  finish_reason: "stop" | "length" | "tool_calls" | "content_filter";
  usage?: { prompt_tokens: number; completion_tokens: number; cached_tokens?: number };
  pieces?: number;
  stallAfterChunks?: number;
}

let chatSeq = 0;

/** Answers like Chat Completions: SSE chunks when stream: true (usage chunk if asked), else JSON. */
export function openAIReply(reply: OpenAIReply): Handler {
  return async (req, res) => {
    const id = `chatcmpl-Fake${String(++chatSeq).padStart(6, "0")}`;
    const created = 1_790_000_000;
    const usage = reply.usage && {
      prompt_tokens: reply.usage.prompt_tokens,
      completion_tokens: reply.usage.completion_tokens,
      total_tokens: reply.usage.prompt_tokens + reply.usage.completion_tokens,
      prompt_tokens_details: { cached_tokens: reply.usage.cached_tokens ?? 0, audio_tokens: 0 },
      completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
    };
    const headers = { "x-request-id": `req_${id}`, "openai-processing-ms": "12" };
    if (!req.body?.stream) {
      res.writeHead(200, { "content-type": "application/json", ...headers });
      res.end(
        JSON.stringify({
          id,
          object: "chat.completion",
          created,
          model: reply.model,
          choices: [
            {
              index: 0,
              message: {
                role: "assistant",
                content: reply.content ?? null,
                refusal: null,
                ...(reply.tool_calls
                  ? {
                      tool_calls: reply.tool_calls.map((t) => ({
                        id: t.id,
                        type: "function",
                        function: { name: t.name, arguments: t.arguments },
                      })),
                    }
                  : {}),
              },
              logprobs: null,
              finish_reason: reply.finish_reason,
            },
          ],
          usage,
          system_fingerprint: "fp_fake",
        }),
      );
      return;
    }
    const pieces = reply.pieces ?? 3;
    const chunk = (delta: object, finish: string | null = null) =>
      JSON.stringify({
        id,
        object: "chat.completion.chunk",
        created,
        model: reply.model,
        system_fingerprint: "fp_fake",
        choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
        ...(req.body.stream_options?.include_usage ? { usage: null } : {}),
      });
    const chunks = [chunk({ role: "assistant", content: "", refusal: null })];
    for (const t of reply.content ? fragments(reply.content, pieces) : []) chunks.push(chunk({ content: t }));
    reply.tool_calls?.forEach((t, index) => {
      chunks.push(chunk({ tool_calls: [{ index, id: t.id, type: "function", function: { name: t.name, arguments: "" } }] }));
      for (const a of fragments(t.arguments, pieces)) chunks.push(chunk({ tool_calls: [{ index, function: { arguments: a } }] }));
    });
    chunks.push(chunk({}, reply.finish_reason));
    if (req.body.stream_options?.include_usage && usage) {
      chunks.push(
        JSON.stringify({ id, object: "chat.completion.chunk", created, model: reply.model, system_fingerprint: "fp_fake", choices: [], usage }),
      );
    }
    chunks.push("[DONE]");
    if (reply.stallAfterChunks !== undefined) {
      await writeSSE(
        res,
        chunks.slice(0, reply.stallAfterChunks).map((data) => ({ data })),
        false,
      );
      return new Promise(() => {});
    }
    await writeSSE(
      res,
      chunks.map((data) => ({ data })),
    );
  };
}

/** An error as the OpenAI API sends it. */
export function openAIError(
  status: number,
  error: { message: string; type: string; code: string | null; param?: string | null },
  headers: Record<string, string> = {},
): Handler {
  return (_req, res) => {
    res.writeHead(status, { "content-type": "application/json", "x-request-id": "req_err", ...headers });
    res.end(JSON.stringify({ error: { param: null, ...error } }));
  };
}
