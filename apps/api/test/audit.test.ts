import { repo, withTenant } from "@bosun/db";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyAgent, createKey, createTenant, createTestApp, problem, type TestApp, type TestTenant } from "../../../test/helpers/app";

/**
 * The audit API: filtered reads of the trail, and a verify walk that names the first broken
 * link when a row is edited or deleted behind the application's back (as the database
 * superuser with the seal-only trigger off: the app role cannot UPDATE or DELETE audit rows
 * at all, and the trigger refuses any UPDATE of a sealed row). Events are written unsealed;
 * both routes seal the tenant's pending events before reading.
 */

let t: TestApp;
const inject = (url: string, auth: { authorization: string }) => t.app.inject({ url, headers: auth });
const q = async <T = Record<string, unknown>>(sql: string, values: unknown[] = []) => (await t.db.database.pool.query(sql, values)).rows as T[];
/** Chains the tenant's pending events, for the tests that read audit_events directly. */
const seal = (tn: TestTenant) => repo.sealAudit(t.db.database, tn.tenantId);
/** A superuser's UPDATE of sealed rows: triggers off for this one transaction (session_replication_role). */
async function tamper(sql: string, values: unknown[] = []) {
  const c = await t.db.database.pool.connect();
  try {
    await c.query("BEGIN; SET LOCAL session_replication_role = replica");
    const { rowCount } = await c.query(sql, values);
    await c.query("COMMIT");
    expect(rowCount).toBe(1);
  } finally {
    c.release();
  }
}

type Event = { id: string; seq: number; action: string; actor: { type: string; id: string }; target: { type: string; id: string }; createdAt: string };

async function all(tn: TestTenant, query = ""): Promise<Event[]> {
  const out: Event[] = [];
  let cursor: string | null = null;
  do {
    const res = await inject(`/v1/audit?limit=2${query}${cursor ? `&cursor=${cursor}` : ""}`, tn.auth);
    expect(res.statusCode, res.body).toBe(200);
    const body = res.json() as { items: Event[]; nextCursor: string | null };
    out.push(...body.items);
    cursor = body.nextCursor;
  } while (cursor);
  return out;
}

/** A tenant with some history: an agent, two tasks, an update and a cancel. */
async function busyTenant(name: string) {
  const tn = await createTenant(t.app, name);
  await applyAgent(t.app, tn, "auditor");
  const a = (await t.app.inject({ method: "POST", url: "/v1/tasks", headers: tn.auth, payload: { title: "one", assignee: "auditor" } })).json();
  const b = (await t.app.inject({ method: "POST", url: "/v1/tasks", headers: tn.auth, payload: { title: "two", assignee: "auditor" } })).json();
  await t.app.inject({ method: "PATCH", url: `/v1/tasks/${a.id}`, headers: tn.auth, payload: { priority: 80 } });
  await t.app.inject({ method: "POST", url: `/v1/tasks/${b.id}/cancel`, headers: tn.auth });
  return { tn, tasks: [a.id as string, b.id as string] };
}

const verify = async (tn: TestTenant) => {
  const res = await inject("/v1/audit/verify", tn.auth);
  expect(res.statusCode, res.body).toBe(200);
  return res.json();
};

beforeAll(async () => {
  t = await createTestApp();
});
afterAll(() => t?.close());

