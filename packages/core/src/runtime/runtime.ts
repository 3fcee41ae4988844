import type { AgentDescriptor } from "@bosun/contracts";
import { type BatchStatement, type Database, type QueryResult, queryBatch, repo, tenantStatements, type Tx, withSystem, withTenant } from "@bosun/db";
import { type Jobs, wakeKey } from "@bosun/jobs";

import { type ContentBlock, completeWithRouting, type Message, type ModelProvider, type ModelResponse, RoutingError, type RouteAttempt, type ToolDef } from "@bosun/llm";
import { atCommitClient, deferAudits, deferWrite, sendWithNext } from "../audit";
import { type ActualCall, priceLookups, type Reservation, type ReserveRequest, type SpendEngine, SpendRefused, spendEngine } from "../costs/spend";
import { AppError } from "../errors";
import { type GatewayExecutor, gatewayExecutor, gatewayToolsFor, type PreparedGatewayCall } from "../gateway/execute";
import { isGatewayToolName } from "../gateway/names";
import { expireApprovals, holdTaskLeasesOfWaits } from "../governance/sweep";
import { gateToolCall, type PolicyRecord } from "../governance/gate";
import { newId } from "../ids";
import { type ContextData, contextDataFrom, contextDataRead, needsContext, type RunPrompt, runPrompt } from "../memory/prompt";
import { autonomyOf, driveTaskAllowance, moveToBacklog, ownInitiative, takeDueDrive } from "../memory/drives";
import { archiveResult } from "../memory/store";
import { memoryTool } from "../memory/tools";
import { messagingTool } from "../messaging/tools";
import type { ProposalService } from "../proposals/service";
import { INTERNAL_TOOL_NAMES, internalTools } from "./tools";
import { newTraceparent } from "./trace";

const rt = repo.runtime;
type RunRow = repo.runtime.RunRow;
type StepRow = repo.runtime.StepRow;
type Fence = repo.runtime.Fence;

export interface RunLimits {
  maxSteps: number;
  maxTokens: number;
  maxWallMs: number;
}

export const defaultLimits: RunLimits = { maxSteps: 40, maxTokens: 200_000, maxWallMs: 10 * 60_000 };

/** A model call's deadline, retries included. */
const MODEL_TIMEOUT_MS = 120_000;

/** What the runtime needs from the task lifecycle (packages/core/src/tasks). */
export interface TaskPort {
  claimNextForAgent(p: { tenantId: string; agentId: string; leaseOwner: string; ttlSeconds: number }): Promise<ClaimedTask | null>;
  /**
   * Completes (or sends to review) inside the run's transaction, fenced by the task lease.
   * `locked`: the task's row, locked in this transaction already (undefined: no such task).
   * `atCommit`: the completion may be written with the COMMIT (only the title is read back).
   */
  completeInTx(tx: Tx, p: TaskWrite & { result: unknown; locked?: { row: repo.LockedTaskRow | undefined }; atCommit?: boolean }): Promise<{ title: string }>;
  failInTx(tx: Tx, p: TaskWrite & { error: string; retry: boolean; locked?: { row: repo.LockedTaskRow | undefined } }): Promise<unknown>;
  createInTx(
    tx: Tx,
    p: { tenantId: string; byAgentId: string; title: string; body?: string; assignee?: string; domain?: string; priority?: number },
  ): Promise<{ id: string }>;
  /** claimed → in_progress, inside the run's transaction. */
  startInTx(tx: Tx, p: TaskWrite): Promise<unknown>;
  /**
   * Claims the agent's next task and starts it (in_progress, `run_id`) inside the run's
   * fenced transaction; `then` inserts the run before the task's audit events are written.
   */
  claimAndStartInTx<R>(
    tx: Tx,
    p: { tenantId: string; agentId: string; leaseOwner: string; ttlSeconds: number; runId: string; exclude?: string[] },
    then: (task: ClaimedTask) => Promise<R>,
  ): Promise<R | null>;
  /** Extends the run's task lease; false when it is lost. */
  heartbeatLease(p: TaskWrite & { ttlSeconds: number }): Promise<boolean>;
}

export interface ClaimedTask {
  id: string;
  title: string;
  body: string;
  leaseEpoch: number;
}

interface TaskWrite {
  tenantId: string;
  taskId: string;
  agentId: string;
  leaseOwner: string;
  epoch: number;
}

export interface RuntimeDeps {
  database: Database;
  jobs: Pick<Jobs, "enqueue">;
  tasks: TaskPort;
  /** Proposals (the `propose` and `respond_to_proposal` tools); without it those tools answer with an error. */
  proposals?: Pick<ProposalService, "createInTx" | "respondInTx">;
  /** The model provider for an agent's `spec.model`. */
  provider: (model: AgentDescriptor["spec"]["model"]) => ModelProvider;
  workerId: string;
  /** Cost governance around every model call; by default on this database and job producer. */
  spend?: SpendEngine;
  /** Executes MCP gateway tool calls; by default one with its own connection pool, closed on stop. */
  gateway?: GatewayExecutor;
  leaseTtlSeconds?: number;
  limits?: Partial<RunLimits>;
  /** How long an approval stays open when its policy names no expiry (default 24 h). */
  approvalExpirySeconds?: number;
  /** Test seam: called after each step commits; throwing here simulates a crash. */
  afterStep?: (step: StepRow) => void | Promise<void>;
  log?: { info: (o: object, m?: string) => void; warn: (o: object, m?: string) => void };
}

export type WakeOutcome = { outcome: "busy" } | { outcome: "idle" } | { outcome: "ran"; runs: number } | { outcome: "lease_lost" };

interface RunInput {
  kind: "task" | "messages" | "delegation" | "manual" | "drive";
  text: string;
  /** For a drive consultation: the drive's name. */
  drive?: string;
  task?: { id: string; epoch: number; leaseOwner: string };
}

/**
 * The agent runtime: one `wake` takes the agent's session lease, runs whatever is waiting
 * for it (a resumable run, a claimable task, unread messages), one run at a time, then
 * releases the lease and looks at the inbox once more. Every write of a run goes through
 * `fence`, so a worker that lost its lease can write nothing.
 */
