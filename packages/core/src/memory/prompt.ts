import type { AgentDescriptor } from "@bosun/contracts";
import { type QueryResult, repo, type Tx } from "@bosun/db";
import { countTokens } from "./tokens";

const mem = repo.memory;

/** The active-context layer's token budget: oldest entries are trimmed past it, and flagged. */
export const CONTEXT_TOKENS = 1500;
/** Threads are open for this long after their last message to the agent. */
const OPEN_THREAD_DAYS = 7;

export interface ContextData {
  working: repo.memory.MemoryItemRow[];
  unread: repo.memory.MessageRow[];
  threads: { threadId: string; last: { id: string; fromType: string; fromId: string; body: string; createdAt: Date } }[];
  proposals: repo.memory.PendingProposal[];
}

/** Layer sizes recorded on every llm step (input.layers), in tokens. */
export interface LayerTokens {
  soul: number;
  instructions: number;
  working: number;
  context: number;
  contextLimit: number;
  trimmed: { messages: number; threads: number; proposals: number };
}

/**
 * What a run's prompt is made of, read in the run's fenced transaction, in one statement
 * (every layer is a round trip otherwise, before every model call).
 */
export async function loadContextData(tx: Tx, p: { tenantId: string; agentId: string; withContext: boolean }): Promise<ContextData> {
  return mem.promptReads(tx, readsOf(p));
}

/**
 * loadContextData as a statement (escaped literals), for a batch sent with a BEGIN;
 * `contextDataFrom` reads its result. `onlyIf`: an SQL condition that gates the read.
 */
export const contextDataRead = (p: { tenantId: string; agentId: string; withContext: boolean }, onlyIf?: { name: string; sql: string }) =>
  mem.promptReadsRead(readsOf(p), onlyIf);
export const contextDataFrom = (r: QueryResult): ContextData => mem.promptReadsFrom(r);

const readsOf = (p: { tenantId: string; agentId: string; withContext: boolean }) => ({
  tenantId: p.tenantId,
  agentId: p.agentId,
  withContext: p.withContext,
  unreadLimit: 100,
  threadDays: OPEN_THREAD_DAYS,
  threadLimit: 50,
  proposalLimit: 50,
});

const oneLine = (s: string, max = 300) => {
  const t = s.replace(/\s+/g, " ").trim();
  return t.length > max ? `${t.slice(0, max - 1)}…` : t;
};

export function renderWorking(items: repo.memory.MemoryItemRow[]): string {
  if (!items.length) return "";
  return [
    "## Working memory (yours: edit it with the `memory` tool; ids and versions in brackets)",
    ...items.map((i) => `- [${i.id} v${i.version}]${i.title ? ` ${i.title}:` : ""} ${i.content.replace(/\n/g, "\n  ")}`),
  ].join("\n");
}

/**
 * The active context under its budget: unread messages, open threads and open proposals,
 * newest kept first; what does not fit is trimmed oldest-first and the prompt says how
 * much was left out (and where to find it).
 */
export function renderContext(data: ContextData, budget = CONTEXT_TOKENS): { text: string; tokens: number; trimmed: LayerTokens["trimmed"] } {
  const sections: { key: keyof LayerTokens["trimmed"]; head: string; lines: string[] }[] = [
    {
      key: "messages",
      head: "Unread messages (not yet marked read; reply with `reply`)",
      lines: [...data.unread].reverse().map((m) => `- ${m.id} from ${m.fromType} ${m.fromId}${m.broadcastId ? " (broadcast)" : ""}: ${oneLine(m.body)}`),
    },
    {
      key: "threads",
      head: "Open threads (the last word is not yours)",
      lines: data.threads.map((t) => `- thread ${t.threadId}, last ${t.last.id} from ${t.last.fromType} ${t.last.fromId}: ${oneLine(t.last.body, 200)}`),
    },
    {
      key: "proposals",
      head: "Open proposals",
      lines: data.proposals.map((p) => `- ${p.id}: ${oneLine(p.title, 200)}${p.responded ? " (you answered)" : ""}`),
    },
  ];
  const trimmed = { messages: 0, threads: 0, proposals: 0 };
  const out: string[] = [];
  let used = 0;
  // Lines are newest first within each section; the budget is shared in section order.
  for (const s of sections) {
    if (!s.lines.length) continue;
    const kept: string[] = [];
    for (const line of s.lines) {
      const t = countTokens(line) + 1;
      if (used + t > budget) {
        trimmed[s.key]++;
        continue;
      }
      used += t;
      kept.push(line);
    }
    const flag = trimmed[s.key] ? `\n- … ${trimmed[s.key]} older ${s.key} trimmed to fit the context budget` : "";
    if (kept.length || flag) out.push(`### ${s.head}\n${kept.reverse().join("\n")}${flag}`);
  }
  if (!out.length) return { text: "", tokens: 0, trimmed };
  const text = `<active_context>\n${out.join("\n\n")}\n</active_context>`;
  return { text, tokens: countTokens(text), trimmed };
}

