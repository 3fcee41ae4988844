import type { DecideApprovalBody } from "@bosun/contracts";
import { type Database, repo, type Tx, withTenant } from "@bosun/db";
import type { Jobs } from "@bosun/jobs";
import { type Actor, requireScope } from "../actor";
import { audit } from "../audit";
import { conflict, forbidden, notFound } from "../errors";
import { decodeCursor, isString, page } from "../pagination";
import { redact } from "../runtime/runs-service";
import type { PolicyRecord } from "./gate";
import { wakeForApproval as wake } from "./sweep";

type ApprovalRow = repo.governance.ApprovalRow;
const g = repo.governance;

interface Payload {
  tool?: string;
  ref?: string;
  input?: unknown;
  reason?: string;
  policy?: PolicyRecord;
}

interface Resolution {
  decision?: "approved" | "denied" | "expired";
  comment?: string | null;
  by?: { type: "user" | "api_key" | "agent" | "system"; id: string } | null;
}

export type ApprovalStatus = "pending" | "approved" | "denied" | "expired" | "cancelled";

export const approvalStatusOf = (a: Pick<ApprovalRow, "status" | "resolution">): ApprovalStatus =>
  a.status === "resolved" ? (((a.resolution as Resolution | null)?.decision as ApprovalStatus | undefined) ?? "approved") : a.status;

export function approvalView(a: ApprovalRow) {
  const p = (a.payload ?? {}) as Payload;
  const r = (a.resolution ?? {}) as Resolution;
  const status = approvalStatusOf(a);
  return {
    id: a.id,
    status,
    agent: a.agentName,
    agentId: a.agentId,
    runId: a.runId,
    runStatus: a.runStatus,
    tool: p.tool ?? "",
    ref: p.ref ?? p.tool ?? "",
    // Shown to the approver as the trace shows it: secret-looking values redacted.
    input: redact(p.input ?? null),
    reason: p.reason ?? "",
    rule: p.policy ? { source: p.policy.rule.source, id: p.policy.rule.id, name: p.policy.rule.name } : null,
    actionValueUsd: p.policy?.actionValueMicros == null ? null : p.policy.actionValueMicros / 1_000_000,
    expiresAt: a.expiresAt?.toISOString() ?? null,
    createdAt: a.createdAt.toISOString(),
    decidedAt: status === "pending" ? null : (a.resolvedAt?.toISOString() ?? null),
    comment: r.comment ?? null,
    decidedBy: r.by ?? null,
  };
}

/** GET /v1/approvals, GET /v1/approvals/{id}, POST /v1/approvals/{id}/approve and /deny. */
export const approvalService = (deps: { database: Database; jobs: Pick<Jobs, "enqueue"> }) => {
  const { database, jobs } = deps;

  /** Approvals are for people (and their keys): an agent never approves its own actions. */
  function assertNotAgent(actor: Actor, what: string) {
    if (actor.agentId) throw forbidden(`an agent's key cannot ${what} approvals`);
  }

  async function load(tx: Tx, actor: Actor, id: string) {
    const a = await g.getApproval(tx, { tenantId: actor.tenantId, id });
    if (!a) throw notFound(`approval ${id}`);
    return a;
  }

  async function decide(actor: Actor, id: string, decision: "approved" | "denied", body: DecideApprovalBody, requestId?: string) {
    requireScope(actor, "write");
    assertNotAgent(actor, "decide");
    return withTenant(database, actor.tenantId, async (tx) => {
      const before = await load(tx, actor, id);
      const resolution: Resolution & { at: string } = {
        decision,
        comment: body.comment ?? null,
        by: { type: actor.type, id: actor.id },
        at: new Date().toISOString(),
      };
      // Resolving and waking are one transaction: the run resumes exactly when (and once)
      // the decision is committed. A second decision finds the approval no longer pending.
      if (!(await g.decideApproval(tx, { tenantId: actor.tenantId, id, resolution }))) {
        const status = approvalStatusOf(before);
        throw conflict(status === "pending" ? `approval ${id} has expired` : `approval ${id} is already ${status}`);
      }
      await wake(jobs, tx, actor.tenantId, before.agentId);
      const after = approvalView((await load(tx, actor, id))!);
      await audit(
        tx,
        actor,
        { action: decision === "approved" ? "approval.approve" : "approval.deny", targetType: "approval", targetId: id, before: { status: "pending" }, after: { status: after.status, comment: after.comment } },
        requestId,
      );
      return after;
    });
  }

  return {
    async list(actor: Actor, q: { limit: number; cursor?: string | undefined; status?: ApprovalStatus | undefined; agent?: string | undefined }) {
      requireScope(actor, "read");
      assertNotAgent(actor, "read");
      const before = decodeCursor(q.cursor, isString);
      return withTenant(database, actor.tenantId, async (tx) => {
        let agentId: string | undefined;
        if (q.agent) {
          const a = await repo.getAgentByName(tx, { tenantId: actor.tenantId, name: q.agent });
          if (!a) throw notFound(`agent '${q.agent}'`);
          agentId = a.id;
        }
        const rows = await g.listApprovals(tx, { tenantId: actor.tenantId, limit: q.limit + 1, before, agentId, status: q.status });
        const p = page(rows, q.limit, (r) => r.id);
        return { items: p.items.map(approvalView), nextCursor: p.nextCursor };
      });
    },

    async get(actor: Actor, id: string) {
      requireScope(actor, "read");
      assertNotAgent(actor, "read");
      return withTenant(database, actor.tenantId, async (tx) => approvalView(await load(tx, actor, id)));
    },

    approve: (actor: Actor, id: string, body: DecideApprovalBody, requestId?: string) => decide(actor, id, "approved", body, requestId),
    deny: (actor: Actor, id: string, body: DecideApprovalBody, requestId?: string) => decide(actor, id, "denied", body, requestId),
  };
};

export type ApprovalService = ReturnType<typeof approvalService>;