describe("GET /v1/audit", () => {
  it("lists every event newest first, across pages, and filters by actor, target, action and time", async () => {
    const { tn, tasks } = await busyTenant("Filters");
    const events = await all(tn);
    const seqs = events.map((e) => e.seq);
    expect(seqs).toEqual([...seqs].sort((x, y) => y - x));
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => seqs.length - i));
    expect(events.map((e) => e.action).reverse()).toEqual(["tenant.create", "api_key.create", "agent.create", "task.create", "task.create", "task.update", "task.cancel"]);

    expect((await all(tn, `&targetType=task&targetId=${tasks[0]}`)).map((e) => e.action)).toEqual(["task.update", "task.create"]);
    expect((await all(tn, "&action=task.create")).map((e) => e.target.id).sort()).toEqual([...tasks].sort());
    expect((await all(tn, "&action=task.*")).map((e) => e.action)).toEqual(["task.cancel", "task.update", "task.create", "task.create"]);
    const keyId = events.find((e) => e.action === "task.create")!.actor.id;
    expect((await all(tn, `&actorType=api_key&actorId=${keyId}`)).length).toBe(5);
    expect((await all(tn, "&actorType=user")).map((e) => e.action)).toEqual(["api_key.create", "tenant.create"]);
    const cancel = events[0]!;
    expect((await all(tn, `&from=${encodeURIComponent(cancel.createdAt)}`)).map((e) => e.id)).toContain(cancel.id);
    expect(await all(tn, `&to=${encodeURIComponent(events.at(-1)!.createdAt)}`)).toEqual([]);
    expect(await all(tn, "&from=2100-01-01T00:00:00Z")).toEqual([]);
    // A `%` or `_` in a prefix is literal, not a wildcard.
    expect(await all(tn, "&action=task_*")).toEqual([]);
  });

  it("refuses bad filters with problem+json", async () => {
    const tn = await createTenant(t.app, "Bad");
    for (const qs of ["from=yesterday", "action=DROP%20TABLE", "actorType=robot", "limit=0", "cursor=xyz"]) {
      const res = await inject(`/v1/audit?${qs}`, tn.auth);
      expect(res.statusCode, qs).toBeGreaterThanOrEqual(400);
      expect(res.statusCode, qs).toBeLessThan(500);
      expect(problem(res).code).toMatch(/VALIDATION|BAD_REQUEST/);
    }
  });

  it("is for admins: read and write keys and agents' keys get 403; another tenant sees none of it", async () => {
    const { tn } = await busyTenant("Guarded");
    const other = await createTenant(t.app, "Elsewhere");
    for (const scopes of [["read"], ["write"]]) {
      const k = await createKey(t.app, tn, { scopes });
      for (const url of ["/v1/audit", "/v1/audit/verify"]) {
        const res = await inject(url, k.auth);
        expect(res.statusCode).toBe(403);
        expect(problem(res).code).toBe("FORBIDDEN");
      }
    }
    const agentKey = await createKey(t.app, tn, { scopes: ["admin"], agent: "auditor" });
    expect((await inject("/v1/audit", agentKey.auth)).statusCode).toBe(403);
    const mine = new Set((await all(tn)).map((e) => e.id));
    const theirs = await all(other);
    expect(theirs.length).toBeGreaterThan(0);
    for (const e of theirs) expect(mine.has(e.id)).toBe(false);
  });
});

