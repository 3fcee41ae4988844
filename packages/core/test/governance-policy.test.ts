import type { AgentDescriptor } from "@bosun/contracts";
import { describe, expect, it } from "vitest";
import { declaredActionValue } from "../src/governance/tool-meta";
import { evaluate, globToRegExp } from "../src/governance/policy";
import type { ToolMeta } from "../src/governance/tool-types";

/** The policy evaluator on its own: precedence, matching and descriptor rules. */

type PolicyRow = Parameters<typeof evaluate>[0]["policies"][number];

const AGENT = "agt_self";
const internal = (name: string, value: number | null = null): ToolMeta => ({
  name,
  ref: name,
  kind: "internal",
  sideEffect: "internal",
  actionValueMicros: value === null ? null : BigInt(value * 1_000_000),
  feeMicros: 0n,
});
const gateway = (server: string, tool: string, value: number | null = null): ToolMeta => ({
  name: `mcp__${server}__${tool}`,
  ref: `mcp://gateway/${server}/${tool}`,
  kind: "gateway",
  sideEffect: "external",
  actionValueMicros: value === null ? null : BigInt(value * 1_000_000),
  feeMicros: 0n,
});

let n = 0;
const policy = (p: Partial<PolicyRow> & Pick<PolicyRow, "decision">): PolicyRow => ({
  tenantId: "ten_x",
  id: `pol_${++n}`,
  agentId: null,
  agentName: null,
  name: `policy-${n}`,
  priority: 100,
  toolPattern: null,
  sideEffect: null,
  actionValueGtMicros: null,
  approvalExpiresSeconds: null,
  description: null,
  createdAt: new Date(),
  updatedAt: new Date(),
  ...p,
});

const descriptor = (spec: Partial<AgentDescriptor["spec"]> = {}): AgentDescriptor =>
  ({
    apiVersion: "agent.os/v1",
    kind: "Agent",
    metadata: { name: "self", owner: "t" },
    spec: { model: { provider: "scripted", name: "s" }, soul: "", drives: [], memory: { type: "persistent", retention_days: 90, working_tokens: 2000 }, tools: [], domains: [], ...spec },
  }) as AgentDescriptor;

const decide = (meta: ToolMeta, policies: PolicyRow[] = [], spec: Partial<AgentDescriptor["spec"]> = {}) =>
  evaluate({ meta, policies, descriptor: descriptor(spec), agentId: AGENT });

describe("tool globs", () => {
  it("matches one path segment with *, any with **, and literals exactly", () => {
    expect(globToRegExp("mcp://gateway/github/*").test("mcp://gateway/github/create_issue")).toBe(true);
    expect(globToRegExp("mcp://gateway/github/*").test("mcp://gateway/github-enterprise/x")).toBe(false);
    expect(globToRegExp("mcp://gateway/*").test("mcp://gateway/github/create_issue")).toBe(false);
    expect(globToRegExp("mcp://gateway/**").test("mcp://gateway/github/create_issue")).toBe(true);
    expect(globToRegExp("create_task").test("create_task")).toBe(true);
    expect(globToRegExp("create.task").test("createXtask")).toBe(false);
    expect(globToRegExp("send_?essage").test("send_message")).toBe(true);
  });
});

describe("precedence", () => {
  it("allows by default, with the default rule recorded", () => {
    expect(decide(internal("create_task"))).toMatchObject({ decision: "allow", rule: { source: "default", name: "default" } });
  });

  it("deny beats require_approval beats allow, whatever the priorities", () => {
    const allow = policy({ decision: "allow", priority: 0, name: "allow-all" });
    const approve = policy({ decision: "require_approval", priority: 50, toolPattern: "create_task", name: "approve-tasks" });
    const deny = policy({ decision: "deny", priority: 900, sideEffect: "internal", name: "deny-internal" });
    expect(decide(internal("create_task"), [allow])).toMatchObject({ decision: "allow", rule: { source: "policy", name: "allow-all" } });
    expect(decide(internal("create_task"), [allow, approve])).toMatchObject({ decision: "require_approval", rule: { name: "approve-tasks" } });
    expect(decide(internal("create_task"), [allow, approve, deny])).toMatchObject({ decision: "deny", rule: { name: "deny-internal", scope: "tenant" } });
    expect(decide(internal("send_message"), [allow, approve])).toMatchObject({ decision: "allow" });
  });

  it("reports the lowest priority within a tier, an agent's policy before the tenant's at equal priority", () => {
    const tenant = policy({ decision: "deny", priority: 10, name: "b-tenant" });
    const agent = policy({ decision: "deny", priority: 10, name: "z-agent", agentId: AGENT });
    const lower = policy({ decision: "deny", priority: 5, name: "y-lower" });
    expect(decide(internal("delegate"), [tenant, agent]).rule).toMatchObject({ name: "z-agent", scope: "agent" });
    expect(decide(internal("delegate"), [tenant, agent, lower]).rule).toMatchObject({ name: "y-lower" });
  });

  it("ignores another agent's policies", () => {
    expect(decide(internal("create_task"), [policy({ decision: "deny", agentId: "agt_other" })])).toMatchObject({ decision: "allow" });
  });

  it("takes the approval expiry from the deciding policy", () => {
    const p = policy({ decision: "require_approval", approvalExpiresSeconds: 600 });
    expect(decide(internal("create_task"), [p])).toMatchObject({ decision: "require_approval", approvalExpiresSeconds: 600 });
  });
});

