import OpenAI from "openai";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createProvider, ModelError, type ModelProvider, type ModelRequest } from "../src/index";
import { type FakeServer, hang, openAIError, openAIReply, startFakeServer } from "./fake-servers";

let server: FakeServer;
let provider: ModelProvider;

beforeAll(async () => {
  server = await startFakeServer();
});
afterAll(() => server.close());
beforeEach(() => {
  server.requests.length = 0;
  provider = createProvider({ provider: "openai", baseUrl: `${server.url}/v1`, apiKey: "sk-test", retryBaseDelayMs: 1 });
});

const request = (over: Partial<ModelRequest> = {}): ModelRequest => ({
  model: "gpt-5.5",
  system: "You triage support tickets.",
  messages: [{ role: "user", content: [{ type: "text", text: "Ticket 12: printer on fire." }] }],
  tools: [{ name: "escalate", description: "Escalate a ticket", inputSchema: { type: "object", properties: { ticket: { type: "integer" } } } }],
  maxTokens: 512,
  ...over,
});

const text = (t: string) => ({
  model: "gpt-5.5-2026-09-01",
  content: t,
  finish_reason: "stop" as const,
  usage: { prompt_tokens: 10, completion_tokens: 5 },
});

async function rejection(p: Promise<unknown>): Promise<ModelError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ModelError);
  return err as ModelError;
}

