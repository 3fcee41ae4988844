import type { AgentDescriptorInput } from "@bosun/contracts";
import type { Actor } from "../actor";
import type { AgentService } from "../agents/service";
import type { TaskService } from "../tasks/service";
import { allowedStdioCommands } from "./client";
import type { GatewayService } from "./service";

/**
 * The gateway's part of the demo tenant: the npm server-everything over stdio, and an
 * agent that calls two of its tools; the second (`get-sum`) needs a human approval by
 * the agent's descriptor, so its task waits in the approvals inbox until someone decides.
 */
export const demoGatewayAgent: AgentDescriptorInput = {
  apiVersion: "agent.os/v1",
  kind: "Agent",
  metadata: { name: "tool-runner", owner: "platform", description: "Calls MCP tools through the gateway; one call waits for approval" },
  spec: {
    model: {
      provider: "scripted",
      name: "scripted-small",
      pinned_revision: "2026-01-01",
      script: [
        { call: "mcp__everything__echo", input: { message: "hello from the gateway" } },
        { call: "mcp__everything__get-sum", input: { a: 1200, b: 34 } },
      ],
    },
    soul: "You use external tools through Bosun's MCP gateway.",
    tools: ["mcp://gateway/everything/*"],
    approval: { tools: ["mcp://gateway/everything/get-sum"] },
  },
};

export const demoGatewayTask = {
  title: "Add up this month's totals with the MCP tools",
  body: "Echo a greeting, then add 1200 and 34 (the sum needs a human approval).",
  assignee: "tool-runner",
};

/** Registers and lists the demo server, then the agent and its task. A server that cannot be listed is left with its error. */
export async function bootstrapGatewayDemo(deps: { gateway: GatewayService; agents: AgentService; tasks?: TaskService | undefined }, actor: Actor) {
  // Not allowed on this deployment (BOSUN_MCP_STDIO_COMMANDS): no gateway demo.
  if (!allowedStdioCommands().some((c) => c === "*" || c === "mcp-server-everything")) return;
  await deps.gateway.create(actor, { name: "everything", transport: "stdio", command: "mcp-server-everything", args: ["stdio"] });
  try {
    await deps.gateway.refresh(actor, "everything");
  } catch {
    return; // recorded as the server's last_error; the rest of the demo does not depend on it
  }
  await deps.agents.apply(actor, demoGatewayAgent.metadata.name, demoGatewayAgent);
  await deps.tasks?.create(actor, { priority: 50, depends_on: [], requires_review: false, max_attempts: 3, ...demoGatewayTask });
}
