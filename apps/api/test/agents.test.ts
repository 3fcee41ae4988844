import { repo, withTenant } from "@bosun/db";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyAgent, createTenant, createTestApp, descriptor, problem, type TestApp, type TestTenant } from "../../../test/helpers/app";

let t: TestApp;
let acme: TestTenant;

beforeAll(async () => {
  t = await createTestApp();
  acme = await createTenant(t.app);
});
afterAll(() => t.close());

const yamlDescriptor = (name: string, soul = "Careful and terse.") => `apiVersion: agent.os/v1
kind: Agent
metadata:
  name: ${name}
  owner: finance-platform
spec:
  model: { provider: anthropic, name: claude-opus-4-7, pinned_revision: "2026-02-14" }
  soul: |
    ${soul}
  drives:
    - name: ledger-accuracy
      question: Are all invoices reconciled within a day?
  memory: { type: persistent, retention_days: 90, working_tokens: 2000 }
  tools: [ mcp://gateway/sap-invoice-read, mcp://gateway/ledger-read ]
  domains: [ finance/* ]
  schedule: { every: 15m }
  budgets: { calls_per_hour: 200, usd_per_day: 40, usd_per_invocation: 2 }
  approval: { on_action_value_usd_gt: 1000 }
`;

async function auditFor(agentId: string) {
  return withTenant(t.db.database, acme.tenantId, (tx) =>
    repo.listAuditForTarget(tx, { tenantId: acme.tenantId, targetType: "agent", targetId: agentId }),
  );
}