describe("openai provider (official SDK against a local Chat Completions API)", () => {
  it("streams text with a final usage chunk and records the model the server reported", async () => {
    server.queue(openAIReply({ ...text("Escalating: fire is a safety issue."), pieces: 5 }));
    const deltas: string[] = [];
    const r = await provider.complete(request({ onText: (d) => deltas.push(d) }));

    expect(deltas.length).toBeGreaterThanOrEqual(5);
    expect(deltas.join("")).toBe("Escalating: fire is a safety issue.");
    expect(r.content).toEqual([{ type: "text", text: "Escalating: fire is a safety issue." }]);
    expect(r).toMatchObject({ stopReason: "end_turn", model: "gpt-5.5-2026-09-01", requestedModel: "gpt-5.5", provider: "openai", attempts: 1 });
    expect(r.usage).toMatchObject({ inputTokens: 10, outputTokens: 5, totalTokens: 15 });
    expect(r.usage.unreported).toBeUndefined();

    const req = server.requests[0]!;
    expect(req.path).toBe("/v1/chat/completions");
    expect(req.headers.authorization).toBe("Bearer sk-test");
    expect(req.body).toMatchObject({
      model: "gpt-5.5",
      stream: true,
      stream_options: { include_usage: true },
      max_completion_tokens: 512,
      messages: [
        { role: "system", content: "You triage support tickets." },
        { role: "user", content: "Ticket 12: printer on fire." },
      ],
      tools: [
        {
          type: "function",
          function: { name: "escalate", description: "Escalate a ticket", parameters: { type: "object", properties: { ticket: { type: "integer" } } } },
        },
      ],
    });
  });

  it("goes to OPENAI_BASE_URL when the descriptor names no base URL; a compatible server never does", async () => {
    const before = process.env["OPENAI_BASE_URL"];
    process.env["OPENAI_BASE_URL"] = `${server.url}/v1`;
    try {
      server.queue(openAIReply(text("via the environment")));
      const r = await createProvider({ provider: "openai", apiKey: "sk-test", retryBaseDelayMs: 1 }).complete(request());
      expect(r.content).toEqual([{ type: "text", text: "via the environment" }]);
      expect(server.requests.map((q) => q.path)).toEqual(["/v1/chat/completions"]);
      // An OpenAI-compatible provider goes only where its descriptor says (here nowhere that answers).
      const compatible = createProvider({ provider: "openai-compatible", baseUrl: "http://127.0.0.1:9/v1", retryBaseDelayMs: 1, maxRetries: 0 });
      await rejection(compatible.complete(request()));
      expect(server.requests).toHaveLength(1);
    } finally {
      if (before === undefined) delete process.env["OPENAI_BASE_URL"];
      else process.env["OPENAI_BASE_URL"] = before;
    }
  });

  it("streams parallel tool calls whose arguments arrive in fragments", async () => {
    server.queue(
      openAIReply({
        model: "gpt-5.5-2026-09-01",
        tool_calls: [
          { id: "call_A", name: "escalate", arguments: JSON.stringify({ ticket: 12, reason: "fire", tags: ["safety", "hardware"] }) },
          { id: "call_B", name: "escalate", arguments: JSON.stringify({ ticket: 13 }) },
        ],
        finish_reason: "tool_calls",
        usage: { prompt_tokens: 40, completion_tokens: 30 },
        pieces: 6,
      }),
    );
    const r = await provider.complete(request());
    expect(r.stopReason).toBe("tool_use");
    expect(r.content).toEqual([
      { type: "tool_use", id: "call_A", name: "escalate", input: { ticket: 12, reason: "fire", tags: ["safety", "hardware"] } },
      { type: "tool_use", id: "call_B", name: "escalate", input: { ticket: 13 } },
    ]);
  });

  it("sends tool calls and results back as assistant tool_calls and tool messages", async () => {
    server.queue(openAIReply(text("done")));
    await provider.complete(
      request({
        messages: [
          { role: "user", content: [{ type: "text", text: "Ticket 12." }] },
          {
            role: "assistant",
            content: [
              { type: "text", text: "Escalating." },
              { type: "tool_use", id: "call_1", name: "escalate", input: { ticket: 12 } },
            ],
          },
          {
            role: "user",
            content: [
              { type: "tool_result", toolUseId: "call_1", content: "queue full", isError: true },
              { type: "text", text: "Try again later." },
            ],
          },
        ],
      }),
    );
    expect(server.requests[0]?.body.messages).toEqual([
      { role: "system", content: "You triage support tickets." },
      { role: "user", content: "Ticket 12." },
      {
        role: "assistant",
        content: "Escalating.",
        tool_calls: [{ id: "call_1", type: "function", function: { name: "escalate", arguments: '{"ticket":12}' } }],
      },
      { role: "tool", tool_call_id: "call_1", content: "Error: queue full" },
      { role: "user", content: "Try again later." },
    ]);
  });

  it("normalises usage: prompt_tokens includes cached_tokens, so uncached input is the difference", async () => {
    server.queue(openAIReply({ ...text("ok"), usage: { prompt_tokens: 1000, cached_tokens: 900, completion_tokens: 20 } }));
    const { usage } = await provider.complete(request());
    expect(usage).toMatchObject({ inputTokens: 100, cacheReadTokens: 900, cacheWriteTokens: 0, outputTokens: 20, totalTokens: 1020 });
    expect(usage.totalTokens).toBe(usage.raw.total_tokens);
    expect(usage.raw).toMatchObject({ prompt_tokens: 1000, completion_tokens: 20, prompt_tokens_details: { cached_tokens: 900 } });
  });

  it("honours retry-after-ms on a 429, retries a 500, and reports the attempts", async () => {
    server.queue(
      openAIError(429, { message: "Rate limit reached for requests", type: "requests", code: "rate_limit_exceeded" }, { "retry-after-ms": "300" }),
      openAIError(500, { message: "The server had an error", type: "server_error", code: null }),
      openAIReply(text("ok")),
    );
    const delays: number[] = [];
    const t0 = performance.now();
    const r = await provider.complete(request({ onRetry: (i) => delays.push(i.delayMs) }));
    expect(r.attempts).toBe(3);
    expect(delays[0]).toBe(300);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(290);
  });

  it("does not retry a 400, nor a 429 for an exhausted quota", async () => {
    server.queue(openAIError(400, { message: "Invalid 'messages[1].role'", type: "invalid_request_error", code: "invalid_value", param: "messages" }));
    let e = await rejection(provider.complete(request()));
    expect(e).toMatchObject({ kind: "bad_request", status: 400, retryable: false, attempts: 1 });
    expect(e.message).toContain("Invalid 'messages[1].role'");

    server.queue(openAIError(429, { message: "You exceeded your current quota", type: "insufficient_quota", code: "insufficient_quota" }));
    e = await rejection(provider.complete(request()));
    expect(e).toMatchObject({ status: 429, retryable: false, attempts: 1 });
    expect(server.requests).toHaveLength(2);
  });

  it("maps a 401 to auth", async () => {
    server.queue(openAIError(401, { message: "Incorrect API key provided", type: "invalid_request_error", code: "invalid_api_key" }));
    const e = await rejection(provider.complete(request()));
    expect(e).toMatchObject({ kind: "auth", status: 401, retryable: false });
  });

  it("aborts and times out promptly, mid-stream too", async () => {
    server.queue(openAIReply({ ...text("never finishes"), stallAfterChunks: 2 }));
    const ac = new AbortController();
    const t0 = performance.now();
    const p = provider.complete(request({ signal: ac.signal, onText: () => ac.abort() }));
    expect((await rejection(p)).kind).toBe("aborted");

    server.queue(hang);
    const e = await rejection(provider.complete(request({ timeoutMs: 150 })));
    expect(e.kind).toBe("timeout");
    expect(performance.now() - t0).toBeLessThan(1500);
  });

  it("an already-aborted signal makes no request", async () => {
    const e = await rejection(provider.complete(request({ signal: AbortSignal.abort() })));
    expect(e).toMatchObject({ kind: "aborted", attempts: 0 });
    expect(server.requests).toHaveLength(0);
  });

  it("the fake server's non-streaming JSON is what the SDK expects (the fake stays faithful)", async () => {
    server.queue(openAIReply({ ...text("hi"), usage: { prompt_tokens: 7, cached_tokens: 2, completion_tokens: 1 } }));
    const client = new OpenAI({ apiKey: "k", baseURL: `${server.url}/v1`, maxRetries: 0 });
    const c = await client.chat.completions.create({ model: "gpt-5.5", messages: [{ role: "user", content: "hi" }] });
    expect(c.choices[0]?.message.content).toBe("hi");
    expect(c.usage?.prompt_tokens_details?.cached_tokens).toBe(2);
  });
});

