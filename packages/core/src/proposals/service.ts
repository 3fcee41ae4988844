import {
  type CreateProposalBody,
  createProposalBodySchema,
  type DecideProposalBody,
  type ProposalAction,
  type ProposalStance,
  type ProposalStatus,
  type RespondProposalBody,
} from "@bosun/contracts";
import { type Database, repo, type Tx, withSystem, withTenant } from "@bosun/db";
import { type Jobs, wakeKey } from "@bosun/jobs";
import { type Actor, agentActor, requireScope, systemActor } from "../actor";
import type { AgentService } from "../agents/service";
import { fieldIssues, missingIsRequired } from "../agents/descriptor";
import { audit } from "../audit";
import { AppError, conflict, forbidden, notFound, validation } from "../errors";
import { type IdempotencyRequest, runCreate } from "../idempotency";
import { newId } from "../ids";
import { decodeCursor, isString, page } from "../pagination";
import type { TaskService } from "../tasks/service";

const rp = repo.proposals;
type ProposalRow = repo.proposals.ProposalRow;
type ResponseRow = repo.proposals.ResponseRow;

/** The windows when a tenant set none: silence approves after 24 h, 48 h undecided escalates. */
export const DEFAULT_PROPOSAL_WINDOWS = { approveAfterSeconds: 86_400, escalateAfterSeconds: 172_800 };
/** At most this many agents are asked about one proposal. */
const MAX_ASKED = 100;
/** Due proposals evaluated per tenant transaction by the timer. */
const EVAL_BATCH = 100;

interface Ctx {
  requestId?: string | undefined;
}

type DecisionReason = "unanimous_support" | "no_objection" | "person";

const iso = (d: Date | null) => d?.toISOString() ?? null;

export function proposalView(p: ProposalRow) {
  return {
    id: p.id,
    title: p.title,
    body: p.body,
    domains: p.domains,
    action: (p.action as ProposalAction | null) ?? null,
    proposer: { type: p.proposerType as Actor["type"], id: p.proposerId },
    status: p.status,
    approveAt: p.approveAt.toISOString(),
    escalateAt: p.escalateAt.toISOString(),
    decidedAt: iso(p.decidedAt),
    decidedBy: p.decidedByType && p.decidedById ? { type: p.decidedByType as Actor["type"], id: p.decidedById } : null,
    decisionReason: (p.decisionReason as DecisionReason | null) ?? null,
    decisionComment: p.decisionComment,
    escalatedAt: iso(p.escalatedAt),
    appliedAt: iso(p.appliedAt),
    actionResult: p.actionResult ?? null,
    actionError: p.actionError,
    createdAt: p.createdAt.toISOString(),
    updatedAt: p.updatedAt.toISOString(),
  };
}

const responseView = (r: ResponseRow) => ({
  agentId: r.agentId,
  agent: r.agentName,
  stance: r.stance,
  comment: r.comment,
  respondedAt: iso(r.respondedAt),
});

const detailView = (p: ProposalRow, rs: ResponseRow[]) => ({ ...proposalView(p), responses: rs.map(responseView) });

export type ProposalView = ReturnType<typeof proposalView>;

/**
 * The rule, in one place. Asked agents are those whose domains cover the proposal's.
 * - every asked agent supports (at least one asked): approved at once;
 * - any block: stays open, silence cannot approve it; at `escalate_at` it is escalated;
 * - otherwise (support, concern or no answer) at `approve_at`: approved (no objection);
 * - else it waits for its next deadline (`due_at`).
 */
export function judge(p: Pick<ProposalRow, "approveAt" | "escalateAt">, stances: (ProposalStance | null)[], now: Date) {
  if (stances.length > 0 && stances.every((s) => s === "support")) return { verdict: "approve" as const, reason: "unanimous_support" as const };
  if (stances.includes("block")) {
    return now >= p.escalateAt ? { verdict: "escalate" as const } : { verdict: "wait" as const, dueAt: p.escalateAt };
  }
  if (now >= p.approveAt) return { verdict: "approve" as const, reason: "no_objection" as const };
  return { verdict: "wait" as const, dueAt: p.approveAt };
}

