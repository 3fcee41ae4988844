import { describe, expect, it } from "vitest";
import { COMPLETE_TASK_TOOL, createProvider, type Message, type ModelRequest, scriptSchema } from "../src/index";

const completeTask = {
  name: COMPLETE_TASK_TOOL,
  description: "Finish the task with a result",
  inputSchema: { type: "object", properties: { result: { type: "string" } }, required: ["result"] },
};

const request = (messages: Message[], over: Partial<ModelRequest> = {}): ModelRequest => ({
  model: "scripted-small",
  system: "You reconcile invoices.",
  messages,
  tools: [completeTask],
  maxTokens: 256,
  ...over,
});

const task: Message = { role: "user", content: [{ type: "text", text: "Reconcile invoice INV-7 against the ledger\nDetails follow." }] };

describe("scripted provider", () => {
  it("with no script, completes the task it is given through complete_task", async () => {
    const p = createProvider({ provider: "scripted" });
    const r = await p.complete(request([task]));
    expect(r).toMatchObject({
      provider: "scripted",
      model: "scripted-small",
      requestedModel: "scripted-small",
      stopReason: "tool_use",
      attempts: 1,
      content: [{ type: "tool_use", name: "complete_task", input: { result: "Completed: Reconcile invoice INV-7 against the ledger" } }],
    });
  });

  it("answers with text when complete_task is not offered, and closes once it was called", async () => {
    const p = createProvider({ provider: "scripted" });
    const texts: string[] = [];
    const r = await p.complete(request([task], { tools: [], onText: (t) => texts.push(t) }));
    expect(r.content).toEqual([{ type: "text", text: "Completed: Reconcile invoice INV-7 against the ledger" }]);
    expect(r.stopReason).toBe("end_turn");
    expect(texts).toEqual(["Completed: Reconcile invoice INV-7 against the ledger"]);

    const first = await p.complete(request([task]));
    const after = await p.complete(
      request([
        task,
        { role: "assistant", content: first.content },
        { role: "user", content: [{ type: "tool_result", toolUseId: "toolu_scripted_0", content: "task done" }] },
      ]),
    );
    expect(after).toMatchObject({ stopReason: "end_turn", content: [{ type: "text", text: "Task completed." }] });
  });

  it("plays its script in order, one step per assistant turn, then completes the task", async () => {
    const p = createProvider({
      provider: "scripted",
      script: [{ call: "ledger_read", input: { account: "4411" } }, { call: "sap_invoice_read" }, { say: "Amounts match." }],
    });
    const messages: Message[] = [task];
    const seen: string[] = [];
    for (let turn = 0; turn < 4; turn++) {
      const r = await p.complete(request(messages));
      const block = r.content[0]!;
      seen.push(block.type === "tool_use" ? `call ${block.name} ${JSON.stringify(block.input)}` : block.type === "text" ? `say ${block.text}` : "?");
      messages.push({ role: "assistant", content: r.content });
      if (block.type === "tool_use") messages.push({ role: "user", content: [{ type: "tool_result", toolUseId: block.id, content: "ok" }] });
      else messages.push({ role: "user", content: [{ type: "text", text: "go on" }] });
    }
    expect(seen).toEqual([
      'call ledger_read {"account":"4411"}',
      "call sap_invoice_read {}",
      "say Amounts match.",
      'call complete_task {"result":"Completed: Reconcile invoice INV-7 against the ledger"}',
    ]);
  });

  it("is deterministic: the same request gives the same answer and the same usage", async () => {
    const a = await createProvider({ provider: "scripted" }).complete(request([task]));
    const b = await createProvider({ provider: "scripted" }).complete(request([task]));
    expect(b).toEqual(a);
  });

  it("reports deterministic usage that models the prompt cache per conversation", async () => {
    const p = createProvider({ provider: "scripted" });
    const prefix = Math.ceil(("You reconcile invoices.".length + JSON.stringify([completeTask]).length) / 4);
    const first = await p.complete(request([task]));
    expect(first.usage).toMatchObject({
      inputTokens: Math.ceil(task.content[0]!.type === "text" ? task.content[0]!.text.length / 4 : 0),
      cacheWriteTokens: prefix,
      cacheReadTokens: 0,
    });
    expect(first.usage.outputTokens).toBeGreaterThan(0);
    const u = first.usage;
    expect(u.totalTokens).toBe(u.inputTokens + u.cacheReadTokens + u.cacheWriteTokens + u.outputTokens);

    const second = await p.complete(
      request([task, { role: "assistant", content: first.content }, { role: "user", content: [{ type: "tool_result", toolUseId: "x", content: "ok" }] }]),
    );
    expect(second.usage).toMatchObject({ cacheWriteTokens: 0, cacheReadTokens: prefix });
  });

  it("validates scripts and honours an aborted signal", async () => {
    expect(scriptSchema.safeParse([{ call: "x" }, { say: "y" }]).success).toBe(true);
    expect(scriptSchema.safeParse([{ call: "x", say: "y" }]).success).toBe(false);
    expect(() => createProvider({ provider: "scripted", script: [{ bogus: 1 } as never] })).toThrow();
    const p = createProvider({ provider: "scripted" });
    await expect(p.complete(request([task], { signal: AbortSignal.abort() }))).rejects.toMatchObject({ kind: "aborted" });
  });
});
