import type { AgentDescriptor } from "@bosun/contracts";
import { type Database, repo, type Tx, withSystem, withTenant } from "@bosun/db";
import { type Jobs, wakeKey } from "@bosun/jobs";
import type { ModelProvider, ModelResponse, ToolDef } from "@bosun/llm";
import { z } from "zod";
import { type Reservation, SpendRefused, type SpendEngine, spendEngine } from "../costs/spend";
import { newId } from "../ids";
import { newTraceparent } from "../runtime/trace";
import { itemTokens, type MemoryItemRow } from "./store";

const mem = repo.memory;
const rt = repo.runtime;

/** A dream is due early when this many working-memory writes piled up since the last one… */
export const DREAM_DEBT_CHANGES = 20;
/** …or when working memory is this full. */
export const DREAM_DEBT_RATIO = 0.8;
/** How long a dream may hold the agent's memory lease (and the back-off after a failure). */
const DREAM_LEASE_SECONDS = 300;
const DREAM_TIMEOUT_MS = 120_000;

export const consolidateTool: ToolDef = {
  name: "consolidate",
  description:
    "Propose how to consolidate working memory. merges: several items become one shorter item (the originals move to the archive); archive: items no longer needed every time (kept searchable); drop: items that are wrong or worthless. Name every item by id and the version you were shown.",
  inputSchema: {
    type: "object",
    properties: {
      merges: {
        type: "array",
        items: {
          type: "object",
          properties: {
            items: { type: "array", items: { type: "object", properties: { id: { type: "string" }, version: { type: "integer" } }, required: ["id", "version"] } },
            title: { type: "string" },
            content: { type: "string" },
          },
          required: ["items", "content"],
        },
      },
      archive: { type: "array", items: { type: "object", properties: { id: { type: "string" }, version: { type: "integer" } }, required: ["id", "version"] } },
      drop: { type: "array", items: { type: "object", properties: { id: { type: "string" }, version: { type: "integer" } }, required: ["id", "version"] } },
      note: { type: "string", description: "one line on what you changed and why" },
    },
  },
};

const ref = z.object({ id: z.string().max(64), version: z.number().int() });
const proposalSchema = z.object({
  merges: z
    .array(z.object({ items: z.array(ref).min(2).max(50), title: z.string().max(200).optional(), content: z.string().min(1).max(20_000) }))
    .max(50)
    .default([]),
  archive: z.array(ref).max(200).default([]),
  drop: z.array(ref).max(200).default([]),
  note: z.string().max(2000).optional(),
});
export type DreamProposal = z.infer<typeof proposalSchema>;

export interface DreamDiff {
  usageBefore: number;
  usageAfter: number;
  limit: number;
  applied: ({ op: "merge"; from: string[]; into: string } | { op: "archive" | "drop"; id: string })[];
  /** Operations left alone: an item changed (or went) while the model was thinking, or the limit. */
  skipped: { op: "merge" | "archive" | "drop"; ids: string[]; reason: string }[];
  note: string | null;
}

export type DreamOutcome =
  | { outcome: "busy" }
  | { outcome: "skipped"; reason: string }
  | { outcome: "failed"; runId: string; error: string }
  | { outcome: "applied"; runId: string; diff: DreamDiff };

const preview = (s: string) => (s.length > 400 ? `${s.slice(0, 399)}…` : s);

/**
 * Applies a proposal to the working memory as it is now, in `tx`. Every operation names the
 * versions the model was shown: an item edited meanwhile (a live run, an operator) has a
 * newer version, so the operation that names it is skipped, never applied over the edit.
 */
