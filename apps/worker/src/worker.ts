import { hostname } from "node:os";
import { type AgentRuntime, agentRuntime, type DomainServices, providerCache, runtimeSweep, scheduleTick } from "@bosun/core";
import { type JobName, type JobPayload, type Jobs, jobs as catalogue } from "@bosun/jobs";
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
  const handlers: Handlers = {
    "agent.schedule.sync": (p) => services.agents.syncSchedule(p),
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

  let ticking: Promise<void> | null = null;
  const tick = async () => {
    if (ticking) return ticking;
    ticking = (async () => {
      const sweeps = [
        ...(opts.sweeps ?? []),
        ...(runtime ? [() => services.tasks.recoverExpiredLeases(), () => runtimeSweep({ database: services.database, jobs })] : []),
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
