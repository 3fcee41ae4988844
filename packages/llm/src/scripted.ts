import { z } from "zod";
import {
  type ContentBlock,
  type Message,
  ModelError,
  type ModelProvider,
  type ModelRequest,
  type ModelResponse,
  type ScriptStep,
  type Usage,
} from "./types";

/** A script as written in a descriptor's `model` section. */
export const scriptStepSchema = z.union([
  z.strictObject({ call: z.string().min(1).max(200), input: z.record(z.string(), z.unknown()).optional() }),
  z.strictObject({ say: z.string().max(10_000) }),
]);
export const scriptSchema = z.array(scriptStepSchema).max(200);

const PROVIDER = "scripted";
type Turn = Pick<ModelResponse, "content" | "stopReason">;
export const COMPLETE_TASK_TOOL = "complete_task";

const chars = (blocks: ContentBlock[]) =>
  blocks.reduce((n, b) => {
    if (b.type === "text") return n + b.text.length;
    if (b.type === "tool_use") return n + b.name.length + JSON.stringify(b.input).length;
    return n + b.content.length;
  }, 0);

const tokens = (n: number) => Math.ceil(n / 4);

/** The task, for the result: the first line of the first user text, shortened. */
function taskSummary(messages: Message[]): string {
  for (const m of messages) {
    if (m.role !== "user") continue;
    for (const b of m.content) {
      if (b.type !== "text") continue;
      const line = b.text.trim().split("\n")[0]!.replace(/\s+/g, " ");
      if (line) return line.length > 80 ? `${line.slice(0, 79)}…` : line;
    }
  }
  return "the task";
}

/**
 * Deterministic usage, a pure function of the request and the answer:
 * - the stable prefix (system + tool definitions) is written to the cache on the first
 *   turn of a conversation (no assistant message yet) and read from it on every later
 *   turn, so demos exercise all four token categories;
 * - inputTokens = ceil(characters of the messages / 4);
 * - outputTokens = ceil(characters of the answer / 4).
 * Keyed on the conversation, not on process history, so the same request always costs the
 * same.
 */
function scriptedUsage(req: ModelRequest, turn: number, output: ContentBlock[]): Usage {
  const prefixChars = req.system.length + (req.tools?.length ? JSON.stringify(req.tools).length : 0);
  const prefix = tokens(prefixChars);
  const input = tokens(req.messages.reduce((n, m) => n + chars(m.content), 0));
  const cacheWrite = turn === 0 ? prefix : 0;
  const cacheRead = turn === 0 ? 0 : prefix;
  const out = tokens(chars(output));
  const raw = { input_tokens: input, cache_creation_input_tokens: cacheWrite, cache_read_input_tokens: cacheRead, output_tokens: out };
  return {
    inputTokens: input,
    cacheReadTokens: cacheRead,
    cacheWriteTokens: cacheWrite,
    outputTokens: out,
    totalTokens: input + cacheRead + cacheWrite + out,
    raw,
  };
}

/**
 * The offline provider the demo tenant's agents use. Turn i (= the number of assistant
 * messages so far) plays script step i; after the script, or with none, it completes the
 * task: a `complete_task` tool call when the request offers that tool, a short text
 * otherwise, and a closing text once complete_task has been called.
 */
export function createScriptedProvider(script: ScriptStep[] = []): ModelProvider {
  const steps = scriptSchema.parse(script) as ScriptStep[];
  return {
    name: PROVIDER,
    async complete(req: ModelRequest): Promise<ModelResponse> {
      if (req.signal?.aborted) {
        throw new ModelError(`${PROVIDER}: request aborted`, { kind: "aborted", retryable: false, attempts: 0, provider: PROVIDER });
      }
      const assistantTurns = req.messages.filter((m) => m.role === "assistant");
      const turn = assistantTurns.length;
      const step = steps[turn];
      const lastCalls = assistantTurns.at(-1)?.content.filter((b) => b.type === "tool_use") ?? [];
      const summary = taskSummary(req.messages);

      const call = (name: string, input: Record<string, unknown>): Turn => ({
        content: [{ type: "tool_use", id: `toolu_scripted_${turn}`, name, input }],
        stopReason: "tool_use",
      });
      const say = (text: string): Turn => ({ content: [{ type: "text", text }], stopReason: "end_turn" });

      const { content, stopReason } =
        step && "call" in step
          ? call(step.call, step.input ?? {})
          : step
            ? say(step.say)
            : lastCalls.some((b) => b.name === COMPLETE_TASK_TOOL)
              ? say("Task completed.")
              : req.tools?.some((t) => t.name === COMPLETE_TASK_TOOL)
                ? call(COMPLETE_TASK_TOOL, { result: `Completed: ${summary}` })
                : say(`Completed: ${summary}`);

      for (const b of content) if (b.type === "text") req.onText?.(b.text);
      return {
        content,
        stopReason,
        model: req.model,
        requestedModel: req.model,
        provider: PROVIDER,
        usage: scriptedUsage(req, turn, content),
        // No network, nothing to measure: 0 keeps responses byte-for-byte reproducible.
        latencyMs: 0,
        attempts: 1,
      };
    },
  };
}
