import { z } from "zod";

/**
 * Every job Bosun runs: its dotted name, its payload schema and its queue options.
 * Payloads carry ids, never state: handlers read the truth from Postgres, so a job that
 * runs twice, or late, does no harm.
 */
export const jobs = {
  "agent.schedule.sync": {
    payload: z.object({
      tenantId: z.string(),
      agentId: z.string(),
      revision: z.number().int().positive(),
    }),
    queue: { policy: "standard", retryLimit: 5, retryDelay: 2, retryBackoff: true, expireInSeconds: 60 },
    localConcurrency: 1,
    description: "Arms or disarms the scheduler for an agent after a revision is applied.",
  },
  "agent.wake": {
    payload: z.object({
      tenantId: z.string(),
      agentId: z.string(),
      reason: z.enum(["task", "message", "schedule", "waitpoint", "manual", "recheck"]),
    }),
    // `short`: at most one queued wake per agent (singletonKey = the agent's session) while
    // one runs; a burst of messages coalesces into the next wake. Not a mutex: the session
    // lease in Postgres is what keeps one run per agent.
    // notify: pg-boss NOTIFYs listening workers on send, so a wake starts in milliseconds
    // rather than at the next poll.
    queue: { policy: "short", retryLimit: 3, retryDelay: 1, retryBackoff: true, expireInSeconds: 900, notify: true },
    description: "Looks at an agent's inbox (tasks, messages, resolved waitpoints) and runs it if there is work.",
  },
  "agent.dream": {
    payload: z.object({ tenantId: z.string(), agentId: z.string(), reason: z.enum(["schedule", "debt", "manual"]) }),
    // `stately` per agent (singletonKey): at most one queued and one active dream per agent,
    // however many ticks find it due. The dream lease on agent_memory is the real mutex; a
    // dream with nothing new is skipped without a model call.
    queue: { policy: "stately", retryLimit: 2, retryDelay: 30, retryBackoff: true, expireInSeconds: 600 },
    description: "Consolidates an agent's working memory (a dream cycle) when it is due.",
  },
  "alert.send": {
    payload: z.object({ tenantId: z.string(), alertId: z.string() }),
    // Enqueued by the settle that claims a budget threshold crossing, in its transaction.
    // SMTP failures are retried ten times with exponential backoff from 2 s (doubling,
    // with jitter: most of an hour in all); the alert row, not the job, says whether it
    // was sent.
    queue: { policy: "standard", retryLimit: 10, retryDelay: 2, retryBackoff: true, expireInSeconds: 120 },
    localConcurrency: 1,
    description: "Emails a budget alert (threshold crossed) over SMTP, once.",
  },
  "costs.rollup": {
    payload: z.object({}),
    // `stately`: at most one queued and one running; the handler also takes an advisory
    // lock, so the daily rollups have a single writer however many workers tick.
    queue: { policy: "stately", retryLimit: 2, retryDelay: 5, retryBackoff: false, expireInSeconds: 600 },
    localConcurrency: 1,
    description: "Rebuilds the daily cost rollups of the days the ledger touched since the last pass.",
  },
} as const satisfies Record<string, JobDefinition>;

/** The singletonKey of an agent's wake-ups: one agent, one session. */
export const wakeKey = (tenantId: string, agentId: string) => `${tenantId}:${agentId}`;

export interface JobDefinition {
  payload: z.ZodType;
  queue: {
    policy: "standard" | "short" | "singleton" | "stately";
    retryLimit: number;
    retryDelay: number;
    retryBackoff: boolean;
    expireInSeconds: number;
    notify?: boolean;
  };
  /**
   * How many of this queue's jobs one worker process runs at once (default: the worker's
   * concurrency). pg-boss polls once per slot: a queue whose jobs are rare and quick needs
   * one, not a poller per slot querying Postgres every second while there is nothing to do.
   */
  localConcurrency?: number;
  description: string;
}

export type JobName = keyof typeof jobs;
export type JobPayload<N extends JobName> = z.infer<(typeof jobs)[N]["payload"]>;

/** Where jobs that can never succeed (a payload that does not parse, retries spent) go. */
export const DEAD_LETTER_QUEUE = "bosun.dead";
