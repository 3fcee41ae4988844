import type { AgentDescriptor } from "@bosun/contracts";
import { type Database, queryBatch, repo, type Tx, withTenant } from "@bosun/db";
import type { ToolDef } from "@bosun/llm";
import { agentActor } from "../actor";
import { audit } from "../audit";
import { type Reservation, type SpendEngine, SpendRefused } from "../costs/spend";
import { capBytes, type McpPool, mcpPool, resultText } from "./client";
import { resolveGatewayTool } from "./describe";
import { modelToolName, toolPermitted, toolRef } from "./names";

export interface GatewayCall {
  tenantId: string;
  agentId: string;
  runId: string;
  runCreatedAt: Date;
  taskId: string | null;
  /** The step the call is recorded as: its reservation's and `action` charge's key. */
  seq: number;
  /** The model-facing name (`mcp__<server>__<tool>`). */
  name: string;
  input: unknown;
  descriptor: AgentDescriptor;
}

export interface GatewayResult {
  status: "ok" | "error";
  output: {
    content: string;
    isError?: true;
    ref?: string;
    version?: number;
    truncated?: true;
    bytes?: number;
    feeMicros?: number;
    code?: string;
  };
}

/** The gateway tools an agent is offered: current versions its `spec.tools` names, of active servers. */
export async function gatewayToolsFor(tx: Tx, p: { tenantId: string; descriptor: AgentDescriptor }): Promise<ToolDef[]> {
  const patterns = (p.descriptor.spec.tools ?? []).filter((t) => t.startsWith("mcp://"));
  if (patterns.length === 0) return [];
  const rows = await repo.gateway.currentTools(tx, { tenantId: p.tenantId });
  return rows
    .filter((t) => toolPermitted(patterns, toolRef(t.serverName, t.name)))
    .slice(0, 100)
    .map((t) => ({
      name: modelToolName(t.serverName, t.name),
      description: `${t.description || t.name} (MCP server ${t.serverName}, v${t.version})`.slice(0, 1024),
      inputSchema:
        t.inputSchema && typeof t.inputSchema === "object" ? (t.inputSchema as Record<string, unknown>) : { type: "object", properties: {} },
    }));
}

/** A gateway call that passed phase 1: its slot is taken and its fee (if any) reserved. */
export interface PreparedGatewayCall {
  call: GatewayCall;
  tool: NonNullable<Awaited<ReturnType<typeof resolveGatewayTool>>>;
  server: repo.gateway.McpServerRow;
  args: Record<string, unknown>;
  ref: string;
  fee: number;
  reservation: Reservation | null;
}

/** What the MCP server said (phase 2): its answer, or why there is none. */
export interface GatewayAnswer {
  answered: Awaited<ReturnType<McpPool["callTool"]>> | null;
  failure: string | null;
  latencyMs: number;
}

/**
 * Executes gateway tool calls for the runtime, after the policy and approval gate
 * (governance) let them through, in three phases so that no database connection is held
 * while the MCP server works, and none waits for a second one:
 * 1. `prepare`, in the run's short fenced transaction with the gate: resolve the tool,
 *    take the per-minute call slot, reserve the fee (refused: audited, and the model
 *    reads the error); the transaction commits, so slot and reservation are seen by
 *    every worker at once;
 * 2. `call`, with no transaction open: the MCP call itself, up to the server's timeout;
 * 3. `complete`, in a new fenced transaction that writes the step: the fee is charged as
 *    an `action` row when the server answered (a tool error included: the call was made)
 *    and released when it did not (connection failure, timeout), and the call is audited.
 * When phase 3 cannot write (the lease was lost), `release` gives the fee back (best
 * effort: the sweeper takes what a crash leaves). A crash between phases 1 and 3 writes
 * no step, so the resumed run makes the call again: at-least-once, like a call cut off
 * by shutdown (`call` then throws after releasing the fee).
 */