export function agentRuntime(deps: RuntimeDeps) {
  const ttl = deps.leaseTtlSeconds ?? 60;
  const limits: RunLimits = { ...defaultLimits, ...deps.limits };
  const owner = deps.workerId;
  const spend = deps.spend ?? spendEngine({ jobs: deps.jobs });
  const gateway = deps.gateway ?? gatewayExecutor({ database: deps.database, spend });
  let stopping = false;
  const inFlight = new Set<AbortController>();
  /** A model call made ready (see precall), or the refusal that stops it. */
  type Precall = { call: ReturnType<typeof prepareCall>; reservation: Reservation; tools: ToolDef[]; lookups: repo.costs.PriceLookup[] } | { refused: SpendRefused };
  /**
   * The prices each agent's first call looked up last time (by the agent's spec hash): the
   * next claim reads the spend context for the same models with its BEGIN. At most
   * CALL_SHAPES agents are remembered; a changed descriptor, or a call that plans other
   * models, reads again.
   */
  const callShapes = new Map<string, { specHash: string; lookups: repo.costs.PriceLookup[] }>();
  const CALL_SHAPES = 10_000;
  /** The models this call planned, for the agent's next claim and its run's next call (callShapes). */
  function rememberShape(a: repo.AgentRow, call: Precall) {
    if (!("lookups" in call)) return;
    callShapes.delete(a.id);
    callShapes.set(a.id, { specHash: a.specHash, lookups: call.lookups });
    if (callShapes.size > CALL_SHAPES) callShapes.delete(callShapes.keys().next().value!);
  }

  // Every write of a run: the fence travels with the BEGIN (one round trip less per write),
  // and so do `reads` (statements with escaped literals), whose results fn gets. Audit
  // events are inserted at the end, with the COMMIT (deferAudits); the sealer chains them.
  const fenced = <T>(f: Fence, fn: (tx: Tx, read: QueryResult[]) => Promise<T>, reads: BatchStatement[] = []) => {
    const fence = rt.fenceWith(f, ttl);
    let read: QueryResult[] = [];
    return withTenant(deps.database, f.tenantId, (tx) => deferAudits(tx, () => fn(tx, read)), {
      with: {
        sql: [...fence.sql, ...reads],
        check: (results) => {
          fence.check(results);
          read = results.slice(1);
        },
      },
    });
  };

  const wakeAgent = (tx: Tx, tenantId: string, agentId: string, reason: "task" | "message" | "waitpoint" | "recheck" | "schedule") =>
    deps.jobs.enqueue(atCommitClient(tx), "agent.wake", { tenantId, agentId, reason }, { singletonKey: wakeKey(tenantId, agentId) });

  async function wake(p: { tenantId: string; agentId: string }): Promise<WakeOutcome> {
    // Create the session if need be, then take its lease or mark it: one round trip.
    const took = await tenantStatements(deps.database, p.tenantId, rt.acquireOrMarkStatements({ tenantId: p.tenantId, agentId: p.agentId, owner, ttlSeconds: ttl }));
    const epoch = rt.acquiredEpoch(took[1]);
    if (epoch === null) return { outcome: "busy" };
    const f: Fence = { tenantId: p.tenantId, agentId: p.agentId, owner, epoch };
    let runs = 0;
    try {
      while (!stopping && runs < 20) {
        const next = await nextRun(f);
        if (!next) break;
        runs++;
        await execute(f, next.run, next.fresh ? next.agent : undefined, next.firstCall);
      }
      if (runs === 0) {
        await fenced(f, (tx) =>
          tx.$client.query(`UPDATE agent_sessions SET idle_cycles = idle_cycles + 1 WHERE tenant_id = $1 AND agent_id = $2`, [f.tenantId, f.agentId]),
        );
      }
    } catch (err) {
      if (err instanceof repo.runtime.LeaseLostError) {
        deps.log?.warn({ agentId: f.agentId, epoch }, "lease lost; stopping without writing");
        return { outcome: "lease_lost" };
      }
      // Anything else (the database went away, a bug): give the lease back if it is still
      // ours, so the job's retry (or another worker) need not wait for it to expire.
      await withTenant(deps.database, f.tenantId, (tx) => rt.releaseLease(tx, f)).catch(() => {});
      throw err;
    }
    // Release, then look again: anything that arrived while we held the lease marked the
    // session (acquireOrMark) or is visible now; either way the agent is woken again.
    // The release and the look travel with the BEGIN; a wake, if needed, before the COMMIT.
    let again = false;
    await withTenant(
      deps.database,
      f.tenantId,
      async (tx) => {
        if (again) await wakeAgent(tx, f.tenantId, f.agentId, "recheck");
      },
      {
        with: {
          sql: [rt.releaseLeaseStatement(f), rt.hasWorkStatement(f.tenantId, f.agentId)],
          check: ([release, work]) => {
            const r = rt.released(release);
            again = r.released && (r.wakeRequested || stopping || work?.rows[0]?.work === true);
          },
        },
      },
    );
    return runs === 0 ? { outcome: "idle" } : { outcome: "ran", runs };
  }

  /**
   * Picks the next run. Usually ONE round trip, a whole transaction (tenantStatements):
   * the fence; the agent and a run to resume, read; the agent's next task locked, claimed
   * and started, its run inserted and read back, its audit events written, only under this
   * lease, for an active agent with no run to resume (rt.claimNextRunStatements); the
   * prompt's layers and the spend context for its first call; and, with no task to claim,
   * whether a message waits. A fresh task run's first model call is then prepared (and its
   * worst case reserved, in a transaction of its own that sends nothing when there is
   * nothing to write: no budget applies). Messages, a due drive, or another task when the
   * locked one gained an unfinished dependency meanwhile, are picked in a fenced
   * transaction of their own. A fresh run comes back with the agent row, so `execute` need
   * not read it again.
   */
  async function nextRun(f: Fence): Promise<{ run: RunRow; agent: repo.AgentRow; fresh: boolean; firstCall?: Precall } | null> {
    // The task's lease belongs to the run, not to this worker: whoever resumes the run
    // after a crash continues under the same claim.
    const taskRunId = newId("run");
    const leaseOwner = `run:${taskRunId}`;
    const claim = { tenantId: f.tenantId, agentId: f.agentId, leaseOwner, ttlSeconds: ttl * 5 };
    const shape = callShapes.get(f.agentId);
    const spendAt = spend.now();
    const fence = rt.fenceWith(f, ttl);
    const results = await tenantStatements(deps.database, f.tenantId, [
      ...fence.sql,
      // This transaction's commit need not wait for its WAL flush. Lost in a database crash,
      // it takes with it only what nothing durable depends on: whatever this worker commits
      // next (the run's steps, the task's completion) flushes it first, WAL being in order;
      // without that, the task is queued again, as when a worker dies mid-call, and the
      // run's model call goes unrecorded, as it does then (its step never commits).
      "SET LOCAL synchronous_commit = off",
      repo.agentByIdRead(f.tenantId, f.agentId),
      rt.resumableRunRead(f.tenantId, f.agentId),
      ...rt.claimNextRunStatements({ ...claim, fence: { owner: f.owner, epoch: f.epoch }, run: { id: taskRunId, traceparent: newTraceparent(), limits } }),
      rt.claimAuditStatement({ tenantId: f.tenantId, agentId: f.agentId, runId: taskRunId, id: newId("aud") }),
      // The prompt's layers for the claimed task's first call, and the spend context and
      // prices for its reservation (the models this agent's first call planned last time):
      // read only if a task was locked.
      contextDataRead({ tenantId: f.tenantId, agentId: f.agentId, withContext: true }, rt.CLAIM_LOCKED),
      ...(shape ? [repo.costs.spendContextWithPricesRead({ tenantId: f.tenantId, agentId: f.agentId, at: spendAt, lookups: shape.lookups }, rt.CLAIM_LOCKED)] : []),
      rt.unreadIfNoClaimRead(f.tenantId, f.agentId),
    ]);
    // The claim ran only under this lease: with the fence failed, nothing was written.
    fence.check(results);
    const [, , agentRead, resumableRead, lockRead, startRead, runRead, , contextRead, ...tail] = results;
    const unread = (tail.pop()!.rows[0] as { unread: boolean }).unread;
    const spendRead = shape ? tail.pop() : undefined;
    const agent = agentRead!.rows[0] as repo.AgentRow | undefined;
    // The claim's statements ran after these reads, each on a newer snapshot, and claim
    // only for an active agent with no run to resume: what they claimed stands even if
    // the agent was paused, or a run resumable, a moment before.
    const claimed = rt.claimedRun([lockRead!, startRead!, runRead!]);
    if (claimed.task && claimed.run) {
      if (!agent) throw new Error(`agent ${f.agentId} is gone, yet a task was claimed for it`);
      const run = claimed.run;
      // Its first model call, prepared: the prompt's layers were read with the claim, and so
      // was the spend context when the agent's call planned the same models last time.
      const firstCall = await withTenant(deps.database, f.tenantId, (tx) =>
        precall(tx, {
          run,
          descriptor: agent.descriptor as AgentDescriptor,
          steps: [],
          waits: [],
          tools: undefined,
          computeMs: MODEL_TIMEOUT_MS + 30_000,
          seq: 0,
          context: contextDataFrom(contextRead!),
          spend:
            shape && shape.specHash === agent.specHash ? { at: spendAt, lookups: shape.lookups, context: repo.costs.spendContextPricesRead(spendRead) } : undefined,
        }),
      ).catch((err: unknown) => {
        if (err instanceof SpendRefused) return { refused: err };
        throw err;
      });
      rememberShape(agent, firstCall);
      return { run, agent, fresh: true, firstCall };
    }
    if (agent?.status !== "active") return null;
    const resumable = resumableRead!.rows[0] as RunRow | undefined;
    if (resumable) return { run: resumable, agent, fresh: false };
    // Nothing else to do unless a message waits, a drive may be due, or the task the claim
    // locked gained an unfinished dependency meanwhile (another is claimed).
    const d = agent.descriptor as AgentDescriptor;
    if (!claimed.locked && !unread && (autonomyOf(d).level === "none" || d.spec.drives.length === 0)) return null;
    return fenced(f, async (tx) => {
      const next = await pickAgain(tx, agent, claimed.locked);
      if (!next) return null;
      const firstCall = await precall(tx, { run: next.run, descriptor: d, steps: [], waits: [], tools: undefined, computeMs: MODEL_TIMEOUT_MS + 30_000, seq: 0, savepoint: true });
      rememberShape(agent, firstCall);
      return { ...next, firstCall };
    });


    async function pickAgain(tx: Tx, agent: repo.AgentRow, locked: string | null): Promise<{ run: RunRow; agent: repo.AgentRow; fresh: true } | null> {
      if (locked) {
        // The locked task gained an unfinished dependency after the lock: claim another.
        const run = await deps.tasks.claimAndStartInTx(tx, { ...claim, runId: taskRunId, exclude: [locked] }, (task) =>
          startRun(tx, f, "task", { kind: "task", text: `Task ${task.id}: ${task.title}\n\n${task.body}`.trim(), task: { id: task.id, epoch: task.leaseEpoch, leaseOwner } }, taskRunId),
        );
        if (run) return { run, agent, fresh: true };
      }
      if (!(await rt.hasUnreadMessages(tx, f))) {
        // Nothing else to do: a due drive, if the agent's autonomy allows (memory/drives.ts).
        const driveRunId = newId("run");
        const drive = await takeDueDrive(tx, { tenantId: f.tenantId, agentId: f.agentId, descriptor: agent.descriptor as AgentDescriptor, runId: driveRunId });
        if (!drive) return null;
        return { run: await startRun(tx, f, "drive", { kind: "drive", text: drive.text, drive: drive.name }, driveRunId), agent, fresh: true };
      }
      const runId = newId("run");
      const msgs = await rt.takeUnreadMessages(tx, { tenantId: f.tenantId, agentId: f.agentId, runId, limit: 200 });
      const text = msgs.map((m) => `Message ${m.id} from ${m.fromType} ${m.fromId}:\n${m.body}`).join("\n\n");
      return { run: await startRun(tx, f, "message", { kind: "messages", text }, runId), agent, fresh: true };
    }
  }

  async function startRun(tx: Tx, f: Fence, trigger: "task" | "message" | "drive", input: RunInput, runId = newId("run")): Promise<RunRow> {
    // A task's run: claimAndStartInTx has moved the task to in_progress and set its run_id.
    return rt.insertRun(tx, {
      tenantId: f.tenantId,
      id: runId,
      agentId: f.agentId,
      taskId: input.task?.id ?? null,
      parentRunId: null,
      rootRunId: runId,
      traceparent: newTraceparent(),
      trigger,
      limits,
      input,
      started: true,
    });
  }

  /** Runs one run until it finishes, waits, hits a limit, or the worker stops. */
  async function execute(f: Fence, initial: RunRow, freshAgent?: repo.AgentRow, firstCall?: Precall): Promise<void> {
    let run = initial;
    let prepared = firstCall;
    /** The reservation made with the run's start, while its call is still to be made. */
    const unusedReservation = () => (prepared && "reservation" in prepared ? prepared.reservation : undefined);
    // A run nextRun just started has no waitpoints and is running already; a resumed one
    // consumes what woke it and is marked running again.
    const agent =
      freshAgent ??
      (await fenced(f, async (tx) => {
        await rt.consumeWaitpoints(tx, { tenantId: f.tenantId, runId: run.id });
        if (run.status === "waiting") await rt.updateRun(tx, { tenantId: f.tenantId, runId: run.id, patch: { status: "running" } });
        await rt.updateRun(tx, { tenantId: f.tenantId, runId: run.id, patch: { started: true } });
        return repo.getAgentById(tx, { tenantId: f.tenantId, agentId: f.agentId });
      }));
    const descriptor = agent!.descriptor as AgentDescriptor;
    // The MCP tools this run is offered (its descriptor's spec.tools, current catalogue
    // versions): read once, with the run's first call's preparation.
    let gatewayTools: ToolDef[] | undefined = firstCall && "tools" in firstCall ? firstCall.tools : undefined;
    const started = Date.now();
    // Compute is charged with each model call: the worker time since the previous one (or
    // since the run was picked up), tool steps included.
    let computeMark = started;
    // Model calls can outlast a lease: keep the session lease (and the task's) alive while
    // the run works. A failed heartbeat is harmless: the next fenced write finds out.
    const task = (run.input as RunInput).task;
    const heartbeat = setInterval(() => {
      void fenced(f, async () => undefined).catch(() => {});
      if (task) {
        void deps.tasks
          .heartbeatLease({ tenantId: f.tenantId, taskId: task.id, agentId: f.agentId, leaseOwner: task.leaseOwner, epoch: task.epoch, ttlSeconds: ttl * 5 })
          .catch(() => {});
      }
    }, Math.max(1000, (ttl * 1000) / 3));
    heartbeat.unref();
    try {
      await loop();
    } finally {
      clearInterval(heartbeat);
    }

    async function loop() {
    // A run nextRun has just inserted has no steps or waitpoints yet: its first turn reads nothing.
    let fresh = freshAgent !== undefined;
    /** The run's step log as read so far (seq 0 on, dense). */
    let log: StepRow[] = [];
    type State = { steps: StepRow[]; run: RunRow | undefined; waits: repo.runtime.WaitpointRow[] };
    const stateFrom = ([steps, r, waits]: QueryResult[]): State => ({
      steps: steps!.rows as StepRow[],
      run: r!.rows[0] as RunRow | undefined,
      waits: waits!.rows as repo.runtime.WaitpointRow[],
    });
    const stateReads = (fromSeq: number) => rt.runStateReads({ tenantId: f.tenantId, runId: run.id, fromSeq });
    /** The steps read from `log.length` on, after the log (a gap, never expected as seqs are dense: null, read it all again). */
    const extend = (s: State): State | null => (s.steps.length > 0 && s.steps[0]!.seq !== log.length ? null : { ...s, steps: log.concat(s.steps) });
    /** The state from stateReads(log.length)'s results, read in `tx` (read all again on a gap). */
    const stateIn = async (tx: Tx, reads: QueryResult[]) => extend(stateFrom(reads)) ?? stateFrom(await queryBatch(tx.$client, stateReads(0)));
    /**
     * Where the run stands: its last model step, the tool uses it made, the first one not
     * answered yet and how many are not, and so what comes next (before its status and
     * limits are checked): a tool, the end (a model answer with no tool use), or a model call.
     */
    const standing = (steps: StepRow[]) => {
      const lastLlm = [...steps].reverse().find((s) => s.kind === "llm");
      const afterLlm = lastLlm ? steps.filter((s) => s.seq > lastLlm.seq) : [];
      const uses = lastLlm ? toolUses(lastLlm) : [];
      // Results are matched to tool uses by id, not by count: policy and approval steps
      // between them are bookkeeping, not results.
      const answered = new Set(afterLlm.filter(isToolResult).map((s) => (s.input as { toolUseId: string }).toolUseId));
      const open = uses.filter((u) => !answered.has(u.id));
      const next: "tool" | "done" | "model" = lastLlm && open.length > 0 ? "tool" : lastLlm && uses.length === 0 ? "done" : "model";
      return { lastLlm, unanswered: open[0], open: open.length, next };
    };
    /**
     * Whether the next turn is most likely a tool's (the last turn left a tool use
     * unanswered): its state is then read with the BEGIN of the tool's fenced transaction,
     * with the agent's policies, one round trip instead of two. A wrong guess costs nothing
     * more: the transaction then writes nothing and the turn goes on as it would have.
     */
    let toolNext = false;
    /**
     * What preparing a model call reads, to send with a fenced BEGIN: the prompt's layers
     * (`steps`: the log so far) and the spend context for the models this agent's call
     * planned last time; `from` turns their results into precall's inputs.
     */
    const callReads = (steps: StepRow[]) => {
      const shape = callShapes.get(f.agentId);
      const at = spend.now();
      return {
        sql: [
          contextDataRead({ tenantId: f.tenantId, agentId: f.agentId, withContext: needsContext(steps) }),
          ...(shape ? [repo.costs.spendContextWithPricesRead({ tenantId: f.tenantId, agentId: f.agentId, at, lookups: shape.lookups })] : []),
        ],
        from: (read: QueryResult[]) => ({
          context: contextDataFrom(read[0]!),
          spend: shape ? { at, lookups: shape.lookups, context: repo.costs.spendContextPricesRead(read[1]) } : undefined,
        }),
      };
    };
    /** Whether the run, as it stands, calls the model next (no tool use to answer, not finished, within its limits). */
    const callsModel = (st: State) => st.run?.status === "running" && standing(st.steps).next === "model" && !overLimit(st.run, started);
    for (;;) {
      if (stopping) {
        // A reservation made with the run's start goes back now rather than at the sweep.
        const held = unusedReservation();
        if (held) await fenced(f, (tx) => spend.release(tx, held)).catch(() => {});
        return;
      }
      // The run (an operator may cancel it), its waitpoints and the steps written since the
      // last turn are read each turn, with no fence when no tool is expected: a read writes
      // nothing, the heartbeat keeps the lease, and the next write checks it. Steps are never
      // changed once written, so the log read so far is kept: a turn reads what the last one
      // wrote, not the whole log again (a run of n turns read n²/2 steps, each with its
      // prompt's messages).
      let state: State;
      if (fresh) state = { run, steps: [], waits: [] };
      else if (toolNext) {
        const turn = await fenced(
          f,
          async (tx, [policies, ...reads]) => {
            const read = await stateIn(tx, reads);
            const at = standing(read.steps);
            if (read.run?.status !== "running" || at.next !== "tool") return { state: read };
            const t = toolCall(f, read.run, read.steps.length, at.unanswered!, { llmSeq: at.lastLlm!.seq, descriptor, waits: read.waits });
            return { state: read, tool: t, written: await t.inTx(tx, policies!.rows as repo.governance.PolicyRow[]), more: at.open > 1 };
          },
          [repo.governance.policiesForAgentRead(f.tenantId, f.agentId), ...stateReads(log.length)],
        );
        log = turn.state.steps;
        run = turn.state.run!;
        if (turn.tool) {
          const outcome = await turn.tool.after(turn.written);
          if (outcome !== "continue") return;
          toolNext = turn.more;
          continue;
        }
        state = turn.state;
      } else if (log.length > 0 && !needsContext(log)) {
        // A model call is next, most likely: the state is read with the BEGIN of the call's
        // preparation (its fence, the prompt's layers, the spend context), one round trip
        // instead of two. Otherwise that transaction writes nothing and the turn goes on.
        const reads = callReads(log);
        const turn = await fenced(
          f,
          async (tx, read) => {
            const st = await stateIn(tx, read.slice(reads.sql.length));
            if (!callsModel(st)) return { state: st };
            // With a savepoint: a refusal rolls the reservation back and is returned, not thrown.
            const call = await precall(tx, {
              run: st.run!,
              descriptor,
              steps: st.steps,
              waits: st.waits,
              tools: gatewayTools,
              computeMs: Date.now() - computeMark + MODEL_TIMEOUT_MS + 30_000,
              seq: st.steps.length,
              savepoint: true,
              ...reads.from(read),
            });
            return { state: st, call };
          },
          [...reads.sql, ...stateReads(log.length)],
        );
        state = turn.state;
        if (turn.call) {
          prepared = turn.call;
          rememberShape(agent!, turn.call);
        }
      } else {
        const read = (fromSeq: number) => tenantStatements(deps.database, f.tenantId, stateReads(fromSeq)).then(stateFrom);
        state = await read(log.length).then(async (s) => extend(s) ?? read(0));
      }
      fresh = false;
      log = state.steps;
      run = state.run!;
      if (run.status !== "running") return; // cancelled meanwhile
      const { steps, waits } = state;
      const { lastLlm, unanswered, open, next } = standing(steps);

      if (next === "tool") {
        const outcome = await runTool(f, run, steps.length, unanswered!, { llmSeq: lastLlm!.seq, descriptor, waits });
        if (outcome !== "continue") return;
        toolNext = open > 1;
        continue;
      }
      if (next === "done") {
        const text = textOf(lastLlm!);
        await finish(f, run, "succeeded", { result: { text } });
        return;
      }
      const over = overLimit(run, started);
      if (over) {
        await finish(f, run, "failed", { error: { code: "LIMIT", message: over } }, undefined, unusedReservation());
        return;
      }
      const seq = steps.length;
      // Before each model call, in a fenced transaction: the prompt's layers are read and the
      // call's worst case is reserved against the budgets. A fresh run's first call had this
      // done by nextRun, right after the run started.
      let pre: Precall;
      if (prepared) {
        pre = prepared;
        prepared = undefined;
      } else {
        // The prompt's layers and the spend context are read with the fence, in the BEGIN's
        // round trip: two round trips fewer before each model call.
        const reads = callReads(steps);
        pre = await fenced(
          f,
          (tx, read) =>
            precall(tx, { run, descriptor, steps, waits, tools: gatewayTools, computeMs: Date.now() - computeMark + MODEL_TIMEOUT_MS + 30_000, seq, ...reads.from(read) }),
          reads.sql,
        ).catch((err: unknown) => {
          if (err instanceof SpendRefused) return { refused: err };
          throw err;
        });
        rememberShape(agent!, pre);
      }
      if ("refused" in pre) {
        // Refused before the call: over a hard budget, or a model without a price.
        await finish(f, run, "failed", { error: { code: pre.refused.code, message: pre.refused.message } }, pre.refused.budget);
        return;
      }
      const { call, reservation } = pre;
      gatewayTools = pre.tools;
      const response = await callModel(call);
      // Shutting down aborted the call: leave the run as it is, to resume elsewhere (the
      // sweeper takes the reservation if this release cannot be written).
      if (stopping) {
        await fenced(f, (tx) => spend.release(tx, reservation)).catch(() => {});
        return;
      }
      const attempts = (final: ActualCall | null): ActualCall[] => [
        ...response.rejected.map((a, i) => ({ seq: seq + i, model: a.response?.model ?? null, usage: a.response?.usage ?? null })),
        ...(final ? [final] : []),
      ];
      if (response.error !== undefined) {
        await fenced(f, async (tx) => {
          const seq0 = steps.length + (await recordRejected(tx, f, run, steps.length, response.rejected));
          const step = await rt.insertStepAndUpdateRun(tx, stepBase(run, seq0, f, { kind: "llm", name: descriptor.spec.model.name, status: "error", output: { error: response.error } }), { addSteps: 1 });
          // A failed call still counts as a call; what its rejected attempts used is charged.
          await spend.settle(tx, reservation, {
            calls: attempts(response.rejected.length ? null : { seq: seq0, model: null, usage: null }),
            computeMs: Date.now() - computeMark,
          });
          return step;
        }).then((s) => deps.afterStep?.(s));
        await finish(f, run, "failed", { error: { code: "MODEL_ERROR", message: response.error } });
        return;
      }
      const r = response.ok!;
      // The first tool the model asks for, when it is one of the runtime's own, runs in the
      // transaction that writes the model's step (its own savepoint keeps the step if the
      // tool's part fails): one transaction and a turn's re-read fewer per tool call. MCP
      // tools go through the gateway's phases, in their own turn.
      const firstUse = r.content.find((b): b is ToolUse => b.type === "tool_use");
      const merge = firstUse !== undefined && INTERNAL_TOOL_NAMES.has(firstUse.name);
      let tool: ReturnType<typeof toolCall> | undefined;
      const llmStep = (seq0: number) => ({
        ...stepBase(run, seq0, f, { kind: "llm", name: r.model, status: "ok", output: { content: r.content, stopReason: r.stopReason } }),
        // What this call added to the conversation (the input, or the tool results since
        // the previous call): the whole prompt is the run's input plus these, in order.
        // `layers`: each prompt layer's token count (and the run's frozen active context).
        input: { messages: response.sent, tools: response.tools, layers: call.layers },
        provider: r.provider,
        model: r.model,
        inputTokens: r.usage.inputTokens,
        cacheReadTokens: r.usage.cacheReadTokens,
        cacheWriteTokens: r.usage.cacheWriteTokens,
        outputTokens: r.usage.outputTokens,
        latencyMs: Math.round(r.latencyMs),
      });
      const llmPatch = {
        model: r.model,
        addSteps: 1,
        addInput: r.usage.inputTokens + r.usage.cacheReadTokens + r.usage.cacheWriteTokens,
        addOutput: r.usage.outputTokens,
      };
      // With no passed-over attempts to write first, the model's step goes with the BEGIN
      // (its values are known before the transaction starts): one round trip less a turn.
      // So does its charge (unless a price must be looked up first), and, when the model
      // closes the run's task, the task's row lock: the turn's transaction is then that
      // round trip and the COMMIT's, which carries the task's update and the tool's step.
      const stepWithBegin = response.rejected.length === 0;
      const settleFirst = stepWithBegin
        ? spend.settleStatement(reservation, { calls: attempts({ seq: steps.length, model: r.model, usage: r.usage }), computeMs: Date.now() - computeMark })
        : undefined;
      const closesTask = merge && task !== undefined && (firstUse.name === "complete_task" || firstUse.name === "fail_task");
      // What goes with the BEGIN (after the fence), and where each one's result is.
      const withBegin: BatchStatement[] = [];
      const firstLlmStep = llmStep(steps.length);
      const send = (st: BatchStatement) => withBegin.push(st) - 1;
      const at = {
        policies: merge ? send(repo.governance.policiesForAgentRead(f.tenantId, f.agentId)) : undefined,
        current: merge ? send(rt.runStatusRead(f.tenantId, run.id)) : undefined,
        step: stepWithBegin ? send(rt.insertStepAndUpdateRunStatement(firstLlmStep, llmPatch, f)) : undefined,
        charge: settleFirst ? send(settleFirst.statement) : undefined,
        lock: settleFirst && closesTask ? send(repo.lockTaskForWriteStatement({ tenantId: f.tenantId, taskId: task!.id })) : undefined,
      };
      const [step, toolStep] = await fenced(f, async (tx, reads) => {
        const policies = at.policies === undefined ? undefined : reads[at.policies];
        const current = at.current === undefined ? undefined : reads[at.current];
        const seq0 = steps.length + (await recordRejected(tx, f, run, steps.length, response.rejected));
        const s = at.step === undefined ? await rt.insertStepAndUpdateRun(tx, llmStep(seq0), llmPatch) : rt.writtenStep(firstLlmStep, reads[at.step])!;
        // The charge is written with the step, under the same fence: a step that exists
        // has been paid for, and a replayed step finds its charge by key.
        if (settleFirst) await settleFirst.finish(tx, reads[at.charge!]!);
        else await spend.settle(tx, reservation, { calls: attempts({ seq: seq0, model: r.model, usage: r.usage }), computeMs: Date.now() - computeMark });
        // Not in a run an operator cancelled during the call (the next turn's read ends it).
        if (!merge || !policies || current?.rows[0]?.status !== "running") return [s, null] as const;
        // A new model step: no waitpoint can refer to its tool uses yet.
        tool = toolCall(f, run, seq0 + 1, firstUse, {
          llmSeq: seq0,
          descriptor,
          waits: [],
          ...(at.lock === undefined ? {} : { lockedTask: { row: repo.lockedTaskFrom(reads[at.lock]!) } }),
        });
        // The savepoint goes ahead of the tool's first statement, in its round trip.
        await sendWithNext(tx, "SAVEPOINT tool_in_turn");
        try {
          return [s, await tool.inTx(tx, policies.rows as repo.governance.PolicyRow[], "tool_in_turn")] as const;
        } catch (err) {
          // Whatever failed is left to the next turn, which runs the tool on its own.
          await tx.$client.query("ROLLBACK TO SAVEPOINT tool_in_turn");
          deps.log?.warn({ err, runId: run.id, tool: firstUse.name }, "tool call in the model's turn failed; retrying it in a turn of its own");
          tool = undefined;
          return [s, null] as const;
        }
      }, withBegin);
      computeMark = Date.now();
      await deps.afterStep?.(step);
      if (tool && (await tool.after(toolStep)) !== "continue") return;
      // Tool uses this turn did not run (an MCP tool, a second tool): the next turn is a tool's.
      toolNext = r.content.filter((b) => b.type === "tool_use").length > (tool ? 1 : 0);
    }
    }
  }

  /**
   * What comes before a model call, in the caller's transaction: the MCP tools the run is
   * offered (read once per run), the prompt's layers, the prepared request, and the call's
   * worst case reserved against the budgets. A refusal (over a hard budget, an unpriced
   * model) comes back as `refused`; with `savepoint` the reservation's writes are rolled
   * back to one, so the caller's own writes (a run nextRun started from messages or a
   * drive) stand; without, it throws SpendRefused and the caller's transaction rolls back.
   */
  async function precall(
    tx: Tx,
    p: {
      run: RunRow;
      descriptor: AgentDescriptor;
      steps: StepRow[];
      waits: repo.runtime.WaitpointRow[];
      tools: ToolDef[] | undefined;
      computeMs: number;
      seq: number;
      savepoint?: boolean;
      /** The prompt's layers, read already (runPrompt's `read`). */
      context?: ContextData | undefined;
      /** The spend context, read already (spend.reserve's `read`). */
      spend?: { at: Date; lookups: repo.costs.PriceLookup[]; context: repo.costs.SpendContextWithPrices | undefined } | undefined;
    },
  ): Promise<Precall> {
    const tools = p.tools ?? (await gatewayToolsFor(tx, { tenantId: p.run.tenantId, descriptor: p.descriptor }));
    const prompt = await runPrompt(tx, { tenantId: p.run.tenantId, agentId: p.run.agentId, descriptor: p.descriptor, steps: p.steps, read: p.context });
    const call = prepareCall(p.descriptor, p.run, p.steps, p.waits, tools, prompt);
    const request: ReserveRequest = {
      tenantId: p.run.tenantId,
      agentId: p.run.agentId,
      runId: p.run.id,
      runCreatedAt: p.run.createdAt,
      taskId: p.run.taskId,
      key: `${p.run.id}:${p.seq}`,
      calls: call.targets.map((t) => ({ provider: t.provider, model: t.name, promptTokens: call.promptTokens, maxTokens: call.request.maxTokens })),
      computeMs: p.computeMs,
    };
    const read = p.spend?.context ? { at: p.spend.at, lookups: p.spend.lookups, context: p.spend.context } : undefined;
    try {
      return {
        call,
        reservation: await spend.reserve(tx, request, { ...(p.savepoint ? { savepoint: "reserve" } : {}), ...(read ? { read } : {}) }),
        tools,
        lookups: priceLookups(request),
      };
    } catch (err) {
      // Without a savepoint the caller's transaction rolls back (the loop's own, which
      // wrote nothing else): the refusal is reported after it.
      if (!(err instanceof SpendRefused) || !p.savepoint) throw err;
      return { refused: err };
    }
  }

  /**
   * Model attempts that routing passed over (the small model failed, refused or ran out of
   * tokens) are steps too, with their usage, so their cost and the escalation are visible.
   * They are `error` steps: the conversation is rebuilt from `ok` ones only.
   */
  async function recordRejected(tx: Tx, f: Fence, run: RunRow, seq: number, rejected: RouteAttempt[]) {
    for (const [i, a] of rejected.entries()) {
      const u = a.response?.usage;
      await rt.insertStep(tx, {
        ...stepBase(run, seq + i, f, {
          kind: "llm",
          name: a.model,
          status: "error",
          output: { escalated: true, error: a.error ?? `escalated after stop reason ${a.response?.stopReason}`, content: a.response?.content ?? null },
        }),
        provider: a.provider,
        model: a.model,
        inputTokens: u?.inputTokens ?? 0,
        cacheReadTokens: u?.cacheReadTokens ?? 0,
        cacheWriteTokens: u?.cacheWriteTokens ?? 0,
        outputTokens: u?.outputTokens ?? 0,
        latencyMs: a.response ? Math.round(a.response.latencyMs) : null,
      });
    }
    if (rejected.length) {
      const tokensIn = rejected.reduce((n, a) => n + (a.response ? a.response.usage.inputTokens + a.response.usage.cacheReadTokens + a.response.usage.cacheWriteTokens : 0), 0);
      const tokensOut = rejected.reduce((n, a) => n + (a.response?.usage.outputTokens ?? 0), 0);
      await rt.updateRun(tx, { tenantId: f.tenantId, runId: run.id, patch: { addSteps: rejected.length, addInput: tokensIn, addOutput: tokensOut } });
    }
    return rejected.length;
  }

  function overLimit(run: RunRow, started: number): string | null {
    const l = run.limits ?? limits;
    if (run.stepCount >= l.maxSteps) return `step limit of ${l.maxSteps} reached`;
    if (run.inputTokens + run.outputTokens >= l.maxTokens) return `token limit of ${l.maxTokens} reached`;
    if (Date.now() - started >= l.maxWallMs) return `wall-time limit of ${l.maxWallMs} ms reached`;
    return null;
  }

  /**
   * The next model call of a run: its request, rebuilt from the step log, and the models it
   * may use (the descriptor's, then its escalate_to), so that the call can be priced and
   * reserved before it is made.
   */
  function prepareCall(d: AgentDescriptor, run: RunRow, steps: StepRow[], waits: repo.runtime.WaitpointRow[], gatewayTools: ToolDef[], prompt: RunPrompt) {
    const input = run.input as RunInput;
    // Prompt layers (packages/core/src/memory/prompt.ts): soul, instructions and working
    // memory in the system block (stable: the provider caches it); the active context,
    // volatile, opens the first user message.
    const system = prompt.system;
    const messages = rebuildMessages(prompt.context ? `${prompt.context}\n\n${input.text}` : input.text, steps, waits);
    const lastAssistant = messages.map((m) => m.role).lastIndexOf("assistant");
    const sent = messages.slice(lastAssistant + 1);
    // complete_task and fail_task only make sense in a run that holds a task.
    const tools = [...(input.task ? internalTools : internalTools.filter((t) => t.name !== "complete_task" && t.name !== "fail_task")), ...gatewayTools];
    const request = { system, messages, tools, maxTokens: d.spec.model.max_tokens ?? 1024, timeoutMs: MODEL_TIMEOUT_MS };
    const m = d.spec.model;
    const large = m.escalate_to ? { ...m, ...m.escalate_to, provider: m.escalate_to.provider ?? m.provider, escalate_to: undefined } : undefined;
    return { request, sent, tools, small: m, large, targets: large ? [m, large] : [m], promptTokens: promptTokenBound(request), layers: prompt.layers };
  }

  async function callModel(call: ReturnType<typeof prepareCall>) {
    const { request, sent, tools, small, large } = call;
    const controller = new AbortController();
    inFlight.add(controller);
    const req = { ...request, signal: controller.signal };
    try {
      if (!large) {
        const ok: ModelResponse = await deps.provider(small).complete({ model: small.name, ...req });
        return { ok, error: undefined, sent, tools: tools.map((t) => t.name), rejected: [] as RouteAttempt[] };
      }
      // Complexity routing: the descriptor's model first, its escalate_to when that fails.
      const r = await completeWithRouting({
        small: { provider: deps.provider(small), model: small.name },
        large: { provider: deps.provider(large), model: large.name },
        request: req,
      });
      return { ok: r.response, error: undefined, sent, tools: tools.map((t) => t.name), rejected: r.attempts.filter((a) => a.response !== r.response) };
    } catch (err) {
      const rejected = err instanceof RoutingError ? err.routeAttempts : [];
      return { ok: undefined, error: err instanceof Error ? err.message : String(err), sent, tools: tools.map((t) => t.name), rejected };
    } finally {
      inFlight.delete(controller);
    }
  }

  /** Executes one tool call and writes its step in the same transaction as its effect. */
  async function runTool(f: Fence, run: RunRow, seq: number, use: ToolUse, call: ToolCallContext): Promise<"continue" | "finished" | "waiting"> {
    const t = toolCall(f, run, seq, use, call);
    // The agent's policies are read with the BEGIN.
    const step = await fenced(f, (tx, [policies]) => t.inTx(tx, policies!.rows as repo.governance.PolicyRow[]), [
      repo.governance.policiesForAgentRead(f.tenantId, f.agentId),
    ]);
    return t.after(step);
  }

  /**
   * One tool call: `inTx` gates it and runs its effect inside a fenced transaction (its
   * own, or the one that wrote the model step that asked for it), writing its step there;
   * `after`, once that transaction has committed, makes a gateway call's MCP call (phases 2
   * and 3) and reports the step. Returns what the run does next.
   */
  function toolCall(f: Fence, run: RunRow, seq: number, use: ToolUse, call: ToolCallContext) {
    const input = run.input as RunInput;
    // The policy decision (and approval) that let the call through, recorded on its step.
    let policy: PolicyRecord | null = null;
    const base = (status: "ok" | "error", output: unknown, kind: StepRow["kind"] = "tool") => ({
      ...stepBase(run, seq, f, { kind, name: use.name, status, output }),
      input: { toolUseId: use.id, name: use.name, input: use.input, ...(policy ? { policy } : {}) },
    });
    let outcome: "continue" | "finished" | "waiting" = "continue";
    let effectSavepoint = "tool_effect";
    // An MCP call the first transaction let through (slot taken, fee reserved): made after it commits.
    const gw: { prepared?: PreparedGatewayCall } = {};
    /** `taken`: a savepoint the caller has just taken, with nothing written since, for the effect to roll back to. */
    async function inTx(tx: Tx, policies: repo.governance.PolicyRow[], taken?: string): Promise<Written> {
      // Policy first: a denied call never executes, one that needs approval suspends the run.
      // An approval of this call would be among the waitpoints this turn read (under the lease).
      const gate = await gateToolCall(tx, {
        tenantId: f.tenantId,
        agentId: f.agentId,
        runId: run.id,
        descriptor: call.descriptor,
        use,
        llmSeq: call.llmSeq,
        approvalExpirySeconds: deps.approvalExpirySeconds,
        known: { waitpoints: call.waits, policies },
      });
      if (gate.action !== "wait") policy = gate.policy;
      if (gate.action === "wait" || gate.action === "suspend") {
        outcome = "waiting";
        await rt.updateRun(tx, { tenantId: f.tenantId, runId: run.id, patch: { status: "waiting" } });
        if (gate.action === "wait") return null;
        const s = await rt.insertStepAndUpdateRun(tx, base("ok", { waitpointId: gate.waitpointId, status: "pending", expiresAt: gate.expiresAt }, "approval"), { addSteps: 1 });
        return s;
      }
      if (gate.action === "refuse") {
        const s = await rt.insertStepAndUpdateRun(tx, base("error", { content: gate.content, isError: true }), { addSteps: 1 });
        return s;
      }
      // A tool whose input the model got wrong (an unknown assignee, an invalid title)
      // fails as a tool result the model can read, not as a crash of the run: the effect
      // runs under a savepoint, and a refused one is rolled back to it. (An allowed call's
      // gate writes nothing, so the caller's fresh savepoint serves as well.)
      if (taken) effectSavepoint = taken;
      else await sendWithNext(tx, `SAVEPOINT ${effectSavepoint}`);
      try {
        return await effect(tx);
      } catch (err) {
        if (!(err instanceof AppError)) throw err;
        await tx.$client.query(`ROLLBACK TO SAVEPOINT ${effectSavepoint}`);
        outcome = "continue";
        const s = await rt.insertStepAndUpdateRun(tx, base("error", { content: `${err.code}: ${err.message}`, isError: true }), { addSteps: 1 });
        return s;
      }
    }

    async function after(written: Written): Promise<"continue" | "finished" | "waiting"> {
    let step = written && "later" in written ? (written.later.row ?? null) : written;
    const prepared = gw.prepared;
    if (prepared) {
      // Phases 2 and 3 of a gateway call (gateway/execute.ts): the MCP call with no
      // transaction open, then its step, charge and audit in a new fenced one. A lost
      // lease writes nothing; the fee goes back.
      const answer = await gateway.call(prepared);
      const written: LaterStep = { later: {} };
      await fenced(f, async (tx) => {
        const r = await gateway.complete(tx, prepared, answer);
        // The step and its count go with the COMMIT (nothing after them reads them back):
        // a replayed step's conflict fails the COMMIT, and with it the whole transaction.
        const step = base(r.status, r.output);
        await deferWrite(tx, rt.insertStepAndUpdateRunPrepared(step, { addSteps: 1 }), (res) => {
          written.later.row = rt.writtenStep(step, res) ?? undefined;
        });
      }).catch(async (err: unknown) => {
        await gateway.release(prepared);
        throw err;
      });
      step = written.later.row ?? null;
    }
    if (step) await deps.afterStep?.(step);
    return outcome;
    }

    return { inTx, after };

    async function effect(tx: Tx) {
      const write = (status: "ok" | "error", output: unknown, kind: StepRow["kind"] = "tool") =>
        rt.insertStepAndUpdateRun(tx, base(status, output, kind), { addSteps: 1 });
      const a = use.input as Record<string, unknown>;
      if (isGatewayToolName(use.name)) {
        // MCP tools, through the gateway: permitted by spec.tools, rate limited, fee reserved, audited, capped.
        // Phase 1 only, here: the call itself is made after this transaction commits.
        const r = await gateway.prepare(tx, {
          tenantId: f.tenantId,
          agentId: f.agentId,
          runId: run.id,
          runCreatedAt: run.createdAt,
          taskId: run.taskId,
          seq,
          name: use.name,
          input: use.input,
          descriptor: call.descriptor,
        });
        if ("result" in r) return write(r.result.status, r.result.output);
        gw.prepared = r.prepared;
        return null;
      }
      if (!INTERNAL_TOOL_NAMES.has(use.name)) return write("error", { content: `unknown tool '${use.name}'`, isError: true });
      switch (use.name) {
        case "complete_task":
        case "fail_task": {
          if (!input.task) return write("error", { content: "this run has no task", isError: true });
          const tw = { tenantId: f.tenantId, taskId: input.task.id, agentId: f.agentId, leaseOwner: input.task.leaseOwner, epoch: input.task.epoch };
          // Nothing was written since the effect's savepoint: a lost task lease rolls back to it.
          let title: string | undefined;
          // The task's row, when it was locked with this transaction's BEGIN; its completion
          // may then go with the COMMIT (nothing after it here reads the task).
          const locked = call.lockedTask ? { locked: call.lockedTask } : {};
          try {
            if (use.name === "complete_task") {
              title = (await deps.tasks.completeInTx(tx, { ...tw, ...locked, atCommit: call.lockedTask !== undefined, result: a.result ?? null })).title;
            } else {
              await deps.tasks.failInTx(tx, { ...tw, ...locked, error: String(a.error ?? "failed"), retry: a.retry === true });
            }
          } catch (err) {
            // The task's lease ran out and it went back to the queue (or on to someone
            // else): this run's work on it is void, and the run ends without touching it.
            if (!(err instanceof AppError) || err.code !== "CONFLICT") throw err;
            await tx.$client.query(`ROLLBACK TO SAVEPOINT ${effectSavepoint}`);
            const s = await write("error", { content: `task lease lost: ${err.message}`, isError: true });
            await endRun(tx, f, run, "failed", { error: { code: "TASK_LEASE_LOST", message: err.message } });
            outcome = "finished";
            return s;
          }
          const status = use.name === "complete_task" ? "succeeded" : "failed";
          const out = use.name === "complete_task" ? { result: a.result ?? null } : { error: { code: "TASK_FAILED", message: String(a.error ?? "") } };
          // The step, its count and the run's end in one statement, with the COMMIT (nothing
          // after it reads the step or the run back; the fence is held); endRun does the rest.
          const s: LaterStep = { later: {} };
          const step = base("ok", { content: use.name === "complete_task" ? "task completed" : "task failed" });
          await deferWrite(tx, rt.insertStepAndUpdateRunPrepared(step, { status, ended: true, ...out, addSteps: 1 }), (r) => {
            s.later.row = rt.writtenStep(step, r) ?? undefined;
          });
          await endRun(tx, f, run, status, out, { runUpdated: true, descriptor: call.descriptor, ...(title === undefined ? {} : { taskTitle: title }) });
          outcome = "finished";
          return s;
        }
        case "create_task": {
          // On its own initiative (a drive, or a task it gave itself): its autonomy and daily cap.
          const own = (await ownInitiative(tx, { tenantId: f.tenantId, agentId: f.agentId, kind: input.kind, taskId: input.task?.id, descriptor: call.descriptor }))
            ? await driveTaskAllowance(tx, { tenantId: f.tenantId, agentId: f.agentId, descriptor: call.descriptor })
            : null;
          if (own && !own.ok) return write("error", { content: own.message, isError: true });
          const t = await deps.tasks.createInTx(tx, {
            tenantId: f.tenantId,
            byAgentId: f.agentId,
            title: String(a.title ?? "").slice(0, 500),
            body: a.body === undefined ? undefined : String(a.body),
            assignee: a.assignee === undefined ? undefined : String(a.assignee),
            domain: a.domain === undefined ? undefined : String(a.domain),
            priority: typeof a.priority === "number" ? a.priority : undefined,
          });
          if (own?.backlog) {
            await moveToBacklog(tx, { tenantId: f.tenantId, taskId: t.id });
            return write("ok", { content: `created task ${t.id} in the backlog: a person promotes it`, taskId: t.id, backlog: true });
          }
          return write("ok", { content: `created task ${t.id}`, taskId: t.id });
        }
        case "propose": {
          if (!deps.proposals) return write("error", { content: "proposals are not available in this worker", isError: true }, "proposal");
          const p = await deps.proposals.createInTx(tx, { tenantId: f.tenantId, agentId: f.agentId, input: a });
          const asked = p.responses.map((r) => r.agent);
          return write(
            "ok",
            { content: `proposal ${p.id} is open; asked: ${asked.length > 0 ? asked.join(", ") : `no agent (it is approved at ${p.approveAt} unless a person decides)`}`, proposalId: p.id },
            "proposal",
          );
        }
        case "respond_to_proposal": {
          if (!deps.proposals) return write("error", { content: "proposals are not available in this worker", isError: true }, "proposal");
          const stance = String(a.stance ?? "");
          if (stance !== "support" && stance !== "concern" && stance !== "block") {
            return write("error", { content: "stance must be support, concern or block", isError: true }, "proposal");
          }
          const p = await deps.proposals.respondInTx(tx, {
            tenantId: f.tenantId,
            agentId: f.agentId,
            proposalId: String(a.proposal ?? ""),
            stance,
            comment: a.comment === undefined ? undefined : String(a.comment).slice(0, 10_000),
          });
          return write("ok", { content: `responded ${stance} to proposal ${p.id}; it is ${p.status}`, proposalId: p.id, status: p.status }, "proposal");
        }
        case "send_message":
        case "reply":
        case "broadcast": {
          // Messages and their recipients' wakes commit with this step (messaging/tools.ts).
          const r = await messagingTool(tx, deps.jobs, { tenantId: f.tenantId, agentId: f.agentId }, use.name, a);
          return write(r.status, r.output, "message");
        }
        case "memory":
        case "memory_search": {
          const r = await memoryTool(tx, { tenantId: f.tenantId, agentId: f.agentId, descriptor: call.descriptor, runId: run.id }, use.name, a);
          return write(r.status, r.output, "memory");
        }
        case "delegate": {
          const to = await repo.getAgentByName(tx, { tenantId: f.tenantId, name: String(a.agent ?? "") });
          if (to?.status !== "active" || to.id === f.agentId) {
            return write("error", { content: `cannot delegate to '${String(a.agent)}'`, isError: true }, "delegate");
          }
          const childId = newId("run");
          await rt.insertRun(tx, {
            tenantId: f.tenantId,
            id: childId,
            agentId: to.id,
            taskId: null,
            parentRunId: run.id,
            rootRunId: run.rootRunId,
            traceparent: newTraceparent(run.traceparent),
            trigger: "delegation",
            limits,
            input: { kind: "delegation", text: String(a.instructions ?? "") } satisfies RunInput,
          });
          const waitpointId = newId("wpt");
          await rt.insertWaitpoint(tx, {
            tenantId: f.tenantId,
            id: waitpointId,
            runId: run.id,
            agentId: f.agentId,
            kind: "child_run",
            ref: childId,
            resumeAt: null,
            expiresAt: null,
            payload: { agent: to.name },
          });
          const s = await write("ok", { waitpointId, childRunId: childId }, "delegate");
          await rt.updateRun(tx, { tenantId: f.tenantId, runId: run.id, patch: { status: "waiting" } });
          await wakeAgent(tx, f.tenantId, to.id, "task");
          outcome = "waiting";
          return s;
        }
      }
      return write("error", { content: `unknown tool '${use.name}'`, isError: true });
    }
  }

  /** Ends a run inside `tx`; a child run hands its result to the parent's waitpoint. */
  /**
   * Ends a run. `known`: what the caller has done or has at hand (the run row already ended
   * with its last step, the run's descriptor, the task's title), so that none of it is read
   * or written again.
   */
  async function endRun(
    tx: Tx,
    f: Fence,
    run: RunRow,
    status: "succeeded" | "failed" | "cancelled",
    out: { result?: unknown; error?: unknown },
    known: { runUpdated?: boolean; descriptor?: AgentDescriptor; taskTitle?: string } = {},
  ) {
    if (!known.runUpdated) await rt.updateRun(tx, { tenantId: f.tenantId, runId: run.id, patch: { status, ended: true, ...out } });
    // A finished task's result goes to the agent's archive (memory_search finds it later).
    if (status === "succeeded" && run.taskId) await archiveTaskResult(tx, f, run, out.result, known);
    if (run.parentRunId) {
      for (const w of await rt.pendingChildWaitpoints(tx, { tenantId: f.tenantId, childRunId: run.id })) {
        await rt.resolveWaitpoint(tx, { tenantId: f.tenantId, id: w.id, status: "resolved", resolution: { status, ...out } });
        await wakeAgent(tx, f.tenantId, w.agentId, "waitpoint");
      }
    }
  }

  async function finish(
    f: Fence,
    run: RunRow,
    status: "succeeded" | "failed",
    out: { result?: unknown; error?: { code: string; message: string } },
    /** A budget that refused the run's next call: it may pause the agent (onExhausted). */
    exhaustedBudget?: SpendRefused["budget"],
    /** A reservation made for a call that will not be made now: given back. */
    unused?: Reservation,
  ) {
    await fenced(f, async (tx) => {
      if (exhaustedBudget) await spend.exhausted(tx, exhaustedBudget);
      if (unused) await spend.release(tx, unused);
      const input = run.input as RunInput;
      if (input.task) {
        const tw = { tenantId: f.tenantId, taskId: input.task.id, agentId: f.agentId, leaseOwner: input.task.leaseOwner, epoch: input.task.epoch };
        // A run that ends without closing its task: its final answer is the result, or its
        // failure sends the task back for another attempt. A lost task lease voids both.
        await tx.$client.query("SAVEPOINT task_write");
        try {
          if (status === "succeeded") await deps.tasks.completeInTx(tx, { ...tw, result: out.result ?? null });
          else await deps.tasks.failInTx(tx, { ...tw, error: out.error?.message ?? "run failed", retry: true });
        } catch (err) {
          if (!(err instanceof AppError) || err.code !== "CONFLICT") throw err;
          await tx.$client.query("ROLLBACK TO SAVEPOINT task_write");
        }
      }
      await endRun(tx, f, run, status, out);
    });
  }

  async function archiveTaskResult(tx: Tx, f: Fence, run: RunRow, result: unknown, known: { descriptor?: AgentDescriptor; taskTitle?: string }) {
    const descriptor = known.descriptor ?? ((await repo.getAgentById(tx, { tenantId: f.tenantId, agentId: f.agentId }))?.descriptor as AgentDescriptor | undefined);
    const m = descriptor?.spec.memory;
    if (!m || m.type === "ephemeral") return;
    const title =
      known.taskTitle ??
      (await tx.$client.query<{ title: string }>(`SELECT title FROM tasks WHERE tenant_id = $1 AND id = $2`, [f.tenantId, run.taskId])).rows[0]?.title ??
      "";
    await archiveResult(tx, { tenantId: f.tenantId, agentId: f.agentId, retentionDays: m.retention_days, title: `Task ${run.taskId}: ${title}`, result, ref: run.taskId! });
  }


  return {
    wake,
    /** Stop taking new steps; runs in flight stop after their current step and release. */
    stop() {
      stopping = true;
      for (const c of inFlight) c.abort();
      if (!deps.gateway) void gateway.close();
    },
    get stopping() {
      return stopping;
    },
  };
}