export const proposalService = (deps: {
  database: Database;
  /** Wakes the asked agents (in the proposal's transaction). */
  jobs?: Pick<Jobs, "enqueue"> | undefined;
  tasks: Pick<TaskService, "createAsInTx">;
  agents: Pick<AgentService, "setDomainsInTx">;
  /** The clock deadlines are computed from (tests inject one). */
  now?: () => Date;
}) => {
  const { database } = deps;
  const clock = deps.now ?? (() => new Date());

  async function windows(tx: Tx, tenantId: string) {
    const s = await rp.getProposalSettings(tx, { tenantId });
    return s ? { approveAfterSeconds: s.approveAfterSeconds, escalateAfterSeconds: s.escalateAfterSeconds } : DEFAULT_PROPOSAL_WINDOWS;
  }

  async function load(tx: Tx, tenantId: string, proposalId: string, forUpdate = false) {
    const p = await rp.getProposal(tx, { tenantId, proposalId, forUpdate });
    if (!p) throw notFound(`proposal ${proposalId}`);
    return p;
  }

  const detail = async (tx: Tx, p: ProposalRow) => detailView(p, await rp.listResponses(tx, { tenantId: p.tenantId, proposalId: p.id }));

  async function createIn(tx: Tx, actor: Actor, b: CreateProposalBody, ctx: Ctx) {
    const tenantId = actor.tenantId;
    // The domains a proposal touches: the ones it names and those of the tasks it would create.
    const domains = [...new Set([...b.domains, ...(b.action?.type === "create_tasks" ? b.action.tasks.flatMap((t) => (t.domain ? [t.domain] : [])) : [])])];
    const asked = new Set(await rp.agentsCoveringAny(tx, { tenantId, domains, limit: MAX_ASKED }));
    if (b.action?.type === "set_agent_domains") {
      // The agent whose domains would change is always asked.
      const target = await repo.getAgentByName(tx, { tenantId, name: b.action.agent });
      if (!target || target.status === "retired") {
        throw validation(`agent '${b.action.agent}' does not exist or is retired`, [{ path: "action.agent", message: "no such agent" }]);
      }
      asked.add(target.id);
    }
    // Proposing is supporting: the proposer is not asked about its own proposal.
    if (actor.agentId) asked.delete(actor.agentId);
    const w = await windows(tx, tenantId);
    const now = clock();
    const approveAt = new Date(now.getTime() + w.approveAfterSeconds * 1000);
    const p = await rp.insertProposal(tx, {
      tenantId,
      id: newId("prp"),
      title: b.title,
      body: b.body,
      domains,
      action: b.action ?? null,
      proposerType: actor.type,
      proposerId: actor.id,
      proposerAgentId: actor.agentId,
      status: "open",
      approveAt,
      escalateAt: new Date(now.getTime() + w.escalateAfterSeconds * 1000),
      dueAt: approveAt,
    });
    await rp.insertAsked(tx, { tenantId, proposalId: p.id, agentIds: [...asked].sort() });
    // The asked agents hear of it as a message, which wakes them in this transaction: a
    // proposal nobody is told about could only ever be decided by silence.
    const ask = [
      `You are asked about proposal ${p.id}: "${b.title}" (domains: ${domains.join(", ") || "none"}).`,
      b.body ? b.body : "",
      `Respond with the respond_to_proposal tool (proposal: ${p.id}; stance: support, concern or block; with a comment). Without a block it is approved after ${w.approveAfterSeconds >= 3600 ? `${Math.round(w.approveAfterSeconds / 3600)} h` : `${Math.max(1, Math.round(w.approveAfterSeconds / 60))} min`} of silence.`,
    ]
      .filter(Boolean)
      .join("\n\n");
    for (const agentId of [...asked].sort()) {
      const id = newId("msg");
      await repo.memory.insertMessage(tx, { tenantId, id, toAgentId: agentId, toType: "agent", toId: agentId, fromType: actor.type, fromId: actor.id, body: ask, threadId: id, replyTo: null });
      await deps.jobs?.enqueue(tx, "agent.wake", { tenantId, agentId, reason: "message" }, { singletonKey: wakeKey(tenantId, agentId) });
    }
    const view = await detail(tx, p);
    await audit(tx, actor, { action: "proposal.create", targetType: "proposal", targetId: p.id, after: view }, ctx.requestId);
    return view;
  }

  /** Applies an approved proposal's action under a savepoint: a refused action is recorded, never half-applied. */
  async function applyAction(tx: Tx, p: ProposalRow, now: Date): Promise<repo.proposals.ProposalPatch> {
    const action = p.action as ProposalAction | null;
    if (!action) return {};
    const actor = systemActor(p.tenantId, `proposal:${p.id}`);
    await tx.$client.query("SAVEPOINT proposal_action");
    try {
      let result: unknown;
      if (action.type === "create_tasks") {
        const ids: string[] = [];
        for (const t of action.tasks) ids.push((await deps.tasks.createAsInTx(tx, actor, t)).id);
        result = { taskIds: ids };
      } else {
        result = await deps.agents.setDomainsInTx(tx, actor, action.agent, action.domains);
      }
      await audit(tx, actor, { action: "proposal.apply", targetType: "proposal", targetId: p.id, after: { action: action.type, result } });
      return { appliedAt: now, actionResult: result };
    } catch (err) {
      if (!(err instanceof AppError)) throw err;
      await tx.$client.query("ROLLBACK TO SAVEPOINT proposal_action");
      const error = `${err.code}: ${err.message}`;
      await audit(tx, actor, { action: "proposal.apply_failed", targetType: "proposal", targetId: p.id, after: { action: action.type, error } });
      return { actionError: error };
    }
  }

  /**
   * Decides a locked, undecided proposal: approves it and applies its action in this same
   * transaction. The row lock and the status check make the action run exactly once.
   */
  async function approve(tx: Tx, p: ProposalRow, by: Actor, reason: DecisionReason, now: Date, comment: string | null, requestId?: string) {
    const patch: repo.proposals.ProposalPatch = {
      status: "approved",
      dueAt: null,
      decidedAt: now,
      decidedByType: by.type,
      decidedById: by.id,
      decisionReason: reason,
      decisionComment: comment,
    };
    const u = (await rp.updateProposal(tx, { tenantId: p.tenantId, proposalId: p.id, patch: { ...patch, ...(await applyAction(tx, p, now)) } }))!;
    await audit(
      tx,
      by,
      { action: "proposal.approve", targetType: "proposal", targetId: p.id, before: { status: p.status }, after: { status: u.status, reason, comment } },
      requestId,
    );
    return u;
  }

  /** Applies the rule to a locked open proposal at `now`. */
  async function evaluate(tx: Tx, p: ProposalRow, now: Date, by: Actor) {
    const rs = await rp.listResponses(tx, { tenantId: p.tenantId, proposalId: p.id });
    const j = judge(p, rs.map((r) => r.stance), now);
    if (j.verdict === "approve") return { row: await approve(tx, p, by, j.reason, now, null), outcome: "approved" as const };
    if (j.verdict === "escalate") {
      const u = (await rp.updateProposal(tx, { tenantId: p.tenantId, proposalId: p.id, patch: { status: "escalated", escalatedAt: now, dueAt: null } }))!;
      await audit(tx, by, { action: "proposal.escalate", targetType: "proposal", targetId: p.id, before: { status: p.status }, after: { status: u.status } });
      return { row: u, outcome: "escalated" as const };
    }
    if (p.dueAt?.getTime() === j.dueAt.getTime()) return { row: p, outcome: "open" as const };
    return { row: (await rp.updateProposal(tx, { tenantId: p.tenantId, proposalId: p.id, patch: { dueAt: j.dueAt } }))!, outcome: "open" as const };
  }

  async function respondIn(tx: Tx, actor: Actor, agentId: string, proposalId: string, b: RespondProposalBody, ctx: Ctx) {
    const p = await load(tx, actor.tenantId, proposalId, true);
    if (p.status !== "open") {
      throw conflict(
        `proposal ${proposalId} is ${p.status}${p.status === "escalated" ? ": people decide it now (POST /v1/proposals/{id}/decide)" : "; responses are closed"}`,
      );
    }
    const r = await rp.setResponse(tx, { tenantId: actor.tenantId, proposalId, agentId, stance: b.stance, comment: b.comment ?? null });
    if (!r) throw forbidden(`this agent was not asked about proposal ${proposalId}: only the agents whose domains cover ${p.domains.join(", ")} respond`);
    await audit(
      tx,
      actor,
      { action: "proposal.respond", targetType: "proposal", targetId: proposalId, after: { agentId, stance: b.stance, comment: b.comment ?? null } },
      ctx.requestId,
    );
    const { row } = await evaluate(tx, p, clock(), actor);
    return detail(tx, row);
  }

  function parseCreate(input: unknown) {
    const r = createProposalBodySchema.safeParse(input, { error: missingIsRequired });
    if (!r.success) {
      const errors = fieldIssues(r.error);
      throw validation(`the proposal is invalid: ${errors.map((e) => `${e.path}: ${e.message}`).join("; ")}`, errors);
    }
    return r.data;
  }

  /**
   * The timer, across tenants: every open proposal whose next deadline is at or before
   * `now` is judged (approved, escalated, or given its next deadline). Each tenant's batch
   * runs in its own tenant transaction and skips proposals another transaction holds.
   */
  async function evaluateDue(now: Date = clock()) {
    const tenants = await withSystem(database, (tx) => rp.tenantsWithDueProposals(tx, { now, limit: 1000 }));
    const counts = { approved: 0, escalated: 0, open: 0 };
    for (const tenantId of tenants) {
      for (;;) {
        const locked = await withTenant(database, tenantId, async (tx) => {
          const due = await rp.lockDueProposals(tx, { tenantId, now, limit: EVAL_BATCH });
          const timer = systemActor(tenantId, "proposal-timer");
          for (const p of due) counts[(await evaluate(tx, p, now, timer)).outcome] += 1;
          return due.length;
        });
        if (locked < EVAL_BATCH) break;
      }
    }
    return counts;
  }

  return {
    /** POST: proposes a change; supports Idempotency-Key. */
    async create(actor: Actor, body: CreateProposalBody, ctx: Ctx & { idempotency?: IdempotencyRequest | undefined } = {}) {
      requireScope(actor, "write");
      return runCreate(database, actor.tenantId, ctx.idempotency, async (tx) => ({ status: 201, body: await createIn(tx, actor, body, ctx) }));
    },

    async get(actor: Actor, proposalId: string) {
      requireScope(actor, "read");
      return withTenant(database, actor.tenantId, async (tx) => detail(tx, await load(tx, actor.tenantId, proposalId)));
    },

    /** Newest first, optionally by status (`escalated` is what people must decide) and by an asked agent. */
    async list(actor: Actor, q: { limit: number; cursor?: string | undefined; status?: ProposalStatus | undefined; asked?: string | undefined }) {
      requireScope(actor, "read");
      const before = decodeCursor(q.cursor, isString);
      const rows = await withTenant(database, actor.tenantId, async (tx) => {
        let askedAgentId: string | undefined;
        if (q.asked !== undefined) {
          const a = await repo.getAgentByName(tx, { tenantId: actor.tenantId, name: q.asked });
          if (!a) return [];
          askedAgentId = a.id;
        }
        return rp.listProposals(tx, { tenantId: actor.tenantId, limit: q.limit + 1, before, status: q.status, askedAgentId });
      });
      const p = page(rows, q.limit, (r) => r.id);
      return { items: p.items.map(proposalView), nextCursor: p.nextCursor };
    },

    /** An asked agent responds (its own key); changing an earlier response is allowed while the proposal is open. */
    async respond(actor: Actor, proposalId: string, body: RespondProposalBody, ctx: Ctx = {}) {
      requireScope(actor, "write");
      const agentId = actor.agentId;
      if (!agentId) {
        throw forbidden("only the asked agents respond to a proposal (with an API key bound to the agent); people decide with POST /v1/proposals/{id}/decide");
      }
      return withTenant(database, actor.tenantId, (tx) => respondIn(tx, actor, agentId, proposalId, body, ctx));
    },

    /** A person approves or rejects an open or escalated proposal; approving applies its action, once. */
    async decide(actor: Actor, proposalId: string, b: DecideProposalBody, ctx: Ctx = {}) {
      requireScope(actor, "write");
      if (actor.agentId) throw forbidden("an agent cannot decide a proposal: it responds (POST /v1/proposals/{id}/responses); people decide");
      return withTenant(database, actor.tenantId, async (tx) => {
        const p = await load(tx, actor.tenantId, proposalId, true);
        if (p.status !== "open" && p.status !== "escalated") throw conflict(`proposal ${proposalId} is already ${p.status}`);
        const now = clock();
        if (b.decision === "approve") return detail(tx, await approve(tx, p, actor, "person", now, b.comment ?? null, ctx.requestId));
        const u = (await rp.updateProposal(tx, {
          tenantId: actor.tenantId,
          proposalId,
          patch: { status: "rejected", dueAt: null, decidedAt: now, decidedByType: actor.type, decidedById: actor.id, decisionReason: "person", decisionComment: b.comment ?? null },
        }))!;
        await audit(
          tx,
          actor,
          { action: "proposal.reject", targetType: "proposal", targetId: proposalId, before: { status: p.status }, after: { status: u.status, comment: b.comment ?? null } },
          ctx.requestId,
        );
        return detail(tx, u);
      });
    },

    async getSettings(actor: Actor) {
      requireScope(actor, "read");
      return withTenant(database, actor.tenantId, (tx) => windows(tx, actor.tenantId));
    },

    /** Changes the tenant's windows for proposals created from now on. */
    async updateSettings(actor: Actor, b: { approveAfterSeconds?: number | undefined; escalateAfterSeconds?: number | undefined }, ctx: Ctx = {}) {
      requireScope(actor, "admin");
      if (actor.agentId) throw forbidden("an agent cannot change the proposal windows");
      return withTenant(database, actor.tenantId, async (tx) => {
        const before = await windows(tx, actor.tenantId);
        const next = { approveAfterSeconds: b.approveAfterSeconds ?? before.approveAfterSeconds, escalateAfterSeconds: b.escalateAfterSeconds ?? before.escalateAfterSeconds };
        if (next.approveAfterSeconds > next.escalateAfterSeconds) {
          throw validation("approveAfterSeconds must not exceed escalateAfterSeconds", [
            { path: b.approveAfterSeconds !== undefined ? "approveAfterSeconds" : "escalateAfterSeconds", message: "the approve window must end before the escalate window" },
          ]);
        }
        const s = await rp.upsertProposalSettings(tx, { tenantId: actor.tenantId, ...next });
        const after = { approveAfterSeconds: s.approveAfterSeconds, escalateAfterSeconds: s.escalateAfterSeconds };
        await audit(tx, actor, { action: "proposal_settings.update", targetType: "tenant", targetId: actor.tenantId, before, after }, ctx.requestId);
        return after;
      });
    },

    /** The runtime's `propose` tool, in the run's transaction. */
    async createInTx(tx: Tx, p: { tenantId: string; agentId: string; input: unknown }) {
      return createIn(tx, agentActor(p.tenantId, p.agentId), parseCreate(p.input), {});
    },

    /** The runtime's `respond_to_proposal` tool, in the run's transaction. */
    async respondInTx(tx: Tx, p: { tenantId: string; agentId: string; proposalId: string; stance: ProposalStance; comment?: string | undefined }) {
      return respondIn(tx, agentActor(p.tenantId, p.agentId), p.agentId, p.proposalId, { stance: p.stance, comment: p.comment }, {});
    },

    evaluateDue,
  };
};

export type ProposalService = ReturnType<typeof proposalService>;