export function gatewayExecutor(deps: { database: Database; spend: SpendEngine; pool?: McpPool }) {
  const pool = deps.pool ?? mcpPool();
  const inFlight = new Set<AbortController>();

  const fail = (code: string, content: string, extra: Partial<GatewayResult["output"]> = {}): GatewayResult => ({
    status: "error",
    output: { content: `${code}: ${content}`, isError: true, code, ...extra },
  });

  /** Phase 1, inside the run's fenced transaction: a result to write now, or a call to make. */
  async function prepare(tx: Tx, c: GatewayCall): Promise<{ result: GatewayResult } | { prepared: PreparedGatewayCall }> {
    const tool = await resolveGatewayTool(tx, { tenantId: c.tenantId, name: c.name });
    if (!tool) return { result: fail("NOT_FOUND", `no gateway tool '${c.name}' in this tenant's catalogue`) };
    const ref = toolRef(tool.serverName, tool.name);
    // Whether this agent may call it at all (spec.tools, policies, approvals) was decided
    // by the governance gate before this point; a refused call never gets here.
    if (tool.serverStatus !== "active") return { result: fail("SERVICE_UNAVAILABLE", `MCP server '${tool.serverName}' is disabled`, { ref }) };
    // The server and the call's slot in one round trip (the tool step's savepoint with them).
    const { server: found, slot } = repo.gateway.serverAndSlotFrom(
      await queryBatch(tx.$client, repo.gateway.serverAndCallSlotStatements({ tenantId: c.tenantId, serverName: tool.serverName })),
    );
    const server = found!;
    const args = c.input && typeof c.input === "object" && !Array.isArray(c.input) ? (c.input as Record<string, unknown>) : {};
    const base = { ref, version: tool.version };

    if (!slot.ok) {
      return {
        result: fail("RATE_LIMITED", `MCP server '${server.name}' allows ${server.callsPerMinute} calls per minute; retry in ${Math.ceil(slot.retryAfterMs / 1000)} s`, base),
      };
    }

    const fee = Number(tool.feeMicros);
    let reservation: Reservation | null = null;
    if (fee > 0) {
      // A refusal may come after the reservation row is written: undo it, keep the slot.
      await tx.$client.query("SAVEPOINT gateway_fee");
      try {
        reservation = await deps.spend.reserve(tx, {
          tenantId: c.tenantId,
          agentId: c.agentId,
          runId: c.runId,
          runCreatedAt: c.runCreatedAt,
          taskId: c.taskId,
          key: `${c.runId}:${c.seq}`,
          calls: [],
          computeMs: 0,
          actionMicros: fee,
        });
      } catch (err) {
        if (!(err instanceof SpendRefused)) throw err;
        await tx.$client.query("ROLLBACK TO SAVEPOINT gateway_fee");
        await auditCall(tx, c, ref, { version: tool.version, outcome: "refused", code: err.code, feeMicros: fee });
        return { result: fail(err.code, `the call was not made: ${err.message}`, { ...base, feeMicros: fee }) };
      }
    }
    return { prepared: { call: c, tool, server, args, ref, fee, reservation } };
  }

  /** Phase 2, with no transaction open: the MCP call. Throws (fee released) when the worker stops. */
  async function call(p: PreparedGatewayCall): Promise<GatewayAnswer> {
    const controller = new AbortController();
    inFlight.add(controller);
    let answered: GatewayAnswer["answered"] = null;
    let failure: string | null = null;
    const started = Date.now();
    try {
      answered = await pool.callTool(p.server, { tool: p.tool.name, args: p.args, signal: controller.signal });
    } catch (err) {
      failure = err instanceof Error ? err.message : String(err);
    } finally {
      inFlight.delete(controller);
    }
    if (controller.signal.aborted) {
      // The worker is stopping: no step is written, so the run that resumes makes the call again.
      await release(p);
      throw new Error("gateway call aborted: the worker is stopping");
    }
    return { answered, failure, latencyMs: Date.now() - started };
  }

  /** Phase 3, inside the fenced transaction that writes the call's step: charge or release, audit, the result. */
  async function complete(tx: Tx, p: PreparedGatewayCall, a: GatewayAnswer): Promise<GatewayResult> {
    const { call: c, tool, server, ref, fee, reservation } = p;
    const base = { ref, version: tool.version };
    if (!a.answered) {
      if (reservation) await deps.spend.release(tx, reservation);
      await auditCall(tx, c, ref, { version: tool.version, outcome: "failed", error: a.failure?.slice(0, 500), latencyMs: a.latencyMs });
      return fail("MCP_ERROR", `MCP server '${server.name}' did not answer: ${a.failure}`, base);
    }
    if (reservation) await deps.spend.settleAction(tx, reservation, { seq: c.seq, description: ref });
    const capped = capBytes(resultText(a.answered), server.resultCapBytes);
    const isError = a.answered.isError === true;
    await auditCall(tx, c, ref, {
      version: tool.version,
      outcome: isError ? "tool_error" : "ok",
      latencyMs: a.latencyMs,
      bytes: capped.bytes,
      truncated: capped.truncated,
      feeMicros: reservation ? fee : 0,
    });
    const output: GatewayResult["output"] = {
      content: capped.truncated ? `${capped.text}\n[truncated: the result was ${capped.bytes} bytes, over this server's cap of ${server.resultCapBytes}]` : capped.text,
      ...base,
      bytes: capped.bytes,
      ...(capped.truncated ? { truncated: true as const } : {}),
      ...(reservation ? { feeMicros: fee } : {}),
      ...(isError ? { isError: true as const } : {}),
    };
    return { status: isError ? "error" : "ok", output };
  }

  /** Gives a prepared call's fee back, in its own transaction; best effort (the sweeper covers a crash). */
  async function release(p: PreparedGatewayCall): Promise<void> {
    const r = p.reservation;
    if (r) await withTenant(deps.database, p.call.tenantId, (t) => deps.spend.release(t, r)).catch(() => {});
  }

  /** Every gateway call is an external action, audited as the agent's, on the tool's ref. */
  function auditCall(tx: Tx, c: GatewayCall, ref: string, after: Record<string, unknown>) {
    return audit(tx, agentActor(c.tenantId, c.agentId), { action: "tool.call", targetType: "tool", targetId: ref, after: { runId: c.runId, seq: c.seq, ...after } });
  }

  return {
    prepare,
    call,
    complete,
    release,
    /** Aborts calls in flight and closes every connection (worker shutdown). */
    async close() {
      for (const ctl of inFlight) ctl.abort();
      await pool.close();
    },
  };
}

export type GatewayExecutor = ReturnType<typeof gatewayExecutor>;
