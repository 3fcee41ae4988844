import { contextDataFrom, contextDataRead, createServices, type DomainServices, loadContextData, priceCandidates, priceLookups, SpendRefused, spendEngine, systemActor, worstCaseCost } from "@bosun/core";
import { repo, type Tx, tenantStatements, withTenant } from "@bosun/db";
import { createJobs, type Jobs } from "@bosun/jobs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDb, type TestDb } from "../../../test/helpers/db";

/**
 * The reads before each model call: the prompt's layers in one statement and the spend
 * context with every planned model's price in one statement, returning what the separate
 * queries return.
 */

let db: TestDb;
let producer: Jobs;
let services: DomainServices;

const q = async <T = Record<string, unknown>>(sql: string, values: unknown[] = []) => (await db.database.pool.query(sql, values)).rows as T[];

/** Runs `fn` and counts the statements it sends on the transaction's connection. */
async function counted<T>(tx: Tx, fn: () => Promise<T>): Promise<{ value: T; statements: number }> {
  const client = tx.$client as unknown as { query: (...a: unknown[]) => unknown };
  const original = client.query;
  let statements = 0;
  client.query = (...a: unknown[]) => {
    statements++;
    return original.apply(client, a);
  };
  try {
    return { value: await fn(), statements };
  } finally {
    client.query = original;
  }
}

async function newTenant(name: string) {
  const s = await services.identity.signup({ tenant: { name, timeZone: "UTC" }, owner: { email: `${name.toLowerCase().replace(/\W/g, "")}@example.com`, password: "precall-password-1" } });
  return s.tenant.id;
}

const apply = (tenantId: string, name: string, domains: string[] = [], extra: Record<string, unknown> = {}) =>
  services.agents
    .apply(systemActor(tenantId, "test"), name, {
      apiVersion: "agent.os/v1",
      kind: "Agent",
      metadata: { name, owner: "tests" },
      spec: { model: { provider: "scripted", name: "scripted-small" }, soul: `You are ${name}.`, domains, ...extra },
    })
    .then((r) => r.body);

beforeAll(async () => {
  db = await createTestDb();
  producer = createJobs({ connectionString: db.url, role: "producer", max: 2 });
  await producer.start();
  services = createServices({ database: db.database, jobs: producer, secureCookies: false });
});
afterAll(async () => {
  await producer.stop({ graceful: false, timeout: 1000 });
  await db.drop();
});

