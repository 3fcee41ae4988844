import Anthropic from "@anthropic-ai/sdk";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createProvider, ModelError, type ModelProvider, type ModelRequest } from "../src/index";
import { anthropicError, anthropicReply, type FakeServer, hang, startFakeServer } from "./fake-servers";

let server: FakeServer;
let provider: ModelProvider;

beforeAll(async () => {
  server = await startFakeServer();
});
afterAll(() => server.close());
beforeEach(() => {
  server.requests.length = 0;
  provider = createProvider({ provider: "anthropic", baseUrl: server.url, apiKey: "sk-ant-test", retryBaseDelayMs: 1 });
});

const request = (over: Partial<ModelRequest> = {}): ModelRequest => ({
  model: "claude-opus-4-7",
  system: "You reconcile invoices against the ledger. You never guess an amount.",
  messages: [{ role: "user", content: [{ type: "text", text: "Reconcile invoice INV-7." }] }],
  tools: [
    {
      name: "ledger_read",
      description: "Read ledger entries",
      inputSchema: { type: "object", properties: { account: { type: "string" } }, required: ["account"] },
    },
  ],
  maxTokens: 1024,
  ...over,
});

const text = (t: string) => ({
  model: "claude-opus-4-7-20260214",
  content: [{ type: "text" as const, text: t }],
  stop_reason: "end_turn" as const,
  usage: { input_tokens: 10, output_tokens: 5 },
});

async function rejection(p: Promise<unknown>): Promise<ModelError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ModelError);
  return err as ModelError;
}

