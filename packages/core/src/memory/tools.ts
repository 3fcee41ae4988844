import type { AgentDescriptor } from "@bosun/contracts";
import { repo, type Tx } from "@bosun/db";
import type { ToolDef } from "@bosun/llm";
import { type WorkingOp, writeWorking } from "./store";

/** The memory tools every agent has (internal: they run inside the runtime). */
export const memoryTools: ToolDef[] = [
  {
    name: "memory",
    description:
      "Edit your working memory (loaded into every prompt, limited in tokens). add: a new item; replace: new text for an item (give its id and the version you saw); remove: retire an item to your archive. A write over the limit is refused with CONSOLIDATE and the current items: merge or remove some first.",
    inputSchema: {
      type: "object",
      properties: {
        action: { type: "string", enum: ["add", "replace", "remove"] },
        id: { type: "string", description: "the item's id (replace, remove)" },
        version: { type: "integer", description: "the version you saw (replace, remove)" },
        title: { type: "string" },
        content: { type: "string", description: "the text (add, replace)" },
      },
      required: ["action"],
    },
  },
  {
    name: "memory_search",
    description: "Search your archive (past task results, retired memories) by words; quotes for phrases, -word to exclude, or for alternatives.",
    inputSchema: {
      type: "object",
      properties: { query: { type: "string" }, limit: { type: "integer", minimum: 1, maximum: 20 } },
      required: ["query"],
    },
  },
];

type ToolOut = { status: "ok" | "error"; output: Record<string, unknown> };
const err = (content: string, extra: Record<string, unknown> = {}): ToolOut => ({ status: "error", output: { content, isError: true, ...extra } });

function parseOp(a: Record<string, unknown>): WorkingOp | string {
  const str = (k: string) => (typeof a[k] === "string" ? (a[k] as string) : undefined);
  const version = typeof a.version === "number" && Number.isInteger(a.version) ? a.version : undefined;
  switch (a.action) {
    case "add":
      return str("content") === undefined ? "add needs `content`" : { action: "add", title: str("title"), content: str("content")! };
    case "replace":
      if (!str("id") || version === undefined || str("content") === undefined) return "replace needs `id`, `version` and `content`";
      return { action: "replace", id: str("id")!, version, title: str("title"), content: str("content")! };
    case "remove":
      if (!str("id") || version === undefined) return "remove needs `id` and `version`";
      return { action: "remove", id: str("id")!, version };
    default:
      return "`action` must be add, replace or remove";
  }
}

/** Runs `memory` or `memory_search` for the agent, in the run's transaction. */
export async function memoryTool(
  tx: Tx,
  p: { tenantId: string; agentId: string; descriptor: AgentDescriptor; runId: string },
  name: string,
  a: Record<string, unknown>,
): Promise<ToolOut> {
  const m = p.descriptor.spec.memory;
  if (name === "memory_search") {
    const query = typeof a.query === "string" ? a.query.slice(0, 500) : "";
    if (!query.trim()) return err("`query` must not be empty");
    const limit = typeof a.limit === "number" ? Math.min(20, Math.max(1, Math.floor(a.limit))) : 5;
    const hits = await repo.memory.searchArchive(tx, { tenantId: p.tenantId, agentId: p.agentId, query, limit });
    const content = hits.length
      ? hits.map((h) => `[${h.id}] ${h.title ? `${h.title}: ` : ""}${h.content.length > 1500 ? `${h.content.slice(0, 1499)}…` : h.content}`).join("\n\n")
      : "nothing in the archive matches";
    return { status: "ok", output: { content, hits: hits.map((h) => ({ id: h.id, rank: h.rank })) } };
  }
  const op = parseOp(a);
  if (typeof op === "string") return err(op);
  const r = await writeWorking(tx, { tenantId: p.tenantId, agentId: p.agentId, limit: m.working_tokens, retentionDays: m.retention_days, op, source: "agent", ref: p.runId });
  if (!r.ok) return err(JSON.stringify(r.error), { error: r.error });
  const verb = op.action === "add" ? "added" : op.action === "replace" ? "replaced" : "retired to the archive";
  return {
    status: "ok",
    output: {
      content: `${verb} ${r.item.id}${op.action === "remove" ? "" : ` (now v${r.item.version}, ${r.item.tokens} tokens)`}; working memory ${r.usage}/${r.limit} tokens`,
      item: { id: r.item.id, version: r.item.version, tokens: r.item.tokens, layer: r.item.layer },
      usage: r.usage,
      limit: r.limit,
    },
  };
}
