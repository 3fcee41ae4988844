/**
 * Numbers from the environment. `Number("4 ")` is 4 and `Number("abc")` is NaN, which a
 * pool size, a tick or a concurrency takes without complaint and then misbehaves with (a
 * timer of NaN ms fires every millisecond), so a process refuses to start instead, naming the
 * variable, what it needs and what it got.
 */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/** A whole number in `[min, max]` from `env[name]`, or `fallback` when it is unset or blank. */
export function envInt(env: NodeJS.ProcessEnv, name: string, fallback: number, range: { min: number; max: number }): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === "") return fallback;
  // Digits only: Number() would also take "0x10", "1e3" and "-0".
  const n = /^[0-9]+$/.test(raw.trim()) ? Number(raw.trim()) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < range.min || n > range.max) {
    throw new ConfigError(`${name} must be a whole number from ${range.min} to ${range.max}, not ${JSON.stringify(raw)}`);
  }
  return n;
}

/** pino's levels, the only values `LOG_LEVEL` may take (pino throws, with a stack, at any other). */
export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

/** `LOG_LEVEL` (`info`): one of pino's levels, in any case. */
export function logLevel(env: NodeJS.ProcessEnv = process.env): (typeof LOG_LEVELS)[number] {
  const raw = env.LOG_LEVEL;
  if (raw === undefined || raw.trim() === "") return "info";
  const level = LOG_LEVELS.find((l) => l === raw.trim().toLowerCase());
  if (!level) throw new ConfigError(`LOG_LEVEL must be one of ${LOG_LEVELS.join(", ")}, not ${JSON.stringify(raw)}`);
  return level;
}

/**
 * A yes or no from `env[name]`: `true`, `1`, `yes`, `on` or `false`, `0`, `no`, `off` (any
 * case), `fallback` when unset or blank. Anything else is refused rather than read as no:
 * `BOSUN_TRUST_PROXY=ture` would otherwise quietly rate-limit every client as the proxy.
 */
export function envBool(env: NodeJS.ProcessEnv, name: string, fallback: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw.trim() === "") return fallback;
  const v = raw.trim().toLowerCase();
  if (["true", "1", "yes", "on"].includes(v)) return true;
  if (["false", "0", "no", "off"].includes(v)) return false;
  throw new ConfigError(`${name} must be true or false, not ${JSON.stringify(raw)}`);
}

/**
 * `env[name]` as an absolute URL with one of `protocols` (e.g. `["http:", "https:"]`), or
 * undefined when unset or blank. Trailing slashes are dropped: links are built by appending
 * `/path`.
 */
export function envUrl(env: NodeJS.ProcessEnv, name: string, protocols: string[]): string | undefined {
  const raw = env[name];
  if (raw === undefined || raw.trim() === "") return undefined;
  let url: URL | undefined;
  try {
    url = new URL(raw.trim());
  } catch {
    url = undefined;
  }
  if (!url || !protocols.includes(url.protocol)) {
    throw new ConfigError(`${name} must be a URL starting ${protocols.map((p) => `${p}//`).join(" or ")}, not ${JSON.stringify(raw)}`);
  }
  return raw.trim().replace(/\/+$/, "");
}

/** Where the API listens: `HOST` (`127.0.0.1`) and `PORT` (3000). */
export function listenAddress(env: NodeJS.ProcessEnv = process.env): { host: string; port: number } {
  return { host: env.HOST?.trim() || "127.0.0.1", port: envInt(env, "PORT", 3000, { min: 0, max: 65_535 }) };
}

/**
 * The URL people reach Bosun at (`BOSUN_PUBLIC_URL`): used in links (budget alert emails,
 * the start banner) and for the session cookie's Secure flag. Default: where the API
 * listens, `localhost` for `0.0.0.0`.
 */
export function publicUrl(env: NodeJS.ProcessEnv = process.env): string {
  const { host, port } = listenAddress(env);
  return envUrl(env, "BOSUN_PUBLIC_URL", ["http:", "https:"]) ?? `http://${host === "0.0.0.0" ? "localhost" : host}:${port}`;
}

/**
 * Connections a process's pool may hold (`BOSUN_DB_POOL`, 10). Each one is a Postgres
 * backend; beyond a few per database core, more concurrent transactions add contention
 * rather than throughput (ARCHITECTURE.md, the execution bench's pool).
 */
export const dbPoolSize = (env: NodeJS.ProcessEnv = process.env) => envInt(env, "BOSUN_DB_POOL", 10, { min: 2, max: 1000 });

/** Runs `read` and, when the environment is wrong, prints why and exits with status 2 (as a missing DATABASE_URL does). */
export function configOrExit<T>(read: () => T): T {
  try {
    return read();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(err.message);
    process.exit(2);
  }
}