describe("openai-compatible provider (a custom base URL)", () => {
  it("talks Chat Completions to the configured base URL, with max_tokens and no stray API key", async () => {
    const saved = process.env["OPENAI_API_KEY"];
    process.env["OPENAI_API_KEY"] = "sk-must-not-leak";
    try {
      const p = createProvider({ provider: "openai-compatible", baseUrl: `${server.url}/ollama/v1`, retryBaseDelayMs: 1 });
      expect(p.name).toBe("openai-compatible");
      server.queue(openAIReply({ ...text("local answer"), model: "qwen3:8b" }));
      const r = await p.complete(request({ model: "qwen3:8b" }));
      expect(r).toMatchObject({ provider: "openai-compatible", model: "qwen3:8b", content: [{ type: "text", text: "local answer" }] });

      const req = server.requests[0]!;
      expect(req.path).toBe("/ollama/v1/chat/completions");
      expect(req.headers.authorization).toBeUndefined();
      expect(req.body.max_tokens).toBe(512);
      expect(req.body.max_completion_tokens).toBeUndefined();
    } finally {
      if (saved === undefined) delete process.env["OPENAI_API_KEY"];
      else process.env["OPENAI_API_KEY"] = saved;
    }
  });

  it("sends its own key when it has one, and flags a response without usage as unreported", async () => {
    const p = createProvider({ provider: "openai-compatible", baseUrl: `${server.url}/v1`, apiKey: "vllm-key" });
    server.queue(openAIReply({ model: "meta-llama/Llama-4-8B", content: "hi", finish_reason: "stop" }));
    const r = await p.complete(request({ model: "meta-llama/Llama-4-8B" }));
    expect(server.requests[0]?.headers.authorization).toBe("Bearer vllm-key");
    expect(r.usage).toMatchObject({ inputTokens: 0, outputTokens: 0, totalTokens: 0, unreported: true });
  });

  it("needs a base URL", () => {
    expect(() => createProvider({ provider: "openai-compatible" })).toThrow(/baseUrl/);
  });
});
