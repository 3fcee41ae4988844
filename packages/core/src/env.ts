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
