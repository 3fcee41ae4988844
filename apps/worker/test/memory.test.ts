import {
  agentRuntime,
  countTokens,
  createServices,
  type DomainServices,
  memorySweep,
  providerCache,
  systemActor,
  writeWorking,
} from "@bosun/core";
import { repo, withTenant } from "@bosun/db";
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

function descriptor(name: string, model: Record<string, unknown> = {}, spec: Record<string, unknown> = {}) {
  return {
    apiVersion: "agent.os/v1",
    kind: "Agent",
    metadata: { name, owner: "tests" },
    spec: { model: { provider: "scripted", name: "scripted-small", ...model }, soul: `You are ${name}, careful and brief.`, ...spec },
  };
}
const apply = (name: string, model?: Record<string, unknown>, spec?: Record<string, unknown>) =>
  services.agents.apply(actor(), name, descriptor(name, model, spec)).then((r) => r.body);

/** Records every request on the way to the real provider. */
function recording() {
  const real = providerCache();
  const calls: ModelRequest[] = [];
  return {
    calls,
    provider: (m: Parameters<ReturnType<typeof providerCache>>[0]): ModelProvider => ({
      name: "recording",
      complete: (req) => {
        calls.push(req);
        return real(m).complete(req);
      },
    }),
  };
}

const runtime = (id: string, provider = providerCache()) =>
  agentRuntime({ database: db.database, jobs: producer, tasks: services.tasks, provider, workerId: id, leaseTtlSeconds: 5 });

const startRun = async (name: string, input: string) => {
  const r = await services.runs.start(actor(), name, { input });
  return r;
};

beforeAll(async () => {
  db = await createTestDb();
  producer = createJobs({ connectionString: db.url, role: "producer", max: 2 });
  await producer.start();
  services = createServices({ database: db.database, jobs: producer, secureCookies: false });
  const s = await services.identity.signup({ tenant: { name: "Memory", timeZone: "UTC" }, owner: { email: "mem@example.com", password: "memory-password-1" } });
  tenantId = s.tenant.id;
});
afterAll(async () => {
  await producer.stop({ graceful: false, timeout: 1000 });
  await db.drop();
});

const note = (i: number) => `Observation ${i}: the reconciliation job for region ${i} finished late because the upstream ledger export arrived after the cut-off; follow up with finance ops.`;

