import type { LightMyRequestResponse } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyAgent, createKey, createTenant, createTestApp, PUBLIC_URL, problem, type TestApp, type TestTenant } from "../../../test/helpers/app";

/**
 * Proposals over the API, with the timer driven by an injected clock: the evaluator is
 * called with `now` hours ahead of the real one instead of anybody sleeping.
 */

let t: TestApp;
let acme: TestTenant;
const key: Record<string, { authorization: string }> = {};
const agentId: Record<string, string> = {};
const HOUR = 3_600_000;

type Auth = { authorization: string } | { cookie: string; origin: string };

const propose = (body: Record<string, unknown>, auth: Auth = key.planner!, headers: Record<string, string> = {}) =>
  t.app.inject({ method: "POST", url: "/v1/proposals", headers: { ...auth, ...headers }, payload: body });
const respond = (id: string, agent: string, stance: string, comment?: string) =>
  t.app.inject({ method: "POST", url: `/v1/proposals/${id}/responses`, headers: key[agent]!, payload: { stance, ...(comment ? { comment } : {}) } });
const decide = (id: string, decision: string, auth: Auth = acme.auth) =>
  t.app.inject({ method: "POST", url: `/v1/proposals/${id}/decide`, headers: auth, payload: { decision } });
const get = async (id: string) => (await t.app.inject({ url: `/v1/proposals/${id}`, headers: acme.auth })).json();
const q = async <T = Record<string, unknown>>(sql: string, values: unknown[] = []) => (await t.db.database.pool.query(sql, values)).rows as T[];

async function created(res: LightMyRequestResponse) {
  expect(res.statusCode, res.body).toBe(201);
  return res.json();
}

/** A proposal's creation time as the evaluator's clock sees it, plus `ms`. */
const after = (p: { approveAt: string }, ms: number) => new Date(new Date(p.approveAt).getTime() - 24 * HOUR + ms);

const tasksTitled = async (title: string) => (await q<{ n: number }>("SELECT count(*)::int AS n FROM tasks WHERE tenant_id = $1 AND title = $2", [acme.tenantId, title]))[0]!.n;

beforeAll(async () => {
  t = await createTestApp();
  acme = await createTenant(t.app, "Acme");
  for (const [name, domains] of [
    ["fin", ["finance/*"]],
    ["fin-deep", ["finance/**"]],
    ["ops", ["ops/*"]],
    ["planner", ["plan/*"]],
    ["retiring", ["hr/*"]],
  ] as const) {
    agentId[name] = (await applyAgent(t.app, acme, name, { domains: [...domains] })).id;
    key[name] = (await createKey(t.app, acme, { scopes: ["write"], agent: name })).auth;
  }
});
afterAll(() => t?.close());