/**
 * An upper bound on a request's prompt tokens, for the reservation: its UTF-8 bytes as
 * JSON (byte-level BPE tokenizers never make more tokens than bytes) plus a margin per
 * message and for the provider's own framing. It overestimates several times over; the
 * settle charges what the provider reports.
 */
export function promptTokenBound(req: { system: string; messages: Message[]; tools?: unknown[] }): number {
  const bytes = Buffer.byteLength(req.system) + Buffer.byteLength(JSON.stringify(req.messages)) + Buffer.byteLength(JSON.stringify(req.tools ?? []));
  return bytes + 16 * req.messages.length + 512;
}

function stepBase(run: RunRow, seq: number, f: Fence, s: { kind: StepRow["kind"]; name: string | null; status: "ok" | "error"; output: unknown }) {
  return {
    tenantId: run.tenantId,
    runId: run.id,
    runCreatedAt: run.createdAt,
    seq,
    kind: s.kind,
    name: s.name,
    status: s.status,
    input: null as unknown,
    output: s.output,
    provider: null as string | null,
    model: null as string | null,
    inputTokens: 0,
    cacheReadTokens: 0,
    cacheWriteTokens: 0,
    outputTokens: 0,
    latencyMs: null as number | null,
    leaseEpoch: f.epoch,
  };
}

