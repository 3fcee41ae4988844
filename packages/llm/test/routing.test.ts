import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  completeWithRouting,
  createProvider,
  ModelError,
  type ModelProvider,
  type ModelRequest,
  type ModelResponse,
  RoutingError,
} from "../src/index";
import { anthropicError, anthropicReply, type FakeServer, startFakeServer } from "./fake-servers";

const request: Omit<ModelRequest, "model"> = {
  system: "You reconcile invoices.",
  messages: [{ role: "user", content: [{ type: "text", text: "Reconcile INV-7." }] }],
  tools: [{ name: "complete_task", description: "Finish", inputSchema: { type: "object" } }],
  maxTokens: 256,
};

const failing = (kind: ModelError["kind"], name = "flaky"): ModelProvider & { calls: string[] } => {
  const calls: string[] = [];
  return {
    name,
    calls,
    async complete(req) {
      calls.push(req.model);
      throw new ModelError(`${name}: ${kind}`, { kind, attempts: 4, provider: name });
    },
  };
};

let server: FakeServer;
beforeAll(async () => {
  server = await startFakeServer();
});
afterAll(() => server.close());

describe("complexity routing", () => {
  it("uses the small model when it answers well, recording one attempt", async () => {
    const scripted = createProvider({ provider: "scripted" });
    const { response, attempts } = await completeWithRouting({
      small: { provider: scripted, model: "scripted-small" },
      large: { provider: scripted, model: "scripted-large" },
      request,
    });
    expect(response.model).toBe("scripted-small");
    expect(attempts).toEqual([{ model: "scripted-small", requestedModel: "scripted-small", provider: "scripted", ok: true, response }]);
  });

  it("escalates to the large model when the small one fails, and records both attempts", async () => {
    server.requests.length = 0;
    const small = createProvider({ provider: "anthropic", baseUrl: server.url, apiKey: "k", maxRetries: 1, retryBaseDelayMs: 1 });
    const large = createProvider({ provider: "anthropic", baseUrl: server.url, apiKey: "k" });
    server.queue(
      anthropicError(500),
      anthropicError(500),
      anthropicReply({
        model: "claude-opus-4-7-20260214",
        content: [{ type: "text", text: "Reconciled." }],
        stop_reason: "end_turn",
        usage: { input_tokens: 10, output_tokens: 2 },
      }),
    );
    const { response, attempts } = await completeWithRouting({
      small: { provider: small, model: "claude-haiku-5-5" },
      large: { provider: large, model: "claude-opus-4-7" },
      request,
    });
    expect(response.model).toBe("claude-opus-4-7-20260214");
    expect(server.requests.map((r) => r.body.model)).toEqual(["claude-haiku-5-5", "claude-haiku-5-5", "claude-opus-4-7"]);
    expect(attempts).toHaveLength(2);
    expect(attempts[0]).toMatchObject({ model: "claude-haiku-5-5", provider: "anthropic", ok: false, errorKind: "server" });
    expect(attempts[0]?.error).toContain("500");
    expect(attempts[1]).toMatchObject({ model: "claude-opus-4-7-20260214", requestedModel: "claude-opus-4-7", ok: true, response });
  });

  it("escalates when escalateWhen rejects the small model's answer, keeping that answer (its tokens were spent)", async () => {
    const scripted = createProvider({ provider: "scripted" });
    const { response, attempts } = await completeWithRouting({
      small: { provider: scripted, model: "scripted-small" },
      large: { provider: scripted, model: "scripted-large" },
      request,
      escalateWhen: (r: ModelResponse) => r.model === "scripted-small",
    });
    expect(response.model).toBe("scripted-large");
    expect(attempts.map((a) => [a.model, a.ok])).toEqual([
      ["scripted-small", false],
      ["scripted-large", true],
    ]);
    expect(attempts[0]?.response?.usage.totalTokens).toBeGreaterThan(0);
    expect(attempts[0]?.error).toMatch(/escalated/);
  });

  it("escalates a max_tokens answer by default", async () => {
    const truncated: ModelProvider = {
      name: "trunc",
      async complete(req) {
        const r = await createProvider({ provider: "scripted" }).complete(req);
        return { ...r, stopReason: "max_tokens" };
      },
    };
    const { response, attempts } = await completeWithRouting({
      small: { provider: truncated, model: "s" },
      large: { provider: createProvider({ provider: "scripted" }), model: "l" },
      request,
    });
    expect(response.model).toBe("l");
    expect(attempts[0]).toMatchObject({ ok: false, error: "escalated (stop reason max_tokens)" });
  });

  it("raises a RoutingError listing both attempts when the large model fails too", async () => {
    const small = failing("rate_limited", "p1");
    const large = failing("overloaded", "p2");
    const err = await completeWithRouting({ small: { provider: small, model: "s" }, large: { provider: large, model: "l" }, request }).catch((e) => e);
    expect(err).toBeInstanceOf(RoutingError);
    expect(err).toBeInstanceOf(ModelError);
    expect(err).toMatchObject({ kind: "overloaded", provider: "p2" });
    expect((err as RoutingError).routeAttempts.map((a) => [a.provider, a.model, a.ok, a.errorKind])).toEqual([
      ["p1", "s", false, "rate_limited"],
      ["p2", "l", false, "overloaded"],
    ]);
  });

  it("never escalates a caller's abort", async () => {
    const small = failing("aborted");
    const large = failing("server");
    const err = await completeWithRouting({ small: { provider: small, model: "s" }, large: { provider: large, model: "l" }, request }).catch((e) => e);
    expect(err).toMatchObject({ kind: "aborted" });
    expect(large.calls).toEqual([]);
  });
});
