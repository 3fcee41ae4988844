import type { AgentDescriptor, AgentStatus } from "@bosun/contracts";
import { type Database, repo, type Tx, withTenant } from "@bosun/db";
import type { Jobs } from "@bosun/jobs";
import { type Actor, requireScope } from "../actor";
import { audit } from "../audit";
import { syncDescriptorBudgets } from "../costs/budgets";
import { conflict, forbidden, notFound, validation } from "../errors";
import { type IdempotencyRequest, runCreate } from "../idempotency";
import { newId } from "../ids";
import { decodeCursor, isNumber, isString, page } from "../pagination";
import { diffDescriptors, durationMs, specHash, validateDescriptor } from "./descriptor";

export function agentView(a: repo.AgentRow) {
  return {
    id: a.id,
    name: a.name,
    owner: a.owner,
    status: a.status,
    revision: a.revision,
    specHash: a.specHash,
    descriptor: a.descriptor as AgentDescriptor,
    nextWakeAt: a.nextWakeAt?.toISOString() ?? null,
    createdAt: a.createdAt.toISOString(),
    updatedAt: a.updatedAt.toISOString(),
  };
}

export type AgentView = ReturnType<typeof agentView>;

function revisionView(r: repo.AgentRevisionRow) {
  return {
    revision: r.revision,
    specHash: r.specHash,
    descriptor: r.descriptor as AgentDescriptor,
    createdBy: { type: r.createdByType as "user" | "api_key" | "agent" | "system", id: r.createdById },
    createdAt: r.createdAt.toISOString(),
  };
}

interface Ctx {
  requestId?: string | undefined;
}

