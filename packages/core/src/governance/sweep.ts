import type { Tx } from "@bosun/db";
import { repo } from "@bosun/db";
import { type Jobs, wakeKey } from "@bosun/jobs";
import { systemActor } from "../actor";
import { audit } from "../audit";

/** The approvals' part of the runtime sweep (kept apart from the HTTP service: the runtime imports it). */

export const wakeForApproval = (jobs: Pick<Jobs, "enqueue">, tx: Tx, tenantId: string, agentId: string) =>
  jobs.enqueue(tx, "agent.wake", { tenantId, agentId, reason: "waitpoint" }, { singletonKey: wakeKey(tenantId, agentId) });

/**
 * Expires pending approvals past their expiry, across tenants (the runtime sweep): each
 * run wakes and its agent gets `{expired: true}` as the tool's result.
 */
export async function expireApprovals(tx: Tx, jobs: Pick<Jobs, "enqueue">, limit = 500): Promise<number> {
  const expired = await repo.governance.expireDueApprovals(tx, limit);
  for (const w of expired) {
    await audit(tx, systemActor(w.tenantId, "approvals"), { action: "approval.expire", targetType: "approval", targetId: w.id, after: { status: "expired" } });
    await wakeForApproval(jobs, tx, w.tenantId, w.agentId);
  }
  return expired.length;
}

/**
 * Keeps the task lease of every run that waits on a waitpoint (a person's approval, a
 * sub-agent's run, a timer, an event): the run holds its task (claimed under the run's own
 * lease owner) while it waits, possibly for a day, and the lease would otherwise run out,
 * send the task back to the queue and let a second run repeat the work (ask for the same
 * approval, delegate the same piece again). The sweep runs every few seconds; the lease is
 * kept five minutes ahead, with its epoch unchanged, so the waiting run's writes stay
 * valid. A cancelled or resolved wait stops being kept, and the lease runs its normal
 * course (a resumed run heartbeats it again).
 */
export async function holdTaskLeasesOfWaits(tx: Tx): Promise<number> {
  const { rowCount } = await tx.$client.query(
    `UPDATE tasks t SET lease_expires_at = now() + interval '5 minutes'
     FROM runs r
     WHERE t.tenant_id = r.tenant_id AND t.id = r.task_id AND t.run_id = r.id AND t.status IN ('claimed', 'in_progress')
       AND t.lease_expires_at < now() + interval '4 minutes'
       AND r.status = 'waiting'
       AND EXISTS (SELECT 1 FROM waitpoints w WHERE w.tenant_id = r.tenant_id AND w.run_id = r.id AND w.status = 'pending')`,
  );
  return rowCount ?? 0;
}

