import type { CreatePolicyBody, UpdatePolicyBody } from "@bosun/contracts";
import { type Database, repo, type Tx, withTenant } from "@bosun/db";
import { type Actor, requireScope } from "../actor";
import { durationMs } from "../agents/descriptor";
import { audit } from "../audit";
import { usdToMicros } from "../costs/money";
import { conflict, forbidden, notFound, validation } from "../errors";
import { type IdempotencyRequest, runCreate } from "../idempotency";
import { newId } from "../ids";
import { decodeCursor, isString, page } from "../pagination";

type PolicyRow = repo.governance.PolicyRow;
const g = repo.governance;

interface Ctx {
  requestId?: string | undefined;
}

/** The longest an approval may stay open. */
const MAX_APPROVAL_EXPIRY_SECONDS = 365 * 86_400;

export function policyView(p: PolicyRow) {
  return {
    id: p.id,
    name: p.name,
    scope: p.agentId ? ("agent" as const) : ("tenant" as const),
    agent: p.agentName,
    priority: p.priority,
    match: {
      tool: p.toolPattern,
      sideEffect: p.sideEffect,
      actionValueUsdGt: p.actionValueGtMicros === null ? null : p.actionValueGtMicros / 1_000_000,
    },
    decision: p.decision,
    approvalExpiresSeconds: p.approvalExpiresSeconds,
    description: p.description,
    createdAt: p.createdAt.toISOString(),
    updatedAt: p.updatedAt.toISOString(),
  };
}

/** GET/POST /v1/policies, GET/PATCH/DELETE /v1/policies/{id}. */
export const policyService = (deps: { database: Database }) => {
  const { database } = deps;

  /** Policies govern agents: people and tenant keys manage them, never an agent's own key. */
  function assertCanManage(actor: Actor) {
    requireScope(actor, "admin");
    if (actor.agentId) throw forbidden("an agent cannot manage policies");
  }

  function assertCanRead(actor: Actor) {
    requireScope(actor, "read");
    if (actor.agentId) throw forbidden("an agent's key cannot read the tenant's policies");
  }

  async function load(tx: Tx, actor: Actor, id: string) {
    const p = await g.getPolicy(tx, { tenantId: actor.tenantId, id });
    if (!p) throw notFound(`policy ${id}`);
    return p;
  }

  async function agentIdOf(tx: Tx, actor: Actor, name: string | null | undefined): Promise<string | null> {
    if (name == null) return null;
    const a = await repo.getAgentByName(tx, { tenantId: actor.tenantId, name });
    if (!a) throw validation(`agent '${name}' does not exist`, [{ path: "agent", message: "no such agent" }]);
    return a.id;
  }

  function expirySeconds(decision: PolicyRow["decision"], d: string | null | undefined): number | null {
    if (d == null) return null;
    if (decision !== "require_approval") {
      throw validation("only a require_approval policy has an approval expiry", [{ path: "approvalExpiresIn", message: "not for this decision" }]);
    }
    const s = durationMs(d) / 1000;
    if (s > MAX_APPROVAL_EXPIRY_SECONDS) throw validation("an approval stays open at most 365 days", [{ path: "approvalExpiresIn", message: "at most 365d" }]);
    return s;
  }

  const nameTaken = (name: string) => conflict(`a policy named '${name}' already exists`);

  return {
    async list(actor: Actor, q: { limit: number; cursor?: string | undefined; agent?: string | undefined }) {
      assertCanRead(actor);
      const after = decodeCursor(q.cursor, isString);
      return withTenant(database, actor.tenantId, async (tx) => {
        let agentId: string | undefined;
        if (q.agent) {
          const a = await repo.getAgentByName(tx, { tenantId: actor.tenantId, name: q.agent });
          if (!a) throw notFound(`agent '${q.agent}'`);
          agentId = a.id;
        }
        const rows = await g.listPolicies(tx, { tenantId: actor.tenantId, limit: q.limit + 1, after, agentId });
        const p = page(rows, q.limit, (r) => r.id);
        return { items: p.items.map(policyView), nextCursor: p.nextCursor };
      });
    },

    async get(actor: Actor, id: string) {
      assertCanRead(actor);
      return withTenant(database, actor.tenantId, async (tx) => policyView(await load(tx, actor, id)));
    },

    async create(actor: Actor, body: CreatePolicyBody, ctx: Ctx & { idempotency?: IdempotencyRequest | undefined } = {}) {
      assertCanManage(actor);
      return runCreate(database, actor.tenantId, ctx.idempotency, async (tx) => {
        const id = newId("pol");
        const inserted = await g.insertPolicy(tx, {
          tenantId: actor.tenantId,
          id,
          agentId: await agentIdOf(tx, actor, body.agent),
          name: body.name,
          priority: body.priority,
          toolPattern: body.match.tool ?? null,
          sideEffect: body.match.sideEffect ?? null,
          actionValueGtMicros: body.match.actionValueUsdGt === undefined ? null : usdToMicros(body.match.actionValueUsdGt),
          decision: body.decision,
          approvalExpiresSeconds: expirySeconds(body.decision, body.approvalExpiresIn),
          description: body.description ?? null,
        });
        if (!inserted) throw nameTaken(body.name);
        const view = policyView(await load(tx, actor, id));
        await audit(tx, actor, { action: "policy.create", targetType: "policy", targetId: id, after: view }, ctx.requestId);
        return { status: 201, body: view };
      });
    },

    /** Changes the fields given; `match`, when given, replaces the whole match. */
    async update(actor: Actor, id: string, body: UpdatePolicyBody, ctx: Ctx = {}) {
      assertCanManage(actor);
      return withTenant(database, actor.tenantId, async (tx) => {
        const p = await load(tx, actor, id);
        const before = policyView(p);
        const decision = body.decision ?? p.decision;
        const match = body.match;
        const ok = await g.updatePolicy(tx, {
          tenantId: actor.tenantId,
          id,
          agentId: body.agent === undefined ? p.agentId : await agentIdOf(tx, actor, body.agent),
          name: body.name ?? p.name,
          priority: body.priority ?? p.priority,
          toolPattern: match ? (match.tool ?? null) : p.toolPattern,
          sideEffect: match ? (match.sideEffect ?? null) : p.sideEffect,
          actionValueGtMicros: match ? (match.actionValueUsdGt === undefined ? null : usdToMicros(match.actionValueUsdGt)) : p.actionValueGtMicros,
          decision,
          // A policy that stops requiring approval loses its expiry; a given one is checked.
          approvalExpiresSeconds:
            body.approvalExpiresIn !== undefined ? expirySeconds(decision, body.approvalExpiresIn) : decision === "require_approval" ? p.approvalExpiresSeconds : null,
          description: body.description === undefined ? p.description : body.description,
        });
        if (!ok) throw nameTaken(body.name!);
        const after = policyView(await load(tx, actor, id));
        await audit(tx, actor, { action: "policy.update", targetType: "policy", targetId: id, before, after }, ctx.requestId);
        return after;
      });
    },

    async remove(actor: Actor, id: string, ctx: Ctx = {}) {
      assertCanManage(actor);
      return withTenant(database, actor.tenantId, async (tx) => {
        const before = policyView(await load(tx, actor, id));
        await g.deletePolicy(tx, { tenantId: actor.tenantId, id });
        await audit(tx, actor, { action: "policy.delete", targetType: "policy", targetId: id, before }, ctx.requestId);
        return before;
      });
    },
  };
};

export type PolicyService = ReturnType<typeof policyService>;
