import { hostname } from "node:os";
import {
  type AgentRuntime,
  agentRuntime,
  alertDelivery,
  type DomainServices,
  type Mailer,
  providerCache,
  rollupCosts,
  runtimeSweep,
  scheduleTick,
  sweepReservations,
} from "@bosun/core";
import { withSystem } from "@bosun/db";
import { type JobName, type JobPayload, type Jobs, jobs as catalogue } from "@bosun/jobs";
import nodemailer from "nodemailer";
import type { Logger } from "pino";

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
  /** The console's URL, for links in alert emails (default BOSUN_PUBLIC_URL, else http://HOST:PORT). */
  publicUrl?: string;
  /** How often the daily cost rollups are refreshed (default BOSUN_ROLLUP_MS, else 60 s). */
  rollupMs?: number;
}

export interface Worker {
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
  const mailer = opts.mailer !== undefined ? opts.mailer : process.env.SMTP_URL ? smtpMailer(process.env.SMTP_URL) : null;
  if (!mailer) {
    logger.warn("SMTP_URL is not set: budget alerts are kept and listed at GET /v1/alerts but not emailed; set SMTP_URL (e.g. smtp://localhost:1025 for Mailpit)");
  }
  const alerts = alertDelivery({ database: services.database, mailer, publicUrl: opts.publicUrl ?? defaultPublicUrl(), log: logger });
  const handlers: Handlers = {
    "agent.schedule.sync": (p) => services.agents.syncSchedule(p),
    "alert.send": (p) => alerts.deliver(p),
    "costs.rollup": () => rollupCosts(services.database),
    ...(runtime ? { "agent.wake": (p: JobPayload<"agent.wake">) => runtime.wake(p) } : {}),
  };
  await jobs.start();
  for (const name of Object.keys(handlers) as JobName[]) {
    await jobs.boss.work(
      name,
      {
        batchSize: 1,
        localConcurrency: opts.concurrency ?? 4,
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

  const rollupMs = opts.rollupMs ?? Number(process.env.BOSUN_ROLLUP_MS ?? 60_000);
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
          ? [() => services.tasks.recoverExpiredLeases(), () => runtimeSweep({ database: services.database, jobs }), () => sweepReservations(services.database)]
          : []),
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
    async stop() {
      clearInterval(timer);
      // Runs stop after their current step and release their leases (waking the agent
      // again, so another worker carries on), then pg-boss lets in-flight jobs finish.
      runtime?.stop();
      await ticking;
      await jobs.stop({ graceful: true, timeout: 15_000 });
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
    provider: providerCache(),
    workerId: opts.workerId ?? workerId(),
    leaseTtlSeconds: opts.leaseTtlSeconds ?? 60,
    ...(opts.logger ? { log: opts.logger } : {}),
  });
}

/** Budget alerts over SMTP (`smtp://user:pass@host:port`, `smtps://…`), from BOSUN_MAIL_FROM. */
export function smtpMailer(url: string, from = process.env.BOSUN_MAIL_FROM ?? "Bosun <alerts@bosun.local>"): Mailer {
  const transport = nodemailer.createTransport(url);
  return {
    async send(m) {
      await transport.sendMail({ from, to: m.to, subject: m.subject, text: m.text, messageId: m.messageId });
    },
  };
}

function defaultPublicUrl() {
  const host = process.env.HOST ?? "127.0.0.1";
  return process.env.BOSUN_PUBLIC_URL ?? `http://${host === "0.0.0.0" ? "localhost" : host}:${process.env.PORT ?? 3000}`;
}
