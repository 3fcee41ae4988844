import { dbPoolSize, envInt, envUrl, logLevel, publicUrl } from "@bosun/core";

/** A worker process's settings from the environment (README, "Configuration"). */
export interface WorkerConfig {
  /** `BOSUN_TICK_MS`: schedules, lease recovery and due timers. */
  tickMs: number;
  /** `BOSUN_WORKER_CONCURRENCY`: agent wakes and dream cycles at once. */
  concurrency: number;
  /** `BOSUN_ROLLUP_MS`: how often the daily cost rollups are refreshed. */
  rollupMs: number;
  /** `BOSUN_DB_POOL`: connections the worker's pool may hold. */
  dbPool: number;
  /** `LOG_LEVEL`. */
  logLevel: string;
  /** `BOSUN_PUBLIC_URL` (or `HOST` and `PORT`): the console links in budget alert emails. */
  publicUrl: string;
  /** `SMTP_URL` (`smtp://…` or `smtps://…`): where budget alerts are mailed; unset, they are kept. */
  smtpUrl: string | undefined;
}

/** Throws ConfigError, naming the variable, for a value it cannot take (a number out of range, a level pino does not know, a URL that is not one). */
export function loadWorkerConfig(env: NodeJS.ProcessEnv = process.env): WorkerConfig {
  return {
    tickMs: envInt(env, "BOSUN_TICK_MS", 5000, { min: 100, max: 3_600_000 }),
    concurrency: envInt(env, "BOSUN_WORKER_CONCURRENCY", 4, { min: 1, max: 1000 }),
    rollupMs: rollupMs(env),
    dbPool: dbPoolSize(env),
    logLevel: logLevel(env),
    publicUrl: publicUrl(env),
    smtpUrl: envUrl(env, "SMTP_URL", ["smtp:", "smtps:"]),
  };
}

export const rollupMs = (env: NodeJS.ProcessEnv = process.env) => envInt(env, "BOSUN_ROLLUP_MS", 60_000, { min: 1000, max: 86_400_000 });