describe("working memory", () => {
  it("holds its token limit against an agent that keeps writing, and tells it to consolidate", async () => {
    const limit = 300;
    const script = Array.from({ length: 20 }, (_, i) => ({ call: "memory", input: { action: "add", title: `note ${i}`, content: note(i) } }));
    const agent = await apply("hoarder", { script: [...script, { say: "done" }] }, { memory: { working_tokens: limit } });
    await startRun("hoarder", "Write down everything.");
    expect((await runtime("w-hoard").wake({ tenantId, agentId: agent.id })).outcome).toBe("ran");

    const items = await q<{ tokens: number; content: string; title: string }>(`SELECT tokens, content, title FROM memory_items WHERE agent_id = $1 AND layer = 'working'`, [agent.id]);
    const used = items.reduce((n, i) => n + i.tokens, 0);
    expect(used).toBeLessThanOrEqual(limit);
    expect(items.length).toBeGreaterThan(0);
    // Token counts are the real tokenizer's.
    for (const i of items) expect(i.tokens).toBe(countTokens(`${i.title}\n${i.content}`));

    const steps = await q<{ kind: string; status: string; output: { content: string; error?: { code: string; usage: number; limit: number; items: unknown[] } } }>(
      `SELECT kind, status, output FROM steps WHERE run_id = (SELECT id FROM runs WHERE agent_id = $1) AND name = 'memory' ORDER BY seq`,
      [agent.id],
    );
    expect(steps).toHaveLength(20);
    expect(steps.every((s) => s.kind === "memory")).toBe(true);
    const refused = steps.filter((s) => s.status === "error");
    expect(refused.length).toBe(20 - items.length);
    const e = refused[0]!.output.error!;
    expect(e).toMatchObject({ code: "CONSOLIDATE", limit, usage: used });
    expect(e.items).toHaveLength(items.length);
    // The model reads the structured error as its tool result.
    expect(JSON.parse(refused[0]!.output.content).code).toBe("CONSOLIDATE");
  });

  it("never passes the limit under concurrent writers, and refuses a stale version", async () => {
    const agent = await apply("contended", {}, { memory: { working_tokens: 400 } });
    const write = (i: number) =>
      withTenant(db.database, tenantId, (tx) =>
        writeWorking(tx, { tenantId, agentId: agent.id, limit: 400, retentionDays: 30, op: { action: "add", title: `w${i}`, content: note(i) }, source: "operator" }),
      );
    const results = await Promise.all(Array.from({ length: 16 }, (_, i) => write(i)));
    const ok = results.filter((r) => r.ok).length;
    const sum = (await q<{ sum: number }>(`SELECT coalesce(sum(tokens), 0)::int AS sum FROM memory_items WHERE agent_id = $1 AND layer = 'working'`, [agent.id]))[0]!.sum;
    expect(sum).toBeLessThanOrEqual(400);
    expect(ok).toBeGreaterThan(0);
    expect(ok).toBeLessThan(16);
    const per = countTokens(`w0\n${note(0)}`);
    expect(ok).toBe(Math.floor(400 / per));

    const first = results.find((r) => r.ok) as Extract<(typeof results)[number], { ok: true }>;
    const replace = (version: number, content: string) =>
      withTenant(db.database, tenantId, (tx) =>
        writeWorking(tx, { tenantId, agentId: agent.id, limit: 400, retentionDays: 30, op: { action: "replace", id: first.item.id, version, content }, source: "operator" }),
      );
    const r1 = await replace(first.item.version, "merged: regions 0-3 were late (ledger export after cut-off)");
    expect(r1).toMatchObject({ ok: true, item: { version: 2 } });
    const r2 = await replace(first.item.version, "an edit that did not see version 2");
    expect(r2).toMatchObject({ ok: false, error: { code: "VERSION_CONFLICT", current: { version: 2 } } });

    // Removing retires the item to the archive: out of the prompt's layer, still searchable.
    const removed = await withTenant(db.database, tenantId, (tx) =>
      writeWorking(tx, { tenantId, agentId: agent.id, limit: 400, retentionDays: 30, op: { action: "remove", id: first.item.id, version: 2 }, source: "operator" }),
    );
    expect(removed).toMatchObject({ ok: true, archived: true, item: { layer: "archive", version: 3 } });
    const hits = await withTenant(db.database, tenantId, (tx) => repo.memory.searchArchive(tx, { tenantId, agentId: agent.id, query: "merged regions", limit: 5 }));
    expect(hits.map((h) => h.id)).toEqual([first.item.id]);
  });
});

