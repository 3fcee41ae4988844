import { repo, type Tx } from "@bosun/db";
import { deferWrite } from "../audit";
import { newId } from "../ids";
import { countTokens } from "./tokens";

const mem = repo.memory;
export type MemoryItemRow = repo.memory.MemoryItemRow;

/** Longest text one memory item may hold (characters); the token limit usually bites first. */
export const MAX_ITEM_CHARS = 20_000;
export const MAX_TITLE_CHARS = 200;

export type WorkingOp =
  | { action: "add"; title?: string | undefined; content: string }
  | { action: "replace"; id: string; version: number; title?: string | undefined; content: string }
  | { action: "remove"; id: string; version: number };

/** What the model (or an operator) is shown when a write would pass the limit. */
export interface ConsolidateError {
  code: "CONSOLIDATE";
  message: string;
  usage: number;
  limit: number;
  /** Tokens the refused write would have brought the layer to. */
  wouldBe: number;
  items: { id: string; version: number; tokens: number; title: string; preview: string }[];
}

export type WriteOutcome =
  | { ok: true; item: MemoryItemRow; usage: number; limit: number; archived?: boolean }
  | { ok: false; error: ConsolidateError }
  | { ok: false; error: { code: "VERSION_CONFLICT" | "NOT_FOUND" | "VALIDATION"; message: string; current?: { id: string; version: number } } };

/** Tokens an item counts against the working limit: its title and content. */
export const itemTokens = (title: string, content: string) => countTokens(title ? `${title}\n${content}` : content);

const preview = (s: string) => {
  const words = s.replace(/\s+/g, " ").trim().split(" ");
  return words.length > 12 ? `${words.slice(0, 12).join(" ")}…` : words.join(" ");
};

export function consolidateError(items: MemoryItemRow[], usage: number, limit: number, wouldBe: number): ConsolidateError {
  return {
    code: "CONSOLIDATE",
    message: `working memory would hold ${wouldBe} of ${limit} tokens: merge items (replace one with a shorter text) or remove some (they move to the archive) first`,
    usage,
    limit,
    wouldBe,
    items: items.map((i) => ({ id: i.id, version: i.version, tokens: i.tokens, title: i.title, preview: preview(i.content) })),
  };
}

/**
 * One write to an agent's working memory, inside the caller's transaction. The agent's
 * memory lock is taken first, so the usage read here is the usage the write commits
 * against: however many writers race, the layer never passes `limit`. `remove` retires
 * the item to the archive (searchable until retention ends); replace and remove name the
 * version they saw and fail with VERSION_CONFLICT if it moved on.
 */
export async function writeWorking(
  tx: Tx,
  p: { tenantId: string; agentId: string; limit: number; retentionDays: number; op: WorkingOp; source: string; ref?: string | null },
): Promise<WriteOutcome> {
  const { tenantId, agentId, op } = p;
  if (op.action !== "remove") {
    if (!op.content.trim()) return { ok: false, error: { code: "VALIDATION", message: "content must not be empty" } };
    if (op.content.length > MAX_ITEM_CHARS) return { ok: false, error: { code: "VALIDATION", message: `content is longer than ${MAX_ITEM_CHARS} characters` } };
    if ((op.title ?? "").length > MAX_TITLE_CHARS) return { ok: false, error: { code: "VALIDATION", message: `title is longer than ${MAX_TITLE_CHARS} characters` } };
  }
  await mem.lockAgentMemory(tx, { tenantId, agentId });
  const items = await mem.listItems(tx, { tenantId, agentId, layer: "working" });
  const usage = items.reduce((n, i) => n + i.tokens, 0);
  const existing = op.action === "add" ? undefined : items.find((i) => i.id === op.id);
  if (op.action !== "add") {
    if (!existing) return { ok: false, error: { code: "NOT_FOUND", message: `no working memory item ${op.id}` } };
    if (existing.version !== op.version) {
      return {
        ok: false,
        error: { code: "VERSION_CONFLICT", message: `item ${op.id} is at version ${existing.version}, not ${op.version}: read it again`, current: { id: existing.id, version: existing.version } },
      };
    }
  }
  if (op.action === "remove") {
    const moved = await mem.archiveItem(tx, { tenantId, agentId, id: op.id, version: op.version, retentionDays: p.retentionDays });
    await mem.noteChange(tx, { tenantId, agentId });
    return { ok: true, item: moved!, usage: usage - existing!.tokens, limit: p.limit, archived: true };
  }
  const title = (op.title ?? (op.action === "replace" ? existing!.title : "")).trim();
  const tokens = itemTokens(title, op.content);
  const wouldBe = usage - (existing?.tokens ?? 0) + tokens;
  // Shrinking is always allowed, even over the limit (a lowered working_tokens): it is how
  // the agent gets back under it.
  if (wouldBe > p.limit && !(existing && tokens <= existing.tokens)) {
    return { ok: false, error: consolidateError(items, usage, p.limit, wouldBe) };
  }
  const item =
    op.action === "add"
      ? await mem.insertItem(tx, { tenantId, id: newId("mem"), agentId, layer: "working", title, content: op.content, tokens, source: p.source, ref: p.ref ?? null, retentionDays: null })
      : await mem.replaceItem(tx, { tenantId, agentId, id: op.id, version: op.version, title, content: op.content, tokens, source: p.source });
  await mem.noteChange(tx, { tenantId, agentId });
  return { ok: true, item: item!, usage: wouldBe, limit: p.limit };
}

/** Files a finished task's result in the agent's archive, to be found by memory_search. */
export async function archiveResult(
  tx: Tx,
  p: { tenantId: string; agentId: string; retentionDays: number; title: string; result: unknown; ref: string },
): Promise<void> {
  const content = typeof p.result === "string" ? p.result : JSON.stringify(p.result ?? null);
  if (!content || content === "null") return;
  const text = content.slice(0, MAX_ITEM_CHARS);
  const title = p.title.slice(0, MAX_TITLE_CHARS);
  // Nothing reads it back in this transaction: with the COMMIT inside the runtime's.
  await deferWrite(
    tx,
    mem.insertItemStatement({
      tenantId: p.tenantId,
      id: newId("mem"),
      agentId: p.agentId,
      layer: "archive",
      title,
      content: text,
      tokens: itemTokens(title, text),
      source: "task_result",
      ref: p.ref,
      retentionDays: p.retentionDays,
    }),
  );
}
