import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { loadApiConfig } from "@bosun/api";
import { ConfigError, envBool, envInt, envUrl, logLevel, publicUrl } from "@bosun/core";
import { loadWorkerConfig } from "@bosun/worker";
import { describe, expect, it } from "vitest";

describe("numbers from the environment", () => {
  const range = { min: 2, max: 100 };

  it("takes a whole number in range, and the default when the variable is unset or blank", () => {
    expect(envInt({ N: "8" }, "N", 10, range)).toBe(8);
    expect(envInt({ N: " 8 " }, "N", 10, range)).toBe(8);
    expect(envInt({ N: "2" }, "N", 10, range)).toBe(2);
    expect(envInt({ N: "100" }, "N", 10, range)).toBe(100);
    expect(envInt({}, "N", 10, range)).toBe(10);
    expect(envInt({ N: "" }, "N", 10, range)).toBe(10);
    expect(envInt({ N: "  " }, "N", 10, range)).toBe(10);
  });

  it.each(["abc", "4.5", "1", "101", "-3", "8 connections", "NaN", "Infinity", "0x10", "1e1"])("refuses %j, naming the variable, the range and the value", (raw) => {
    const read = () => envInt({ BOSUN_DB_POOL: raw }, "BOSUN_DB_POOL", 10, range);
    expect(read).toThrow(ConfigError);
    expect(read).toThrow(`BOSUN_DB_POOL must be a whole number from 2 to 100, not ${JSON.stringify(raw)}`);
  });

  it("gives the worker its documented defaults, and what the environment says", () => {
    expect(loadWorkerConfig({})).toEqual({ tickMs: 5000, concurrency: 4, rollupMs: 60_000, dbPool: 10, logLevel: "info", publicUrl: "http://127.0.0.1:3000", smtpUrl: undefined });
    expect(
      loadWorkerConfig({
        BOSUN_TICK_MS: "1000",
        BOSUN_WORKER_CONCURRENCY: "8",
        BOSUN_ROLLUP_MS: "5000",
        BOSUN_DB_POOL: "6",
        LOG_LEVEL: "debug",
        BOSUN_PUBLIC_URL: "https://bosun.example.com/",
        SMTP_URL: "smtp://user:pass@mail.example.com:587",
      }),
    ).toEqual({
      tickMs: 1000,
      concurrency: 8,
      rollupMs: 5000,
      dbPool: 6,
      logLevel: "debug",
      publicUrl: "https://bosun.example.com",
      smtpUrl: "smtp://user:pass@mail.example.com:587",
    });
    expect(() => loadWorkerConfig({ SMTP_URL: "mail.example.com:25" })).toThrow('SMTP_URL must be a URL starting smtp:// or smtps://, not "mail.example.com:25"');
    // A tick of 0 ms would run the periodic work back to back; a worker with no slot runs nothing.
    expect(() => loadWorkerConfig({ BOSUN_TICK_MS: "0" })).toThrow("BOSUN_TICK_MS must be a whole number from 100");
    expect(() => loadWorkerConfig({ BOSUN_WORKER_CONCURRENCY: "0" })).toThrow("BOSUN_WORKER_CONCURRENCY must be a whole number from 1");
    expect(() => loadWorkerConfig({ BOSUN_ROLLUP_MS: "soon" })).toThrow('BOSUN_ROLLUP_MS must be a whole number from 1000 to 86400000, not "soon"');
  });

  it("gives the API its documented defaults, and refuses a port, a body limit, a rate or a pool that is not a number in range", () => {
    const c = loadApiConfig({});
    expect([c.port, c.bodyLimitBytes, c.rateLimitPerMinute, c.dbPool]).toEqual([3000, 1024 * 1024, 1200, 10]);
    expect(loadApiConfig({ PORT: "8080", BOSUN_DB_POOL: "4" })).toMatchObject({ port: 8080, dbPool: 4 });
    expect(() => loadApiConfig({ PORT: "http" })).toThrow('PORT must be a whole number from 0 to 65535, not "http"');
    expect(() => loadApiConfig({ PORT: "70000" })).toThrow(ConfigError);
    expect(() => loadApiConfig({ BOSUN_BODY_LIMIT_BYTES: "1mb" })).toThrow("BOSUN_BODY_LIMIT_BYTES must be a whole number");
    expect(() => loadApiConfig({ BOSUN_RATE_LIMIT_PER_MINUTE: "0" })).toThrow("BOSUN_RATE_LIMIT_PER_MINUTE must be a whole number from 1");
    expect(() => loadApiConfig({ BOSUN_DB_POOL: "1" })).toThrow("BOSUN_DB_POOL must be a whole number from 2 to 1000");
  });
});