/** Steps that record a decision about a tool call rather than its result. */
const BOOKKEEPING_KINDS: ReadonlySet<StepRow["kind"]> = new Set(["policy", "approval"]);

/** A step that answers a tool use (it becomes a tool_result block). */
function isToolResult(s: StepRow): boolean {
  return s.kind !== "llm" && !BOOKKEEPING_KINDS.has(s.kind) && typeof (s.input as { toolUseId?: unknown } | null)?.toolUseId === "string";
}

type ToolUse = Extract<ContentBlock, { type: "tool_use" }>;

/** A step written with its transaction's COMMIT: its row once that has run. */
type LaterStep = { later: { row?: StepRow } };
/** What a tool call wrote: its step, one still to be written with the COMMIT, or none. */
type Written = StepRow | LaterStep | null;

interface ToolCallContext {
  /** The seq of the model step that asked for the call. */
  llmSeq: number;
  descriptor: AgentDescriptor;
  /** The run's waitpoints, as read this turn. */
  waits: repo.runtime.WaitpointRow[];
  /**
   * The run's task, locked for its write in this transaction already (sent with its
   * BEGIN): complete_task and fail_task need not read it, and the completion goes with the
   * COMMIT.
   */
  lockedTask?: { row: repo.LockedTaskRow | undefined };
}