describe("matching", () => {
  it("needs every condition a policy sets", () => {
    const p = policy({ decision: "deny", toolPattern: "mcp://gateway/bank/*", actionValueGtMicros: 100_000_000 });
    const all = { tools: ["mcp://gateway/**"] };
    expect(decide(gateway("bank", "pay", 150), [p], all).decision).toBe("deny");
    expect(decide(gateway("bank", "pay", 100), [p], all).decision).toBe("allow"); // not above
    expect(decide(gateway("bank", "pay"), [p], all).decision).toBe("allow"); // no declared value
    expect(decide(gateway("shop", "pay", 150), [p], all).decision).toBe("allow"); // another server
    expect(decide(gateway("bank", "pay"), [policy({ decision: "deny", sideEffect: "external" })]).decision).toBe("deny");
    expect(decide(internal("create_task"), [policy({ decision: "deny", sideEffect: "external" })]).decision).toBe("allow");
  });

  it("matches the model-facing name of a gateway tool too", () => {
    expect(decide(gateway("github", "merge"), [policy({ decision: "deny", toolPattern: "mcp__github__*" })]).decision).toBe("deny");
  });
});

describe("descriptor rules", () => {
  it("requires approval for spec.approval.tools and for a value over spec.approval.on_action_value_usd_gt", () => {
    expect(decide(internal("delegate"), [], { approval: { tools: ["delegate"] } })).toMatchObject({
      decision: "require_approval",
      rule: { source: "descriptor", name: "spec.approval.tools" },
    });
    const spec = { approval: { on_action_value_usd_gt: 100 } };
    expect(decide(internal("create_task", 100.01), [], spec)).toMatchObject({ decision: "require_approval", rule: { name: "spec.approval.on_action_value_usd_gt" } });
    expect(decide(internal("create_task", 100), [], spec).decision).toBe("allow");
    expect(decide(internal("create_task"), [], spec).decision).toBe("allow");
    // A deny policy still beats the descriptor's approval.
    expect(decide(internal("create_task", 500), [policy({ decision: "deny", toolPattern: "create_task" })], spec).decision).toBe("deny");
  });

  it("denies gateway tools spec.tools does not name (none when empty), unless a policy allows them; internal tools are not affected", () => {
    const spec = { tools: ["mcp://gateway/github/*"] };
    expect(decide(gateway("github", "create_issue"), [], spec).decision).toBe("allow");
    expect(decide(gateway("slack", "post"), [], spec)).toMatchObject({ decision: "deny", rule: { source: "descriptor", name: "spec.tools" } });
    expect(decide(gateway("slack", "post"), [policy({ decision: "allow", toolPattern: "mcp://gateway/slack/post", name: "slack-ok" })], spec)).toMatchObject({
      decision: "allow",
      rule: { name: "slack-ok" },
    });
    expect(decide(internal("send_message"), [], spec).decision).toBe("allow");
    expect(decide(gateway("slack", "post"), [], { tools: [] }).decision).toBe("deny");
    expect(decide(internal("send_message"), [], { tools: [] }).decision).toBe("allow");
  });
});

describe("declared action values", () => {
  it("reads action_value_usd from a call's input, in micro-dollars, and nothing else", () => {
    expect(declaredActionValue({ action_value_usd: 12.5 })).toBe(12_500_000n);
    expect(declaredActionValue({ action_value_usd: "99.99" })).toBe(99_990_000n);
    expect(declaredActionValue({ action_value_usd: -1 })).toBeNull();
    expect(declaredActionValue({ action_value_usd: "lots" })).toBeNull();
    expect(declaredActionValue({ action_value_usd: Number.POSITIVE_INFINITY })).toBeNull();
    expect(declaredActionValue({})).toBeNull();
    expect(declaredActionValue(null)).toBeNull();
  });
});
