import { type Database, repo, type Tx, withTenant } from "@bosun/db";
import { type Jobs, wakeKey } from "@bosun/jobs";
import { normaliseAnthropicUsage, normaliseOpenAIUsage, type Usage } from "@bosun/llm";
import { type Actor, requireScope } from "../actor";
import { audit, deferAudits } from "../audit";
import { AppError, conflict, forbidden, notFound, validation } from "../errors";
import { newId } from "../ids";
import { decodeCursor, isNumber, isString, page } from "../pagination";
import { SpendRefused, spendEngine } from "../costs/spend";
import { defaultLimits } from "./runtime";
import { messageService } from "../messaging/service";
import { newTraceparent } from "./trace";

const rt = repo.runtime;

/** Keys whose values are secrets: replaced before a step leaves the server. */
const SECRET_KEY = /(pass(word)?|secret|token|api[_-]?key|authorization|cookie|credential|private[_-]?key)/i;
const SECRET_VALUE = /\b(bsn_[0-9A-Za-z_-]{20,}|sk-[A-Za-z0-9_-]{16,}|sk-ant-[A-Za-z0-9_-]{16,}|gh[pousr]_[A-Za-z0-9]{20,}|AKIA[0-9A-Z]{16}|eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,})\b/g;

/** Redacts secrets from step inputs and outputs by key name and by well-known value shapes. */
export function redact(value: unknown, depth = 0): unknown {
  if (depth > 40) return "[truncated]";
  if (typeof value === "string") return value.replace(SECRET_VALUE, "[redacted]");
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, SECRET_KEY.test(k) ? "[redacted]" : redact(v, depth + 1)]),
    );
  }
  return value;
}

export function runView(r: repo.runtime.RunRow, agentName?: string) {
  return {
    id: r.id,
    agentId: r.agentId,
    agent: agentName ?? null,
    taskId: r.taskId,
    parentRunId: r.parentRunId,
    rootRunId: r.rootRunId,
    traceparent: r.traceparent,
    trigger: r.trigger as "task" | "message" | "schedule" | "manual" | "delegation" | "external" | "dream" | "drive",
    status: r.status,
    model: r.model,
    stepCount: r.stepCount,
    inputTokens: r.inputTokens,
    outputTokens: r.outputTokens,
    result: redact(r.result) ?? null,
    error: redact(r.error) ?? null,
    createdAt: r.createdAt.toISOString(),
    startedAt: r.startedAt?.toISOString() ?? null,
    endedAt: r.endedAt?.toISOString() ?? null,
  };
}

export function stepView(s: repo.runtime.StepRow) {
  return {
    runId: s.runId,
    seq: s.seq,
    kind: s.kind,
    name: s.name,
    status: s.status,
    provider: s.provider,
    model: s.model,
    inputTokens: s.inputTokens,
    cacheReadTokens: s.cacheReadTokens,
    cacheWriteTokens: s.cacheWriteTokens,
    outputTokens: s.outputTokens,
    latencyMs: s.latencyMs,
    input: redact(s.input) ?? null,
    output: redact(s.output) ?? null,
    createdAt: s.createdAt.toISOString(),
  };
}

/** A usage report as the API takes it (`usageBodySchema`): token counts, or the provider's own `usage`. */
export interface UsageReport {
  provider: string;
  model: string;
  inputTokens?: number | undefined;
  outputTokens?: number | undefined;
  cacheReadTokens?: number | undefined;
  cacheWriteTokens?: number | undefined;
  usage?: Record<string, unknown> | undefined;
  reportId?: string | undefined;
  latencyMs?: number | undefined;
}

/**
 * A report's usage in non-overlapping categories, each cache token counted once: the
 * provider's own object normalised by its convention (OpenAI's prompt_tokens include
 * the cached ones, Anthropic's input_tokens do not), or the counts as given.
 */
export function reportedUsage(u: UsageReport): Usage {
  if (u.usage) {
    const openai = u.provider === "openai" || u.provider === "openai-compatible" || (u.provider !== "anthropic" && "prompt_tokens" in u.usage);
    try {
      return openai ? normaliseOpenAIUsage(u.usage) : normaliseAnthropicUsage(u.usage);
    } catch (err) {
      throw validation((err as Error).message, [{ path: "usage", message: (err as Error).message }]);
    }
  }
  const t = { inputTokens: u.inputTokens ?? 0, cacheReadTokens: u.cacheReadTokens ?? 0, cacheWriteTokens: u.cacheWriteTokens ?? 0, outputTokens: u.outputTokens ?? 0 };
  return { ...t, totalTokens: t.inputTokens + t.cacheReadTokens + t.cacheWriteTokens + t.outputTokens, raw: {} };
}