describe("prompt assembly", () => {
  it("puts soul then working memory in the system prompt, the active context in the first message, and records each layer's tokens", async () => {
    const rec = recording();
    const agent = await apply("layered", {}, { memory: { working_tokens: 500 } });
    await withTenant(db.database, tenantId, (tx) =>
      writeWorking(tx, { tenantId, agentId: agent.id, limit: 500, retentionDays: 30, op: { action: "add", title: "customer", content: "Acme pays on the 5th." }, source: "operator" }),
    );
    // Many unread messages: more than the context budget holds.
    for (let i = 0; i < 80; i++) await services.runs.sendMessage(actor(), { to: "layered", body: `${i}: ${note(i)}` });
    // A task run first (messages stay unread and show in its active context).
    await services.tasks.create(actor(), { title: "Check invoices", body: "", priority: 50, depends_on: [], requires_review: false, max_attempts: 3, assignee: "layered" });
    expect((await runtime("w-layer", rec.provider).wake({ tenantId, agentId: agent.id })).outcome).toBe("ran");
    const first = rec.calls[0]!;
    expect(first.system.startsWith("You are layered, careful and brief.")).toBe(true);
    expect(first.system).toContain("Acme pays on the 5th.");
    expect(first.system.indexOf("Acme pays")).toBeGreaterThan(first.system.indexOf("You are layered"));
    const firstText = (first.messages[0]!.content[0] as { text: string }).text;
    expect(firstText.startsWith("<active_context>")).toBe(true);
    expect(firstText).toMatch(/… \d+ older messages trimmed to fit the context budget/);
    expect(firstText).toContain("79: Observation 79"); // newest kept
    expect(firstText).not.toContain("0: Observation 0:"); // oldest trimmed
    expect(firstText).toContain("Check invoices");

    const [step] = await q<{ input: { layers: { soul: number; working: number; context: number; contextLimit: number; trimmed: { messages: number } } } }>(
      `SELECT s.input FROM steps s JOIN runs r ON r.id = s.run_id WHERE r.agent_id = $1 AND r.trigger = 'task' AND s.kind = 'llm' ORDER BY s.seq LIMIT 1`,
      [agent.id],
    );
    const l = step!.input.layers;
    expect(l.soul).toBe(countTokens("You are layered, careful and brief."));
    expect(l.working).toBeGreaterThan(0);
    expect(l.context).toBeGreaterThan(0);
    expect(l.context).toBeLessThanOrEqual(l.contextLimit + 50);
    expect(l.trimmed.messages).toBeGreaterThan(0);

    // Measured: the prompt's memory-and-context tokens with the layers' bounds, against what
    // pushing every unread message and every archived result into it would cost.
    const unbounded =
      countTokens((await q<{ body: string }>(`SELECT body FROM messages WHERE to_agent_id = $1`, [agent.id])).map((m) => m.body).join("\n")) + l.working + l.soul;
    const bounded = l.soul + l.working + l.context;
    console.log(`[memory bench] prompt memory+context tokens per run: bounded ${bounded}, unbounded ${unbounded} (${(unbounded / bounded).toFixed(1)}x)`);
    expect(bounded).toBeLessThan(unbounded);
  });

  it("lists a thread someone is waiting on (read, not answered) as open in the next run's context", async () => {
    const rec = recording();
    const agent = await apply("threaded");
    const m = await services.messages.send(actor(), { to: "threaded", body: "Can you confirm the Q3 totals?" });
    const rt = runtime("w-thread", rec.provider);
    expect((await rt.wake({ tenantId, agentId: agent.id })).outcome).toBe("ran"); // reads it, answers nothing
    await services.tasks.create(actor(), { title: "Next task", body: "", priority: 50, depends_on: [], requires_review: false, max_attempts: 3, assignee: "threaded" });
    expect((await rt.wake({ tenantId, agentId: agent.id })).outcome).toBe("ran");
    const text = (rec.calls.at(-1)!.messages[0]!.content[0] as { text: string }).text;
    expect(text).toContain("Open threads");
    expect(text).toContain(`thread ${m.threadId}, last ${m.id}`);
    expect(text).not.toContain("Unread messages");
  });

  it("refuses a soul over its token bound with a clear problem", async () => {
    // Under the 8000-character bound, over the 1500-token one (codes tokenize densely).
    const soul = Array.from({ length: 900 }, (_, i) => `k${(i * 7919) % 100_003}`).join(" ");
    expect(soul.length).toBeLessThanOrEqual(8000);
    expect(countTokens(soul)).toBeGreaterThan(1500);
    await expect(services.agents.apply(actor(), "verbose", descriptor("verbose", {}, { soul }))).rejects.toMatchObject({
      code: "VALIDATION",
      errors: [{ path: "spec.soul", message: expect.stringMatching(/tokens; at most 1500/) }],
    });
  });
});