describe("the prompt's reads", () => {
  it("come back in one statement, the same layers as the separate queries: memory items, unread messages, open threads, pending proposals", async () => {
    const tenantId = await newTenant("Prompt Reads");
    const agent = await apply(tenantId, "reader", ["reads/*"]);
    const other = await apply(tenantId, "writer", ["elsewhere/*"]);
    const m = repo.memory;
    await withTenant(db.database, tenantId, async (tx) => {
      await m.insertItem(tx, { tenantId, id: "mem_a", agentId: agent.id, layer: "working", title: "plan", content: "step one\nstep two", tokens: 5, source: "agent", ref: null, retentionDays: null });
      await m.insertItem(tx, { tenantId, id: "mem_b", agentId: agent.id, layer: "working", title: "", content: "note", tokens: 1, source: "agent", ref: null, retentionDays: 30 });
      await m.insertItem(tx, { tenantId, id: "mem_c", agentId: agent.id, layer: "archive", title: "old", content: "retired", tokens: 1, source: "agent", ref: null, retentionDays: 30 });
      await m.insertItem(tx, { tenantId, id: "mem_d", agentId: other.id, layer: "working", title: "theirs", content: "not mine", tokens: 2, source: "agent", ref: null, retentionDays: null });
      // Two threads whose last messages share a timestamp (one transaction), both read.
      for (const t of ["thr_1", "thr_2", "thr_3"]) {
        await m.insertMessage(tx, { tenantId, id: `msg_${t}`, toAgentId: agent.id, toType: "agent", toId: agent.id, fromType: "user", fromId: "usr_x", body: `about ${t}`, threadId: t, replyTo: null });
      }
    });
    await q(`UPDATE messages SET read_at = now() WHERE tenant_id = $1 AND id IN ('msg_thr_1', 'msg_thr_2', 'msg_thr_3')`, [tenantId]);
    await withTenant(db.database, tenantId, async (tx) => {
      // A thread whose last word is the agent's own: not open. An unread message: listed as unread, its thread not open.
      await m.insertMessage(tx, { tenantId, id: "msg_thr_3_reply", toAgentId: null, toType: "user", toId: "usr_x", fromType: "agent", fromId: agent.id, body: "answered", threadId: "thr_3", replyTo: "msg_thr_3" });
      await m.insertMessage(tx, { tenantId, id: "msg_unread_1", toAgentId: agent.id, toType: "agent", toId: agent.id, fromType: "agent", fromId: other.id, body: "ping   one", threadId: "thr_4", replyTo: null });
    });
    await withTenant(db.database, tenantId, (tx) =>
      m.insertMessage(tx, { tenantId, id: "msg_unread_2", toAgentId: agent.id, toType: "agent", toId: agent.id, fromType: "user", fromId: "usr_x", body: "ping two", threadId: "thr_5", replyTo: null }),
    );
    const asked = (await services.proposals.create(systemActor(tenantId, "test"), { title: "Pending for reader", body: "", domains: ["reads/x"] })).body;
    await services.proposals.create(systemActor(tenantId, "test"), { title: "Not for reader", body: "", domains: ["elsewhere/x"] });

    const ids = { tenantId, agentId: agent.id };
    const { value: combined, statements } = await withTenant(db.database, tenantId, (tx) => counted(tx, () => loadContextData(tx, { ...ids, withContext: true })));
    expect(statements).toBe(1);
    const separate = await withTenant(db.database, tenantId, async (tx) => ({
      working: await m.listItems(tx, { ...ids, layer: "working" }),
      unread: await m.peekUnread(tx, { ...ids, limit: 100 }),
      threads: await m.openThreads(tx, { ...ids, days: 7, limit: 50 }),
      proposals: await m.pendingProposals(tx, { ...ids, limit: 50 }),
    }));
    expect(combined).toEqual(separate);
    // The same read as a statement sent with a BEGIN (escaped literals), and gated off.
    const [literal, gated] = await tenantStatements(db.database, tenantId, [contextDataRead({ ...ids, withContext: true }), contextDataRead({ ...ids, withContext: true }, { name: "never", sql: "false" })]);
    expect(contextDataFrom(literal!)).toEqual(combined);
    expect(gated!.rows).toEqual([]);
    // The layers hold what the fixture put there (so the comparison above compared something).
    expect(combined.working.map((i) => i.id)).toEqual(["mem_a", "mem_b"]);
    expect(combined.working[0]!.createdAt).toBeInstanceOf(Date);
    expect(combined.working[1]!.expiresAt).toBeInstanceOf(Date);
    expect(combined.working[0]!.expiresAt).toBeNull();
    // (The proposal's ask arrives as an unread message too.)
    expect(combined.unread.map((u) => u.id)).toEqual(expect.arrayContaining(["msg_unread_1", "msg_unread_2"]));
    expect(combined.unread.every((u) => u.createdAt instanceof Date && u.readAt === null)).toBe(true);
    expect(combined.threads.map((t) => t.threadId)).toEqual(["thr_2", "thr_1"]);
    expect(combined.threads[0]!.last.createdAt).toBeInstanceOf(Date);
    expect(combined.proposals).toEqual([{ id: asked.id, title: "Pending for reader", responded: false }]);

    // Later turns read working memory only, still in one statement.
    const later = await withTenant(db.database, tenantId, (tx) => counted(tx, () => loadContextData(tx, { ...ids, withContext: false })));
    expect(later.statements).toBe(1);
    expect(later.value).toEqual({ working: separate.working, unread: [], threads: [], proposals: [] });

    // An agent with nothing: empty layers.
    const empty = await apply(tenantId, "blank");
    expect(await withTenant(db.database, tenantId, (tx) => loadContextData(tx, { tenantId, agentId: empty.id, withContext: true }))).toEqual({
      working: [],
      unread: [],
      threads: [],
      proposals: [],
    });
  });
});