describe("applying descriptors", () => {
  it("applies YAML, then the same spec again keeps the revision, and a change makes revision 2", async () => {
    const put = (body: string) =>
      t.app.inject({ method: "PUT", url: "/v1/agents/recon", headers: { ...acme.auth, "content-type": "application/yaml" }, payload: body });
    const first = await put(yamlDescriptor("recon"));
    expect(first.statusCode).toBe(201);
    const a1 = first.json();
    expect(a1).toMatchObject({ name: "recon", owner: "finance-platform", status: "active", revision: 1, changed: true });
    expect(a1.descriptor.spec.budgets).toEqual({ calls_per_hour: 200, usd_per_day: 40, usd_per_invocation: 2 });

    const again = await put(yamlDescriptor("recon"));
    expect(again.statusCode).toBe(200);
    expect(again.json()).toMatchObject({ revision: 1, changed: false, specHash: a1.specHash });

    const changed = await put(yamlDescriptor("recon", "Careful, terse and polite."));
    expect(changed.statusCode).toBe(200);
    expect(changed.json()).toMatchObject({ revision: 2, changed: true });
    expect(changed.json().specHash).not.toBe(a1.specHash);

    const revs = await t.app.inject({ url: "/v1/agents/recon/revisions", headers: acme.auth });
    expect(revs.json().items.map((r: { revision: number }) => r.revision)).toEqual([1, 2]);
    expect(revs.json().items[0].createdBy).toEqual({ type: "api_key", id: expect.stringMatching(/^key_/) });

    const diff = await t.app.inject({ url: "/v1/agents/recon/revisions/1/diff?to=2", headers: acme.auth });
    expect(diff.statusCode).toBe(200);
    expect(diff.json()).toEqual({
      from: 1,
      to: 2,
      changes: [{ path: "spec.soul", op: "replace", from: "Careful and terse.\n", to: "Careful, terse and polite.\n" }],
    });

    // Two mutations, two audit events with before and after; the no-op apply wrote none.
    const events = await auditFor(a1.id);
    expect(events.map((e) => e.action)).toEqual(["agent.create", "agent.apply"]);
    expect(events[1]!.before).toMatchObject({ revision: 1 });
    expect(events[1]!.after).toMatchObject({ revision: 2 });
    expect(events[1]!.actorType).toBe("api_key");
  });

  it("accepts JSON and YAML for the same descriptor as the same revision", async () => {
    const json = await t.app.inject({ method: "PUT", url: "/v1/agents/both", headers: acme.auth, payload: descriptor("both") });
    expect(json.statusCode).toBe(201);
    const yaml = `apiVersion: agent.os/v1
kind: Agent
metadata: { name: both, owner: platform }
spec:
  model: { provider: scripted, name: scripted-small, pinned_revision: "2026-01-01" }
  soul: You are a test agent.
  domains: [ "test/*" ]
`;
    const res = await t.app.inject({ method: "PUT", url: "/v1/agents/both", headers: { ...acme.auth, "content-type": "application/yaml" }, payload: yaml });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ revision: 1, changed: false });
  });

  it("names the path of an unknown field and of a wrong type", async () => {
    const unknown = await t.app.inject({
      method: "PUT",
      url: "/v1/agents/bad",
      headers: acme.auth,
      payload: descriptor("bad", { model: { provider: "scripted", name: "x", temperature: 2 } }),
    });
    expect(unknown.statusCode).toBe(422);
    expect(problem(unknown).errors).toContainEqual({ path: "spec.model.temperature", message: "unknown field 'temperature'" });

    const wrongType = await t.app.inject({
      method: "PUT",
      url: "/v1/agents/bad",
      headers: acme.auth,
      payload: descriptor("bad", { budgets: { usd_per_day: "forty" } }),
    });
    expect(wrongType.statusCode).toBe(422);
    expect(problem(wrongType).errors?.map((e) => e.path)).toEqual(["spec.budgets.usd_per_day"]);

    const mismatch = await t.app.inject({ method: "PUT", url: "/v1/agents/other", headers: acme.auth, payload: descriptor("bad") });
    expect(mismatch.statusCode).toBe(422);
    expect(problem(mismatch).errors?.[0]?.path).toBe("metadata.name");

    const gone = await t.app.inject({ url: "/v1/agents/bad", headers: acme.auth });
    expect(gone.statusCode).toBe(404);
  });

  it("refuses a model base_url that is not http(s) and more than 64 labels", async () => {
    const url = await t.app.inject({
      method: "PUT",
      url: "/v1/agents/urls",
      headers: acme.auth,
      payload: descriptor("urls", { model: { provider: "openai-compatible", name: "m", base_url: "file:///etc/passwd" } }),
    });
    expect(url.statusCode).toBe(422);
    expect(problem(url).errors?.map((e) => e.path)).toEqual(["spec.model.base_url"]);
    const labels = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`l${i}`, "v"]));
    const many = await t.app.inject({
      method: "PUT",
      url: "/v1/agents/urls",
      headers: acme.auth,
      payload: { ...descriptor("urls"), metadata: { name: "urls", owner: "o", labels } },
    });
    expect(many.statusCode).toBe(422);
    expect(problem(many).errors?.map((e) => e.path)).toEqual(["metadata.labels"]);
  });

  it("reports malformed YAML with its line", async () => {
    const res = await t.app.inject({
      method: "PUT",
      url: "/v1/agents/broken",
      headers: { ...acme.auth, "content-type": "application/yaml" },
      payload: "apiVersion: agent.os/v1\nkind: [Agent\nmetadata: {",
    });
    expect(res.statusCode).toBe(400);
    expect(problem(res).detail).toMatch(/malformed YAML at line \d+/);
  });

  it("makes exactly one agent and one revision when the same apply races ten times", async () => {
    const results = await Promise.all(
      Array.from({ length: 10 }, () => t.app.inject({ method: "PUT", url: "/v1/agents/racer", headers: acme.auth, payload: descriptor("racer") })),
    );
    expect(results.map((r) => r.statusCode).sort()).toEqual([200, 200, 200, 200, 200, 200, 200, 200, 200, 201]);
    const ids = new Set(results.map((r) => r.json().id));
    expect(ids.size).toBe(1);
    const revs = await t.app.inject({ url: "/v1/agents/racer/revisions", headers: acme.auth });
    expect(revs.json().items).toHaveLength(1);
  });
});