describe("asking", () => {
  it("asks the agents whose domains cover the proposal's, never the proposer, with deadlines from the tenant's windows", async () => {
    const before = Date.now();
    const p = await created(await propose({ title: "Reconcile April", domains: ["finance/invoices", "plan/q2"] }));
    expect(p).toMatchObject({
      status: "open",
      domains: ["finance/invoices", "plan/q2"],
      proposer: { type: "agent", id: agentId.planner },
      action: null,
      decidedAt: null,
      appliedAt: null,
    });
    expect(p.responses.map((r: { agent: string; stance: null }) => [r.agent, r.stance])).toEqual([
      ["fin", null],
      ["fin-deep", null],
    ]);
    const approveIn = new Date(p.approveAt).getTime() - before;
    expect(approveIn).toBeGreaterThanOrEqual(24 * HOUR - 1000);
    expect(approveIn).toBeLessThan(24 * HOUR + 60_000);
    expect(new Date(p.escalateAt).getTime() - new Date(p.approveAt).getTime()).toBe(24 * HOUR);
    // The domains of the tasks an action would create are part of the proposal's.
    const withTasks = await created(await propose({ title: "Ops work", domains: ["plan/x"], action: { type: "create_tasks", tasks: [{ title: "t", domain: "ops/deploys" }] } }));
    expect(withTasks.domains).toEqual(["plan/x", "ops/deploys"]);
    expect(withTasks.responses.map((r: { agent: string }) => r.agent)).toEqual(["ops"]);
    // A person's proposal: the proposer is the key.
    const byKey = await created(await propose({ title: "From a person", domains: ["plan/x"] }, acme.auth));
    expect(byKey.proposer.type).toBe("api_key");
    expect(byKey.responses.map((r: { agent: string }) => r.agent)).toEqual(["planner"]);
  });

  it("replays a create with the same Idempotency-Key", async () => {
    const body = { title: "Once", domains: ["ops/once"] };
    const first = await created(await propose(body, key.planner, { "idempotency-key": "prp-once" }));
    const again = await propose(body, key.planner, { "idempotency-key": "prp-once" });
    expect(again.statusCode).toBe(201);
    expect(again.headers["idempotent-replayed"]).toBe("true");
    expect(again.json().id).toBe(first.id);
    expect((await q("SELECT id FROM proposals WHERE title = 'Once'")).length).toBe(1);
  });

  it("refuses bad proposals with the field's path", async () => {
    for (const [body, path] of [
      [{ title: "x", domains: [] }, "domains"],
      [{ title: "x", domains: ["finance/*"] }, "domains.0"],
      [{ title: "x", domains: ["a/b"], action: { type: "drop_tables" } }, "action.type"],
      [{ title: "x", domains: ["a/b"], action: { type: "create_tasks", tasks: [{ title: "no target" }] } }, "action.tasks.0.assignee"],
      [{ title: "x", domains: ["a/b"], action: { type: "set_agent_domains", agent: "nobody", domains: ["a/*"] } }, "action.agent"],
      [{ title: "x", domains: ["a/b"], extra: 1 }, "extra"],
    ] as const) {
      const res = await propose(body as Record<string, unknown>);
      expect(res.statusCode, JSON.stringify(body)).toBe(422);
      expect(problem(res).errors?.map((e) => e.path)).toContain(path);
    }
  });
});

