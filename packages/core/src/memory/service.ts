import type { AgentDescriptor } from "@bosun/contracts";
import { type Database, repo, withTenant } from "@bosun/db";
import { type Actor, requireScope } from "../actor";
import { notFound } from "../errors";
import { CONTEXT_TOKENS } from "./prompt";
import { countTokens, SOUL_MAX_TOKENS } from "./tokens";

const mem = repo.memory;

export const TOKENIZER = "gpt-tokenizer 4.0.0 (o200k_base; approximates Claude's tokenizer)";

export function memoryItemView(i: repo.memory.MemoryItemRow) {
  return {
    id: i.id,
    layer: i.layer,
    title: i.title,
    content: i.content,
    tokens: i.tokens,
    version: i.version,
    source: i.source,
    createdAt: i.createdAt.toISOString(),
    updatedAt: i.updatedAt.toISOString(),
    expiresAt: i.expiresAt?.toISOString() ?? null,
  };
}

export const memoryService = (deps: { database: Database }) => ({
  /** GET /v1/agents/{name}/memory: the layers, their usage and limits, the last dream. */
  async get(actor: Actor, name: string) {
    requireScope(actor, "read");
    return withTenant(deps.database, actor.tenantId, async (tx) => {
      const agent = await repo.getAgentByName(tx, { tenantId: actor.tenantId, name });
      if (!agent || (actor.agentId && actor.agentId !== agent.id)) throw notFound(`agent '${name}'`);
      const d = agent.descriptor as AgentDescriptor;
      const items = await mem.listItems(tx, { tenantId: actor.tenantId, agentId: agent.id, layer: "working" });
      const u = await mem.usage(tx, { tenantId: actor.tenantId, agentId: agent.id });
      const state = await mem.getAgentMemory(tx, { tenantId: actor.tenantId, agentId: agent.id });
      return {
        agent: name,
        tokenizer: TOKENIZER,
        soul: { tokens: countTokens(d.spec.soul.trim()), limit: SOUL_MAX_TOKENS },
        working: { tokens: u.workingTokens, limit: d.spec.memory.working_tokens, items: items.map(memoryItemView) },
        archive: { items: u.archiveItems, tokens: u.archiveTokens, retentionDays: d.spec.memory.retention_days },
        context: { limit: CONTEXT_TOKENS },
        dreams: {
          lastAt: state?.lastDreamAt?.toISOString() ?? null,
          lastRunId: state?.lastDreamRunId ?? null,
          changesSince: state?.changesSinceDream ?? 0,
        },
      };
    });
  },
});

export type MemoryService = ReturnType<typeof memoryService>;
