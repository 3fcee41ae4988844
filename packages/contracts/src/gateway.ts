import { z } from "zod";

/** MCP server names: slugs of at most 32 characters, so model-facing tool names fit in 64. */
export const mcpServerNameSchema = z
  .string()
  .min(1)
  .max(32)
  .regex(/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/, "must be lowercase letters, digits and dashes, at most 32");

/** MCP tool names as servers report them (the MCP spec's characters). */
export const mcpToolNameSchema = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9_.-]+$/, "must be letters, digits, dots, dashes and underscores");

/** Env var names (stdio) or header names (http); values are write-only. */
const secretsSchema = z
  .record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_-]{0,127}$/, "must be an env var or header name"), z.string().max(8192))
  .refine((r) => Object.keys(r).length <= 50, "at most 50 secrets");

const limitsSchema = z.strictObject({
  callsPerMinute: z.number().int().min(1).max(100_000).optional(),
  resultCapBytes: z.number().int().min(256).max(10_000_000).optional(),
  timeoutMs: z.number().int().min(100).max(600_000).optional(),
});

const commandSchema = z.string().min(1).max(500);
const argsSchema = z.array(z.string().max(2000)).max(50);
const urlSchema = z.url({ protocol: /^https?$/, error: "must be an http or https URL" }).max(2000);

export const mcpServerCreateSchema = z
  .strictObject({
    name: mcpServerNameSchema,
    transport: z.enum(["stdio", "http"]),
    command: commandSchema.optional(),
    args: argsSchema.optional(),
    url: urlSchema.optional(),
    /** stdio: env vars for the server process; http: request headers. Stored encrypted, never returned. */
    secrets: secretsSchema.optional(),
    limits: limitsSchema.optional(),
    status: z.enum(["active", "disabled"]).optional(),
  })
  .superRefine((v, ctx) => {
    if (v.transport === "stdio" && !v.command) ctx.addIssue({ code: "custom", path: ["command"], message: "a stdio server needs a command" });
    if (v.transport === "stdio" && v.url) ctx.addIssue({ code: "custom", path: ["url"], message: "a stdio server has no url" });
    if (v.transport === "http" && !v.url) ctx.addIssue({ code: "custom", path: ["url"], message: "an http server needs a url" });
    if (v.transport === "http" && (v.command || v.args)) ctx.addIssue({ code: "custom", path: ["command"], message: "an http server has no command or args" });
  })
  .meta({ id: "McpServerCreate" });

export const mcpServerUpdateSchema = z
  .strictObject({
    command: commandSchema.optional(),
    args: argsSchema.optional(),
    url: urlSchema.optional(),
    /** Replaces all secrets; `null` removes them. */
    secrets: secretsSchema.nullable().optional(),
    limits: limitsSchema.optional(),
    status: z.enum(["active", "disabled"]).optional(),
  })
  .meta({ id: "McpServerUpdate" });

export const mcpServerSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    transport: z.enum(["stdio", "http"]),
    command: z.string().nullable(),
    args: z.array(z.string()),
    url: z.string().nullable(),
    /** The names of the stored secrets; their values never leave the server. */
    secretNames: z.array(z.string()),
    limits: z.object({ callsPerMinute: z.number().int(), resultCapBytes: z.number().int(), timeoutMs: z.number().int() }),
    status: z.enum(["active", "disabled"]),
    lastError: z.string().nullable(),
    lastListedAt: z.string().nullable(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .meta({ id: "McpServer" });

export const mcpToolSchema = z
  .object({
    server: z.string(),
    name: z.string(),
    /** The canonical reference policies and descriptors use. */
    ref: z.string(),
    /** The name models see (`mcp__<server>__<tool>`). */
    modelName: z.string(),
    version: z.number().int(),
    schemaHash: z.string(),
    inputSchema: z.unknown(),
    description: z.string(),
    sideEffect: z.enum(["external", "internal"]),
    feeMicros: z.number().int(),
    valueField: z.string().nullable(),
    current: z.boolean(),
    firstSeenAt: z.string(),
    lastSeenAt: z.string(),
  })
  .meta({ id: "McpTool" });

export const mcpToolUpdateSchema = z
  .strictObject({
    sideEffect: z.enum(["external", "internal"]).optional(),
    /** The fee per call in micro-dollars, charged to the ledger as an `action`. */
    feeMicros: z.number().int().min(0).max(1_000_000_000_000).optional(),
    /** A dotted path into the call's input holding its value in US dollars; null clears it. */
    valueField: z
      .string()
      .min(1)
      .max(200)
      .regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/, "must be a dotted path of field names")
      .nullable()
      .optional(),
  })
  .meta({ id: "McpToolUpdate" });

export const mcpRefreshResultSchema = z.object({
  server: mcpServerSchema,
  added: z.array(z.string()),
  changed: z.array(z.string()),
  unchanged: z.array(z.string()),
  removed: z.array(z.string()),
});

export const toolListQuerySchema = z.object({
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().max(512).optional(),
  server: mcpServerNameSchema.optional(),
  current: z.enum(["true", "false"]).optional(),
});

export type McpServerCreate = z.infer<typeof mcpServerCreateSchema>;
export type McpServerUpdate = z.infer<typeof mcpServerUpdateSchema>;
export type McpToolUpdate = z.infer<typeof mcpToolUpdateSchema>;
