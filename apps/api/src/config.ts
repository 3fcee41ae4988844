import { dbPoolSize, envBool, envInt, listenAddress, logLevel, publicUrl } from "@bosun/core";

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
  /** Behind a reverse proxy: client addresses come from `X-Forwarded-For` (`BOSUN_TRUST_PROXY`). */
  trustProxy: boolean;
  /** Connections the API's pool may hold (`BOSUN_DB_POOL`). */
  dbPool: number;
}

/** Throws ConfigError, naming the variable, for a value it cannot take (a number out of range, a level pino does not know, a URL that is not one). */
export function loadApiConfig(env: NodeJS.ProcessEnv = process.env, overrides: Partial<ApiConfig> = {}): ApiConfig {
  return {
    ...listenAddress(env),
    publicUrl: publicUrl(env),
    logLevel: logLevel(env),
    bodyLimitBytes: envInt(env, "BOSUN_BODY_LIMIT_BYTES", 1024 * 1024, { min: 1024, max: 1024 * 1024 * 1024 }),
    rateLimitPerMinute: envInt(env, "BOSUN_RATE_LIMIT_PER_MINUTE", 1200, { min: 1, max: 10_000_000 }),
    consoleDir: env.BOSUN_CONSOLE_DIR ?? new URL("../../console/dist", import.meta.url).pathname,
    trustProxy: envBool(env, "BOSUN_TRUST_PROXY", false),
    dbPool: dbPoolSize(env),
    ...overrides,
  };
}