describe("levels, switches and URLs from the environment", () => {
  it("takes pino's levels in any case, info by default, and refuses any other", () => {
    expect(logLevel({})).toBe("info");
    expect(logLevel({ LOG_LEVEL: " Debug " })).toBe("debug");
    expect(logLevel({ LOG_LEVEL: "silent" })).toBe("silent");
    expect(() => logLevel({ LOG_LEVEL: "verbose" })).toThrow('LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent, not "verbose"');
  });

  it("takes true or false in their usual spellings and refuses a typo rather than reading it as false", () => {
    for (const yes of ["true", "1", "YES", "on"]) expect(envBool({ X: yes }, "X", false)).toBe(true);
    for (const no of ["false", "0", "No", "off"]) expect(envBool({ X: no }, "X", true)).toBe(false);
    expect(envBool({}, "X", true)).toBe(true);
    expect(envBool({ X: " " }, "X", false)).toBe(false);
    expect(() => envBool({ BOSUN_TRUST_PROXY: "ture" }, "BOSUN_TRUST_PROXY", false)).toThrow('BOSUN_TRUST_PROXY must be true or false, not "ture"');
  });

  it("takes an absolute URL with an allowed scheme, without its trailing slashes", () => {
    expect(envUrl({ U: "https://bosun.example.com/ops//" }, "U", ["https:"])).toBe("https://bosun.example.com/ops");
    expect(envUrl({}, "U", ["https:"])).toBeUndefined();
    expect(() => envUrl({ U: "bosun.example.com" }, "U", ["http:", "https:"])).toThrow('U must be a URL starting http:// or https://, not "bosun.example.com"');
    expect(() => envUrl({ U: "ftp://bosun.example.com" }, "U", ["http:", "https:"])).toThrow(ConfigError);
  });

  it("makes the public URL from HOST and PORT unless BOSUN_PUBLIC_URL says otherwise", () => {
    expect(publicUrl({})).toBe("http://127.0.0.1:3000");
    expect(publicUrl({ HOST: "0.0.0.0", PORT: "8080" })).toBe("http://localhost:8080");
    expect(publicUrl({ HOST: "0.0.0.0", BOSUN_PUBLIC_URL: "https://bosun.example.com/" })).toBe("https://bosun.example.com");
    expect(() => publicUrl({ PORT: "eighty" })).toThrow("PORT must be a whole number");
  });

  it("gives the API the same, and trusts a proxy only when told to", () => {
    expect(loadApiConfig({})).toMatchObject({ host: "127.0.0.1", publicUrl: "http://127.0.0.1:3000", logLevel: "info", trustProxy: false });
    expect(loadApiConfig({ BOSUN_TRUST_PROXY: "1" }).trustProxy).toBe(true);
    expect(loadApiConfig({ BOSUN_TRUST_PROXY: "true" }).trustProxy).toBe(true);
    expect(() => loadApiConfig({ BOSUN_TRUST_PROXY: "nginx" })).toThrow("BOSUN_TRUST_PROXY must be true or false");
    expect(() => loadApiConfig({ LOG_LEVEL: "loud" })).toThrow("LOG_LEVEL must be one of");
    expect(() => loadApiConfig({ BOSUN_PUBLIC_URL: "localhost:3000" })).toThrow("BOSUN_PUBLIC_URL must be a URL starting http:// or https://");
  });
});

/** Runs an entry point to its exit; what it printed on stderr, and its exit code. */
function run(entry: string, env: NodeJS.ProcessEnv): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", path.resolve(entry)], { env: { ...process.env, LOG_LEVEL: "silent", ...env }, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${entry} did not exit; stderr: ${stderr}`));
    }, 25_000);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

describe("a process started with a wrong setting", () => {
  // Nothing listens on port 1: a process that got as far as connecting would fail with a
  // connection error instead of the message about the setting.
  const nowhere = "postgres://postgres@127.0.0.1:1/none";

  it("the worker exits with status 2 and says which setting is wrong, before it connects to anything", async () => {
    const { code, stderr } = await run("apps/worker/src/main.ts", { DATABASE_URL: nowhere, BOSUN_DB_POOL: "ten" });
    expect(code).toBe(2);
    expect(stderr.trim()).toBe('BOSUN_DB_POOL must be a whole number from 2 to 1000, not "ten"');
  });

  it("the worker refuses a log level pino does not know with a message, not pino's stack trace", async () => {
    const { code, stderr } = await run("apps/worker/src/main.ts", { DATABASE_URL: nowhere, LOG_LEVEL: "verbose" });
    expect(code).toBe(2);
    expect(stderr.trim()).toBe('LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent, not "verbose"');
  });

  it("the API does the same", async () => {
    const { code, stderr } = await run("apps/api/src/main.ts", { DATABASE_URL: nowhere, PORT: "http" });
    expect(code).toBe(2);
    expect(stderr.trim()).toBe('PORT must be a whole number from 0 to 65535, not "http"');
    const url = await run("apps/api/src/main.ts", { DATABASE_URL: nowhere, BOSUN_PUBLIC_URL: "bosun.example.com" });
    expect(url.code).toBe(2);
    expect(url.stderr.trim()).toBe('BOSUN_PUBLIC_URL must be a URL starting http:// or https://, not "bosun.example.com"');
  });

  it("npm start's script does the same before it starts the embedded Postgres", async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "bosun-config-"));
    try {
      // No DATABASE_URL: the script would start the embedded Postgres in dataDir.
      const { code, stderr } = await run("scripts/start.ts", { BOSUN_DATA_DIR: dataDir, BOSUN_WORKER_CONCURRENCY: "0", DATABASE_URL: "" });
      expect(code).toBe(2);
      expect(stderr.trim()).toBe('BOSUN_WORKER_CONCURRENCY must be a whole number from 1 to 1000, not "0"');
      expect(fs.readdirSync(dataDir)).toEqual([]);
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