describe("deciding", () => {
  it("approves at once on unanimous support and applies the action exactly once", async () => {
    const p = await created(
      await propose({ title: "Split invoices", domains: ["finance/invoices"], action: { type: "create_tasks", tasks: [{ title: "unanimous-task", domain: "finance/invoices" }] } }),
    );
    const one = await respond(p.id, "fin", "support", "fine by me");
    expect(one.statusCode).toBe(200);
    expect(one.json()).toMatchObject({ status: "open", appliedAt: null });
    expect(await tasksTitled("unanimous-task")).toBe(0);
    const two = (await respond(p.id, "fin-deep", "support")).json();
    expect(two).toMatchObject({ status: "approved", decisionReason: "unanimous_support", decidedBy: { type: "agent", id: agentId["fin-deep"] }, actionError: null });
    expect(two.appliedAt).not.toBeNull();
    expect(two.actionResult.taskIds).toHaveLength(1);
    const task = (await t.app.inject({ url: `/v1/tasks/${two.actionResult.taskIds[0]}`, headers: acme.auth })).json();
    expect(task).toMatchObject({ title: "unanimous-task", domain: "finance/invoices", createdBy: { type: "system", id: `proposal:${p.id}` } });
    expect(two.responses.map((r: { agent: string; stance: string; comment: string | null }) => [r.agent, r.stance, r.comment])).toEqual([
      ["fin", "support", "fine by me"],
      ["fin-deep", "support", null],
    ]);
    // Decided: no more responses, no second decision, no second application.
    const late = await respond(p.id, "fin", "block");
    expect(late.statusCode).toBe(409);
    expect(problem(late).code).toBe("CONFLICT");
    expect((await decide(p.id, "approve")).statusCode).toBe(409);
    await t.services.proposals.evaluateDue(new Date(Date.now() + 100 * HOUR));
    expect(await tasksTitled("unanimous-task")).toBe(1);
  });

  it("approves after 24 hours of silence, not a minute before (injected clock); a concern does not hold it", async () => {
    const silent = await created(await propose({ title: "Silent", domains: ["finance/silence"] }));
    const concerned = await created(await propose({ title: "Concerned", domains: ["finance/concern"] }));
    expect((await respond(concerned.id, "fin", "concern", "watch the totals")).json().status).toBe("open");
    await t.services.proposals.evaluateDue(after(silent, 24 * HOUR - 60_000));
    expect((await get(silent.id)).status).toBe("open");
    expect((await get(concerned.id)).status).toBe("open");
    await t.services.proposals.evaluateDue(after(concerned, 24 * HOUR + 1000));
    for (const id of [silent.id, concerned.id]) {
      expect(await get(id)).toMatchObject({ status: "approved", decisionReason: "no_objection", decidedBy: { type: "system", id: "proposal-timer" } });
    }
  });

  it("holds a blocked proposal past 24 hours, escalates it at 48, and a person decides it, applying its action", async () => {
    const p = await created(
      await propose({ title: "Give ops the reports", domains: ["finance/reports"], action: { type: "set_agent_domains", agent: "ops", domains: ["ops/*", "finance/reports"] } }),
    );
    // The agent whose domains would change is asked too.
    expect(p.responses.map((r: { agent: string }) => r.agent)).toEqual(["fin", "fin-deep", "ops"]);
    expect((await respond(p.id, "fin", "block", "reports are ours")).json().status).toBe("open");
    expect((await respond(p.id, "fin-deep", "support")).json().status).toBe("open");
    expect((await respond(p.id, "ops", "support")).json().status).toBe("open");
    await t.services.proposals.evaluateDue(after(p, 25 * HOUR));
    expect((await get(p.id)).status).toBe("open");
    await t.services.proposals.evaluateDue(after(p, 48 * HOUR - 60_000));
    expect((await get(p.id)).status).toBe("open");
    const counts = await t.services.proposals.evaluateDue(after(p, 48 * HOUR + 1000));
    expect(counts.escalated).toBeGreaterThanOrEqual(1);
    const escalated = await get(p.id);
    expect(escalated).toMatchObject({ status: "escalated", decidedAt: null, appliedAt: null });
    expect(escalated.escalatedAt).not.toBeNull();
    const inbox = (await t.app.inject({ url: "/v1/proposals?status=escalated", headers: acme.auth })).json();
    expect(inbox.items.map((i: { id: string }) => i.id)).toContain(p.id);
    const human = (await t.app.inject({ url: "/v1/inbox?kind=proposal", headers: acme.auth })).json();
    expect(human.items).toContainEqual(expect.objectContaining({ kind: "proposal", id: p.id }));
    // Agents no longer respond; people decide.
    expect((await respond(p.id, "fin", "support")).statusCode).toBe(409);
    expect((await t.app.inject({ url: "/v1/agents/ops", headers: acme.auth })).json().revision).toBe(1);
    const decided = await decide(p.id, "approve");
    expect(decided.statusCode).toBe(200);
    expect(decided.json()).toMatchObject({ status: "approved", decisionReason: "person", actionResult: { agent: "ops", revision: 2, changed: true } });
    const ops = (await t.app.inject({ url: "/v1/agents/ops", headers: acme.auth })).json();
    expect(ops.revision).toBe(2);
    expect(ops.descriptor.spec.domains).toEqual(["ops/*", "finance/reports"]);
    // Ownership follows the new domains at once: ops may now write there, and only there.
    const mine = await t.app.inject({ method: "POST", url: "/v1/tasks", headers: key.ops!, payload: { title: "reports", domain: "finance/reports" } });
    expect(mine.statusCode).toBe(201);
    const notMine = await t.app.inject({ method: "POST", url: "/v1/tasks", headers: key.ops!, payload: { title: "ledger", domain: "finance/ledger" } });
    expect(problem(notMine).code).toBe("OUTSIDE_DOMAIN");
  });

  it("lets a person reject an open proposal; its action never runs", async () => {
    const p = await created(await propose({ title: "Rejected", domains: ["ops/no"], action: { type: "create_tasks", tasks: [{ title: "never-made", domain: "ops/no" }] } }));
    const res = await decide(p.id, "reject");
    expect(res.json()).toMatchObject({ status: "rejected", decisionReason: "person", decidedBy: { type: "api_key" }, appliedAt: null });
    await t.services.proposals.evaluateDue(after(p, 100 * HOUR));
    expect(await tasksTitled("never-made")).toBe(0);
  });

  it("records an action that cannot be applied instead of applying half of it", async () => {
    const p = await created(
      await propose({
        title: "Half",
        domains: ["hr/people"],
        action: {
          type: "create_tasks",
          tasks: [
            { title: "half-1", domain: "hr/people" },
            { title: "half-2", assignee: "retiring" },
          ],
        },
      }),
    );
    expect((await t.app.inject({ method: "POST", url: "/v1/agents/retiring/retire", headers: acme.auth })).statusCode).toBe(200);
    await t.services.proposals.evaluateDue(after(p, 24 * HOUR + 1000));
    const done = await get(p.id);
    expect(done).toMatchObject({ status: "approved", appliedAt: null });
    expect(done.actionError).toMatch(/^VALIDATION: agent 'retiring' is retired/);
    expect(await tasksTitled("half-1")).toBe(0);
  });
});

