import { createRequire } from "node:module";
import { hostname } from "node:os";
import {
  type AgentRuntime,
  agentRuntime,
  alertDelivery,
  type DomainServices,
  type Mailer,
  dreamer,
  dreamTick,
  memorySweep,
  providerCache,
  providerCapabilities,
  publicUrl,
  reportWorker,
  reportWorkerStopped,
  rollupCosts,
  runtimeSweep,
  scheduleTick,
  smtpCapability,
  sweepReservations,
  wakeIdleForStaleTasks,
} from "@bosun/core";
import { repo, withSystem } from "@bosun/db";
import { type JobDefinition, type JobName, type JobPayload, type Jobs, jobs as catalogue } from "@bosun/jobs";
import nodemailer from "nodemailer";
import type { Logger } from "pino";
import { rollupMs as rollupMsFromEnv } from "./config";

export interface WorkerOptions {
  jobs: Jobs;
  services: DomainServices;
  logger: Logger;
  /** The agent runtime; without it this worker does not run agents (schedule sync only). */
  runtime?: AgentRuntime;
  /** Periodic system work: lease recovery, due timers, schedules. Off when 0. */
  tickMs?: number;
  /** Extra periodic work (task lease recovery lives with the task service). */
  sweeps?: Array<() => Promise<unknown>>;
  /** Jobs handled at once per queue in this process. */
  concurrency?: number;
  /**
   * Where budget alerts are mailed. Undefined: from SMTP_URL (null when it is unset, and
   * alerts are then kept and listed over the API, not mailed).
   */
  mailer?: Mailer | null;
  /** The SMTP server's URL when `mailer` is not given (default SMTP_URL; loadWorkerConfig checks it). */
  smtpUrl?: string | undefined;
  /** The console's URL, for links in alert emails (default BOSUN_PUBLIC_URL, else http://HOST:PORT). */
  publicUrl?: string;
  /** Model providers for dream cycles (default: the real ones, by agent model spec). */
  provider?: Parameters<typeof dreamer>[0]["provider"];
  /** How often the daily cost rollups are refreshed (default BOSUN_ROLLUP_MS, else 60 s). */
  rollupMs?: number;
  /** This worker's id in the `workers` table (default: host:pid:random). */
  id?: string;
  /** How often this worker refreshes its row in `workers` (default 30 s). */
  reportMs?: number;
}

export interface Worker {
  /** This worker's id in the `workers` table. */
  id: string;
  /** One pass of the periodic work, now (tests and benchmarks call it). */
  tick(): Promise<void>;
  stop(): Promise<void>;
}

type Handlers = { [N in JobName]?: (payload: JobPayload<N>) => Promise<unknown> };

export const workerId = () => `${hostname()}:${process.pid}:${Math.random().toString(36).slice(2, 8)}`;

/**
 * The execution plane's consumer loop. Each job's payload is re-parsed against the
 * catalogue: one that does not parse can never succeed, so it goes straight to the dead
 * letter queue instead of being retried. Handlers are idempotent; pg-boss retries the rest.
 */
