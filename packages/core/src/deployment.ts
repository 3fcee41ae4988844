import { hostname } from "node:os";
import { type Database, repo, withSystem } from "@bosun/db";
import { type Actor, requireScope } from "./actor";
import { forbidden } from "./errors";

/** A worker not seen for this long is shown as offline (workers refresh every 30 s). */
export const WORKER_ONLINE_SECONDS = 120;

type Smtp = repo.workers.WorkerRow["smtp"];
type Providers = repo.workers.WorkerRow["providers"];

/**
 * SMTP as the worker will use it, from SMTP_URL: host, port, TLS and the From address.
 * The URL's user and password are never read out, so they cannot be reported.
 */
export function smtpCapability(url: string | undefined, from: string): Smtp {
  if (!url) return { configured: false, host: null, port: null, secure: null, from: null };
  try {
    const u = new URL(url);
    const secure = u.protocol === "smtps:";
    return { configured: true, host: u.hostname || null, port: u.port ? Number(u.port) : secure ? 465 : 587, secure, from };
  } catch {
    // nodemailer would fail on it too; report that it is set, but nothing from it.
    return { configured: true, host: null, port: null, secure: null, from };
  }
}

/** The model providers as packages/llm will build them in this process (keys from the environment). */
export function providerCapabilities(env: Record<string, string | undefined>): Providers {
  return [
    {
      name: "anthropic",
      configured: Boolean(env.ANTHROPIC_API_KEY),
      note: env.ANTHROPIC_API_KEY ? "ANTHROPIC_API_KEY is set" : "set ANTHROPIC_API_KEY on the worker",
    },
    {
      name: "openai",
      configured: Boolean(env.OPENAI_API_KEY),
      note: env.OPENAI_API_KEY ? "OPENAI_API_KEY is set" : "set OPENAI_API_KEY on the worker",
    },
    { name: "openai-compatible", configured: true, note: "each agent names its base_url; the OpenAI key is never sent to it" },
    { name: "scripted", configured: true, note: "always available (scripted replies, for tests and demos)" },
  ];
}

export interface WorkerReport {
  id: string;
  version: string;
  startedAt: Date;
  smtp: Smtp;
  providers: Providers;
}

/** Rows of workers not seen for this many days are deleted (with any worker's report). */
export const WORKER_ROW_DAYS = 7;

/** Upserts this worker's row (at start and on every refresh), and deletes those of workers long gone. */
export function reportWorker(database: Database, w: WorkerReport) {
  return withSystem(database, async (tx) => {
    await repo.workers.upsertWorker(tx, { id: w.id, host: hostname(), pid: process.pid, version: w.version, startedAt: w.startedAt, smtp: w.smtp, providers: w.providers });
    await repo.workers.pruneWorkers(tx, { days: WORKER_ROW_DAYS });
  });
}

export function reportWorkerStopped(database: Database, id: string) {
  return withSystem(database, (tx) => repo.workers.markWorkerStopped(tx, { id }));
}

/** The deployment's SMTP and model providers, as its workers report them. Admins only. */
export const deploymentService = (deps: { database: Database }) => ({
  async view(actor: Actor) {
    requireScope(actor, "admin");
    if (actor.agentId) throw forbidden("an agent's key cannot read the deployment's settings");
    // Global rows (no tenant column): read outside withTenant, like authentication lookups.
    const rows = await withSystem(deps.database, (tx) => repo.workers.listWorkers(tx, { onlineSeconds: WORKER_ONLINE_SECONDS, limit: 100 }));
    const current = rows.find((r) => r.online)?.row;
    return {
      workers: rows.map(({ row, online }) => ({
        id: row.id,
        host: row.host,
        pid: row.pid,
        version: row.version,
        startedAt: row.startedAt.toISOString(),
        lastSeenAt: row.lastSeenAt.toISOString(),
        online,
      })),
      smtp: current ? current.smtp : null,
      providers: current ? current.providers : [],
      note: current ? null : "no worker is online: SMTP and providers are reported by running workers (start one with `npm run start:worker`)",
    };
  },
});
