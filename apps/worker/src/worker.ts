import type { DomainServices } from "@bosun/core";
import { type JobName, type JobPayload, type Jobs, jobs as catalogue } from "@bosun/jobs";
import type { Logger } from "pino";

export interface WorkerOptions {
  jobs: Jobs;
  services: DomainServices;
  logger: Logger;
  /** Jobs handled at once per queue in this process. */
  concurrency?: number;
}

export interface Worker {
  stop(): Promise<void>;
}

type Handlers = { [N in JobName]?: (payload: JobPayload<N>) => Promise<unknown> };

/**
 * The execution plane's consumer loop. Each job's payload is re-parsed against the
 * catalogue: one that does not parse can never succeed, so it goes straight to the dead
 * letter queue instead of being retried. Handlers are idempotent; pg-boss retries the rest.
 */
export async function startWorker(opts: WorkerOptions): Promise<Worker> {
  const { jobs, services, logger } = opts;
  const handlers: Handlers = {
    "agent.schedule.sync": (p) => services.agents.syncSchedule(p),
  };
  await jobs.start();
  for (const name of Object.keys(handlers) as JobName[]) {
    await jobs.boss.work(
      name,
      { batchSize: 1, localConcurrency: opts.concurrency ?? 2, pollingIntervalSeconds: 1, perJobResults: true },
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
  logger.info({ queues: Object.keys(handlers) }, "worker started");
  return {
    async stop() {
      await jobs.stop({ graceful: true, timeout: 10_000 });
      logger.info("worker stopped");
    },
  };
}
