import { agentRuntime, bootstrap, createServices, DEMO_MEMORY_IDS, providerCache, systemActor } from "@bosun/core";
import { createJobs, type Jobs } from "@bosun/jobs";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDb, type TestDb } from "../../../test/helpers/db";
import { startWorker } from "../src/worker";

let db: TestDb;
let producer: Jobs;

beforeAll(async () => {
  db = await createTestDb();
  producer = createJobs({ connectionString: db.url, role: "producer", max: 2 });
  await producer.start();
});
afterAll(async () => {
  await producer.stop({ graceful: false, timeout: 1000 });
  await db.drop();
});

describe("the demo tenant", () => {
  it("shows the demo agent's memory change after its first dream cycle, run by the worker", async () => {
    const services = createServices({ database: db.database, jobs: producer, secureCookies: false });
    const r = await bootstrap(services, {});
    expect(r.created).toBe(true);
    if (!r.created) return;
    const actor = systemActor(r.tenantId!, "test");
    const before = await services.memory.get(actor, "reconciliation-finance");
    expect(before.working.items.map((i) => i.id).sort()).toEqual(Object.values(DEMO_MEMORY_IDS).sort());
    expect(before.dreams.lastAt).toBeNull();

    // The worker's tick finds the dream due; the worker runs it on the scripted model.
    const jobs = createJobs({ connectionString: db.url, role: "worker", max: 4 });
    const s = createServices({ database: db.database, jobs, secureCookies: false });
    const runtime = agentRuntime({ database: db.database, jobs, tasks: s.tasks, provider: providerCache(), workerId: "demo", leaseTtlSeconds: 5 });
    const worker = await startWorker({ jobs, services: s, logger: pino({ level: "silent" }), runtime });
    try {
      await worker.tick();
      const end = Date.now() + 30_000;
      for (;;) {
        const { rows } = await db.database.pool.query(`SELECT 1 FROM agent_memory WHERE last_dream_at IS NOT NULL`);
        if (rows.length) break;
        if (Date.now() > end) throw new Error("no dream within 30 s");
        await new Promise((res) => setTimeout(res, 100));
      }
    } finally {
      await worker.stop();
    }
    const after = await services.memory.get(actor, "reconciliation-finance");
    const ids = after.working.items.map((i) => i.id);
    expect(ids).toContain(DEMO_MEMORY_IDS.acme);
    expect(ids).not.toContain(DEMO_MEMORY_IDS.northwindDays);
    expect(ids).not.toContain(DEMO_MEMORY_IDS.oldErp);
    expect(after.working.items.find((i) => i.source === "dream")?.content).toMatch(/^Northwind: invoices on Mondays/);
    expect(after.working.tokens).toBeLessThan(before.working.tokens);
    // The two merged originals and the archived one (finished demo tasks' results may be there too).
    expect(after.archive.items).toBeGreaterThanOrEqual(3);
    expect(after.dreams.lastAt).not.toBeNull();
    console.log(`[memory demo] working memory ${before.working.tokens} → ${after.working.tokens} tokens, ${before.working.items.length} → ${after.working.items.length} items after one dream`);
  });
});
