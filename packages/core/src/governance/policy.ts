import type { AgentDescriptor } from "@bosun/contracts";
import type { repo, Tx } from "@bosun/db";
import { globToRegExp } from "../glob";
import { describeTool, type ToolMeta } from "./tool-meta";

export { globToRegExp } from "../glob";

type PolicyRow = repo.governance.PolicyRow;

export type PolicyDecision = "allow" | "deny" | "require_approval";

/** The rule that made a decision: a policy object, a line of the descriptor, or the default. */
export interface DecidingRule {
  source: "policy" | "descriptor" | "default";
  /** The policy's id (policy rules only). */
  id: string | null;
  /** The policy's name, or the descriptor field (`spec.tools`, `spec.approval.tools`, …), or `default`. */
  name: string;
  /** `tenant` or `agent` for policies. */
  scope: "tenant" | "agent" | null;
}

export interface Evaluation {
  decision: PolicyDecision;
  rule: DecidingRule;
  /** For require_approval: how long the approval stays open. */
  approvalExpiresSeconds: number | null;
  /** One line for people and for the model: why. */
  reason: string;
}

/** An approval that names no expiry stays open this long. */
export const DEFAULT_APPROVAL_EXPIRY_SECONDS = 24 * 3600;


/** A pattern matches the tool's canonical ref or the name the model used. */
export const toolMatches = (pattern: string, meta: Pick<ToolMeta, "ref" | "name">) => {
  const re = globToRegExp(pattern);
  return re.test(meta.ref) || re.test(meta.name);
};

function policyMatches(p: PolicyRow, meta: ToolMeta): boolean {
  if (p.toolPattern !== null && !toolMatches(p.toolPattern, meta)) return false;
  if (p.sideEffect !== null && p.sideEffect !== meta.sideEffect) return false;
  if (p.actionValueGtMicros !== null && (meta.actionValueMicros === null || meta.actionValueMicros <= BigInt(p.actionValueGtMicros))) return false;
  return true;
}

const usd = (micros: bigint | number) => `$${(Number(micros) / 1_000_000).toFixed(2)}`;

/**
 * Decides a tool call. Every matching rule is collected, from the tenant's policies, the
 * agent's own policies and the agent's descriptor; then, in this order:
 *
 * 1. any `deny` → denied;
 * 2. else any `require_approval` (a policy, `spec.approval.tools`, or a declared action
 *    value over `spec.approval.on_action_value_usd_gt`) → approval required;
 * 3. else any `allow` policy → allowed;
 * 4. else a gateway tool its `spec.tools` does not name → denied (the gateway offers only
 *    those; an explicit allow policy is how a tenant lets an agent call one anyway);
 * 5. else allowed by default.
 *
 * Within a tier the reported rule is the first by priority (lower first), agent policies
 * before tenant ones at equal priority, then name; descriptor rules come after policies.
 */
export function evaluate(p: { meta: ToolMeta; policies: PolicyRow[]; descriptor: AgentDescriptor; agentId: string }): Evaluation {
  const { meta, descriptor } = p;
  type Hit = { decision: PolicyDecision; rule: DecidingRule; expires: number | null; order: [number, number, string]; why: string };
  const hits: Hit[] = [];
  for (const pol of p.policies) {
    if (pol.agentId !== null && pol.agentId !== p.agentId) continue;
    if (!policyMatches(pol, meta)) continue;
    const scope = pol.agentId ? ("agent" as const) : ("tenant" as const);
    hits.push({
      decision: pol.decision,
      rule: { source: "policy", id: pol.id, name: pol.name, scope },
      expires: pol.approvalExpiresSeconds,
      order: [0, pol.priority * 2 + (scope === "agent" ? 0 : 1), pol.name],
      why: `policy '${pol.name}'`,
    });
  }
  const approval = descriptor.spec.approval;
  const approvalTool = approval?.tools?.find((pat) => toolMatches(pat, meta));
  if (approvalTool !== undefined) {
    hits.push({
      decision: "require_approval",
      rule: { source: "descriptor", id: null, name: "spec.approval.tools", scope: "agent" },
      expires: null,
      order: [1, 0, "spec.approval.tools"],
      why: `the agent's descriptor (spec.approval.tools: '${approvalTool}')`,
    });
  }
  if (approval?.on_action_value_usd_gt !== undefined && meta.actionValueMicros !== null) {
    // The descriptor's schema does not bound decimals: round to the micro-dollar.
    const limit = BigInt(Math.round(approval.on_action_value_usd_gt * 1_000_000));
    if (meta.actionValueMicros > limit) {
      hits.push({
        decision: "require_approval",
        rule: { source: "descriptor", id: null, name: "spec.approval.on_action_value_usd_gt", scope: "agent" },
        expires: null,
        order: [1, 1, "spec.approval.on_action_value_usd_gt"],
        why: `the action's value ${usd(meta.actionValueMicros)} is over the agent's approval threshold of ${usd(limit)}`,
      });
    }
  }
  const cmp = (a: Hit, b: Hit) => a.order[0] - b.order[0] || a.order[1] - b.order[1] || a.order[2].localeCompare(b.order[2]);
  for (const tier of ["deny", "require_approval", "allow"] as const) {
    const first = hits.filter((h) => h.decision === tier).sort(cmp)[0];
    if (!first) continue;
    const verb = tier === "deny" ? "denied" : tier === "allow" ? "allowed" : "requires approval";
    return {
      decision: tier,
      rule: first.rule,
      approvalExpiresSeconds: tier === "require_approval" ? (first.expires ?? null) : null,
      reason: `${meta.ref} ${verb} by ${first.why}`,
    };
  }
  // Fail closed: the gateway offers an agent only the tools its spec.tools names (none when
  // empty), and a call of any other one (a made-up or stale name) is refused here.
  if (meta.kind === "gateway" && !descriptor.spec.tools.some((pat) => toolMatches(pat, meta))) {
    return {
      decision: "deny",
      rule: { source: "descriptor", id: null, name: "spec.tools", scope: "agent" },
      approvalExpiresSeconds: null,
      reason: `${meta.ref} denied: not in the agent's tool allow-list (spec.tools)`,
    };
  }
  return { decision: "allow", rule: { source: "default", id: null, name: "default", scope: null }, approvalExpiresSeconds: null, reason: `${meta.ref} allowed by default` };
}

/** Describes a tool call and decides it, inside the run's transaction. Null: no such tool. */
export async function decideToolCall(
  tx: Tx,
  p: {
    tenantId: string;
    agentId: string;
    descriptor: AgentDescriptor;
    name: string;
    input: unknown;
    /** The agent's policies (repo.governance.policiesForAgentRead), read by the caller. */
    policies: repo.governance.PolicyRow[];
  },
): Promise<{ meta: ToolMeta; evaluation: Evaluation } | null> {
  const meta = await describeTool(tx, { tenantId: p.tenantId, name: p.name, input: p.input });
  if (!meta) return null;
  return { meta, evaluation: evaluate({ meta, policies: p.policies, descriptor: p.descriptor, agentId: p.agentId }) };
}

/** What a step records of a decision (JSON: micro-dollars as numbers). */
export const decisionRecord = (meta: ToolMeta, e: Evaluation) => ({
  decision: e.decision,
  rule: e.rule,
  reason: e.reason,
  ref: meta.ref,
  sideEffect: meta.sideEffect,
  actionValueMicros: meta.actionValueMicros === null ? null : Number(meta.actionValueMicros),
});
