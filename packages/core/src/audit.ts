import { type Db, repo } from "@bosun/db";
import { type Actor, auditActor } from "./actor";
import { newId } from "./ids";

export interface AuditEntry {
  action: string;
  targetType: string;
  targetId: string;
  before?: unknown;
  after?: unknown;
}

/** Writes the audit event for a mutation, in the mutation's own transaction. */
export function audit(tx: Db, actor: Actor, entry: AuditEntry, requestId?: string) {
  return repo.appendAudit(tx, {
    tenantId: actor.tenantId,
    id: newId("aud"),
    ...auditActor(actor),
    ...entry,
    requestId,
  });
}