function toolUses(llm: StepRow) {
  const out = llm.output as { content?: ContentBlock[] } | null;
  return (out?.content ?? []).filter((b): b is Extract<ContentBlock, { type: "tool_use" }> => b.type === "tool_use");
}

function textOf(llm: StepRow) {
  const out = llm.output as { content?: ContentBlock[] } | null;
  return (out?.content ?? [])
    .filter((b): b is Extract<ContentBlock, { type: "text" }> => b.type === "text")
    .map((b) => b.text)
    .join("\n");
}

/** The conversation so far, rebuilt from the step log (the run's only memory). */
export function rebuildMessages(firstText: string, steps: StepRow[], waits: repo.runtime.WaitpointRow[]): Message[] {
  const messages: Message[] = [{ role: "user", content: [{ type: "text", text: firstText || "(no input)" }] }];
  for (const s of steps) {
    if (s.kind === "llm") {
      if (s.status !== "ok") continue;
      const content = ((s.output as { content?: ContentBlock[] })?.content ?? []) as ContentBlock[];
      messages.push({ role: "assistant", content: content.length ? content : [{ type: "text", text: "" }] });
      continue;
    }
    if (!isToolResult(s)) continue;
    const inp = s.input as { toolUseId: string };
    const out = (s.output ?? {}) as { content?: string; isError?: boolean; waitpointId?: string };
    let content = out.content ?? "";
    let isError = out.isError === true || s.status === "error";
    if (out.waitpointId) {
      const w = waits.find((x) => x.id === out.waitpointId);
      content = JSON.stringify(w?.resolution ?? { status: w?.status ?? "pending" });
      isError = w?.status !== "resolved";
    }
    const block: ContentBlock = { type: "tool_result", toolUseId: inp.toolUseId, content, ...(isError ? { isError: true } : {}) };
    const last = messages[messages.length - 1]!;
    if (last.role === "user" && last.content.every((b) => b.type === "tool_result")) last.content.push(block);
    else messages.push({ role: "user", content: [block] });
  }
  return messages;
}

