import { dbPoolSize, envInt } from "@bosun/core";

/** API settings from the environment, with defaults that suit the quick start. */
export interface ApiConfig {
  host: string;
  port: number;
  /** Where people reach the console; used in links and for the cookie's Secure flag. */
  publicUrl: string;
  logLevel: string;
  bodyLimitBytes: number;
  /** Requests per minute per API key (or per client address before authentication). */
  rateLimitPerMinute: number;
  consoleDir: string;
  trustProxy: boolean;
  /** Connections the API's pool may hold (`BOSUN_DB_POOL`). */
  dbPool: number;
}

/** Throws ConfigError, naming the variable, for a number that is not a whole number in range. */
export function loadApiConfig(env: NodeJS.ProcessEnv = process.env, overrides: Partial<ApiConfig> = {}): ApiConfig {
  const port = envInt(env, "PORT", 3000, { min: 0, max: 65_535 });
  const host = env.HOST ?? "127.0.0.1";
  return {
    host,
    port,
    publicUrl: env.BOSUN_PUBLIC_URL ?? `http://${host === "0.0.0.0" ? "localhost" : host}:${port}`,
    logLevel: env.LOG_LEVEL ?? "info",
    bodyLimitBytes: envInt(env, "BOSUN_BODY_LIMIT_BYTES", 1024 * 1024, { min: 1024, max: 1024 * 1024 * 1024 }),
    rateLimitPerMinute: envInt(env, "BOSUN_RATE_LIMIT_PER_MINUTE", 1200, { min: 1, max: 10_000_000 }),
    consoleDir: env.BOSUN_CONSOLE_DIR ?? new URL("../../console/dist", import.meta.url).pathname,
    trustProxy: env.BOSUN_TRUST_PROXY === "1",
    dbPool: dbPoolSize(env),
    ...overrides,
  };
}