export const runService = (deps: { database: Database; jobs: Pick<Jobs, "enqueue"> }) => {
  const { database, jobs } = deps;
  const spend = spendEngine({ jobs });

  async function loadRun(tx: Tx, actor: Actor, id: string) {
    const r = await rt.getRun(tx, { tenantId: actor.tenantId, runId: id });
    if (!r) throw notFound(`run ${id}`);
    if (actor.agentId && r.agentId !== actor.agentId) throw notFound(`run ${id}`);
    return r;
  }

  /** Agent names for a page of runs, in one query. */
  async function names(tx: Tx, tenantId: string, runs: repo.runtime.RunRow[]) {
    const ids = [...new Set(runs.map((r) => r.agentId))];
    if (!ids.length) return new Map<string, string>();
    const { rows } = await tx.$client.query<{ id: string; name: string }>(`SELECT id, name FROM agents WHERE tenant_id = $1 AND id = ANY($2)`, [tenantId, ids]);
    return new Map(rows.map((r) => [r.id, r.name]));
  }

  async function agentId(tx: Tx, actor: Actor, name: string | undefined) {
    if (!name) return undefined;
    const a = await repo.getAgentByName(tx, { tenantId: actor.tenantId, name });
    if (!a) throw notFound(`agent '${name}'`);
    return a.id;
  }

  return {
    async list(actor: Actor, q: { limit: number; cursor?: string | undefined; agent?: string | undefined; status?: string | undefined; root?: string | undefined }) {
      requireScope(actor, "read");
      const before = decodeCursor(q.cursor, isString);
      return withTenant(database, actor.tenantId, async (tx) => {
        const id = actor.agentId ?? (await agentId(tx, actor, q.agent));
        const rows = await rt.listRuns(tx, { tenantId: actor.tenantId, limit: q.limit + 1, before, agentId: id, status: q.status, rootRunId: q.root });
        const p = page(rows, q.limit, (r) => r.id);
        const n = await names(tx, actor.tenantId, p.items);
        return { items: p.items.map((r) => runView(r, n.get(r.agentId))), nextCursor: p.nextCursor };
      });
    },

    /** A run with its whole tree (every run sharing its root), for the trace view. */
    async get(actor: Actor, id: string) {
      requireScope(actor, "read");
      return withTenant(database, actor.tenantId, async (tx) => {
        const r = await loadRun(tx, actor, id);
        const tree = await rt.listRuns(tx, { tenantId: actor.tenantId, limit: 500, rootRunId: r.rootRunId });
        const n = await names(tx, actor.tenantId, [r, ...tree]);
        return { ...runView(r, n.get(r.agentId)), tree: tree.reverse().map((x) => runView(x, n.get(x.agentId))) };
      });
    },

    async steps(actor: Actor, id: string, q: { limit: number; cursor?: string | undefined }) {
      requireScope(actor, "read");
      const after = decodeCursor(q.cursor, isNumber);
      return withTenant(database, actor.tenantId, async (tx) => {
        await loadRun(tx, actor, id);
        const rows = await rt.listSteps(tx, { tenantId: actor.tenantId, runId: id, afterSeq: after ?? -1, limit: q.limit + 1 });
        const p = page(rows, q.limit, (s) => s.seq);
        return { items: p.items.map(stepView), nextCursor: p.nextCursor };
      });
    },

    /**
     * Cancels a running or waiting run and its pending waits. The runtime sees the status
     * at its next step and stops; a task the run held returns to the queue when its lease
     * runs out (cancel the task itself to stop the work).
     */
    async cancel(actor: Actor, id: string, requestId?: string) {
      requireScope(actor, "write");
      if (actor.agentId) throw forbidden("an agent cannot cancel runs");
      return withTenant(database, actor.tenantId, async (tx) => {
        const r = await loadRun(tx, actor, id);
        if (r.status !== "running" && r.status !== "waiting") throw conflict(`run ${id} is already ${r.status}`);
        await rt.updateRun(tx, { tenantId: actor.tenantId, runId: id, patch: { status: "cancelled", ended: true, error: { code: "CANCELLED", message: "cancelled by an operator" } } });
        await tx.$client.query(`UPDATE waitpoints SET status = 'cancelled', resolved_at = now() WHERE tenant_id = $1 AND run_id = $2 AND status = 'pending'`, [actor.tenantId, id]);
        await audit(tx, actor, { action: "run.cancel", targetType: "run", targetId: id, before: { status: r.status }, after: { status: "cancelled" } }, requestId);
        return runView((await rt.getRun(tx, { tenantId: actor.tenantId, runId: id }))!);
      });
    },

    /** POST /v1/agents/{name}/runs: a run with the given input, started at the next wake. */
    async start(actor: Actor, name: string, body: { input: string }, requestId?: string) {
      requireScope(actor, "write");
      return withTenant(database, actor.tenantId, async (tx) => {
        const agent = await repo.getAgentByName(tx, { tenantId: actor.tenantId, name });
        if (!agent) throw notFound(`agent '${name}'`);
        if (actor.agentId && actor.agentId !== agent.id) throw forbidden("an agent may start runs only for itself");
        if (agent.status !== "active") throw conflict(`agent '${name}' is ${agent.status}`);
        if (actor.agentId) {
          // An external agent spends on its own: it may not start while a hard budget is spent.
          const exhausted = await spend.exhaustedFor(tx, { tenantId: actor.tenantId, agentId: agent.id });
          if (exhausted.length) throw new AppError("BUDGET_EXCEEDED", exhausted.map((e) => e.message).join("; "));
        }
        const id = newId("run");
        const r = await rt.insertRun(tx, {
          tenantId: actor.tenantId,
          id,
          agentId: agent.id,
          taskId: null,
          parentRunId: null,
          rootRunId: id,
          traceparent: newTraceparent(),
          trigger: actor.agentId ? "external" : "manual",
          limits: defaultLimits,
          input: { kind: "manual", text: body.input },
        });
        if (!actor.agentId) {
          await jobs.enqueue(tx, "agent.wake", { tenantId: actor.tenantId, agentId: agent.id, reason: "manual" }, { singletonKey: wakeKey(actor.tenantId, agent.id) });
        }
        await audit(tx, actor, { action: "run.start", targetType: "run", targetId: id, after: { agent: name, trigger: r.trigger } }, requestId);
        return runView(r, name);
      });
    },

    /**
     * External agents report model usage on their own run: one `usage` step per report,
     * with the provider's exact model id, so their work shows in the trace like ours, and
     * one charge in the cost ledger (see `chargeReported`). The usage happened already:
     * it is recorded even past a hard budget, and then answered with BUDGET_EXCEEDED (402)
     * so the agent stops. Idempotent by `reportId` or the Idempotency-Key: a report sent
     * again is charged once and answered with the step it was recorded as.
     */
    async reportUsage(actor: Actor, id: string, u: UsageReport, idempotencyKey?: string, requestId?: string): Promise<{ status: number; body: ReturnType<typeof stepView>; replayed?: boolean }> {
      requireScope(actor, "write");
      const usage = reportedUsage(u);
      const reportKey = u.reportId ?? idempotencyKey;
      // Audit events (a budget pausing the agent) go last, sent with the COMMIT, as in the
      // runtime's writes.
      const out = await withTenant(database, actor.tenantId, (tx) => deferAudits(tx, () => charge(tx)));
      async function charge(tx: Tx) {
        const r = await loadRun(tx, actor, id);
        if (!actor.agentId) throw forbidden("usage is reported by the agent that ran: use the agent's own key");
        if (r.trigger !== "external") throw validation("usage can be reported only on external runs");
        // Reports on one run take turns from here: a report sent twice at once finds the first's charge.
        await tx.$client.query(`SELECT 1 FROM runs WHERE tenant_id = $1 AND id = $2 FOR UPDATE`, [actor.tenantId, id]);
        const key = reportKey ? `${id}:report:${reportKey}` : null;
        if (key) {
          const { rows: prev } = await tx.$client.query<{ seq: number; same: boolean }>(
            `SELECT step_seq AS seq, (provider, model, input_tokens, cache_read_tokens, cache_write_tokens, output_tokens) IS NOT DISTINCT FROM ($4, $5, $6::bigint, $7::bigint, $8::bigint, $9::bigint) AS same
             FROM cost_ledger WHERE tenant_id = $1 AND idempotency_key = $2 AND run_created_at = $3`,
            [actor.tenantId, key, r.createdAt, u.provider, u.model, usage.inputTokens, usage.cacheReadTokens, usage.cacheWriteTokens, usage.outputTokens],
          );
          if (prev[0]) {
            if (!prev[0].same) throw new AppError("IDEMPOTENCY_CONFLICT", "this report id was already used for a different report; use a new id");
            const [step] = await rt.listSteps(tx, { tenantId: actor.tenantId, runId: id, afterSeq: prev[0].seq - 1, limit: 1 });
            const exhausted = await spend.exhaustedFor(tx, { tenantId: actor.tenantId, agentId: r.agentId, runId: id });
            return { step: stepView(step!), exhausted, replayed: true };
          }
        }
        if (r.status !== "running") throw conflict(`run ${id} is ${r.status}`);
        const { rows } = await tx.$client.query<{ seq: number }>(
          `UPDATE runs SET step_count = step_count + 1, input_tokens = input_tokens + $3, output_tokens = output_tokens + $4, model = $5
           WHERE tenant_id = $1 AND id = $2 RETURNING step_count - 1 AS seq`,
          [actor.tenantId, id, usage.inputTokens + usage.cacheReadTokens + usage.cacheWriteTokens, usage.outputTokens, u.model],
        );
        const seq = rows[0]!.seq;
        const step = await rt.insertStep(tx, {
          tenantId: actor.tenantId,
          runId: id,
          runCreatedAt: r.createdAt,
          seq,
          kind: "usage",
          name: u.model,
          status: "ok",
          input: null,
          output: null,
          provider: u.provider,
          model: u.model,
          inputTokens: usage.inputTokens,
          cacheReadTokens: usage.cacheReadTokens,
          cacheWriteTokens: usage.cacheWriteTokens,
          outputTokens: usage.outputTokens,
          latencyMs: u.latencyMs ?? null,
          leaseEpoch: null,
        });
        try {
          const s = await spend.chargeReported(tx, {
            tenantId: actor.tenantId,
            agentId: r.agentId,
            runId: id,
            runCreatedAt: r.createdAt,
            taskId: r.taskId,
            key: key ?? `${id}:${seq}`,
            seq,
            provider: u.provider,
            model: u.model,
            usage,
          });
          await audit(tx, actor, {
            action: "run.usage",
            targetType: "run",
            targetId: id,
            after: { seq, provider: u.provider, model: u.model, ...usage, costMicros: s.costMicros, unpriced: s.unpriced },
          }, requestId);
          return { step: stepView(step), exhausted: s.exhausted, replayed: false };
        } catch (err) {
          if (err instanceof SpendRefused) throw new AppError("VALIDATION", err.message, [{ path: "model", message: "no price for this model" }]);
          throw err;
        }
      }
      // Committed: the spend is on the books whatever the answer.
      if (out.exhausted.length) {
        throw new AppError("BUDGET_EXCEEDED", `usage recorded as step ${out.step.seq}; stop: ${out.exhausted.map((e) => e.message).join("; ")}`);
      }
      return { status: 201, body: out.step, replayed: out.replayed };
    },

    /** An external run ends when its agent says so. */
    async finishExternal(actor: Actor, id: string, body: { status: "succeeded" | "failed"; result?: unknown; error?: string | undefined }, requestId?: string) {
      requireScope(actor, "write");
      return withTenant(database, actor.tenantId, async (tx) => {
        const r = await loadRun(tx, actor, id);
        if (!actor.agentId) throw forbidden("only the agent that ran may finish its run");
        if (r.trigger !== "external") throw new AppError("VALIDATION", "only external runs are finished over the API");
        if (r.status !== "running") throw conflict(`run ${id} is ${r.status}`);
        await rt.updateRun(tx, {
          tenantId: actor.tenantId,
          runId: id,
          patch: { status: body.status, ended: true, ...(body.status === "succeeded" ? { result: body.result ?? null } : { error: { code: "FAILED", message: body.error ?? "" } }) },
        });
        await audit(tx, actor, { action: "run.finish", targetType: "run", targetId: id, before: { status: r.status }, after: { status: body.status } }, requestId);
        return runView((await rt.getRun(tx, { tenantId: actor.tenantId, runId: id }))!);
      });
    },

    /** A direct message to an agent, which wakes it (kept for callers; see messaging/service.ts). */
    async sendMessage(actor: Actor, body: { to: string; body: string }, requestId?: string) {
      return messageService(deps).send(actor, body, requestId);
    },
  };
};

export type RunService = ReturnType<typeof runService>;