describe("exactly once under concurrency", () => {
  it("applies each action once when four evaluators race", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) {
      ids.push((await created(await propose({ title: `race ${i}`, domains: ["ops/race"], action: { type: "create_tasks", tasks: [{ title: "raced-task", domain: "ops/race" }] } }))).id);
    }
    const now = new Date(Date.now() + 25 * HOUR);
    const results = await Promise.all(Array.from({ length: 4 }, () => t.services.proposals.evaluateDue(now)));
    expect(results.reduce((n, r) => n + r.approved, 0)).toBeGreaterThanOrEqual(6);
    expect(await tasksTitled("raced-task")).toBe(6);
    for (const id of ids) expect((await get(id)).status).toBe("approved");
    const applied = await q<{ n: number }>("SELECT count(*)::int AS n FROM audit_events WHERE action = 'proposal.apply' AND target_id = ANY($1)", [ids]);
    expect(applied[0]!.n).toBe(6);
  });

  it("answers the same decide request sent twice at once with one approval and one 409", async () => {
    const p = await created(await propose({ title: "Twice", domains: ["ops/twice"], action: { type: "create_tasks", tasks: [{ title: "twice-task", domain: "ops/twice" }] } }));
    const [a, b] = await Promise.all([decide(p.id, "approve"), decide(p.id, "approve")]);
    expect([a.statusCode, b.statusCode].sort()).toEqual([200, 409]);
    expect(await tasksTitled("twice-task")).toBe(1);
  });

  it("lets a response and the timer meet without a double decision", async () => {
    const p = await created(await propose({ title: "Met", domains: ["ops/met"], action: { type: "create_tasks", tasks: [{ title: "met-task", domain: "ops/met" }] } }));
    const [r] = await Promise.all([respond(p.id, "ops", "support"), t.services.proposals.evaluateDue(after(p, 24 * HOUR + 1000))]);
    expect([200, 409]).toContain(r.statusCode);
    expect((await get(p.id)).status).toBe("approved");
    expect(await tasksTitled("met-task")).toBe(1);
  });
});

describe("who may do what", () => {
  it("only asked agents respond; people decide; agents do not decide; read credentials only read", async () => {
    const p = await created(await propose({ title: "Rights", domains: ["finance/rights"] }));
    const notAsked = await respond(p.id, "ops", "support");
    expect(notAsked.statusCode).toBe(403);
    expect(problem(notAsked).detail).toMatch(/not asked/);
    const person = await t.app.inject({ method: "POST", url: `/v1/proposals/${p.id}/responses`, headers: acme.auth, payload: { stance: "support" } });
    expect(person.statusCode).toBe(403);
    expect(problem(person).detail).toMatch(/decide/);
    const agentDecides = await decide(p.id, "approve", key.fin!);
    expect(agentDecides.statusCode).toBe(403);
    const read = await createKey(t.app, acme, { scopes: ["read"] });
    expect((await propose({ title: "r", domains: ["a/b"] }, read.auth)).statusCode).toBe(403);
    expect((await decide(p.id, "approve", read.auth)).statusCode).toBe(403);
    expect((await t.app.inject({ url: `/v1/proposals/${p.id}`, headers: read.auth })).statusCode).toBe(200);
    // An agent may change its response while the proposal is open.
    expect((await respond(p.id, "fin", "block")).json().responses[0]).toMatchObject({ agent: "fin", stance: "block" });
    expect((await respond(p.id, "fin", "concern")).json().responses[0]).toMatchObject({ agent: "fin", stance: "concern" });
  });

  it("keeps one tenant's proposals from another", async () => {
    const p = await created(await propose({ title: "Private", domains: ["finance/private"] }));
    const other = await createTenant(t.app, "Other");
    expect((await t.app.inject({ url: `/v1/proposals/${p.id}`, headers: other.auth })).statusCode).toBe(404);
    expect((await t.app.inject({ method: "POST", url: `/v1/proposals/${p.id}/decide`, headers: other.auth, payload: { decision: "approve" } })).statusCode).toBe(404);
    const list = (await t.app.inject({ url: "/v1/proposals?limit=200", headers: other.auth })).json();
    expect(list.items).toEqual([]);
    expect((await get(p.id)).status).toBe("open");
  });

  it("filters the list by an asked agent and by status", async () => {
    const p = await created(await propose({ title: "For ops", domains: ["ops/filter"] }));
    const asked = (await t.app.inject({ url: "/v1/proposals?asked=ops&status=open&limit=200", headers: key.ops! })).json();
    expect(asked.items.map((i: { id: string }) => i.id)).toContain(p.id);
    for (const i of asked.items as { status: string }[]) expect(i.status).toBe("open");
    const notAsked = (await t.app.inject({ url: "/v1/proposals?asked=fin&limit=200", headers: acme.auth })).json();
    expect(notAsked.items.map((i: { id: string }) => i.id)).not.toContain(p.id);
    expect((await t.app.inject({ url: "/v1/proposals?asked=nobody", headers: acme.auth })).json().items).toEqual([]);
  });

  it("pages the list newest first with a cursor", async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res = (await t.app.inject({ url: `/v1/proposals?limit=3${cursor ? `&cursor=${cursor}` : ""}`, headers: acme.auth })).json() as {
        items: { id: string }[];
        nextCursor: string | null;
      };
      seen.push(...res.items.map((i) => i.id));
      cursor = res.nextCursor;
    } while (cursor);
    const all = (await q<{ id: string }>("SELECT id FROM proposals WHERE tenant_id = $1 ORDER BY id DESC", [acme.tenantId])).map((r) => r.id);
    expect(seen).toEqual(all);
  });
});

