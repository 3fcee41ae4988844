import type { ToolDef } from "@bosun/llm";
import { memoryTools } from "../memory/tools";
import { messagingTools } from "../messaging/tools";

/** The tools every agent has inside the runtime (external tools come through the MCP gateway). */
export const internalTools: ToolDef[] = [
  {
    name: "complete_task",
    description: "Finish the current task with its result. Call this once the task is done.",
    inputSchema: {
      type: "object",
      properties: { result: { description: "The outcome: a short text or a JSON object." } },
      required: ["result"],
    },
  },
  {
    name: "fail_task",
    description: "Give up on the current task, explaining why. Set retry to true if another attempt could succeed.",
    inputSchema: {
      type: "object",
      properties: { error: { type: "string" }, retry: { type: "boolean" } },
      required: ["error"],
    },
  },
  {
    name: "create_task",
    description: "Create a new task, for yourself or for another agent (by name) or domain.",
    inputSchema: {
      type: "object",
      properties: {
        title: { type: "string" },
        body: { type: "string" },
        assignee: { type: "string", description: "agent name" },
        domain: { type: "string" },
        priority: { type: "integer", minimum: 0, maximum: 100 },
      },
      required: ["title"],
    },
  },
  // send_message, reply, broadcast (packages/core/src/messaging/tools.ts)
  ...messagingTools,
  // memory, memory_search (packages/core/src/memory/tools.ts)
  ...memoryTools,
  {
    name: "delegate",
    description: "Hand a piece of work to another agent (by name) and wait for its result.",
    inputSchema: {
      type: "object",
      properties: { agent: { type: "string" }, instructions: { type: "string" } },
      required: ["agent", "instructions"],
    },
  },
  {
    name: "propose",
    description:
      "Propose a change outside your own domains (tasks in another agent's domain, a change of an agent's domains). The agents owning those domains are asked; unanimous support or no objection within the tenant's window approves it, and its action is then applied once.",
    inputSchema: {
      type: "object",
      properties: {
        title: { type: "string" },
        body: { type: "string", description: "why, and what changes" },
        domains: { type: "array", items: { type: "string" }, description: "the domain paths it touches, e.g. finance/invoices" },
        action: {
          type: "object",
          description:
            'applied on approval: {"type":"create_tasks","tasks":[{"title":"…","domain":"…"}]} or {"type":"set_agent_domains","agent":"name","domains":["glob/*"]}',
        },
      },
      required: ["title", "domains"],
    },
  },
  {
    name: "respond_to_proposal",
    description: "Respond to a proposal you were asked about: support, concern (on record, does not hold it) or block (holds it for discussion; people decide if it stays blocked).",
    inputSchema: {
      type: "object",
      properties: {
        proposal: { type: "string", description: "the proposal id (prp_…)" },
        stance: { type: "string", enum: ["support", "concern", "block"] },
        comment: { type: "string" },
      },
      required: ["proposal", "stance"],
    },
  },
];

export const INTERNAL_TOOL_NAMES = new Set(internalTools.map((t) => t.name));