export async function applyProposal(
  tx: Tx,
  p: { tenantId: string; agentId: string; limit: number; retentionDays: number; runId: string; proposal: DreamProposal },
): Promise<DreamDiff> {
  const { tenantId, agentId } = p;
  await mem.lockAgentMemory(tx, { tenantId, agentId });
  const working = await mem.listItems(tx, { tenantId, agentId, layer: "working" });
  const byId = new Map(working.map((i) => [i.id, i]));
  let usage = working.reduce((n, i) => n + i.tokens, 0);
  const usageBefore = usage;
  const used = new Set<string>();
  const diff: DreamDiff = { usageBefore, usageAfter: 0, limit: p.limit, applied: [], skipped: [], note: p.proposal.note ?? null };
  const current = (refs: { id: string; version: number }[]) => {
    const items: MemoryItemRow[] = [];
    for (const r of refs) {
      const i = byId.get(r.id);
      if (!i || i.version !== r.version || used.has(r.id)) return null;
      items.push(i);
    }
    return new Set(refs.map((r) => r.id)).size === refs.length ? items : null;
  };
  const changed = "changed or gone since the dream read it";
  for (const m of p.proposal.merges) {
    const items = current(m.items);
    if (!items) {
      diff.skipped.push({ op: "merge", ids: m.items.map((r) => r.id), reason: changed });
      continue;
    }
    const title = (m.title ?? "").trim();
    const tokens = itemTokens(title, m.content);
    const freed = items.reduce((n, i) => n + i.tokens, 0);
    if (usage - freed + tokens > p.limit && tokens > freed) {
      diff.skipped.push({ op: "merge", ids: items.map((i) => i.id), reason: "the merged item would pass the working-memory limit" });
      continue;
    }
    for (const i of items) {
      await mem.archiveItem(tx, { tenantId, agentId, id: i.id, version: i.version, retentionDays: p.retentionDays });
      used.add(i.id);
    }
    const merged = await mem.insertItem(tx, { tenantId, id: newId("mem"), agentId, layer: "working", title, content: m.content, tokens, source: "dream", ref: p.runId, retentionDays: null });
    usage += tokens - freed;
    diff.applied.push({ op: "merge", from: items.map((i) => i.id), into: merged.id });
  }
  for (const [op, refs] of [
    ["archive", p.proposal.archive],
    ["drop", p.proposal.drop],
  ] as const) {
    for (const r of refs) {
      const items = current([r]);
      if (!items) {
        diff.skipped.push({ op, ids: [r.id], reason: changed });
        continue;
      }
      if (op === "archive") await mem.archiveItem(tx, { tenantId, agentId, id: r.id, version: r.version, retentionDays: p.retentionDays });
      else await mem.deleteItem(tx, { tenantId, agentId, id: r.id, version: r.version });
      used.add(r.id);
      usage -= items[0]!.tokens;
      diff.applied.push({ op, id: r.id });
    }
  }
  diff.usageAfter = usage;
  return diff;
}

/** The next `hour`:00 in the tenant's time zone, strictly after now (SQL, for DST). */
const nextLocalHour = (tz: string, hour: string) =>
  `((date_trunc('day', now() AT TIME ZONE ${tz} - make_interval(hours => ${hour})) + interval '1 day' + make_interval(hours => ${hour})) AT TIME ZONE ${tz})`;

/**
 * Dream cycles: consolidation of an agent's working memory by its model, applied by code.
 * `dream` takes the agent's memory lease (`agent_memory.dream_epoch`, not the session lease:
 * the agent keeps working meanwhile), asks the model for a `consolidate` proposal over the
 * items it reads, and applies it under the lease with per-item version checks. The dream is
 * a run of its own (`trigger = 'dream'`): its model call is reserved and settled like any
 * other, against the agent's budgets with its own per-invocation window, and capped by
 * `memory.dream.max_tokens` and `memory.dream.usd_per_invocation`.
 */
