import { agentRuntime, providerCache, rollupCosts } from "@bosun/core";
import { afterAll, beforeAll, expect, it } from "vitest";
import { applyAgent, createTenant, createTestApp, type TestApp, type TestTenant } from "../../../test/helpers/app";

let t: TestApp;
let acme: TestTenant;

beforeAll(async () => {
  t = await createTestApp();
  acme = await createTenant(t.app);
});
afterAll(() => t.close());

const ledgerTotal = async () =>
  Number((await t.db.database.pool.query(`SELECT coalesce(sum(cost_micros), 0)::text AS n FROM cost_ledger WHERE tenant_id = $1`, [acme.tenantId])).rows[0].n);
const rollupTotal = async () =>
  Number((await t.db.database.pool.query(`SELECT coalesce(sum(cost_micros), 0)::text AS n FROM cost_daily WHERE tenant_id = $1`, [acme.tenantId])).rows[0].n);

it("keeps the daily rollups equal to the ledger over repeated passes, as spend grows", async () => {
  const agent = await applyAgent(t.app, acme, "spender");
  const rt = agentRuntime({ database: t.db.database, jobs: t.jobs, tasks: t.services.tasks, provider: providerCache(), workerId: "rollup-test" });
  for (let pass = 0; pass < 3; pass++) {
    const res = await t.app.inject({ method: "POST", url: "/v1/tasks", headers: acme.auth, payload: { title: `spend ${pass}`, assignee: "spender" } });
    expect(res.statusCode).toBe(201);
    await rt.wake({ tenantId: acme.tenantId, agentId: agent.id });
    const total = await ledgerTotal();
    expect(total).toBeGreaterThan(0);
    // The second and later passes re-read days they already rolled up: they must update
    // them, not fail on the existing rows.
    const r = await rollupCosts(t.db.database);
    expect(r.skipped).toBe(false);
    expect(await rollupTotal()).toBe(total);
  }
});
