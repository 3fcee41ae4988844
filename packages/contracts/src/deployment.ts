import { z } from "zod";

/*
 * The deployment as its workers report it: SMTP and model providers are configuration of
 * the worker processes (their environment), not tenant data. Never credentials.
 */

export const deploymentWorkerSchema = z.object({
  id: z.string(),
  host: z.string(),
  pid: z.number().int(),
  version: z.string(),
  startedAt: z.iso.datetime(),
  lastSeenAt: z.iso.datetime(),
  online: z.boolean().describe("seen within the last two minutes and not stopped"),
});

export const deploymentSmtpSchema = z.object({
  configured: z.boolean().describe("SMTP_URL is set on the worker: budget alerts are emailed"),
  host: z.string().nullable(),
  port: z.number().int().nullable(),
  secure: z.boolean().nullable().describe("smtps:// (TLS from the start)"),
  from: z.string().nullable().describe("the From address of alert emails (BOSUN_MAIL_FROM)"),
});

export const deploymentProviderSchema = z.object({
  name: z.enum(["anthropic", "openai", "openai-compatible", "scripted"]),
  configured: z.boolean().describe("usable by agents without further configuration"),
  note: z.string(),
});

export const deploymentSchema = z.object({
  workers: z.array(deploymentWorkerSchema).describe("workers seen in the last day, most recently seen first"),
  smtp: deploymentSmtpSchema.nullable().describe("as reported by the most recently seen online worker; null when none is online"),
  providers: z.array(deploymentProviderSchema).describe("as reported by the most recently seen online worker; empty when none is online"),
  note: z.string().nullable().describe("why smtp is null, when it is"),
});
export type Deployment = z.output<typeof deploymentSchema>;
