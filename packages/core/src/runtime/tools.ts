import type { ToolDef } from "@bosun/llm";

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
  {
    name: "send_message",
    description: "Send a direct message to another agent (by name).",
    inputSchema: {
      type: "object",
      properties: { to: { type: "string" }, body: { type: "string" } },
      required: ["to", "body"],
    },
  },
  {
    name: "delegate",
    description: "Hand a piece of work to another agent (by name) and wait for its result.",
    inputSchema: {
      type: "object",
      properties: { agent: { type: "string" }, instructions: { type: "string" } },
      required: ["agent", "instructions"],
    },
  },
];

export const INTERNAL_TOOL_NAMES = new Set(internalTools.map((t) => t.name));