describe("GET /v1/audit/verify", () => {
  it("passes an untouched chain, walking every event (sealed by the call itself)", async () => {
    const { tn } = await busyTenant("Intact");
    const [pending] = await q<{ n: number }>("SELECT count(*)::int AS n FROM audit_events WHERE tenant_id = $1 AND seq IS NULL", [tn.tenantId]);
    expect(pending!.n).toBe(7);
    const v = await verify(tn);
    expect(v).toMatchObject({ ok: true, checked: 7, head: { seq: 7 }, unsealed: 0, firstBroken: null });
  });

  it("refuses a superuser's UPDATE of a sealed row while the trigger is on", async () => {
    const { tn } = await busyTenant("Guarded rows");
    await seal(tn);
    await expect(q("UPDATE audit_events SET action = 'task.nothing' WHERE tenant_id = $1 AND seq = 2", [tn.tenantId])).rejects.toThrow(/sealed/);
    expect((await verify(tn)).ok).toBe(true);
  });

  it("names the row a superuser edited, and passes again once it is put back", async () => {
    const { tn } = await busyTenant("Edited");
    await seal(tn);
    const [row] = await q<{ id: string; seq: number; after: unknown }>("SELECT id, seq, after FROM audit_events WHERE tenant_id = $1 AND seq = 4", [tn.tenantId]);
    await tamper("UPDATE audit_events SET after = jsonb_set(after, '{title}', '\"forged\"') WHERE tenant_id = $1 AND id = $2", [tn.tenantId, row!.id]);
    const v = await verify(tn);
    expect(v.ok).toBe(false);
    expect(v.checked).toBe(3);
    expect(v.firstBroken).toMatchObject({ id: row!.id, seq: 4, reason: "hash_mismatch" });
    expect(v.firstBroken.expected).not.toBe(v.firstBroken.actual);
    await tamper("UPDATE audit_events SET after = $3 WHERE tenant_id = $1 AND id = $2", [tn.tenantId, row!.id, JSON.stringify(row!.after)]);
    expect((await verify(tn)).ok).toBe(true);
  });

  it("names the next link when the edited row's own hash was recomputed to match", async () => {
    const { tn } = await busyTenant("Rehashed");
    await seal(tn);
    const [row] = await q<repo.AuditEventRow & Record<string, unknown>>(
      `SELECT tenant_id AS "tenantId", id, seq::int AS seq, actor_type AS "actorType", actor_id AS "actorId", action, target_type AS "targetType",
              target_id AS "targetId", before, after, request_id AS "requestId", prev_hash AS "prevHash" FROM audit_events WHERE tenant_id = $1 AND seq = 3`,
      [tn.tenantId],
    );
    const forged = { ...row!, actorId: "usr_someone_else" };
    await tamper("UPDATE audit_events SET actor_id = $3, hash = $4 WHERE tenant_id = $1 AND id = $2", [tn.tenantId, row!.id, forged.actorId, repo.auditHash(row!.prevHash!, forged)]);
    const [next] = await q<{ id: string }>("SELECT id FROM audit_events WHERE tenant_id = $1 AND seq = 4", [tn.tenantId]);
    expect((await verify(tn)).firstBroken).toMatchObject({ id: next!.id, seq: 4, reason: "prev_hash_mismatch" });
  });

  it("names the gap a deleted row leaves, and a chain cut short of its head", async () => {
    const { tn } = await busyTenant("Deleted");
    await seal(tn);
    const [gone] = await q<{ id: string }>("DELETE FROM audit_events WHERE tenant_id = $1 AND seq = 5 RETURNING id", [tn.tenantId]);
    const [after] = await q<{ id: string }>("SELECT id FROM audit_events WHERE tenant_id = $1 AND seq = 6", [tn.tenantId]);
    const v = await verify(tn);
    expect(v).toMatchObject({ ok: false, checked: 4, firstBroken: { id: after!.id, seq: 5, reason: "missing_event" } });
    expect(gone!.id).not.toBe(after!.id);

    const cut = await busyTenant("Truncated");
    await seal(cut.tn);
    await q("DELETE FROM audit_events WHERE tenant_id = $1 AND seq = 7", [cut.tn.tenantId]);
    expect(await verify(cut.tn)).toMatchObject({ ok: false, checked: 6, firstBroken: { id: null, seq: 7, reason: "missing_event" } });
  });

  it("checks only the caller's chain: another tenant's tampering does not touch it", async () => {
    const a = await busyTenant("Tampered");
    const b = await busyTenant("Clean");
    await seal(a.tn);
    await tamper("UPDATE audit_events SET action = 'task.nothing' WHERE tenant_id = $1 AND seq = 2", [a.tn.tenantId]);
    expect((await verify(a.tn)).ok).toBe(false);
    expect((await verify(b.tn)).ok).toBe(true);
  });

  it("walks a chain longer than one batch", async () => {
    const tn = await createTenant(t.app, "Long");
    // 1 200 more events through the real append, in one transaction (quicker than 1 200
    // requests), all unsealed: verify seals them first, in more than one batch.
    await withTenant(t.db.database, tn.tenantId, async (tx) => {
      for (let i = 0; i < 1200; i++) {
        await repo.appendAudit(tx, { tenantId: tn.tenantId, id: `aud_bulk${i}`, actorType: "system", actorId: "test", action: "test.bulk", targetType: "test", targetId: String(i), after: { i } });
      }
    });
    const v = await verify(tn);
    expect(v).toMatchObject({ ok: true, checked: 1202, unsealed: 0, firstBroken: null });
    await tamper("UPDATE audit_events SET before = '{\"x\":1}' WHERE tenant_id = $1 AND seq = 1100", [tn.tenantId]);
    expect((await verify(tn)).firstBroken).toMatchObject({ seq: 1100, reason: "hash_mismatch" });
  });
});

describe("every mutation is audited", () => {
  it("writes one event per change on a round of mutation routes", async () => {
    const tn = await createTenant(t.app, "Mutations");
    const before = (await all(tn)).length;
    const calls: [string, string, unknown, string][] = [
      ["PUT", "/v1/agents/mutant", { apiVersion: "agent.os/v1", kind: "Agent", metadata: { name: "mutant", owner: "o" }, spec: { model: { provider: "scripted", name: "scripted-small" }, domains: ["m/*"] } }, "agent.create"],
      ["POST", "/v1/agents/mutant/pause", undefined, "agent.pause"],
      ["POST", "/v1/agents/mutant/resume", undefined, "agent.resume"],
      ["POST", "/v1/api-keys", { name: "k", scopes: ["read"] }, "api_key.create"],
      ["POST", "/v1/budgets", { scope: "tenant", window: "day", limitUsd: 5 }, "budget.create"],
      ["PATCH", "/v1/tenant", { name: "Mutated" }, "tenant.update"],
      ["POST", "/v1/proposals", { title: "p", domains: ["m/x"] }, "proposal.create"],
      ["PATCH", "/v1/proposals/settings", { approveAfterSeconds: 3600 }, "proposal_settings.update"],
    ];
    for (const [method, url, payload, action] of calls) {
      const res = await t.app.inject({ method: method as "POST", url, headers: tn.auth, ...(payload ? { payload: payload as object } : {}) });
      expect(res.statusCode, `${method} ${url}: ${res.body}`).toBeLessThan(300);
      expect((await all(tn, `&action=${action}`)).length, action).toBeGreaterThan(0);
    }
    expect((await all(tn)).length).toBe(before + calls.length);
    expect((await verify(tn)).ok).toBe(true);
  });
});
