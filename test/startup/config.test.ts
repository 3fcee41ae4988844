import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { loadApiConfig } from "@bosun/api";
import { ConfigError, envInt } from "@bosun/core";
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
    expect(loadWorkerConfig({})).toEqual({ tickMs: 5000, concurrency: 4, rollupMs: 60_000, dbPool: 10 });
    expect(loadWorkerConfig({ BOSUN_TICK_MS: "1000", BOSUN_WORKER_CONCURRENCY: "8", BOSUN_ROLLUP_MS: "5000", BOSUN_DB_POOL: "6" })).toEqual({
      tickMs: 1000,
      concurrency: 8,
      rollupMs: 5000,
      dbPool: 6,
    });
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

describe("a process started with a wrong number", () => {
  // Nothing listens on port 1: a process that got as far as connecting would fail with a
  // connection error instead of the message about the setting.
  const nowhere = "postgres://postgres@127.0.0.1:1/none";

  it("the worker exits with status 2 and says which setting is wrong, before it connects to anything", async () => {
    const { code, stderr } = await run("apps/worker/src/main.ts", { DATABASE_URL: nowhere, BOSUN_DB_POOL: "ten" });
    expect(code).toBe(2);
    expect(stderr.trim()).toBe('BOSUN_DB_POOL must be a whole number from 2 to 1000, not "ten"');
  });

  it("the API does the same", async () => {
    const { code, stderr } = await run("apps/api/src/main.ts", { DATABASE_URL: nowhere, PORT: "http" });
    expect(code).toBe(2);
    expect(stderr.trim()).toBe('PORT must be a whole number from 0 to 65535, not "http"');
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
