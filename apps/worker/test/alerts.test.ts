import { agentRuntime, createServices, type DomainServices, providerCache, spendEngine, systemActor } from "@bosun/core";
import { withTenant } from "@bosun/db";
import { createJobs, type Jobs } from "@bosun/jobs";
import { normaliseAnthropicUsage } from "@bosun/llm";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDb, type TestDb } from "../../../test/helpers/db";
import { startTestSmtp, type TestSmtp } from "../../../test/helpers/smtp";
import { smtpMailer, startWorker, type Worker } from "../src/worker";

/**
 * Budget alerts end to end: a settle crosses a threshold and claims it, the same
 * transaction enqueues `alert.send`, and the worker mails it to a real SMTP server.
 */

let db: TestDb;
let producer: Jobs;
let services: DomainServices;
let smtp: TestSmtp;
let worker: Worker;
const PUBLIC_URL = "http://console.test";

const q = async <T = Record<string, unknown>>(sql: string, values: unknown[] = []) => (await db.database.pool.query(sql, values)).rows as T[];

async function until<T>(fn: () => Promise<T | undefined | null | false> | T | undefined | null | false, ms = 20_000, what = "condition"): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`${what} not met in ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function tenantWithAgent(name: string, agent: string, extra: Record<string, unknown> = {}) {
  const s = await services.identity.signup({
    tenant: { name, timeZone: "Europe/Paris" },
    owner: { email: `${name.toLowerCase().replace(/\W/g, "")}@example.com`, password: "alerts-password-1" },
  });
  const tenantId = s.tenant.id;
  const a = await services.agents.apply(systemActor(tenantId, "test"), agent, {
    apiVersion: "agent.os/v1",
    kind: "Agent",
    metadata: { name: agent, owner: "tests" },
    spec: { model: { provider: "scripted", name: "scripted-small" }, soul: "You spend.", ...extra },
  });
  return { tenantId, agentId: a.body.id, email: s.user.email };
}

/** One call's charge through reserve and settle: 1000 input and 100 output tokens of scripted-small, 1500 µ$. */
function charger(tenantId: string, agentId: string) {
  const spend = spendEngine({ jobs: producer });
  let n = 0;
  return () =>
    withTenant(db.database, tenantId, async (tx) => {
      const runId = `run_${String(n++).padStart(26, "0")}`;
      const r = await spend.reserve(tx, {
        tenantId,
        agentId,
        runId,
        runCreatedAt: new Date(),
        taskId: null,
        key: `${runId}:0`,
        calls: [{ provider: "scripted", model: "scripted-small", promptTokens: 1000, maxTokens: 100 }],
        computeMs: 0,
      });
      return spend.settle(tx, r, { calls: [{ seq: 0, model: "scripted-small", usage: normaliseAnthropicUsage({ input_tokens: 1000, output_tokens: 100 }) }], computeMs: 0 });
    });
}

/** The mails received for these alerts (an alert's Message-ID is derived from its id). */
const mailsFor = (alertIds: string[]) => smtp.received.filter((m) => alertIds.some((id) => m.messageId === `<${id}@bosun.alerts>`));
const alertsOf = (tenantId: string) =>
  q<{ id: string; threshold: number; status: string; attempts: number; spent: string }>(`SELECT id, threshold, status, attempts, spent FROM budget_alerts WHERE tenant_id = $1 ORDER BY threshold`, [tenantId]);

beforeAll(async () => {
  db = await createTestDb();
  producer = createJobs({ connectionString: db.url, role: "producer", max: 2 });
  await producer.start();
  services = createServices({ database: db.database, jobs: producer, secureCookies: false });
  smtp = await startTestSmtp();
  const jobs = createJobs({ connectionString: db.url, role: "worker", max: 2 });
  worker = await startWorker({
    jobs,
    services: createServices({ database: db.database, jobs, secureCookies: false }),
    logger: pino({ level: "silent" }),
    mailer: smtpMailer(smtp.url),
    publicUrl: PUBLIC_URL,
  });
});
afterAll(async () => {
  await worker?.stop();
  await smtp?.close();
  await producer.stop({ graceful: false, timeout: 1000 });
  await db.drop();
});

describe("budget alerts by email", () => {
  it("mails each threshold crossing once, naming the agent, spend, limit, window, top cost drivers and a console link", async () => {
    const t = await tenantWithAgent("Thresholds", "spender");
    const admin = systemActor(t.tenantId, "test");
    // A soft budget, so the spend can go past 100 % and cross every threshold.
    await services.budgets.create(admin, { scope: "agent", agent: "spender", metric: "usd", window: "day", limitUsd: 0.01, enforcement: "soft", thresholds: [50, 80, 100], onExhausted: "refuse" });
    const charge = charger(t.tenantId, t.agentId);
    for (let i = 0; i < 7; i++) await charge(); // 1500 µ$ each: 50 % at 6000, 80 % at 9000, 100 % at 10500
    const alerts = await alertsOf(t.tenantId);
    expect(alerts.map((a) => [a.threshold, Number(a.spent)])).toEqual([
      [50, 6000],
      [80, 9000],
      [100, 10500],
    ]);
    await until(() => mailsFor(alerts.map((a) => a.id)).length === 3, 20_000, "three mails");
    await new Promise((r) => setTimeout(r, 1500)); // nothing more arrives
    const mails = mailsFor(alerts.map((a) => a.id));
    expect(mails).toHaveLength(3);
    expect(new Set(mails.map((m) => m.messageId)).size).toBe(3);
    expect((await alertsOf(t.tenantId)).map((a) => [a.status, a.attempts])).toEqual([
      ["sent", 1],
      ["sent", 1],
      ["sent", 1],
    ]);
    const last = mails.find((m) => m.messageId === `<${alerts[2]!.id}@bosun.alerts>`)!;
    expect(last.to).toEqual([t.email]);
    expect(last.subject).toBe("[Bosun] spender: 100% of the daily budget ($0.0105 of $0.01)");
    expect(last.text).toContain("Agent spender has used 105% of its daily budget.\r\nThe 100% threshold was crossed.");
    expect(last.text).toContain("Agent:   spender");
    expect(last.text).toContain("Spent:   $0.0105 of $0.01");
    expect(last.text).toMatch(/Window: {2}\d+ \w+ \d{4}, 00:00 to \d+ \w+ \d{4}, 00:00 \(Europe\/Paris\)/);
    expect(last.text).toMatch(/Top cost drivers in this window \(cost, charges\):\r?\n {2}model scripted\/scripted-small\s+\$0\.0105 \(7\)\r?\n {2}run {3}run_\d{26}\s+\$0\.0015 \(2\)/);
    expect(last.text).toContain(`Open the console: ${PUBLIC_URL}/agents/spender`);

    // Listed over the API too.
    const listed = await services.costs.listAlerts(admin, { limit: 10 });
    expect(listed.items.map((a) => [a.threshold, a.status, a.agent])).toEqual([
      [100, "sent", "spender"],
      [80, "sent", "spender"],
      [50, "sent", "spender"],
    ]);
  });

  it("claims each threshold once when many settles cross it at the same moment", async () => {
    const t = await tenantWithAgent("Concurrent", "crowd");
    const admin = systemActor(t.tenantId, "test");
    await services.budgets.create(admin, { scope: "tenant", metric: "usd", window: "month", limitUsd: 0.05, enforcement: "soft", thresholds: [50, 80, 100], onExhausted: "refuse" });
    const charge = charger(t.tenantId, t.agentId);
    await Promise.all(Array.from({ length: 40 }, () => charge())); // 40 × 1500 µ$ = 120 % of the limit, all at once
    const alerts = await alertsOf(t.tenantId);
    expect(alerts.map((a) => a.threshold)).toEqual([50, 80, 100]);
    await until(() => mailsFor(alerts.map((a) => a.id)).length >= 3, 20_000, "three mails");
    await new Promise((r) => setTimeout(r, 1500));
    expect(mailsFor(alerts.map((a) => a.id))).toHaveLength(3);
    const [w] = await q<{ spent: string; reserved: string }>(`SELECT spent, reserved FROM budget_windows WHERE tenant_id = $1`, [t.tenantId]);
    expect(w).toEqual({ spent: "60000", reserved: "0" });
  });

  it("retries a delivery the SMTP server refused, and the alert still arrives once", async () => {
    const t = await tenantWithAgent("Retry", "unlucky");
    const admin = systemActor(t.tenantId, "test");
    await services.budgets.create(admin, { scope: "agent", agent: "unlucky", metric: "usd", window: "day", limitUsd: 0.002, enforcement: "soft", thresholds: [50], onExhausted: "refuse" });
    const refusedBefore = smtp.refused;
    smtp.failNext(1);
    await charger(t.tenantId, t.agentId)();
    const [alert] = await alertsOf(t.tenantId);
    await until(() => mailsFor([alert!.id]).length === 1, 30_000, "the retried mail");
    await new Promise((r) => setTimeout(r, 1500));
    expect(mailsFor([alert!.id])).toHaveLength(1);
    expect(smtp.refused - refusedBefore).toBe(1);
    const [after] = await alertsOf(t.tenantId);
    expect(after).toMatchObject({ status: "sent", attempts: 2 });
  });

  it("alerts from an agent's run, through the runtime", async () => {
    const t = await tenantWithAgent("Runtime", "runner", { budgets: { usd_per_day: 0.0001 } });
    const admin = systemActor(t.tenantId, "test");
    // The descriptor's budget is hard; make it soft so one run can cross every threshold.
    const [b] = (await services.budgets.list(admin, { limit: 5 })).items;
    await services.budgets.update(admin, b!.id, { enforcement: "soft" });
    await services.tasks.create(admin, { title: "spend it", body: "", priority: 50, depends_on: [], requires_review: false, max_attempts: 1, assignee: "runner" });
    await agentRuntime({ database: db.database, jobs: producer, tasks: services.tasks, provider: providerCache(), workerId: "w-alerts" }).wake({
      tenantId: t.tenantId,
      agentId: t.agentId,
    });
    const alerts = await alertsOf(t.tenantId);
    expect(alerts.map((a) => a.threshold)).toEqual([50, 80, 100]);
    await until(() => mailsFor(alerts.map((a) => a.id)).length === 3, 20_000, "three mails");
    // usd_per_day pauses the agent at 100 %.
    expect((await services.agents.get(admin, "runner")).status).toBe("paused");
  });
});

describe("without SMTP", () => {
  it("keeps alerts (unsent) and lists them", async () => {
    await worker.stop();
    const jobs = createJobs({ connectionString: db.url, role: "worker", max: 2 });
    const lines: string[] = [];
    const logger = pino({ level: "info" }, { write: (l: string) => void lines.push(l) });
    worker = await startWorker({ jobs, services: createServices({ database: db.database, jobs, secureCookies: false }), logger, mailer: null });
    expect(lines.some((l) => l.includes("SMTP_URL is not set"))).toBe(true);
    const t = await tenantWithAgent("No Mail", "quiet");
    const admin = systemActor(t.tenantId, "test");
    await services.budgets.create(admin, { scope: "tenant", metric: "usd", window: "day", limitUsd: 0.002, enforcement: "soft", thresholds: [50], onExhausted: "refuse" });
    const before = smtp.received.length;
    await charger(t.tenantId, t.agentId)();
    await until(async () => (await alertsOf(t.tenantId))[0]?.status === "unsent", 20_000, "alert marked unsent");
    expect(smtp.received.length).toBe(before);
    const listed = await services.costs.listAlerts(admin, { limit: 10 });
    expect(listed.items).toMatchObject([{ threshold: 50, status: "unsent", lastError: expect.stringContaining("SMTP_URL") }]);
  });
});