describe("the reservation's reads", () => {
  const call = (model: string, provider = "scripted") => ({ provider, model, promptTokens: 2000, maxTokens: 500 });
  const request = (tenantId: string, agentId: string, runId: string, calls: ReturnType<typeof call>[]) => ({
    tenantId,
    agentId,
    runId,
    runCreatedAt: new Date(),
    taskId: null,
    key: `${runId}:0`,
    calls,
    computeMs: 1000,
  });

  it("price every model a routed call may make, in the statement that reads the spend context", async () => {
    const tenantId = await newTenant("Routed Reserve");
    const agent = await apply(tenantId, "routed", [], { budgets: { usd_per_day: 10 } });
    const admin = systemActor(tenantId, "test");
    // The large model has the tenant's own price; the small one the catalogue's.
    const own = await services.costs.createPrice(admin, { provider: "scripted", model: "scripted-large", inputMicrosPerMtok: 7_000_000, outputMicrosPerMtok: 30_000_000 });
    const spend = spendEngine({ jobs: producer });
    const runId = `run_${"q".repeat(26)}`;
    const req = request(tenantId, agent.id, runId, [call("scripted-small"), call("scripted-large")]);
    const { value: r, statements } = await withTenant(db.database, tenantId, (tx) => counted(tx, () => spend.reserve(tx, req)));
    // Context and prices, the reservation row, one window.
    expect(statements).toBe(3);
    const expected = await withTenant(db.database, tenantId, async (tx) => [
      await repo.costs.findPrice(tx, { tenantId, provider: "scripted", models: priceCandidates("scripted-small"), at: r.at }),
      await repo.costs.findPrice(tx, { tenantId, provider: "scripted", models: priceCandidates("scripted-large"), at: r.at }),
    ]);
    expect(r.prices).toEqual(expected);
    expect(r.prices.map((p) => [p?.source, p?.model])).toEqual([
      ["catalogue", "scripted-small"],
      ["tenant", "scripted-large"],
    ]);
    expect(r.prices[1]!.id).toBe(own.id);
    expect(r.prices[1]!.effectiveFrom).toBeInstanceOf(Date);
    // The same read as a prepared statement for a BEGIN's batch, and gated off.
    const lookups = priceLookups(req);
    const named = await withTenant(db.database, tenantId, (tx) => repo.costs.spendContextWithPrices(tx, { tenantId, agentId: agent.id, at: r.at, lookups }));
    const [batched, gated] = await tenantStatements(db.database, tenantId, [
      repo.costs.spendContextWithPricesRead({ tenantId, agentId: agent.id, at: r.at, lookups }),
      repo.costs.spendContextWithPricesRead({ tenantId, agentId: agent.id, at: r.at, lookups }, { name: "never", sql: "false" }),
    ]);
    expect(repo.costs.spendContextPricesRead(batched)).toEqual(named);
    expect(repo.costs.spendContextPricesRead(gated)).toBeUndefined();
    expect(named.prices.map((p) => p?.id)).toEqual(r.prices.map((p) => p?.id));
    // Each call's worst case at its own price.
    expect(r.estimates).toEqual(expected.map((p) => worstCaseCost(p!, 2000, 500)));
    expect(r.estimates[1]).toBeGreaterThan(r.estimates[0]!);
    const [w] = await q<{ reserved: string }>(`SELECT reserved FROM budget_windows WHERE tenant_id = $1`, [tenantId]);
    expect(Number(w!.reserved)).toBe(r.windows[0]!.amount);
    expect(r.windows[0]!.amount).toBeGreaterThan(r.estimates[0]! + r.estimates[1]!);
    await withTenant(db.database, tenantId, (tx) => spend.release(tx, r));
  });

  it("refuses a routed call whose second model has no price, unless the tenant allows it; a call with nothing to hold writes nothing", async () => {
    const tenantId = await newTenant("Routed Unpriced");
    const agent = await apply(tenantId, "half-priced");
    const spend = spendEngine({ jobs: producer });
    const runId = `run_${"u".repeat(26)}`;
    const req = request(tenantId, agent.id, runId, [call("claude-opus-4-7", "anthropic"), call("gpt-unreleased-9", "openai")]);
    const refused = await withTenant(db.database, tenantId, (tx) => spend.reserve(tx, req)).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(SpendRefused);
    expect(refused).toMatchObject({ code: "UNPRICED_MODEL" });
    expect((refused as Error).message).toMatch(/no price for openai model 'gpt-unreleased-9'/);

    await services.costs.updateSettings(systemActor(tenantId, "test"), { allowUnpricedModels: true });
    // No budget applies: the context read is the only statement.
    const { value: r, statements } = await withTenant(db.database, tenantId, (tx) => counted(tx, () => spend.reserve(tx, req)));
    expect(statements).toBe(1);
    expect(r.prices.map((p) => p && [p.source, p.provider, p.model])).toEqual([["catalogue", "anthropic", "claude-opus-4-7"], null]);
    expect(r.estimates[1]).toBe(0);
    expect(await q(`SELECT 1 FROM budget_reservations WHERE tenant_id = $1`, [tenantId])).toEqual([]);
  });
});