describe("status changes", () => {
  it("pauses, resumes and retires, auditing each change, and refuses to change a retired agent", async () => {
    const a = await applyAgent(t.app, acme, "lifecycle");
    const post = (action: string) => t.app.inject({ method: "POST", url: `/v1/agents/lifecycle/${action}`, headers: acme.auth });
    expect((await post("pause")).json().status).toBe("paused");
    expect((await post("pause")).json().status).toBe("paused");
    expect((await post("resume")).json().status).toBe("active");
    expect((await post("retire")).json().status).toBe("retired");
    const resume = await post("resume");
    expect(resume.statusCode).toBe(409);
    expect(problem(resume).code).toBe("CONFLICT");
    const apply = await t.app.inject({ method: "PUT", url: "/v1/agents/lifecycle", headers: acme.auth, payload: descriptor("lifecycle", { soul: "new" }) });
    expect(apply.statusCode).toBe(409);

    const events = await auditFor(a.id);
    expect(events.map((e) => e.action)).toEqual(["agent.create", "agent.pause", "agent.resume", "agent.retire"]);
    expect(events[1]).toMatchObject({ before: { status: "active" }, after: { status: "paused" } });
  });
});

describe("listing and creating", () => {
  it("pages through agents with a cursor and filters by status", async () => {
    for (const n of ["page-a", "page-b", "page-c", "page-d", "page-e"]) await applyAgent(t.app, acme, n);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const q: string = cursor ? `&cursor=${encodeURIComponent(cursor)}` : "";
      const res = await t.app.inject({ url: `/v1/agents?limit=2${q}`, headers: acme.auth });
      expect(res.statusCode).toBe(200);
      const body = res.json();
      expect(body.items.length).toBeLessThanOrEqual(2);
      seen.push(...body.items.map((a: { name: string }) => a.name));
      cursor = body.nextCursor;
    } while (cursor);
    expect(seen.filter((n) => n.startsWith("page-"))).toEqual(["page-a", "page-b", "page-c", "page-d", "page-e"]);
    expect(new Set(seen).size).toBe(seen.length);

    await t.app.inject({ method: "POST", url: "/v1/agents/page-c/pause", headers: acme.auth });
    const paused = await t.app.inject({ url: "/v1/agents?status=paused", headers: acme.auth });
    expect(paused.json().items.map((a: { name: string }) => a.name)).toEqual(["page-c"]);

    const badCursor = await t.app.inject({ url: "/v1/agents?cursor=garbage", headers: acme.auth });
    expect(badCursor.statusCode).toBe(400);
  });

  it("POST creates once per Idempotency-Key, replays the response, and refuses a reused key with another body", async () => {
    const headers = { ...acme.auth, "idempotency-key": "create-idem-1" };
    const [a, b] = await Promise.all([
      t.app.inject({ method: "POST", url: "/v1/agents", headers, payload: descriptor("idem") }),
      t.app.inject({ method: "POST", url: "/v1/agents", headers, payload: descriptor("idem") }),
    ]);
    expect([a.statusCode, b.statusCode]).toEqual([201, 201]);
    expect(a.json().id).toBe(b.json().id);
    expect([a.headers["idempotent-replayed"], b.headers["idempotent-replayed"]].filter(Boolean)).toEqual(["true"]);

    const other = await t.app.inject({ method: "POST", url: "/v1/agents", headers, payload: descriptor("idem-2") });
    expect(other.statusCode).toBe(422);
    expect(problem(other).code).toBe("IDEMPOTENCY_CONFLICT");
    expect((await t.app.inject({ url: "/v1/agents/idem-2", headers: acme.auth })).statusCode).toBe(404);

    const dup = await t.app.inject({ method: "POST", url: "/v1/agents", headers: acme.auth, payload: descriptor("idem") });
    expect(dup.statusCode).toBe(409);
  });
});