export function dreamer(deps: {
  database: Database;
  jobs: Pick<Jobs, "enqueue">;
  provider: (model: AgentDescriptor["spec"]["model"]) => ModelProvider;
  spend?: SpendEngine;
}) {
  const spend = deps.spend ?? spendEngine({ jobs: deps.jobs });

  async function dream(p: { tenantId: string; agentId: string }): Promise<DreamOutcome> {
    const { tenantId, agentId } = p;
    // The lease: one dream per agent at a time; a dream with nothing new is skipped at once.
    const lease = await withTenant(deps.database, tenantId, async (tx) => {
      const { rows } = await tx.$client.query<{ epoch: string; changes: number }>(
        `UPDATE agent_memory SET dream_epoch = dream_epoch + 1, dream_until = now() + make_interval(secs => $3)
         WHERE tenant_id = $1 AND agent_id = $2 AND (dream_until IS NULL OR dream_until < now()) AND changes_since_dream > 0
         RETURNING dream_epoch AS epoch, changes_since_dream AS changes`,
        [tenantId, agentId, DREAM_LEASE_SECONDS],
      );
      if (!rows[0]) return null;
      const agent = await repo.getAgentById(tx, { tenantId, agentId });
      const items = await mem.listItems(tx, { tenantId, agentId, layer: "working" });
      return { epoch: Number(rows[0].epoch), changes: rows[0].changes, agent, items };
    });
    if (!lease) {
      const state = await withTenant(deps.database, tenantId, (tx) => mem.getAgentMemory(tx, { tenantId, agentId }));
      return state && state.changesSinceDream > 0 ? { outcome: "busy" } : { outcome: "skipped", reason: "nothing new since the last dream" };
    }
    const release = (tx: Tx, patch: "done" | "failed") =>
      tx.$client.query(
        `UPDATE agent_memory m SET
           changes_since_dream = CASE WHEN $4 = 'done' THEN greatest(0, changes_since_dream - $5) ELSE changes_since_dream END,
           last_dream_at = CASE WHEN $4 = 'done' THEN now() ELSE last_dream_at END,
           last_dream_run_id = coalesce($6, last_dream_run_id),
           next_dream_at = ${nextLocalHour("(SELECT time_zone FROM tenants WHERE id = m.tenant_id)", "$7::int")},
           dream_until = CASE WHEN $4 = 'done' THEN NULL ELSE now() + make_interval(secs => ${DREAM_LEASE_SECONDS * 12}) END,
           updated_at = now()
         WHERE tenant_id = $1 AND agent_id = $2 AND dream_epoch = $3`,
        [tenantId, agentId, lease.epoch, patch, lease.changes, runIdOrNull, hour],
      );
    let runIdOrNull: string | null = null;
    const d = lease.agent?.descriptor as AgentDescriptor | undefined;
    const hour = d?.spec.memory.dream?.hour ?? 3;
    if (!d || lease.agent?.status !== "active" || !lease.items.length) {
      await withTenant(deps.database, tenantId, (tx) => release(tx, "done"));
      return { outcome: "skipped", reason: !lease.items.length ? "working memory is empty" : "the agent is not active" };
    }
    const m = d.spec.memory;
    const runId = newId("run");
    runIdOrNull = runId;
    const createdAt = new Date();
    const model = { ...d.spec.model, escalate_to: undefined, ...(m.dream?.script ? { script: m.dream.script } : {}) };
    if (d.spec.model.provider === "scripted" && !m.dream?.script) delete (model as { script?: unknown }).script;
    const usage = lease.items.reduce((n, i) => n + i.tokens, 0);
    const request = {
      model: model.name,
      system: [
        d.spec.soul.trim(),
        "You are dreaming: consolidating your working memory, which is loaded into every prompt you get. Keep what you need every time, short; merge overlapping items; archive what is only needed sometimes (it stays searchable); drop what is wrong or stale. Answer with one call to the `consolidate` tool.",
      ]
        .filter(Boolean)
        .join("\n\n"),
      messages: [
        {
          role: "user" as const,
          content: [
            {
              type: "text" as const,
              text: `Working memory: ${usage} of ${m.working_tokens} tokens, ${lease.items.length} items.\n\n${lease.items
                .map((i) => `- id ${i.id} version ${i.version} (${i.tokens} tokens)${i.title ? ` ${i.title}:` : ""} ${preview(i.content)}`)
                .join("\n")}`,
            },
          ],
        },
      ],
      tools: [consolidateTool],
      maxTokens: m.dream?.max_tokens ?? 2048,
      timeoutMs: DREAM_TIMEOUT_MS,
    };
    const promptTokens = Buffer.byteLength(request.system) + Buffer.byteLength(JSON.stringify(request.messages)) + Buffer.byteLength(JSON.stringify(request.tools)) + 512;
    let reservation: Reservation;
    try {
      reservation = await withTenant(deps.database, tenantId, (tx) =>
        spend.reserve(tx, {
          tenantId,
          agentId,
          runId,
          runCreatedAt: createdAt,
          taskId: null,
          key: `${runId}:0`,
          calls: [{ provider: model.provider, model: model.name, promptTokens, maxTokens: request.maxTokens }],
          computeMs: DREAM_TIMEOUT_MS + 30_000,
        }),
      );
    } catch (err) {
      if (!(err instanceof SpendRefused)) throw err;
      await withTenant(deps.database, tenantId, async (tx) => {
        await insertDreamRun(tx, { tenantId, runId, agentId, createdAt, status: "failed", error: { code: err.code, message: err.message }, model: null, steps: 0, tokensIn: 0, tokensOut: 0 });
        await release(tx, "failed");
      });
      return { outcome: "failed", runId, error: err.message };
    }
    // The dream's own cap, on top of the agent's budgets: its worst case must fit.
    const cap = m.dream?.usd_per_invocation;
    if (cap !== undefined && (reservation.estimates[0] ?? 0) > Math.round(cap * 1_000_000)) {
      const message = `the dream's worst case exceeds its ${cap} USD cap (memory.dream.usd_per_invocation)`;
      await withTenant(deps.database, tenantId, async (tx) => {
        await spend.release(tx, reservation);
        await insertDreamRun(tx, { tenantId, runId, agentId, createdAt, status: "failed", error: { code: "BUDGET_EXCEEDED", message }, model: null, steps: 0, tokensIn: 0, tokensOut: 0 });
        await release(tx, "failed");
      });
      return { outcome: "failed", runId, error: message };
    }
    const started = Date.now();
    let response: ModelResponse | null = null;
    let error: string | null = null;
    try {
      response = await deps.provider(model).complete(request);
    } catch (err) {
      error = err instanceof Error ? err.message : String(err);
    }
    const use = response?.content.find((b) => b.type === "tool_use" && b.name === "consolidate");
    const parsed = use && use.type === "tool_use" ? proposalSchema.safeParse(use.input) : null;
    if (!error && response && !parsed) error = "the model did not call `consolidate`";
    if (!error && parsed && !parsed.success) error = `the consolidate proposal is invalid: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`;

    return withTenant(deps.database, tenantId, async (tx) => {
      // Still ours? A dream whose lease ran out (and was taken again) writes nothing.
      const held = await tx.$client.query(`SELECT 1 FROM agent_memory WHERE tenant_id = $1 AND agent_id = $2 AND dream_epoch = $3 FOR UPDATE`, [tenantId, agentId, lease.epoch]);
      const u = response?.usage;
      const tokensIn = u ? u.inputTokens + u.cacheReadTokens + u.cacheWriteTokens : 0;
      const base = { tenantId, runId, runCreatedAt: createdAt, leaseEpoch: lease.epoch, createdAt };
      await insertDreamRun(tx, {
        tenantId,
        runId,
        agentId,
        createdAt,
        status: error || !held.rowCount ? "failed" : "succeeded",
        error: error ? { code: "DREAM_FAILED", message: error } : !held.rowCount ? { code: "LEASE_LOST", message: "the dream's memory lease was lost" } : null,
        model: response?.model ?? null,
        steps: 2,
        tokensIn,
        tokensOut: u?.outputTokens ?? 0,
      });
      await rt.insertStep(tx, {
        ...base,
        seq: 0,
        kind: "llm",
        name: response?.model ?? model.name,
        status: response ? "ok" : "error",
        input: { messages: request.messages, tools: [consolidateTool.name] },
        output: response ? { content: response.content, stopReason: response.stopReason } : { error },
        provider: response?.provider ?? null,
        model: response?.model ?? null,
        inputTokens: u?.inputTokens ?? 0,
        cacheReadTokens: u?.cacheReadTokens ?? 0,
        cacheWriteTokens: u?.cacheWriteTokens ?? 0,
        outputTokens: u?.outputTokens ?? 0,
        latencyMs: response ? Math.round(response.latencyMs) : null,
      });
      await spend.settle(tx, reservation, { calls: [{ seq: 0, model: response?.model ?? null, usage: u ?? null }], computeMs: Date.now() - started });
      if (error || !held.rowCount || !parsed?.success) {
        await rt.insertStep(tx, { ...dreamStep(base), status: "error", output: { error: error ?? "lease lost" } });
        if (held.rowCount) await release(tx, "failed");
        return { outcome: "failed" as const, runId, error: error ?? "lease lost" };
      }
      const diff = await applyProposal(tx, { tenantId, agentId, limit: m.working_tokens, retentionDays: m.retention_days, runId, proposal: parsed.data });
      await rt.insertStep(tx, { ...dreamStep(base), status: "ok", input: { items: lease.items.map((i) => ({ id: i.id, version: i.version, tokens: i.tokens })) }, output: diff });
      await release(tx, "done");
      return { outcome: "applied" as const, runId, diff };
    });
  }

  return { dream };
}