/**
 * The system prompt, stable layers first so the provider's prompt cache keeps applying:
 * the soul (changes only with a new revision), the agent's identity and instructions,
 * then working memory (changes only when the agent edits it). The volatile layer, the
 * active context, does not go here: it opens the run's first user message (see prepareCall).
 */
export function assembleSystem(d: AgentDescriptor, working: repo.memory.MemoryItemRow[]) {
  const soul = d.spec.soul.trim();
  const instructions = [
    `You are the agent "${d.metadata.name}", owned by ${d.metadata.owner}.`,
    d.spec.domains.length ? `Your domains: ${d.spec.domains.join(", ")}.` : "",
    "Work through tools. When the task is done call complete_task with the result; if it cannot be done call fail_task.",
    `Keep what you must remember in working memory (the \`memory\` tool; at most ${d.spec.memory.working_tokens} tokens). Past results and retired memories are in your archive: search it with \`memory_search\`.`,
  ]
    .filter(Boolean)
    .join("\n\n");
  const workingText = renderWorking(working);
  const system = [soul, instructions, workingText].filter(Boolean).join("\n\n");
  return { system, tokens: { soul: countTokens(soul), instructions: countTokens(instructions), working: countTokens(workingText) } };
}

export interface RunPrompt {
  system: string;
  /** The active context, frozen for the run (prefixed to its first user message). */
  context: string;
  layers: LayerTokens & { contextText: string };
}

/**
 * A run's prompt layers for its next model call. The soul and working memory are read
 * fresh (the agent may have just edited its memory); the active context is assembled once,
 * at the run's first call, and then read back from that call's step, so the conversation a
 * run resumes is the one it had.
 */
/** The run's first model step that recorded its prompt's layers (its frozen active context). */
const firstLayers = (steps: { kind: string; input: unknown }[]) =>
  steps.find((s) => s.kind === "llm" && (s.input as { layers?: unknown } | null)?.layers) as { input: { layers: RunPrompt["layers"] } } | undefined;

/** Whether a run with these steps reads the active context for its next prompt (its first call does; later ones reuse it). */
export const needsContext = (steps: { kind: string; input: unknown }[]) => !firstLayers(steps);

export async function runPrompt(
  tx: Tx,
  p: {
    tenantId: string;
    agentId: string;
    descriptor: AgentDescriptor;
    steps: { kind: string; input: unknown }[];
    /** What loadContextData would read, read already, with `withContext: needsContext(steps)`. */
    read?: ContextData | undefined;
  },
): Promise<RunPrompt> {
  const earlier = firstLayers(p.steps);
  const data = p.read ?? (await loadContextData(tx, { tenantId: p.tenantId, agentId: p.agentId, withContext: !earlier }));
  const sys = assembleSystem(p.descriptor, data.working);
  const ctx = earlier
    ? { text: earlier.input.layers.contextText, tokens: earlier.input.layers.context, trimmed: earlier.input.layers.trimmed }
    : renderContext(data);
  return {
    system: sys.system,
    context: ctx.text,
    layers: { ...sys.tokens, context: ctx.tokens, contextLimit: CONTEXT_TOKENS, trimmed: ctx.trimmed, contextText: ctx.text },
  };
}
