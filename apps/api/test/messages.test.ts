import { agentRuntime, providerCache } from "@bosun/core";
import type { ModelProvider } from "@bosun/llm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyAgent, createKey, createTenant, createTestApp, problem, type TestApp, type TestTenant } from "../../../test/helpers/app";

let t: TestApp;
let acme: TestTenant;
let other: TestTenant;

beforeAll(async () => {
  t = await createTestApp();
  acme = await createTenant(t.app, "Acme");
  other = await createTenant(t.app, "Other");
});
afterAll(() => t.close());

const send = (payload: Record<string, unknown>, headers = acme.auth) => t.app.inject({ method: "POST", url: "/v1/messages", headers, payload });
const wakes = async (agentId: string) =>
  (await t.db.database.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM pgboss.job WHERE name = 'agent.wake' AND data->>'agentId' = $1`, [agentId])).rows[0]!.n;

/**
 * A model that answers the first message it was given with the `reply` tool (the message id
 * is in its input, `Message msg_… from …`), then stops: the runtime's real tool path.
 */
const replier = (m: Parameters<ReturnType<typeof providerCache>>[0]): ModelProvider => {
  const real = providerCache()(m);
  const p: ModelProvider = {
    name: "replier",
    async complete(req) {
      const turn = req.messages.filter((x) => x.role === "assistant").length;
      const first = req.messages[0]!.content.find((b) => b.type === "text");
      const id = first && first.type === "text" ? /Message (msg_[0-9a-z]{26})/.exec(first.text)?.[1] : undefined;
      if (turn > 0 || !id) return real.complete(req);
      const r = await real.complete(req);
      return { ...r, content: [{ type: "tool_use", id: "toolu_reply", name: "reply", input: { message_id: id, body: `ack ${id}` } }], stopReason: "tool_use" };
    },
  };
  return p;
};

describe("messages", () => {
  it("sends a direct message that wakes the agent, reads it back, and threads an agent's reply to the person", async () => {
    const agent = await applyAgent(t.app, acme, "inbox-agent");
    const before = await wakes(agent.id);
    const res = await send({ to: "inbox-agent", body: "How is the ledger?" });
    expect(res.statusCode).toBe(201);
    const sent = res.json();
    expect(sent).toMatchObject({ to: "inbox-agent", threadId: sent.id, replyTo: null, broadcast: false, recipients: 1 });
    expect(await wakes(agent.id)).toBe(before + 1);

    const got = await t.app.inject({ url: `/v1/messages/${sent.id}`, headers: acme.auth });
    expect(got.statusCode).toBe(200);
    expect(got.json()).toMatchObject({ id: sent.id, body: "How is the ledger?", to: { type: "agent", agent: "inbox-agent" }, from: { type: "api_key" }, readAt: null });
    const unread = await t.app.inject({ url: "/v1/messages?agent=inbox-agent&unread=true", headers: acme.auth });
    expect(unread.json().items.map((m: { id: string }) => m.id)).toEqual([sent.id]);

    // The agent runs, reads the message (it is marked read) and replies through its tool.
    const rt = agentRuntime({ database: t.db.database, jobs: t.jobs, tasks: t.services.tasks, provider: replier, workerId: "msg-test", leaseTtlSeconds: 5 });
    expect((await rt.wake({ tenantId: acme.tenantId, agentId: agent.id })).outcome).toBe("ran");
    const thread = await t.app.inject({ url: `/v1/threads/${sent.id}`, headers: acme.auth });
    expect(thread.statusCode).toBe(200);
    const msgs = thread.json().messages;
    expect(msgs.map((m: { body: string }) => m.body)).toEqual(["How is the ledger?", `ack ${sent.id}`]);
    expect(msgs[0].readAt).not.toBeNull();
    expect(msgs[1]).toMatchObject({ replyTo: sent.id, threadId: sent.id, from: { type: "agent", agent: "inbox-agent" }, to: { type: "api_key", agent: null } });

    // The person answers the agent's reply: it goes back to the agent, in the same thread.
    const again = await send({ reply_to: msgs[1].id, body: "Thanks" });
    expect(again.statusCode).toBe(201);
    expect(again.json()).toMatchObject({ to: "inbox-agent", threadId: sent.id, replyTo: msgs[1].id });
    // And a direct message may continue the thread explicitly.
    const cont = await send({ to: "inbox-agent", body: "One more thing", thread_id: sent.id });
    expect(cont.json().threadId).toBe(sent.id);
    const all = await t.app.inject({ url: `/v1/messages?thread=${sent.id}`, headers: acme.auth });
    expect(all.json().items).toHaveLength(4);
  });

  it("broadcasts to every active agent, each with its own unread state, and wakes each once", async () => {
    const a = await applyAgent(t.app, acme, "bcast-a");
    const b = await applyAgent(t.app, acme, "bcast-b");
    const paused = await applyAgent(t.app, acme, "bcast-paused");
    expect((await t.app.inject({ method: "POST", url: "/v1/agents/bcast-paused/pause", headers: acme.auth })).statusCode).toBe(200);
    const active = (await t.db.database.pool.query<{ id: string }>(`SELECT id FROM agents WHERE tenant_id = $1 AND status = 'active'`, [acme.tenantId])).rows.map((r) => r.id);
    const res = await send({ broadcast: true, body: "Freeze deploys tonight." });
    expect(res.statusCode).toBe(201);
    const sent = res.json();
    expect(sent).toMatchObject({ to: "*", broadcast: true, recipients: active.length, threadId: sent.id });
    expect(sent.id).toMatch(/^brd_/);
    const rows = (await t.db.database.pool.query<{ to_agent_id: string }>(`SELECT to_agent_id FROM messages WHERE broadcast_id = $1`, [sent.id])).rows;
    expect(rows.map((r) => r.to_agent_id).sort()).toEqual([...active].sort());
    expect(rows.map((r) => r.to_agent_id)).not.toContain(paused.id);
    // Other tenants' agents get nothing.
    expect((await t.db.database.pool.query(`SELECT 1 FROM messages WHERE broadcast_id = $1 AND tenant_id <> $2`, [sent.id, acme.tenantId])).rowCount).toBe(0);

    // A reads it (a run); B's copy stays unread.
    const rt = agentRuntime({ database: t.db.database, jobs: t.jobs, tasks: t.services.tasks, provider: providerCache(), workerId: "bcast", leaseTtlSeconds: 5 });
    expect((await rt.wake({ tenantId: acme.tenantId, agentId: a.id })).outcome).toBe("ran");
    const unreadA = await t.app.inject({ url: "/v1/messages?agent=bcast-a&unread=true", headers: acme.auth });
    const unreadB = await t.app.inject({ url: "/v1/messages?agent=bcast-b&unread=true", headers: acme.auth });
    expect(unreadA.json().items).toHaveLength(0);
    expect(unreadB.json().items.map((m: { broadcastId: string }) => m.broadcastId)).toEqual([sent.id]);
    // The thread shows the broadcast once.
    const thread = await t.app.inject({ url: `/v1/threads/${sent.id}`, headers: acme.auth });
    expect(thread.json().messages).toHaveLength(1);
    void b;
  });

  it("shows an agent's key only its own messages; another tenant sees none of them", async () => {
    await applyAgent(t.app, acme, "private-a");
    await applyAgent(t.app, acme, "private-b");
    const toA = (await send({ to: "private-a", body: "for A" })).json();
    const toB = (await send({ to: "private-b", body: "for B" })).json();
    const keyA = await createKey(t.app, acme, { scopes: ["write"], agent: "private-a" });
    const listed = await t.app.inject({ url: "/v1/messages?limit=200", headers: keyA.auth });
    const ids = listed.json().items.map((m: { id: string }) => m.id);
    expect(ids).toContain(toA.id);
    expect(ids).not.toContain(toB.id);
    expect((await t.app.inject({ url: `/v1/messages/${toB.id}`, headers: keyA.auth })).statusCode).toBe(404);
    expect((await t.app.inject({ url: `/v1/threads/${toB.id}`, headers: keyA.auth })).statusCode).toBe(404);
    expect((await t.app.inject({ url: "/v1/messages?agent=private-b", headers: keyA.auth })).statusCode).toBe(404);
    // An agent may not answer a message it never saw.
    const sneaky = await send({ reply_to: toB.id, body: "hijack" }, keyA.auth);
    expect(sneaky.statusCode).toBe(422);
    expect(problem(sneaky).errors?.[0]?.path).toBe("reply_to");
    // Its own message to B is from the agent.
    const fromA = await send({ to: "private-b", body: "hi B" }, keyA.auth);
    expect(fromA.statusCode).toBe(201);
    const m = await t.app.inject({ url: `/v1/messages/${fromA.json().id}`, headers: acme.auth });
    expect(m.json().from).toMatchObject({ type: "agent", agent: "private-a" });

    // Another tenant: nothing of Acme's.
    const theirs = await t.app.inject({ url: "/v1/messages?limit=200", headers: other.auth });
    expect(theirs.statusCode).toBe(200);
    expect(theirs.json().items).toEqual([]);
    expect((await t.app.inject({ url: `/v1/messages/${toA.id}`, headers: other.auth })).statusCode).toBe(404);
    const cross = await send({ reply_to: toA.id, body: "x" }, other.auth);
    expect(cross.statusCode).toBe(422);
    const bc = await send({ broadcast: true, body: "other tenant's broadcast" }, other.auth);
    expect(bc.json().recipients).toBe(0);
  });
});