export type AgentRuntime = ReturnType<typeof agentRuntime>;

/**
 * The schedule tick: due agents by `next_wake_at`, SKIP LOCKED so several workers share
 * it. The idle check is in the same statement, in SQL and before any model is involved:
 * a claimable task, an unread message or a run to resume. An agent with none of them has
 * an idle cycle at zero tokens (counted on its session) and is not woken at all.
 */
export async function scheduleTick(deps: { database: Database; jobs: Pick<Jobs, "enqueue"> }, opts: { batch?: number } = {}) {
  return withSystem(deps.database, async (tx) => {
    const { rows } = await tx.$client.query<{ tenant_id: string; id: string; work: boolean }>(
      `WITH due AS (
         SELECT tenant_id, id, descriptor->'spec'->'schedule'->>'every' AS every FROM agents
         WHERE next_wake_at <= now() AND status = 'active'
         ORDER BY next_wake_at LIMIT $1 FOR UPDATE SKIP LOCKED)
       UPDATE agents a SET next_wake_at = CASE WHEN due.every IS NULL THEN NULL ELSE now() + due.every::interval END
       FROM due WHERE a.tenant_id = due.tenant_id AND a.id = due.id
       RETURNING a.tenant_id, a.id,
         EXISTS (SELECT 1 FROM messages m WHERE m.tenant_id = a.tenant_id AND m.to_agent_id = a.id AND m.read_at IS NULL)
         OR EXISTS (SELECT 1 FROM runs r WHERE r.tenant_id = a.tenant_id AND r.agent_id = a.id AND r.status IN ('running', 'waiting') AND r.trigger <> 'external')
         OR ${repo.claimableTaskExists("a.tenant_id", "a.id")}
         OR ${repo.memory.driveDueExists("a")} AS work`,
      [opts.batch ?? 1000],
    );
    const idle = rows.filter((r) => !r.work);
    for (const r of rows) {
      if (r.work) {
        await deps.jobs.enqueue(tx, "agent.wake", { tenantId: r.tenant_id, agentId: r.id, reason: "schedule" }, { singletonKey: wakeKey(r.tenant_id, r.id) });
      }
    }
    if (idle.length) {
      await tx.$client.query(
        `INSERT INTO agent_sessions (tenant_id, agent_id, idle_cycles)
         SELECT t, a, 1 FROM unnest($1::text[], $2::text[]) AS x(t, a)
         ON CONFLICT (tenant_id, agent_id) DO UPDATE SET idle_cycles = agent_sessions.idle_cycles + 1`,
        [idle.map((x) => x.tenant_id), idle.map((x) => x.id)],
      );
    }
    return { due: rows.length, woken: rows.length - idle.length, idle: idle.length };
  });
}