function dreamStep(b: { tenantId: string; runId: string; runCreatedAt: Date; leaseEpoch: number }) {
  return {
    tenantId: b.tenantId,
    runId: b.runId,
    runCreatedAt: b.runCreatedAt,
    seq: 1,
    kind: "dream" as const,
    name: "consolidate",
    status: "ok" as "ok" | "error",
    input: null as unknown,
    output: null as unknown,
    provider: null,
    model: null,
    inputTokens: 0,
    cacheReadTokens: 0,
    cacheWriteTokens: 0,
    outputTokens: 0,
    latencyMs: null,
    leaseEpoch: b.leaseEpoch,
  };
}

/** The dream's run, written once it is over: a running dream is never mistaken for the agent's work. */
async function insertDreamRun(
  tx: Tx,
  r: { tenantId: string; runId: string; agentId: string; createdAt: Date; status: "succeeded" | "failed"; error: unknown; model: string | null; steps: number; tokensIn: number; tokensOut: number },
) {
  await tx.$client.query(
    `INSERT INTO runs (tenant_id, id, agent_id, root_run_id, traceparent, trigger, status, model, step_count, input_tokens, output_tokens, limits, input, error, created_at, started_at, ended_at)
     VALUES ($1, $2, $3, $2, $4, 'dream', $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, now())`,
    [
      r.tenantId,
      r.runId,
      r.agentId,
      newTraceparent(),
      r.status,
      r.model,
      r.steps,
      r.tokensIn,
      r.tokensOut,
      JSON.stringify({ maxSteps: 2, maxTokens: 0, maxWallMs: DREAM_TIMEOUT_MS }),
      JSON.stringify({ kind: "dream" }),
      r.error === null ? null : JSON.stringify(r.error),
      r.createdAt,
    ],
  );
}