describe("archive", () => {
  it("archives a finished task's result, finds it with full text search, and forgets it after retention", async () => {
    const agent = await apply("archivist", {
      script: [
        { call: "complete_task", input: { result: "The Lisbon warehouse reconciliation found 3 duplicate invoices from Northwind." } },
        { say: "ok" },
      ],
    });
    await services.tasks.create(actor(), { title: "Reconcile Lisbon", body: "", priority: 50, depends_on: [], requires_review: false, max_attempts: 3, assignee: "archivist" });
    expect((await runtime("w-arch").wake({ tenantId, agentId: agent.id })).outcome).toBe("ran");
    const search = (query: string) => withTenant(db.database, tenantId, (tx) => repo.memory.searchArchive(tx, { tenantId, agentId: agent.id, query, limit: 5 }));
    const hits = await search("duplicate invoices Northwind");
    expect(hits).toHaveLength(1);
    expect(hits[0]).toMatchObject({ layer: "archive", source: "task_result" });
    expect(hits[0]!.title).toContain("Reconcile Lisbon");
    expect(hits[0]!.expiresAt!.getTime()).toBeGreaterThan(Date.now() + 89 * 86_400_000);
    expect(await search("payroll")).toHaveLength(0);

    // The memory_search tool finds it too, in a later run.
    const rec = recording();
    await apply("archivist", { script: [{ call: "memory_search", input: { query: "Northwind duplicates" } }, { say: "found" }] });
    await startRun("archivist", "What did we find in Lisbon?");
    expect((await runtime("w-arch2", rec.provider).wake({ tenantId, agentId: agent.id })).outcome).toBe("ran");
    const [tool] = await q<{ output: { content: string } }>(
      `SELECT output FROM steps WHERE name = 'memory_search' AND run_id IN (SELECT id FROM runs WHERE agent_id = $1)`,
      [agent.id],
    );
    expect(tool!.output.content).toContain("3 duplicate invoices from Northwind");
    // Never pushed into the prompt: the archived text is not in the system prompt.
    expect(rec.calls[0]!.system).not.toContain("Northwind");

    // Expiry: an expired item is hidden at once and deleted by the sweep.
    await q(`UPDATE memory_items SET expires_at = now() - interval '1 second' WHERE agent_id = $1`, [agent.id]);
    expect(await search("duplicate invoices Northwind")).toHaveLength(0);
    const swept = await memorySweep(db.database);
    expect(swept.deleted).toBeGreaterThanOrEqual(1);
    expect(await q(`SELECT 1 FROM memory_items WHERE agent_id = $1`, [agent.id])).toHaveLength(0);
  });

  // A search runs in the agent's tenant transaction, under row-level security, where
  // Postgres takes only leakproof operators as index conditions, and `@@` is not one: a
  // full-text index over the archive could never be used there (there was one until
  // migration 0019, which cost an entry for every archived result). What bounds a search
  // is the agent's index: it reads that agent's archive and no one else's.
  it("searches by the agent's index, reading that agent's archive only", async () => {
    const mine = await apply("searcher");
    const other = await apply("hoarder");
    const items = (agentId: string, n: number, word: string) =>
      q(
        `INSERT INTO memory_items (tenant_id, id, agent_id, layer, title, content, tokens, source, expires_at)
         SELECT $1, 'mem_' || $2 || lpad(g::text, 8, '0'), $2, 'archive', 'note ' || g, $3 || ' number ' || g, 4, 'operator', now() + interval '1 day'
         FROM generate_series(1, $4::int) g`,
        [tenantId, agentId, word, n],
      );
    await items(other.id, 3000, "ledger");
    await items(mine.id, 5, "ledger");
    await q(`ANALYZE memory_items`);
    const plan = await withTenant(db.database, tenantId, async (tx) => {
      const c = tx.$client;
      const search = repo.memory.searchArchiveSql("$1", "$2", "$3", "$4");
      const { rows } = await c.query<{ "QUERY PLAN": string }>(`EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) ${search}`, [tenantId, mine.id, "ledger", 5]);
      return rows.map((r) => r["QUERY PLAN"]).join("\n");
    });
    expect(plan, plan).not.toMatch(/Seq Scan/);
    // Five rows read, by the agent's index: its own items, not the other agent's 3,000.
    const byAgent = plan.split("\n").find((l) => l.includes("memory_items_agent_idx"));
    expect(byAgent, plan).toMatch(/actual rows=5 loops=1/);
    const hits = await withTenant(db.database, tenantId, (tx) => repo.memory.searchArchive(tx, { tenantId, agentId: mine.id, query: "ledger", limit: 10 }));
    expect(hits.map((h) => h.agentId)).toEqual(Array(5).fill(mine.id));
  });
});

