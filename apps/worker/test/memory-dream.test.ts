import { createServices, type DomainServices, dreamer, dreamTick, providerCache, systemActor, writeWorking } from "@bosun/core";
import { withTenant } from "@bosun/db";
import { createJobs, type Jobs } from "@bosun/jobs";
import type { ModelProvider, ModelRequest } from "@bosun/llm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDb, type TestDb } from "../../../test/helpers/db";

let db: TestDb;
let producer: Jobs;
let services: DomainServices;
let tenantId: string;

const q = async <T = Record<string, unknown>>(sql: string, values: unknown[] = []) => (await db.database.pool.query(sql, values)).rows as T[];
const actor = () => systemActor(tenantId, "test");

const apply = (name: string, memory: Record<string, unknown> = {}) =>
  services.agents
    .apply(actor(), name, {
      apiVersion: "agent.os/v1",
      kind: "Agent",
      metadata: { name, owner: "tests" },
      spec: { model: { provider: "scripted", name: "scripted-small" }, soul: `You are ${name}.`, memory: { working_tokens: 1000, ...memory } },
    })
    .then((r) => r.body);

const add = (agentId: string, title: string, content: string, limit = 1000) =>
  withTenant(db.database, tenantId, (tx) => writeWorking(tx, { tenantId, agentId, limit, retentionDays: 30, op: { action: "add", title, content }, source: "operator" })).then((r) => {
    if (!r.ok) throw new Error(JSON.stringify(r.error));
    return r.item;
  });

/**
 * The dream's model: the real scripted provider (for usage and cost), answering with the
 * given proposal; `during` runs while the model "thinks" (between read and apply).
 */
function dreamModel(proposal: (req: ModelRequest) => Record<string, unknown>, during?: () => Promise<void>) {
  const real = providerCache();
  const calls: ModelRequest[] = [];
  const provider = (m: Parameters<ReturnType<typeof providerCache>>[0]): ModelProvider => ({
    name: "dream-test",
    async complete(req) {
      calls.push(req);
      await during?.();
      const r = await real(m).complete(req);
      return { ...r, content: [{ type: "tool_use", id: "toolu_dream", name: "consolidate", input: proposal(req) }], stopReason: "tool_use" };
    },
  });
  return { calls, provider };
}

beforeAll(async () => {
  db = await createTestDb();
  producer = createJobs({ connectionString: db.url, role: "producer", max: 2 });
  await producer.start();
  services = createServices({ database: db.database, jobs: producer, secureCookies: false });
  const s = await services.identity.signup({ tenant: { name: "Dreams", timeZone: "Asia/Tokyo" }, owner: { email: "dream@example.com", password: "dream-password-1" } });
  tenantId = s.tenant.id;
});
afterAll(async () => {
  await producer.stop({ graceful: false, timeout: 1000 });
  await db.drop();
});