/**
 * Finds agents whose dream is due and enqueues one `agent.dream` each (singleton per agent):
 * something changed since the last dream, and either the tenant-local dream hour has come
 * or the debt piled up (DREAM_DEBT_CHANGES writes, or working memory DREAM_DEBT_RATIO full).
 * One statement; agents with nothing new are never selected, so idle agents cost nothing.
 */
export async function dreamTick(deps: { database: Database; jobs: Pick<Jobs, "enqueue"> }, opts: { batch?: number } = {}) {
  return withSystem(deps.database, async (tx) => {
    const { rows } = await tx.$client.query<{ tenant_id: string; agent_id: string; debt: boolean }>(
      `SELECT m.tenant_id, m.agent_id, NOT coalesce(m.next_dream_at <= now(), false) AS debt
       FROM agent_memory m JOIN agents a ON a.tenant_id = m.tenant_id AND a.id = m.agent_id
       WHERE a.status = 'active' AND m.changes_since_dream > 0 AND (m.dream_until IS NULL OR m.dream_until < now())
         AND (m.next_dream_at <= now() OR m.changes_since_dream >= $2
              OR (SELECT coalesce(sum(i.tokens), 0) FROM memory_items i WHERE i.tenant_id = m.tenant_id AND i.agent_id = m.agent_id AND i.layer = 'working')
                 >= $3::float8 * coalesce((a.descriptor->'spec'->'memory'->>'working_tokens')::int, 2000))
       LIMIT $1`,
      [opts.batch ?? 500, DREAM_DEBT_CHANGES, DREAM_DEBT_RATIO],
    );
    for (const r of rows) {
      await deps.jobs.enqueue(tx, "agent.dream", { tenantId: r.tenant_id, agentId: r.agent_id, reason: r.debt ? "debt" : "schedule" }, { singletonKey: wakeKey(r.tenant_id, r.agent_id) });
    }
    return { due: rows.length };
  });
}
