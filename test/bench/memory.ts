/**
 * Prompt size per run with and without the memory layers' bounds (no database: the prompt
 * assembly is pure once its rows are read). For inboxes and archives of growing size, the
 * memory and context tokens of one run's prompt:
 *  - bounded: soul + instructions + working memory (at its 2000-token limit) + the active
 *    context under its 1500-token budget (packages/core/src/memory/prompt.ts);
 *  - unbounded (the baseline): the same soul and instructions, every note the agent ever
 *    wrote (3x the limit: no consolidation), every unread message and every archived result.
 * Counted with the same tokenizer. Prints figures; asserts nothing.
 */
import type { AgentDescriptor } from "@bosun/contracts";
import { assembleSystem, CONTEXT_TOKENS, type ContextData, countTokens, renderContext } from "@bosun/core";

const d = {
  apiVersion: "agent.os/v1",
  kind: "Agent",
  metadata: { name: "recon", owner: "finance" },
  spec: {
    model: { provider: "scripted", name: "scripted-small" },
    soul: "You are the finance team's reconciliation agent. You are careful, terse and never guess an amount.",
    drives: [],
    memory: { type: "persistent", retention_days: 90, working_tokens: 2000 },
    tools: [],
    domains: ["finance/*"],
  },
} as unknown as AgentDescriptor;

const note = (i: number) => `Observation ${i}: the reconciliation of region ${i % 37} finished late because the ledger export arrived after the cut-off; follow up with finance ops (ticket FIN-${1000 + i}).`;
const now = new Date();
const item = (i: number) => ({ id: `mem_${String(i).padStart(26, "0")}`, agentId: "agt", layer: "working" as const, title: `note ${i}`, content: note(i), tokens: countTokens(`note ${i}\n${note(i)}`), version: 1, source: "agent", ref: null, createdAt: now, updatedAt: now, expiresAt: null });
const msg = (i: number) => ({ id: `msg_${String(i).padStart(26, "0")}`, toAgentId: "agt", toType: "agent", toId: "agt", fromType: "user", fromId: "usr_x", body: `Please check invoice batch ${i}: ${note(i)}`, threadId: null, replyTo: null, broadcastId: null, readAt: null, createdAt: now });

// Working memory at its limit (the tool refuses more), versus everything ever written.
const all = Array.from({ length: 200 }, (_, i) => item(i));
const working: typeof all = [];
let used = 0;
for (const i of all) {
  if (used + i.tokens > 2000) break;
  working.push(i);
  used += i.tokens;
}
const everWritten = all.slice(0, working.length * 3);

console.log("memory bench: memory + context tokens in one run's prompt");
console.log("unread msgs | archived results | bounded | unbounded | unbounded / bounded");
for (const [messages, archived] of [
  [10, 0],
  [100, 50],
  [1000, 500],
  [5000, 2000],
] as const) {
  const data: ContextData = { working, unread: Array.from({ length: messages }, (_, i) => msg(i)), threads: [], proposals: [] };
  const sys = assembleSystem(d, working);
  const ctx = renderContext(data, CONTEXT_TOKENS);
  const bounded = sys.tokens.soul + sys.tokens.instructions + sys.tokens.working + ctx.tokens;
  const archiveText = Array.from({ length: archived }, (_, i) => `Task tsk_${i}: Reconcile batch ${i}\n${note(i)}`).join("\n");
  const unbounded =
    sys.tokens.soul +
    sys.tokens.instructions +
    countTokens(everWritten.map((i) => `${i.title}: ${i.content}`).join("\n")) +
    countTokens(data.unread.map((m) => m.body).join("\n")) +
    countTokens(archiveText);
  console.log(`${String(messages).padStart(11)} | ${String(archived).padStart(16)} | ${String(bounded).padStart(7)} | ${String(unbounded).padStart(9)} | ${(unbounded / bounded).toFixed(1)}x`);
}