describe("dream cycles", () => {
  it("never loses an edit made while the dream's model was thinking, and records the diff and its cost", async () => {
    const agent = await apply("dreamer");
    const a = await add(agent.id, "invoices", "Northwind invoices arrive on Mondays.");
    const b = await add(agent.id, "invoices 2", "Northwind invoices are sometimes duplicated.");
    const c = await add(agent.id, "stale", "The old ERP is being retired in 2024.");
    const d = await add(agent.id, "keep", "Acme pays on the 5th.");
    const live = "Northwind invoices arrive on Tuesdays since March (edited live).";
    const m = dreamModel(
      () => ({
        merges: [{ items: [{ id: a.id, version: 1 }, { id: b.id, version: 1 }], title: "northwind", content: "Northwind: invoices on Mondays, sometimes duplicated." }],
        archive: [{ id: c.id, version: 1 }],
        drop: [{ id: d.id, version: 1 }],
        note: "merged the Northwind notes",
      }),
      // The live edit: a run (or a person) replaces A while the dream is in its model call.
      async () => {
        const r = await withTenant(db.database, tenantId, (tx) =>
          writeWorking(tx, { tenantId, agentId: agent.id, limit: 1000, retentionDays: 30, op: { action: "replace", id: a.id, version: 1, content: live }, source: "agent" }),
        );
        expect(r.ok).toBe(true);
      },
    );
    const out = await dreamer({ database: db.database, jobs: producer, provider: m.provider }).dream({ tenantId, agentId: agent.id });
    expect(out.outcome).toBe("applied");
    if (out.outcome !== "applied") return;
    expect(m.calls).toHaveLength(1);
    expect(m.calls[0]!.messages[0]!.content[0]).toMatchObject({ type: "text", text: expect.stringContaining(`id ${a.id} version 1`) });

    // The edit survived: A is still working memory, at version 2, with the live text; the
    // merge that named A at version 1 was skipped as a whole (B untouched too).
    const rows = await q<{ id: string; layer: string; version: number; content: string }>(`SELECT id, layer, version, content FROM memory_items WHERE agent_id = $1`, [agent.id]);
    const byId = new Map(rows.map((r) => [r.id, r]));
    expect(byId.get(a.id)).toMatchObject({ layer: "working", version: 2, content: live });
    expect(byId.get(b.id)).toMatchObject({ layer: "working", version: 1 });
    expect(byId.get(c.id)).toMatchObject({ layer: "archive" });
    expect(byId.has(d.id)).toBe(false);
    expect(out.diff.skipped).toEqual([{ op: "merge", ids: [a.id, b.id], reason: "changed or gone since the dream read it" }]);
    expect(out.diff.applied).toEqual([
      { op: "archive", id: c.id },
      { op: "drop", id: d.id },
    ]);
    expect(out.diff.usageAfter).toBeLessThan(out.diff.usageBefore);

    // Recorded: a dream run with its model call and its diff, charged in the ledger.
    const [run] = await q<{ trigger: string; status: string; step_count: number }>(`SELECT trigger, status, step_count FROM runs WHERE id = $1`, [out.runId]);
    expect(run).toMatchObject({ trigger: "dream", status: "succeeded", step_count: 2 });
    const steps = await q<{ kind: string; output: { skipped: unknown[] } }>(`SELECT kind, output FROM steps WHERE run_id = $1 ORDER BY seq`, [out.runId]);
    expect(steps.map((s) => s.kind)).toEqual(["llm", "dream"]);
    expect(steps[1]!.output.skipped).toHaveLength(1);
    const ledger = await q<{ n: number }>(`SELECT count(*)::int AS n FROM cost_ledger WHERE run_id = $1 AND kind = 'tokens'`, [out.runId]);
    expect(ledger[0]!.n).toBe(1);
    // The live edit is new since this dream: it stays as debt for the next one.
    const [state] = await q<{ changes_since_dream: number; last_dream_run_id: string; dream_until: Date | null }>(
      `SELECT changes_since_dream, last_dream_run_id, dream_until FROM agent_memory WHERE agent_id = $1`,
      [agent.id],
    );
    expect(state).toMatchObject({ changes_since_dream: 1, last_dream_run_id: out.runId, dream_until: null });
    // The API shows the last dream.
    const view = await services.memory.get(actor(), "dreamer");
    expect(view.dreams).toMatchObject({ lastRunId: out.runId, changesSince: 1 });
  });

  it("is skipped, without a model call, when nothing is new since the last dream", async () => {
    const agent = await apply("rested");
    await add(agent.id, "fact", "Globex closes its books on the 28th.");
    const m = dreamModel(() => ({ archive: [], drop: [], merges: [] }));
    const dr = dreamer({ database: db.database, jobs: producer, provider: m.provider });
    expect((await dr.dream({ tenantId, agentId: agent.id })).outcome).toBe("applied");
    expect(await dr.dream({ tenantId, agentId: agent.id })).toEqual({ outcome: "skipped", reason: "nothing new since the last dream" });
    expect(m.calls).toHaveLength(1);
  });

  it("keeps to its own per-invocation cap", async () => {
    const agent = await apply("thrifty", { dream: { usd_per_invocation: 0.000001 } });
    await add(agent.id, "fact", "Initech pays late.");
    const m = dreamModel(() => ({}));
    const out = await dreamer({ database: db.database, jobs: producer, provider: m.provider }).dream({ tenantId, agentId: agent.id });
    expect(out).toMatchObject({ outcome: "failed", error: expect.stringContaining("usd_per_invocation") });
    expect(m.calls).toHaveLength(0);
    // The refused dream backs off rather than retrying at every tick.
    expect(await dreamTick({ database: db.database, jobs: producer })).toMatchObject({ due: expect.any(Number) });
    const due = await q(`SELECT 1 FROM agent_memory WHERE agent_id = $1 AND dream_until > now()`, [agent.id]);
    expect(due).toHaveLength(1);
  });

  it("is due at the tenant-local dream hour or when memory debt piles up, never for agents with nothing new", async () => {
    const full = await apply("full", { working_tokens: 100 });
    const quiet = await apply("quiet");
    const fresh = await apply("fresh");
    // 80 %+ of a 100-token limit: debt.
    await add(full.id, "a", "Ledger exports arrive after the cut-off on month ends, so the reconciliation of every region waits for them; finance ops know and re-run the job by hand.", 100);
    await add(full.id, "b", "Northwind invoices arrive on Mondays and are sometimes duplicated by their ERP; check the invoice number before booking.", 100);
    await add(full.id, "c", "Globex closes its books on the 28th and wants the reconciliation summary by the 30th, in a spreadsheet, with totals per region.", 100);
    const used = (await q<{ n: number }>(`SELECT sum(tokens)::int AS n FROM memory_items WHERE agent_id = $1`, [full.id]))[0]!.n;
    expect(used).toBeGreaterThanOrEqual(80);
    // One small item: not due until the night.
    await add(fresh.id, "a", "Hello.");
    const [night] = await q<{ local_hour: number; ahead: boolean }>(
      `SELECT extract(hour FROM next_dream_at AT TIME ZONE 'Asia/Tokyo')::int AS local_hour, next_dream_at > now() AND next_dream_at <= now() + interval '1 day' AS ahead
       FROM agent_memory WHERE agent_id = $1`,
      [fresh.id],
    );
    expect(night).toEqual({ local_hour: 3, ahead: true });
    const jobsFor = async (id: string) =>
      (await q<{ n: number }>(`SELECT count(*)::int AS n FROM pgboss.job WHERE name = 'agent.dream' AND data->>'agentId' = $1`, [id]))[0]!.n;
    await dreamTick({ database: db.database, jobs: producer });
    expect(await jobsFor(full.id)).toBe(1);
    expect(await jobsFor(fresh.id)).toBe(0);
    expect(await jobsFor(quiet.id)).toBe(0);
    // When the night comes, the fresh agent is due too.
    await q(`UPDATE agent_memory SET next_dream_at = now() - interval '1 second' WHERE agent_id = $1`, [fresh.id]);
    await dreamTick({ database: db.database, jobs: producer });
    expect(await jobsFor(fresh.id)).toBe(1);
    expect(await jobsFor(quiet.id)).toBe(0);
    // Ticks while a dream is queued do not pile up jobs (stately per agent).
    expect(await jobsFor(full.id)).toBe(1);
  });
});
