import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["apps/*/test/**/*.test.ts", "packages/*/test/**/*.test.ts", "test/**/*.test.ts"],
    globalSetup: ["test/setup/global.ts"],
    pool: "forks",
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // expect.poll waits for something another process or the browser does; on a busy
    // 2-core machine one second (vitest's default) is too short to be a fair deadline.
    // The MCP fixtures listen on loopback, which the gateway refuses by default (see
    // assertHttpAllowed); the test that checks the refusal turns this off for itself.
    env: { BOSUN_MCP_HTTP_ALLOW_PRIVATE: "true" },
    expect: { poll: { timeout: 15_000, interval: 100 } },
    reporters: ["default"],
  },
});