export const agentService = (deps: { database: Database; jobs: Pick<Jobs, "enqueue"> }) => {
  const { database, jobs } = deps;

  function assertCanManage(actor: Actor) {
    requireScope(actor, "write");
    if (actor.agentId) throw forbidden("an agent cannot change agent descriptors or status; make a proposal instead");
  }

  const scheduleSync = (tx: Tx, a: repo.AgentRow) =>
    jobs.enqueue(tx, "agent.schedule.sync", { tenantId: a.tenantId, agentId: a.id, revision: a.revision });

  /** Applies a descriptor inside `tx`; the heart of both PUT (apply) and POST (create). */
  async function applyIn(tx: Tx, actor: Actor, d: AgentDescriptor, mode: "apply" | "create", ctx: Ctx) {
    const hash = specHash(d);
    const tenantId = actor.tenantId;
    let current = await repo.getAgentByName(tx, { tenantId, name: d.metadata.name, forUpdate: true });
    if (!current) {
      const inserted = await repo.insertAgent(tx, {
        tenantId,
        id: newId("agt"),
        name: d.metadata.name,
        owner: d.metadata.owner,
        revision: 1,
        specHash: hash,
        descriptor: d,
      });
      if (inserted) {
        await repo.insertRevision(tx, {
          tenantId,
          agentId: inserted.id,
          revision: 1,
          specHash: hash,
          descriptor: d,
          createdByType: actor.type,
          createdById: actor.id,
        });
        await scheduleSync(tx, inserted);
        await syncDescriptorBudgets(tx, { tenantId, agentId: inserted.id, descriptor: d });
        await audit(tx, actor, { action: "agent.create", targetType: "agent", targetId: inserted.id, after: agentView(inserted) }, ctx.requestId);
        return { created: true, changed: true, agent: inserted };
      }
      // Lost a race with a concurrent first apply of the same name: continue as an update.
      current = await repo.getAgentByName(tx, { tenantId, name: d.metadata.name, forUpdate: true });
    }
    const existing = current!;
    if (mode === "create") throw conflict(`agent '${d.metadata.name}' already exists; PUT /v1/agents/${d.metadata.name} applies a new revision`);
    if (existing.status === "retired") throw conflict(`agent '${existing.name}' is retired and cannot be changed`);
    if (existing.specHash === hash) return { created: false, changed: false, agent: existing };
    const revision = existing.revision + 1;
    await repo.insertRevision(tx, {
      tenantId,
      agentId: existing.id,
      revision,
      specHash: hash,
      descriptor: d,
      createdByType: actor.type,
      createdById: actor.id,
    });
    const updated = await repo.updateAgent(tx, {
      tenantId,
      agentId: existing.id,
      patch: { owner: d.metadata.owner, revision, specHash: hash, descriptor: d },
    });
    await scheduleSync(tx, updated);
    // spec.budgets become the agent's budgets, changed with the descriptor that declares them.
    await syncDescriptorBudgets(tx, { tenantId, agentId: existing.id, descriptor: d });
    await audit(
      tx,
      actor,
      { action: "agent.apply", targetType: "agent", targetId: existing.id, before: agentView(existing), after: agentView(updated) },
      ctx.requestId,
    );
    return { created: false, changed: true, agent: updated };
  }

  function checkName(name: string, d: AgentDescriptor) {
    if (d.metadata.name !== name) {
      throw validation(`metadata.name '${d.metadata.name}' does not match the agent '${name}' in the URL`, [
        { path: "metadata.name", message: `must be '${name}' to match the URL` },
      ]);
    }
  }

  async function loadAgent(tx: Tx, actor: Actor, name: string, forUpdate = false) {
    const a = await repo.getAgentByName(tx, { tenantId: actor.tenantId, name, forUpdate });
    if (!a) throw notFound(`agent '${name}'`);
    return a;
  }

  async function setStatus(actor: Actor, name: string, action: "pause" | "resume" | "retire", ctx: Ctx = {}) {
    assertCanManage(actor);
    return withTenant(database, actor.tenantId, async (tx) => {
      const a = await loadAgent(tx, actor, name, true);
      let next: AgentStatus;
      if (action === "retire") next = "retired";
      else if (a.status === "retired") throw conflict(`agent '${name}' is retired and cannot be ${action}d`);
      else if (action === "pause") next = "paused";
      else next = a.status === "paused" ? "active" : a.status;
      if (next === a.status) return agentView(a);
      const updated = await repo.updateAgent(tx, { tenantId: actor.tenantId, agentId: a.id, patch: { status: next } });
      await scheduleSync(tx, updated);
      await audit(
        tx,
        actor,
        { action: `agent.${action}`, targetType: "agent", targetId: a.id, before: { status: a.status }, after: { status: next } },
        ctx.requestId,
      );
      return agentView(updated);
    });
  }

  return {
    /** PUT: idempotent apply. Same spec, same revision; a changed spec makes revision n+1. */
    async apply(actor: Actor, name: string, body: unknown, ctx: Ctx = {}) {
      assertCanManage(actor);
      const d = validateDescriptor(body);
      checkName(name, d);
      const r = await withTenant(database, actor.tenantId, (tx) => applyIn(tx, actor, d, "apply", ctx));
      return { status: r.created ? 201 : 200, body: { ...agentView(r.agent), changed: r.changed } };
    },

    /**
     * Replaces an agent's spec.domains inside the caller's transaction (an approved
     * proposal's `set_agent_domains` action): a new revision, applied like a PUT.
     */
    async setDomainsInTx(tx: Tx, actor: Actor, name: string, domains: string[]) {
      const a = await repo.getAgentByName(tx, { tenantId: actor.tenantId, name, forUpdate: true });
      if (!a) throw validation(`agent '${name}' does not exist`, [{ path: "action.agent", message: "no such agent" }]);
      const current = a.descriptor as AgentDescriptor;
      const d = validateDescriptor({ ...current, spec: { ...current.spec, domains } });
      const r = await applyIn(tx, actor, d, "apply", {});
      return { agent: r.agent.name, revision: r.agent.revision, changed: r.changed };
    },

    /** POST: create only; 409 if the name is taken. Supports Idempotency-Key. */
    async create(actor: Actor, body: unknown, ctx: Ctx & { idempotency?: IdempotencyRequest | undefined } = {}) {
      assertCanManage(actor);
      const d = validateDescriptor(body);
      return runCreate(database, actor.tenantId, ctx.idempotency, async (tx) => {
        const r = await applyIn(tx, actor, d, "create", ctx);
        return { status: 201, body: { ...agentView(r.agent), changed: true } };
      });
    },

    async get(actor: Actor, name: string) {
      requireScope(actor, "read");
      return withTenant(database, actor.tenantId, async (tx) => agentView(await loadAgent(tx, actor, name)));
    },

    async list(actor: Actor, q: { limit: number; cursor?: string | undefined; status?: AgentStatus | undefined }) {
      requireScope(actor, "read");
      const afterName = decodeCursor(q.cursor, isString);
      const rows = await withTenant(database, actor.tenantId, (tx) =>
        repo.listAgents(tx, { tenantId: actor.tenantId, limit: q.limit + 1, afterName, status: q.status }),
      );
      const p = page(rows, q.limit, (r) => r.name);
      return { items: p.items.map(agentView), nextCursor: p.nextCursor };
    },

    async revisions(actor: Actor, name: string, q: { limit: number; cursor?: string | undefined }) {
      requireScope(actor, "read");
      const after = decodeCursor(q.cursor, isNumber);
      return withTenant(database, actor.tenantId, async (tx) => {
        const a = await loadAgent(tx, actor, name);
        const rows = await repo.listRevisions(tx, { tenantId: actor.tenantId, agentId: a.id, limit: q.limit + 1, after });
        const p = page(rows, q.limit, (r) => r.revision);
        return { items: p.items.map(revisionView), nextCursor: p.nextCursor };
      });
    },

    async revision(actor: Actor, name: string, revision: number) {
      requireScope(actor, "read");
      return withTenant(database, actor.tenantId, async (tx) => {
        const a = await loadAgent(tx, actor, name);
        const r = await repo.getRevision(tx, { tenantId: actor.tenantId, agentId: a.id, revision });
        if (!r) throw notFound(`revision ${revision} of agent '${name}'`);
        return revisionView(r);
      });
    },

    /** Changes from revision `from` to revision `to` (default: the current one). */
    async diff(actor: Actor, name: string, from: number, to?: number) {
      requireScope(actor, "read");
      return withTenant(database, actor.tenantId, async (tx) => {
        const a = await loadAgent(tx, actor, name);
        const target = to ?? a.revision;
        const [ra, rb] = await Promise.all([
          repo.getRevision(tx, { tenantId: actor.tenantId, agentId: a.id, revision: from }),
          repo.getRevision(tx, { tenantId: actor.tenantId, agentId: a.id, revision: target }),
        ]);
        if (!ra) throw notFound(`revision ${from} of agent '${name}'`);
        if (!rb) throw notFound(`revision ${target} of agent '${name}'`);
        return { from, to: target, changes: diffDescriptors(ra.descriptor, rb.descriptor) };
      });
    },

    pause: (actor: Actor, name: string, ctx?: Ctx) => setStatus(actor, name, "pause", ctx),
    resume: (actor: Actor, name: string, ctx?: Ctx) => setStatus(actor, name, "resume", ctx),
    retire: (actor: Actor, name: string, ctx?: Ctx) => setStatus(actor, name, "retire", ctx),

    /**
     * The `agent.schedule.sync` job: sets when the scheduler next wakes the agent. Fenced
     * by revision, so a late job for an old revision changes nothing.
     */
    async syncSchedule(p: { tenantId: string; agentId: string; revision: number }, now = new Date()) {
      return withTenant(database, p.tenantId, async (tx) => {
        const a = await repo.getAgentById(tx, { tenantId: p.tenantId, agentId: p.agentId });
        if (!a || a.revision !== p.revision) return { applied: false, nextWakeAt: null };
        const every = (a.descriptor as AgentDescriptor).spec.schedule?.every;
        const at = a.status === "active" && every ? new Date(now.getTime() + durationMs(every)) : null;
        const keep = at && a.nextWakeAt && a.nextWakeAt > now && a.nextWakeAt < at ? a.nextWakeAt : at;
        const applied = await repo.setNextWake(tx, { tenantId: p.tenantId, agentId: p.agentId, revision: p.revision, at: keep });
        return { applied, nextWakeAt: keep };
      });
    },
  };
};

export type AgentService = ReturnType<typeof agentService>;
