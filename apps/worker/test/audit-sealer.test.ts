import { createServices, systemActor } from "@bosun/core";
import { createJobs } from "@bosun/jobs";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDb, type TestDb } from "../../../test/helpers/db";
import { startWorker } from "../src/worker";

/**
 * The worker's tick seals the audit chain: audited transactions write their events
 * unsealed, and every tick chains what was committed since (repo.sealPending).
 */

let db: TestDb;
const silent = pino({ level: process.env.TEST_LOG ?? "silent" });
const q = async <T = Record<string, unknown>>(sql: string, values: unknown[] = []) => (await db.database.pool.query(sql, values)).rows as T[];

beforeAll(async () => {
  db = await createTestDb();
});
afterAll(() => db?.drop());

describe("the worker's tick", () => {
  it("seals the events audited transactions wrote", async () => {
    const jobs = createJobs({ connectionString: db.url, role: "worker", max: 2 });
    const services = createServices({ database: db.database, jobs, secureCookies: false });
    const s = await services.identity.signup({ tenant: { name: "Sealed", timeZone: "UTC" }, owner: { email: "seal@example.com", password: "sealing-password-1" } });
    const tenantId = s.tenant.id;
    const worker = await startWorker({ jobs, services, logger: silent, mailer: null, tickMs: 100 });
    try {
      await services.agents.apply(systemActor(tenantId, "test"), "sealed-agent", {
        apiVersion: "agent.os/v1",
        kind: "Agent",
        metadata: { name: "sealed-agent", owner: "tests" },
        spec: { model: { provider: "scripted", name: "scripted-small" }, domains: ["seal/*"] },
      });
      await expect
        .poll(() => q<{ action: string; seq: number | null }>("SELECT action, seq::int AS seq FROM audit_events WHERE tenant_id = $1 ORDER BY pos", [tenantId]))
        .toEqual([
          { action: "tenant.create", seq: 1 },
          { action: "api_key.create", seq: 2 },
          { action: "agent.create", seq: 3 },
        ]);
      const [head] = await q<{ seq: number; hash: string }>("SELECT seq::int AS seq, hash FROM audit_heads WHERE tenant_id = $1", [tenantId]);
      const [last] = await q<{ hash: string }>("SELECT hash FROM audit_events WHERE tenant_id = $1 AND seq = 3", [tenantId]);
      expect(head).toEqual({ seq: 3, hash: last!.hash });
    } finally {
      await worker.stop();
    }
  });
});