export async function startWorker(opts: WorkerOptions): Promise<Worker> {
  const { jobs, services, logger, runtime } = opts;
  const smtpUrl = opts.smtpUrl ?? process.env.SMTP_URL;
  const mailer = opts.mailer !== undefined ? opts.mailer : smtpUrl ? smtpMailer(smtpUrl) : null;
  if (!mailer) {
    logger.warn("SMTP_URL is not set: budget alerts are kept and listed at GET /v1/alerts but not emailed; set SMTP_URL (e.g. smtp://localhost:1025 for Mailpit)");
  }
  // What this worker can do, for the console's Settings page: SMTP without its credentials.
  const id = opts.id ?? workerId();
  const mailFrom = process.env.BOSUN_MAIL_FROM ?? DEFAULT_FROM;
  const capabilities = {
    id,
    version: WORKER_VERSION,
    startedAt: new Date(),
    // A mailer passed in (tests, embedding) has no URL to describe: configured, host unknown.
    smtp:
      opts.mailer === undefined
        ? smtpCapability(smtpUrl, mailFrom)
        : { configured: opts.mailer !== null, host: null, port: null, secure: null, from: opts.mailer ? mailFrom : null },
    providers: providerCapabilities(process.env),
  };
  await reportWorker(services.database, capabilities);
  const report = () => reportWorker(services.database, capabilities).catch((err) => logger.warn({ err }, "worker report failed"));
  const reportTimer = setInterval(() => void report(), opts.reportMs ?? 30_000);
  reportTimer.unref();
  const alerts = alertDelivery({ database: services.database, mailer, publicUrl: opts.publicUrl ?? publicUrl(process.env), log: logger });
  const dreams = dreamer({ database: services.database, jobs, provider: opts.provider ?? providerCache() });
  const handlers: Handlers = {
    "agent.schedule.sync": (p) => services.agents.syncSchedule(p),
    "alert.send": (p) => alerts.deliver(p),
    "costs.rollup": () => rollupCosts(services.database),
    ...(runtime ? { "agent.wake": (p: JobPayload<"agent.wake">) => runtime.wake(p) } : {}),
    // Dream cycles run where agents run (they call the agents' models).
    ...(runtime ? { "agent.dream": (p: JobPayload<"agent.dream">) => dreams.dream(p) } : {}),
  };
  await jobs.start();
  for (const name of Object.keys(handlers) as JobName[]) {
    await jobs.boss.work(
      name,
      {
        batchSize: 1,
        localConcurrency: Math.min(opts.concurrency ?? 4, (catalogue[name] as JobDefinition).localConcurrency ?? Number.POSITIVE_INFINITY),
        pollingIntervalSeconds: 1,
        notifyPollingIntervalSeconds: 5,
        // A full batch means more are waiting: fetch again at once instead of after a poll.
        burstWhenBatchFull: true,
        perJobResults: true,
      },
      async (batch) => {
        const results = [];
        for (const job of batch) {
          const log = logger.child({ job: name, jobId: job.id });
          const parsed = catalogue[name].payload.safeParse(job.data);
          if (!parsed.success) {
            log.error({ issues: parsed.error.issues.length }, "payload does not parse; dead-lettered");
            results.push({ id: job.id, status: "deadletter" as const, output: { error: "payload does not match the catalogue" } });
            continue;
          }
          try {
            const output = await handlers[name]!(parsed.data as never);
            results.push({ id: job.id, status: "completed" as const, output: output as object });
          } catch (err) {
            log.warn({ err }, "job failed; pg-boss will retry");
            results.push({ id: job.id, status: "failed" as const, output: { error: err instanceof Error ? err.message : String(err) } });
          }
        }
        return results;
      },
    );
  }

  const rollupMs = opts.rollupMs ?? rollupMsFromEnv();
  let lastRollup = 0;
  // The rollup job's queue is `stately`: however many workers ask, one runs at a time.
  const rollup = async () => {
    if (Date.now() - lastRollup < rollupMs) return;
    lastRollup = Date.now();
    await withSystem(services.database, (tx) => jobs.enqueue(tx, "costs.rollup", {}));
  };

  let ticking: Promise<void> | null = null;
  const tick = async () => {
    if (ticking) return ticking;
    ticking = (async () => {
      const sweeps = [
        ...(opts.sweeps ?? []),
        ...(runtime
          ? [() => services.tasks.recoverExpiredLeases(), () => wakeIdleForStaleTasks({ database: services.database, jobs }), () => runtimeSweep({ database: services.database, jobs }), () => sweepReservations(services.database), () => memorySweep(services.database), () => dreamTick({ database: services.database, jobs })]
          : []),
        // The proposal timer: approves by silence and escalates at the tenant's windows.
        () => services.proposals.evaluateDue(),
        // The audit sealer: chains the events audited transactions wrote unsealed since the
        // last tick (the window in which an unsealed row could be deleted unnoticed).
        () => repo.sealPending(services.database),
        rollup,
      ];
      for (const sweep of sweeps) {
        await sweep().catch((err) => logger.warn({ err }, "sweep failed"));
      }
      if (runtime) {
        await scheduleTick({ database: services.database, jobs }).catch((err) => logger.warn({ err }, "schedule tick failed"));
      }
    })().finally(() => {
      ticking = null;
    });
    return ticking;
  };
  const timer = opts.tickMs ? setInterval(() => void tick(), opts.tickMs) : undefined;
  timer?.unref();

  logger.info({ queues: Object.keys(handlers) }, "worker started");
  return {
    tick,
    id,
    async stop() {
      clearInterval(timer);
      clearInterval(reportTimer);
      // Runs stop after their current step and release their leases (waking the agent
      // again, so another worker carries on), then pg-boss lets in-flight jobs finish.
      runtime?.stop();
      await ticking;
      await jobs.stop({ graceful: true, timeout: 15_000 });
      await reportWorkerStopped(services.database, id).catch((err) => logger.warn({ err }, "could not mark the worker stopped"));
      logger.info("worker stopped");
    },
  };
}

/** The agent runtime as a worker process runs it: real model providers, leases of `ttl` seconds. */
export function createRuntime(services: DomainServices, jobs: Jobs, opts: { workerId?: string; leaseTtlSeconds?: number; logger?: Logger } = {}) {
  return agentRuntime({
    database: services.database,
    jobs,
    tasks: services.tasks,
    proposals: services.proposals,
    provider: providerCache(),
    workerId: opts.workerId ?? workerId(),
    leaseTtlSeconds: opts.leaseTtlSeconds ?? 60,
    ...(opts.logger ? { log: opts.logger } : {}),
  });
}

/** Budget alerts over SMTP (`smtp://user:pass@host:port`, `smtps://…`), from BOSUN_MAIL_FROM. */
export function smtpMailer(url: string, from = process.env.BOSUN_MAIL_FROM ?? DEFAULT_FROM): Mailer {
  const transport = nodemailer.createTransport(url);
  return {
    async send(m) {
      await transport.sendMail({ from, to: m.to, subject: m.subject, text: m.text, messageId: m.messageId });
    },
  };
}

const DEFAULT_FROM = "Bosun <alerts@bosun.local>";
const WORKER_VERSION: string = createRequire(import.meta.url)("../package.json").version;