describe("the API description", () => {
  it("documents the proposal and audit routes with their schemas", async () => {
    const doc = (await t.app.inject({ url: "/docs/json" })).json();
    for (const path of ["/v1/proposals", "/v1/proposals/{id}", "/v1/proposals/{id}/responses", "/v1/proposals/{id}/decide", "/v1/proposals/settings", "/v1/audit", "/v1/audit/verify"]) {
      expect(Object.keys(doc.paths)).toContain(path);
    }
    expect(JSON.stringify(doc.paths["/v1/proposals"].post.requestBody)).toContain("domains");
    expect(JSON.stringify(doc)).toContain("set_agent_domains");
  });
});

describe("windows", () => {
  it("are the tenant's: an admin changes them, later proposals follow them, and nonsense is refused", async () => {
    expect((await t.app.inject({ url: "/v1/proposals/settings", headers: acme.auth })).json()).toEqual({ approveAfterSeconds: 86_400, escalateAfterSeconds: 172_800 });
    const write = await createKey(t.app, acme, { scopes: ["write"] });
    expect((await t.app.inject({ method: "PATCH", url: "/v1/proposals/settings", headers: write.auth, payload: { approveAfterSeconds: 3600 } })).statusCode).toBe(403);
    const bad = await t.app.inject({ method: "PATCH", url: "/v1/proposals/settings", headers: acme.auth, payload: { approveAfterSeconds: 200_000 } });
    expect(bad.statusCode).toBe(422);
    expect(problem(bad).errors?.[0]?.path).toBe("approveAfterSeconds");
    const ok = await t.app.inject({
      method: "PATCH",
      url: "/v1/proposals/settings",
      headers: { cookie: acme.cookie, origin: PUBLIC_URL },
      payload: { approveAfterSeconds: 3600, escalateAfterSeconds: 7200 },
    });
    expect(ok.json()).toEqual({ approveAfterSeconds: 3600, escalateAfterSeconds: 7200 });
    const p = await created(await propose({ title: "Quick", domains: ["finance/quick"] }));
    expect(new Date(p.escalateAt).getTime() - new Date(p.approveAt).getTime()).toBe(HOUR);
    const createdAt = new Date(p.createdAt).getTime();
    expect(Math.abs(new Date(p.approveAt).getTime() - createdAt - HOUR)).toBeLessThan(60_000);
    await t.services.proposals.evaluateDue(new Date(new Date(p.approveAt).getTime() + 1000));
    expect((await get(p.id)).status).toBe("approved");
    await t.app.inject({ method: "PATCH", url: "/v1/proposals/settings", headers: acme.auth, payload: { approveAfterSeconds: 86_400, escalateAfterSeconds: 172_800 } });
  });
});
