import type { AuditListQuery } from "@bosun/contracts";
import { type Database, repo, withTenant } from "@bosun/db";
import { type Actor, requireScope } from "./actor";
import { forbidden } from "./errors";
import { decodeCursor, isNumber, page } from "./pagination";

/** Events read per transaction while the chain is verified: memory stays flat however long the chain. */
const VERIFY_BATCH = 1000;
/** Events sealed per transaction when a reader seals first. */
const SEAL_BATCH = 1000;

export function auditEventView(e: repo.SealedAuditEventRow) {
  return {
    id: e.id,
    seq: e.seq,
    actor: { type: e.actorType, id: e.actorId },
    action: e.action,
    target: { type: e.targetType, id: e.targetId },
    before: e.before ?? null,
    after: e.after ?? null,
    requestId: e.requestId,
    prevHash: e.prevHash,
    hash: e.hash,
    createdAt: e.createdAt.toISOString(),
  };
}

type Broken = {
  id: string | null;
  seq: number;
  reason: "hash_mismatch" | "prev_hash_mismatch" | "missing_event" | "head_mismatch";
  expected: string;
  actual: string;
};

/**
 * Reading the audit trail and checking its hash chain. The trail holds the before and after
 * of every change (descriptors, keys' metadata, task results), so reading it is for admins:
 * admin people and admin keys, not agents' keys.
 */
export const auditService = (deps: { database: Database }) => {
  const { database } = deps;

  function assertAuditor(actor: Actor) {
    requireScope(actor, "admin");
    if (actor.agentId) throw forbidden("an agent's key cannot read the audit trail");
  }

  /**
   * Seals the tenant's pending events, waiting for the head lock: what was committed before
   * the call is then in the chain (events are written unsealed, see repo.appendAudits).
   */
  async function sealFirst(tenantId: string) {
    while ((await repo.sealAudit(database, tenantId, { limit: SEAL_BATCH })) === SEAL_BATCH);
  }

  return {
    /** Newest first, filtered by actor, target, action (exact or `prefix*`) and time; sealed events only, sealed first. */
    async list(actor: Actor, q: AuditListQuery) {
      assertAuditor(actor);
      await sealFirst(actor.tenantId);
      const beforeSeq = decodeCursor(q.cursor, isNumber);
      const prefix = q.action?.endsWith("*") ?? false;
      const rows = await withTenant(database, actor.tenantId, (tx) =>
        repo.searchAudit(tx, {
          tenantId: actor.tenantId,
          limit: q.limit + 1,
          beforeSeq,
          actorType: q.actorType,
          actorId: q.actorId,
          targetType: q.targetType,
          targetId: q.targetId,
          action: prefix ? q.action!.slice(0, -1) : q.action,
          actionPrefix: prefix,
          from: q.from !== undefined ? new Date(q.from) : undefined,
          to: q.to !== undefined ? new Date(q.to) : undefined,
        }),
      );
      const p = page(rows, q.limit, (r) => r.seq);
      return { items: p.items.map(auditEventView), nextCursor: p.nextCursor };
    },

    /**
     * Seals the tenant's pending events first, then walks the chain from the genesis hash up
     * to the head as it was when the walk began (later events are not waited for), in
     * batches, and names the first broken link:
     * an event whose content no longer gives its hash (edited), one whose prev_hash is not
     * its predecessor's hash (re-hashed or reordered), a gap in seq (deleted), or a chain
     * that ends before its head (the newest events deleted). `unsealed` counts the events not
     * in the chain when the head was read (committed after the seal): 0 on a quiet tenant.
     */
    async verify(actor: Actor) {
      assertAuditor(actor);
      const tenantId = actor.tenantId;
      await sealFirst(tenantId);
      const { head, unsealed } = await withTenant(database, tenantId, async (tx) => ({
        head: (await repo.getAuditHead(tx, { tenantId })) ?? { seq: 0, hash: repo.GENESIS_HASH },
        unsealed: await repo.countUnsealed(tx, { tenantId }),
      }));
      let prevHash = repo.GENESIS_HASH;
      let prevSeq = 0;
      let checked = 0;
      const result = (firstBroken: Broken | null) => ({ ok: firstBroken === null, checked, head: { seq: head.seq, hash: head.hash }, unsealed, firstBroken });
      for (;;) {
        const batch = await withTenant(database, tenantId, (tx) => repo.auditChainSlice(tx, { tenantId, afterSeq: prevSeq, upToSeq: head.seq, limit: VERIFY_BATCH }));
        for (const e of batch) {
          if (e.seq !== prevSeq + 1) {
            return result({ id: e.id, seq: prevSeq + 1, reason: "missing_event", expected: `seq ${prevSeq + 1}`, actual: `seq ${e.seq}` });
          }
          if (e.prevHash !== prevHash) return result({ id: e.id, seq: e.seq, reason: "prev_hash_mismatch", expected: prevHash, actual: e.prevHash });
          const computed = repo.auditHash(e.prevHash, e);
          if (computed !== e.hash) return result({ id: e.id, seq: e.seq, reason: "hash_mismatch", expected: e.hash, actual: computed });
          prevHash = e.hash;
          prevSeq = e.seq;
          checked += 1;
        }
        if (batch.length < VERIFY_BATCH) break;
      }
      if (prevSeq !== head.seq) {
        return result({ id: null, seq: prevSeq + 1, reason: "missing_event", expected: `seq ${prevSeq + 1} to ${head.seq}`, actual: "end of chain" });
      }
      if (prevHash !== head.hash) return result({ id: null, seq: head.seq, reason: "head_mismatch", expected: head.hash, actual: prevHash });
      return result(null);
    },
  };
};

export type AuditService = ReturnType<typeof auditService>;