describe("anthropic provider (official SDK against a local Messages API)", () => {
  it("streams text, calls onText per delta and records the exact model id the server reported", async () => {
    server.queue(anthropicReply({ ...text("The invoice matches ledger entry 4411."), pieces: 4 }));
    const deltas: string[] = [];
    const r = await provider.complete(request({ onText: (d) => deltas.push(d) }));

    expect(deltas.length).toBeGreaterThanOrEqual(4);
    expect(deltas.join("")).toBe("The invoice matches ledger entry 4411.");
    expect(r.content).toEqual([{ type: "text", text: "The invoice matches ledger entry 4411." }]);
    expect(r.stopReason).toBe("end_turn");
    expect(r.model).toBe("claude-opus-4-7-20260214");
    expect(r.requestedModel).toBe("claude-opus-4-7");
    expect(r.provider).toBe("anthropic");
    expect(r.attempts).toBe(1);
    expect(r.id).toMatch(/^msg_/);

    const [req] = server.requests;
    expect(req?.method).toBe("POST");
    expect(req?.path).toBe("/v1/messages");
    expect(req?.body.stream).toBe(true);
    expect(req?.body.model).toBe("claude-opus-4-7");
    expect(req?.body.max_tokens).toBe(1024);
    expect(req?.headers["anthropic-version"]).toBeTruthy();
    expect(`${req?.headers["x-api-key"] ?? ""}${req?.headers.authorization ?? ""}`).toContain("sk-ant-test");
  });

  it("goes to ANTHROPIC_BASE_URL when the descriptor names no base URL, and to the descriptor's when it does", async () => {
    const before = process.env["ANTHROPIC_BASE_URL"];
    process.env["ANTHROPIC_BASE_URL"] = server.url;
    try {
      server.queue(anthropicReply(text("via the environment")));
      const r = await createProvider({ provider: "anthropic", apiKey: "sk-ant-test", retryBaseDelayMs: 1 }).complete(request());
      expect(r.content).toEqual([{ type: "text", text: "via the environment" }]);
      expect(server.requests.map((q) => q.path)).toEqual(["/v1/messages"]);
      // The descriptor's own base URL wins: this one answers nothing, so the call fails.
      const elsewhere = createProvider({ provider: "anthropic", baseUrl: "http://127.0.0.1:9/", apiKey: "sk-ant-test", retryBaseDelayMs: 1, maxRetries: 0 });
      await rejection(elsewhere.complete(request()));
      expect(server.requests).toHaveLength(1);
    } finally {
      if (before === undefined) delete process.env["ANTHROPIC_BASE_URL"];
      else process.env["ANTHROPIC_BASE_URL"] = before;
    }
  });

  it("marks the system prompt (the stable prefix) with cache_control: ephemeral", async () => {
    server.queue(anthropicReply(text("ok")));
    await provider.complete(request());
    const body = server.requests[0]?.body;
    expect(body.system).toEqual([
      {
        type: "text",
        text: "You reconcile invoices against the ledger. You never guess an amount.",
        cache_control: { type: "ephemeral" },
      },
    ]);
    expect(body.tools).toEqual([
      {
        name: "ledger_read",
        description: "Read ledger entries",
        input_schema: { type: "object", properties: { account: { type: "string" } }, required: ["account"] },
      },
    ]);
  });

  it("streams tool calls whose input JSON arrives split over several deltas", async () => {
    server.queue(
      anthropicReply({
        model: "claude-opus-4-7-20260214",
        content: [
          { type: "text", text: "Let me read the ledger." },
          { type: "tool_use", id: "toolu_01A", name: "ledger_read", input: { account: "4411", period: { from: "2026-01", to: "2026-02" } } },
          { type: "tool_use", id: "toolu_01B", name: "ledger_read", input: { account: "4412" } },
        ],
        stop_reason: "tool_use",
        usage: { input_tokens: 30, output_tokens: 40 },
        pieces: 5,
      }),
    );
    const r = await provider.complete(request());
    expect(r.stopReason).toBe("tool_use");
    expect(r.content).toEqual([
      { type: "text", text: "Let me read the ledger." },
      { type: "tool_use", id: "toolu_01A", name: "ledger_read", input: { account: "4411", period: { from: "2026-01", to: "2026-02" } } },
      { type: "tool_use", id: "toolu_01B", name: "ledger_read", input: { account: "4412" } },
    ]);
  });

  it("sends tool calls and tool results back in the Messages format", async () => {
    server.queue(anthropicReply(text("Reconciled.")));
    await provider.complete(
      request({
        messages: [
          { role: "user", content: [{ type: "text", text: "Reconcile INV-7." }] },
          { role: "assistant", content: [{ type: "tool_use", id: "toolu_1", name: "ledger_read", input: { account: "4411" } }] },
          { role: "user", content: [{ type: "tool_result", toolUseId: "toolu_1", content: "no entries", isError: true }] },
        ],
      }),
    );
    expect(server.requests[0]?.body.messages).toEqual([
      { role: "user", content: [{ type: "text", text: "Reconcile INV-7." }] },
      { role: "assistant", content: [{ type: "tool_use", id: "toolu_1", name: "ledger_read", input: { account: "4411" } }] },
      { role: "user", content: [{ type: "tool_result", tool_use_id: "toolu_1", content: "no entries", is_error: true }] },
    ]);
  });

  it("normalises streamed usage: input excludes cache reads and writes, which add up to the total", async () => {
    server.queue(
      anthropicReply({
        ...text("ok"),
        usage: { input_tokens: 100, cache_read_input_tokens: 900, cache_creation_input_tokens: 50, output_tokens: 20 },
      }),
    );
    const { usage } = await provider.complete(request());
    expect(usage).toMatchObject({ inputTokens: 100, cacheReadTokens: 900, cacheWriteTokens: 50, outputTokens: 20, totalTokens: 1070 });
    // The provider's raw numbers, as received: message_start's counters with message_delta's final output.
    expect(usage.raw).toMatchObject({ input_tokens: 100, cache_read_input_tokens: 900, cache_creation_input_tokens: 50, output_tokens: 20 });
    const raw = usage.raw as Record<string, number>;
    expect(usage.totalTokens).toBe(raw.input_tokens! + raw.cache_read_input_tokens! + raw.cache_creation_input_tokens! + raw.output_tokens!);
  });

  it("retries a 429 after the retry-after the server asked for", async () => {
    server.queue(anthropicError(429, { "retry-after": "1" }), anthropicReply(text("ok")));
    const retries: number[] = [];
    const t0 = performance.now();
    const r = await provider.complete(request({ onRetry: (i) => retries.push(i.delayMs) }));
    const elapsed = performance.now() - t0;
    expect(r.attempts).toBe(2);
    expect(retries).toEqual([1000]);
    expect(elapsed).toBeGreaterThanOrEqual(950);
    expect(server.requests).toHaveLength(2);
  });

  it("retries 500 twice, then succeeds", async () => {
    server.queue(anthropicError(500), anthropicError(500), anthropicReply(text("ok")));
    const r = await provider.complete(request());
    expect(r.attempts).toBe(3);
    expect(r.content).toEqual([{ type: "text", text: "ok" }]);
  });

  it("retries 529 overloaded and an overloaded_error event in the middle of a stream", async () => {
    server.queue(anthropicError(529), anthropicReply({ ...text("partial"), errorEvent: "overloaded_error" }), anthropicReply(text("ok")));
    const retries: string[] = [];
    const r = await provider.complete(request({ onRetry: (i) => retries.push(i.error.kind) }));
    expect(r.attempts).toBe(3);
    expect(retries).toEqual(["overloaded", "overloaded"]);
  });

  it("retries a stream cut off before message_stop", async () => {
    server.queue(anthropicReply({ ...text("partial answer"), cutAfterEvents: 4 }), anthropicReply(text("whole answer")));
    const r = await provider.complete(request());
    expect(r.attempts).toBe(2);
    expect(r.content).toEqual([{ type: "text", text: "whole answer" }]);
  });

  it("gives up after the last attempt with the server's error", async () => {
    const p = createProvider({ provider: "anthropic", baseUrl: server.url, apiKey: "k", maxRetries: 2, retryBaseDelayMs: 1 });
    server.queue(anthropicError(500), anthropicError(500), anthropicError(500), anthropicReply(text("never")));
    const e = await rejection(p.complete(request()));
    expect(e).toMatchObject({ kind: "server", status: 500, retryable: true, attempts: 3 });
    expect(server.requests).toHaveLength(3);
    server.requests.length = 0;
    await provider.complete(request()); // drain the queued reply
  });

  it("does not retry a 400", async () => {
    server.queue(anthropicError(400, {}, "messages: roles must alternate"), anthropicReply(text("never")));
    const e = await rejection(provider.complete(request()));
    expect(e).toMatchObject({ kind: "bad_request", status: 400, retryable: false, attempts: 1 });
    expect(e.message).toContain("roles must alternate");
    expect(server.requests).toHaveLength(1);
    await provider.complete(request()); // drain
  });

  it("does not retry a 401", async () => {
    server.queue(anthropicError(401));
    const e = await rejection(provider.complete(request()));
    expect(e).toMatchObject({ kind: "auth", status: 401, retryable: false, attempts: 1 });
  });

  it("raises a retry-after longer than the cap instead of sleeping on it", async () => {
    server.queue(anthropicError(429, { "retry-after": "120" }));
    const t0 = performance.now();
    const e = await rejection(provider.complete(request()));
    expect(performance.now() - t0).toBeLessThan(500);
    expect(e).toMatchObject({ kind: "rate_limited", status: 429, retryable: true, attempts: 1, retryAfterMs: 120_000 });
  });

  it("aborts promptly through the caller's signal, before the response and mid-stream", async () => {
    server.queue(hang);
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    let t0 = performance.now();
    let e = await rejection(provider.complete(request({ signal: ac.signal })));
    expect(e.kind).toBe("aborted");
    expect(performance.now() - t0).toBeLessThan(1000);

    server.queue(anthropicReply({ ...text("a long answer that never ends"), stallAfterEvents: 4 }));
    const ac2 = new AbortController();
    const seen: string[] = [];
    t0 = performance.now();
    const p = provider.complete(
      request({
        signal: ac2.signal,
        onText: (d) => {
          seen.push(d);
          ac2.abort();
        },
      }),
    );
    e = await rejection(p);
    expect(e.kind).toBe("aborted");
    expect(seen.length).toBeGreaterThan(0);
    expect(performance.now() - t0).toBeLessThan(1000);
  });

  it("times out promptly with kind timeout", async () => {
    server.queue(hang);
    const t0 = performance.now();
    const e = await rejection(provider.complete(request({ timeoutMs: 150 })));
    expect(e.kind).toBe("timeout");
    expect(performance.now() - t0).toBeLessThan(1000);
  });

  it("refuses to call without an API key", async () => {
    const saved = process.env["ANTHROPIC_API_KEY"];
    delete process.env["ANTHROPIC_API_KEY"];
    try {
      const p = createProvider({ provider: "anthropic", baseUrl: server.url });
      const e = await rejection(p.complete(request()));
      expect(e).toMatchObject({ kind: "auth", attempts: 0 });
      expect(server.requests).toHaveLength(0);
    } finally {
      if (saved !== undefined) process.env["ANTHROPIC_API_KEY"] = saved;
    }
  });

  it("the fake server's non-streaming JSON is what the SDK expects (the fake stays faithful)", async () => {
    server.queue(
      anthropicReply({
        model: "claude-opus-4-7-20260214",
        content: [{ type: "tool_use", id: "toolu_9", name: "ledger_read", input: { account: "1" } }],
        stop_reason: "tool_use",
        usage: { input_tokens: 3, output_tokens: 4, cache_read_input_tokens: 5 },
      }),
    );
    const client = new Anthropic({ apiKey: "k", baseURL: server.url, maxRetries: 0 });
    const m = await client.messages.create({ model: "claude-opus-4-7", max_tokens: 10, messages: [{ role: "user", content: "hi" }] });
    expect(m.model).toBe("claude-opus-4-7-20260214");
    expect(m.content[0]).toMatchObject({ type: "tool_use", name: "ledger_read", input: { account: "1" } });
    expect(m.usage.cache_read_input_tokens).toBe(5);
  });
});