/**
 * The runtime's periodic system work: wakes agents whose session lease expired with a
 * run left unfinished (its worker died), and resolves timer waitpoints that are due.
 */
export async function runtimeSweep(deps: { database: Database; jobs: Pick<Jobs, "enqueue"> }) {
  return withSystem(deps.database, async (tx) => {
    const orphaned = await tx.$client.query<{ tenant_id: string; agent_id: string }>(
      `SELECT s.tenant_id, s.agent_id FROM agent_sessions s
       WHERE s.lease_owner IS NOT NULL AND s.lease_expires_at < now()
         AND EXISTS (SELECT 1 FROM agents a WHERE a.tenant_id = s.tenant_id AND a.id = s.agent_id AND a.status = 'active')
         AND EXISTS (SELECT 1 FROM runs r WHERE r.tenant_id = s.tenant_id AND r.agent_id = s.agent_id AND r.status = 'running' AND r.trigger <> 'external')
       LIMIT 500`,
    );
    for (const o of orphaned.rows) {
      await deps.jobs.enqueue(tx, "agent.wake", { tenantId: o.tenant_id, agentId: o.agent_id, reason: "recheck" }, { singletonKey: wakeKey(o.tenant_id, o.agent_id) });
    }
    const timers = await rt.dueTimers(tx, 500);
    for (const w of timers) {
      await rt.resolveWaitpoint(tx, { tenantId: w.tenantId, id: w.id, status: "resolved", resolution: { status: "resolved", at: new Date().toISOString() } });
      await deps.jobs.enqueue(tx, "agent.wake", { tenantId: w.tenantId, agentId: w.agentId, reason: "waitpoint" }, { singletonKey: wakeKey(w.tenantId, w.agentId) });
    }
    // Approvals past their expiry: the run wakes and its agent reads `{expired: true}`.
    const approvalsExpired = await expireApprovals(tx, deps.jobs);
    // Runs waiting on anything keep their task's lease meanwhile.
    await holdTaskLeasesOfWaits(tx);
    await tx.$client.query("SELECT bosun_ensure_partitions('steps', 2)");
    return { orphaned: orphaned.rows.length, timers: timers.length, approvalsExpired };
  });
}

