import type { AgentDescriptor } from "@bosun/contracts";
import { repo, type Tx } from "@bosun/db";
import { newId } from "../ids";
import { DEFAULT_APPROVAL_EXPIRY_SECONDS, decideToolCall, decisionRecord } from "./policy";

/** What the runtime records on a tool call's step about its policy decision (and approval). */
export type PolicyRecord = ReturnType<typeof decisionRecord> & {
  approval?: { id: string; decision: string; comment: string | null; by: unknown };
};

/**
 * What to do with one tool call:
 * - `run`: execute it (and record `policy` on its step);
 * - `refuse`: do not execute; `content` is the error tool result the model reads;
 * - `suspend`: an approval waitpoint was opened; the run waits for it;
 * - `wait`: its approval is still pending (the run should not have been resumed).
 */
export type Gate =
  | { action: "run"; policy: PolicyRecord | null }
  | { action: "refuse"; policy: PolicyRecord | null; content: string }
  | { action: "suspend"; policy: PolicyRecord; waitpointId: string; expiresAt: string }
  | { action: "wait" };

interface ApprovalResolution {
  decision?: "approved" | "denied" | "expired";
  comment?: string | null;
  by?: unknown;
}

/**
 * The policy gate in front of every tool call, inside the run's transaction. A call that
 * already went through an approval is decided by its approval, once: approved runs,
 * denied, expired or cancelled is refused with `{denied|expired|cancelled, comment, by}`.
 * Otherwise the call is decided now (see ./policy.ts): allowed, denied, or suspended on a
 * new approval waitpoint carrying the call.
 */
export async function gateToolCall(
  tx: Tx,
  p: {
    tenantId: string;
    agentId: string;
    runId: string;
    descriptor: AgentDescriptor;
    use: { id: string; name: string; input: unknown };
    /** The seq of the model step that made the call: tool-use ids are unique within it. */
    llmSeq: number;
    approvalExpirySeconds?: number | undefined;
    /**
     * What the caller has read under the run's lease: the run's waitpoints (the approval
     * for this tool use, if any, is among them) and the agent's policies.
     */
    known: { waitpoints: repo.runtime.WaitpointRow[]; policies: repo.governance.PolicyRow[] };
  },
): Promise<Gate> {
  // Oldest first, as the run's waitpoints are read: the newest match is the last.
  const prior = p.known.waitpoints.findLast((w) => {
    const payload = w.payload as { toolUseId?: unknown; llmSeq?: unknown } | null;
    return w.kind === "approval" && payload?.toolUseId === p.use.id && Number(payload?.llmSeq) === p.llmSeq;
  });
  if (prior) {
    if (prior.status === "pending") return { action: "wait" };
    const r = (prior.resolution ?? {}) as ApprovalResolution;
    const decision = prior.status === "resolved" ? (r.decision ?? "approved") : prior.status;
    const policy: PolicyRecord = {
      ...(prior.payload as { policy: PolicyRecord }).policy,
      approval: { id: prior.id, decision, comment: r.comment ?? null, by: r.by ?? null },
    };
    if (decision === "approved") return { action: "run", policy };
    return { action: "refuse", policy, content: JSON.stringify({ [decision]: true, comment: r.comment ?? null, by: r.by ?? null, approval: prior.id }) };
  }

  const d = await decideToolCall(tx, { tenantId: p.tenantId, agentId: p.agentId, descriptor: p.descriptor, name: p.use.name, input: p.use.input, policies: p.known.policies });
  // No such tool: nothing to decide; the runtime answers "unknown tool".
  if (!d) return { action: "run", policy: null };
  const policy = decisionRecord(d.meta, d.evaluation);
  const { evaluation: e } = d;
  if (e.decision === "allow") return { action: "run", policy };
  if (e.decision === "deny") {
    return { action: "refuse", policy, content: JSON.stringify({ denied: true, rule: e.rule.name, reason: e.reason }) };
  }
  const seconds = e.approvalExpiresSeconds ?? p.approvalExpirySeconds ?? DEFAULT_APPROVAL_EXPIRY_SECONDS;
  const expiresAt = new Date(Date.now() + seconds * 1000);
  const waitpointId = newId("wpt");
  await repo.runtime.insertWaitpoint(tx, {
    tenantId: p.tenantId,
    id: waitpointId,
    runId: p.runId,
    agentId: p.agentId,
    kind: "approval",
    ref: d.meta.ref,
    resumeAt: null,
    expiresAt,
    payload: { toolUseId: p.use.id, llmSeq: p.llmSeq, tool: p.use.name, ref: d.meta.ref, input: p.use.input, reason: e.reason, policy },
  });
  return { action: "suspend", policy, waitpointId, expiresAt: expiresAt.toISOString() };
}
