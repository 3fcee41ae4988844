/**
 * The console, end to end: the real API (in process, on an ephemeral port) serving the
 * built SPA, a worker running the demo agents on the offline scripted provider, and
 * Debian's Chromium driven by playwright-core. Each flow asserts what a person would see.
 *
 * Screenshots of every page go to a fresh folder under the OS temp dir; its path is
 * printed. The console must be built first (`npm run check` / `npm test` build it).
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { type ApiServer, loadApiConfig, startApi } from "@bosun/api";
import { bootstrap, createServices } from "@bosun/core";
import { createJobs, type Jobs } from "@bosun/jobs";
import { createRuntime, startWorker, type Worker } from "@bosun/worker";
import pino from "pino";
import { type BrowserContext, chromium, type Locator, type Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createTestDb, type TestDb } from "../helpers/db";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const CONSOLE_DIR = path.resolve(import.meta.dirname, "../../apps/console/dist");
const EMAIL = "operator@example.com";
const PASSWORD = "console-e2e-password";
const DESKTOP = { width: 1366, height: 900 };
const PHONE = { width: 390, height: 844 };
/** How long the UI may take to show a change the worker made (it polls every 3 s). */
const LIVE_MS = 20_000;

let db: TestDb;
let producer: Jobs;
let workerJobs: Jobs;
let worker: Worker;
let api: ApiServer;
let base: string;
let context: BrowserContext;
let page: Page;
let profileDir: string;
let shotsDir: string;
let shotCount = 0;
/** Uncaught errors in the page: any is a failure of the flow that caused it. */
const pageErrors: string[] = [];

/** A full-page screenshot, numbered in the order the flows take them. */
async function shot(name: string) {
  shotCount += 1;
  await page.screenshot({ path: path.join(shotsDir, `${String(shotCount).padStart(2, "0")}-${name}.png`), fullPage: true });
}

const region = (name: string | RegExp) => page.getByRole("region", { name });
const column = (status: string) => page.getByRole("region", { name: new RegExp(`^${status} \\d`) });
const card = (where: Locator, title: string) => where.getByRole("article", { name: title });
const nav = (name: string | RegExp) => page.getByRole("navigation", { name: "Main" }).getByRole("link", { name });
/** The tenant's active agents, from the API (the demo fleet grows as the gateway and memory demos land). */
const activeAgents = async () =>
  ((await (await page.request.get(`${base}/v1/agents?limit=200`)).json()).items as { status: string }[]).filter((a) => a.status === "active").length;
/** Cookie-authenticated writes from the test itself carry the console's Origin, as the browser's do. */
const postJson = (url: string, data: unknown) => page.request.post(`${base}${url}`, { data, headers: { origin: base } });

beforeAll(async () => {
  if (!fs.existsSync(path.join(CONSOLE_DIR, "index.html"))) {
    throw new Error(`the console is not built (${CONSOLE_DIR}); run \`npm run build\` first (npm test does)`);
  }
  if (!fs.existsSync(CHROMIUM)) throw new Error(`Chromium not found at ${CHROMIUM}; install it with apt-get install -y chromium`);
  shotsDir = fs.mkdtempSync(path.join(os.tmpdir(), "bosun-console-screenshots-"));
  console.log(`console screenshots: ${shotsDir}`);

  db = await createTestDb();
  producer = createJobs({ connectionString: db.url, role: "producer", max: 2 });
  await producer.start();
  const services = createServices({ database: db.database, jobs: producer, secureCookies: false });
  // The demo tenant, its three agents and four starter tasks, as on a first `npm start`.
  await bootstrap(services, { BOSUN_INIT_ADMIN_EMAIL: EMAIL, BOSUN_INIT_ADMIN_PASSWORD: PASSWORD });
  // A second tenant the operator also belongs to, for the tenant switcher.
  const other = await services.identity.signup({
    tenant: { name: "Staging", timeZone: "UTC" },
    owner: { email: "staging-owner@example.com", password: "staging-owner-password" },
  });
  await db.database.pool.query(
    "INSERT INTO memberships (tenant_id, user_id, role) SELECT $1, id, 'admin' FROM users WHERE lower(email) = lower($2)",
    [other.tenant.id, EMAIL],
  );

  const config = loadApiConfig({}, { host: "127.0.0.1", port: 0, publicUrl: "http://127.0.0.1", consoleDir: CONSOLE_DIR, rateLimitPerMinute: 100_000 });
  api = await startApi({ database: db.database, databaseUrl: db.url, jobs: producer, config, logger: false });
  base = api.url;

  workerJobs = createJobs({ connectionString: db.url, role: "worker", max: 4 });
  const workerServices = createServices({ database: db.database, jobs: workerJobs, secureCookies: false });
  const log = pino({ level: process.env.TEST_LOG ?? "silent" });
  worker = await startWorker({ jobs: workerJobs, services: workerServices, logger: log, runtime: createRuntime(workerServices, workerJobs, { logger: log }), tickMs: 1000, rollupMs: 1000 });

  profileDir = fs.mkdtempSync(path.join(os.tmpdir(), "bosun-chromium-"));
  // launchPersistentContext is how Playwright takes --user-data-dir: a fresh profile per run.
  context = await chromium.launchPersistentContext(profileDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-quic",
      "--no-first-run",
      "--disable-component-update",
      "--disable-sync",
    ],
    viewport: DESKTOP,
    timezoneId: "UTC",
    locale: "en-GB",
  });
  context.setDefaultTimeout(10_000);
  page = context.pages()[0] ?? (await context.newPage());
  page.on("pageerror", (err) => pageErrors.push(err.message));
}, 90_000);

afterAll(async () => {
  await context?.close().catch(() => {});
  if (profileDir) fs.rmSync(profileDir, { recursive: true, force: true });
  await api?.close();
  await worker?.stop();
  await workerJobs?.stop({ graceful: false, timeout: 1000 }).catch(() => {});
  await producer?.stop({ graceful: false, timeout: 1000 }).catch(() => {});
  await db?.drop();
  if (shotsDir) console.log(`console screenshots: ${shotsDir}`);
});

afterEach(async (ctx) => {
  // A failed flow leaves a picture of what the page showed at that moment.
  if (ctx.task.result?.state === "fail") await shot(`FAILED-${ctx.task.name.slice(0, 40).replace(/\W+/g, "-")}`).catch(() => {});
  expect(pageErrors.splice(0)).toEqual([]);
});

describe("the console", { timeout: 60_000 }, () => {
  it("refuses a wrong password readably, then logs in to the fleet", async () => {
    await page.goto(`${base}/`);
    await page.getByLabel("Email").fill(EMAIL);
    await page.getByLabel("Password").fill("not the password");
    await page.getByRole("button", { name: "Log in" }).click();
    const error = page.getByRole("alert");
    await expect.poll(() => error.textContent()).toContain("email or password is wrong");
    expect(await error.textContent()).toContain("UNAUTHORIZED");
    expect(await error.textContent()).toMatch(/Request id req_/);
    await shot("login-error");

    await page.getByLabel("Password").fill(PASSWORD);
    await page.getByRole("button", { name: "Log in" }).click();
    await page.getByRole("heading", { name: "Fleet", level: 1 }).waitFor();
    await page.getByText(/Live · refreshes every 3 s/).waitFor();
    // The demo agents are up and their starter tasks get done by the worker.
    const active = page.getByRole("link", { name: /Active agents/ });
    const demoAgents = await activeAgents();
    expect(demoAgents).toBeGreaterThanOrEqual(3);
    await expect.poll(() => active.locator(".stat-value").textContent()).toBe(String(demoAgents));
    await expect.poll(() => page.getByRole("link", { name: "reconciliation-finance" }).count()).toBeGreaterThan(0);
    const recent = page.getByRole("region", { name: "Runs in progress" });
    await expect.poll(() => recent.getByText("succeeded").count(), { timeout: LIVE_MS }).toBeGreaterThanOrEqual(4);
    await shot("fleet");

    await page.setViewportSize(PHONE);
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Tasks" }).waitFor();
    await shot("fleet-phone");
    await page.setViewportSize(DESKTOP);
  });

  it("applies an agent from a pasted YAML descriptor and diffs two revisions", async () => {
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Agents" }).click();
    await page.getByRole("heading", { name: "Agents", level: 1 }).waitFor();
    await page.getByRole("link", { name: "support-triage" }).waitFor();
    await page.getByRole("button", { name: "Apply a descriptor" }).click();
    const descriptor = page.getByLabel("Descriptor (YAML or JSON)");

    // An unknown field is refused with its path, shown in the form.
    await descriptor.fill(LAUNCH_COORDINATOR.replace("pinned_revision", "temperature: 0.2\n    pinned_revision"));
    await page.getByRole("button", { name: "Apply descriptor" }).click();
    const error = page.getByRole("alert");
    await error.waitFor();
    expect(await error.textContent()).toContain("VALIDATION");
    expect(await error.textContent()).toContain("spec.model.temperature");
    await shot("agents-apply-error");

    await descriptor.fill(LAUNCH_COORDINATOR);
    await page.getByRole("button", { name: "Apply descriptor" }).click();
    await page.waitForURL(/\/agents\/launch-coordinator/);
    await page.getByRole("heading", { name: /launch-coordinator/, level: 1 }).waitFor();
    await page.getByText("Applied: revision 1 is now current.").waitFor();
    await page.getByText("You coordinate launches").first().waitFor();

    // Edit the descriptor: a changed soul is revision 2, and the diff names the field.
    await page.getByRole("button", { name: "Edit descriptor" }).click();
    const editor = page.getByRole("region", { name: "Edit descriptor" }).getByLabel("Descriptor (YAML or JSON)");
    await editor.fill((await editor.inputValue()).replace("You coordinate launches", "You coordinate launches and releases"));
    await page.getByRole("button", { name: "Apply descriptor" }).click();
    await page.getByText("Applied: revision 2 is now current.").waitFor();
    const diff = page.getByRole("table", { name: "Changes from revision 1 to revision 2" });
    await diff.waitFor();
    expect(await diff.textContent()).toContain("spec.soul");
    expect(await diff.textContent()).toContain("You coordinate launches and releases");
    await page.getByRole("button", { name: "JSON" }).click();
    await page.getByText('"apiVersion": "agent.os/v1"').waitFor();
    await shot("agent-detail");

    await page.getByRole("link", { name: "← Agents" }).click();
    await page.getByRole("link", { name: "launch-coordinator" }).waitFor();
    await shot("agents");
  });

  it("creates tasks with a dependency and a review, approves the review and watches the demo agents finish", async () => {
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Tasks" }).click();
    await page.getByRole("heading", { name: "Tasks", level: 1 }).waitFor();
    await page.getByText(/Live · refreshes every 3 s/).waitFor();

    // A: release-notes drafts it, and a person must approve it.
    await page.getByRole("button", { name: "New task" }).click();
    let form = region("New task");
    await form.getByLabel("Title").fill("Draft the November close checklist");
    await form.getByLabel("Assignee").selectOption("release-notes");
    await form.getByLabel("Requires review before it is done").check();
    await form.getByRole("button", { name: "Create task" }).click();
    await page.getByRole("status").getByText("Draft the November close checklist").waitFor();

    // B: the demo finance agent, only once A is done.
    await page.getByRole("button", { name: "New task" }).click();
    form = region("New task");
    await form.getByLabel("Title").fill("Reconcile the November invoices");
    await form.getByLabel("Assignee").selectOption("reconciliation-finance");
    await form.getByLabel(/Priority/).fill("80");
    await form.getByRole("checkbox", { name: /Draft the November close checklist/ }).check();
    await form.getByRole("button", { name: "Create task" }).click();
    await page.getByRole("status").getByText("Reconcile the November invoices").waitFor();

    // A reaches review (the agent finished it); B waits in the queue for A.
    await card(column("in review"), "Draft the November close checklist").waitFor({ timeout: LIVE_MS });
    await card(column("queued"), "Reconcile the November invoices").waitFor();
    await shot("tasks-board-review");

    await card(column("in review"), "Draft the November close checklist").getByRole("button", { name: "Approve" }).click();
    await card(column("done"), "Draft the November close checklist").waitFor({ timeout: LIVE_MS });
    // Approving A unblocks B, which the worker runs to the end.
    await card(column("done"), "Reconcile the November invoices").waitFor({ timeout: LIVE_MS });
    await shot("tasks-board");

    await card(column("done"), "Reconcile the November invoices").getByRole("link", { name: "Reconcile the November invoices" }).click();
    await page.getByRole("heading", { name: /Reconcile the November invoices/, level: 1 }).waitFor();
    const deps = region("Depends on");
    await deps.getByText("Draft the November close checklist").waitFor();
    expect(await deps.textContent()).toContain("done");
    await page.getByRole("heading", { name: "Result" }).waitFor();
    await shot("task-detail");

    // Its run's trace: the model call and the complete_task tool call, with inputs.
    await page.getByRole("link", { name: "Open the run trace" }).click();
    await page.getByRole("heading", { name: /Trace of reconciliation-finance/, level: 1 }).waitFor();
    const timeline = region("Timeline");
    await timeline.getByText("complete_task", { exact: true }).waitFor();
    const llm = timeline.locator("details").filter({ hasText: "scripted-small" }).first();
    await llm.locator("summary").click();
    await llm.getByRole("heading", { name: "Input" }).waitFor();
    expect(await llm.textContent()).toContain("Reconcile the November invoices");
    expect(await llm.textContent()).toMatch(/\d+ input · \d+ output/);
    await shot("run-trace");
  });

  it("starts a run of the applied agent and shows its sub-agent on the trace", async () => {
    await page.goto(`${base}/agents/launch-coordinator`);
    await page.getByLabel("Message or run input").fill("Prepare the 2.0 launch");
    await page.getByRole("button", { name: "Start a run with this input" }).click();
    await page.getByRole("link", { name: "open its trace" }).click();
    await page.getByRole("heading", { name: /Trace of launch-coordinator/, level: 1 }).waitFor();
    const timeline = region("Timeline");
    // The delegation made a child run of release-notes in the same trace.
    await timeline.getByText("release-notes", { exact: true }).waitFor({ timeout: LIVE_MS });
    await timeline.getByText("delegate", { exact: true }).first().waitFor();
    await expect.poll(() => page.getByRole("heading", { level: 1 }).textContent(), { timeout: LIVE_MS }).toContain("succeeded");
    expect(await timeline.getByText("sub-agent ·").count()).toBeGreaterThanOrEqual(1);
    await shot("run-trace-sub-agents");

    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Runs" }).click();
    await page.getByRole("heading", { name: "Runs", level: 1 }).waitFor();
    await page.getByRole("cell", { name: /launch-coordinator/ }).first().waitFor();
    await shot("runs");
  });

  it("holds a tool call for approval, approves it with a comment in the inbox, and the run resumes and finishes its task", { timeout: 90_000 }, async () => {
    // procurement's first model turn creates a task worth $1,200; its descriptor wants a person above $1,000.
    await page.goto(`${base}/agents`);
    await page.getByRole("button", { name: "Apply a descriptor" }).click();
    await page.getByLabel("Descriptor (YAML or JSON)").fill(PROCUREMENT);
    await page.getByRole("button", { name: "Apply descriptor" }).click();
    await page.getByText("Applied: revision 1 is now current.").waitFor();

    await nav("Tasks").click();
    await page.getByRole("button", { name: "New task" }).click();
    const form = region("New task");
    await form.getByLabel("Title").fill("Buy servers for the Q3 expansion");
    await form.getByLabel("Assignee").selectOption("procurement");
    await form.getByRole("button", { name: "Create task" }).click();
    await page.getByRole("status").getByText("Buy servers for the Q3 expansion").waitFor();

    // The run stops at the approval: it shows in the inbox (and its count in the nav) while the run waits.
    await nav(/^Inbox/).click();
    await page.getByRole("heading", { name: "Inbox", level: 1 }).waitFor();
    const approvals = region(/^Approvals/);
    const held = card(approvals, "create_task by procurement");
    await held.waitFor({ timeout: LIVE_MS });
    expect(await held.textContent()).toContain("Order 40 servers");
    expect(await held.textContent()).toMatch(/\$1200\.00 is over the agent's approval threshold of \$1000\.00/);
    expect(await held.textContent()).toContain("spec.approval.on_action_value_usd_gt");
    await held.getByText("waiting", { exact: true }).waitFor();
    await expect.poll(() => nav(/^Inbox/).textContent(), { timeout: LIVE_MS }).toMatch(/Inbox\s*[1-9]/);
    const runHref = (await held.getByRole("link", { name: /…/ }).getAttribute("href"))!;
    expect(runHref).toMatch(/^\/runs\/run_/);
    await shot("inbox");
    await page.setViewportSize(PHONE);
    await held.getByRole("button", { name: "Approve" }).waitFor();
    await shot("inbox-phone");
    await page.setViewportSize(DESKTOP);

    // Approve with a comment, from the keyboard: the form submits on Enter in the button.
    await held.getByLabel("Comment (optional)").fill("Budgeted in the Q3 plan");
    await held.getByRole("button", { name: "Approve" }).focus();
    await page.keyboard.press("Enter");
    await page.getByRole("status").getByText("Approved create_task for procurement: its run resumes.").waitFor();
    await held.waitFor({ state: "detached" });
    const decided = (await (await page.request.get(`${base}/v1/approvals?agent=procurement`)).json()).items[0];
    expect(decided).toMatchObject({ status: "approved", comment: "Budgeted in the Q3 plan", decidedBy: { type: "user" } });

    // The run resumes: the tool runs once, and the agent completes its task.
    await page.goto(`${base}${runHref}`);
    await page.getByRole("heading", { name: /Trace of procurement/, level: 1 }).waitFor();
    await expect.poll(() => page.getByRole("heading", { level: 1 }).textContent(), { timeout: LIVE_MS }).toContain("succeeded");
    const timeline = region("Timeline");
    await timeline.getByText("create_task", { exact: true }).first().waitFor();
    await timeline.getByText("complete_task", { exact: true }).waitFor();
    await shot("run-trace-approved");
    await nav("Tasks").click();
    await card(column("done"), "Buy servers for the Q3 expansion").waitFor({ timeout: LIVE_MS });
    // The approved call made its task, which release-notes picks up.
    await card(page.locator("main"), "Order 40 servers").waitFor({ timeout: LIVE_MS });
    const created = await (await page.request.get(`${base}/v1/tasks?limit=200`)).json();
    expect((created.items as { title: string }[]).filter((t) => t.title === "Order 40 servers")).toHaveLength(1);

    // The fleet counts what still waits in the inbox and links to it.
    await nav("Fleet").click();
    const pending = page.getByRole("link", { name: /Pending approvals/ });
    await pending.waitFor();
    const stillPending = (await (await page.request.get(`${base}/v1/approvals?status=pending`)).json()).items.length as number;
    await expect.poll(() => pending.locator(".stat-value").textContent()).toBe(String(stillPending));
  });

  it("denies the demo tool-runner's held call with a comment, and creates and deletes a policy", async () => {
    // The gateway demo's agent waits on a person for get-sum (spec.approval.tools).
    await nav(/^Inbox/).click();
    const held = card(region(/^Approvals/), "mcp__everything__get-sum by tool-runner");
    await held.waitFor({ timeout: LIVE_MS });
    const runHref = (await held.getByRole("link", { name: /…/ }).getAttribute("href"))!;
    await held.getByLabel("Comment (optional)").fill("Not this month");
    await held.getByRole("button", { name: "Deny" }).click();
    await page.getByRole("status").getByText("Denied mcp__everything__get-sum for tool-runner: its run resumes.").waitFor();
    await held.waitFor({ state: "detached" });
    // The agent reads the denial as the tool's result and finishes its run.
    await page.goto(`${base}${runHref}`);
    await expect.poll(() => page.getByRole("heading", { level: 1 }).textContent(), { timeout: LIVE_MS }).toContain("succeeded");
    const denial = (await (await page.request.get(`${base}${runHref.replace("/runs/", "/v1/runs/")}/steps`)).json()).items.find(
      (st: { kind: string; name: string }) => st.kind === "tool" && st.name.includes("get-sum"),
    );
    expect(denial.status).toBe("error");
    expect(JSON.stringify(denial.output)).toContain("Not this month");

    // Policies: an admin adds one in the UI; it is listed in words, then deleted.
    await nav("Policies").click();
    await page.getByRole("heading", { name: "Policies", level: 1 }).waitFor();
    await page.getByRole("button", { name: "New policy" }).click();
    const form = page.getByRole("form", { name: "New policy" });
    await form.getByLabel("Name").fill("ask-before-env");
    await form.getByLabel("Tool (glob on its ref)").fill("mcp://gateway/everything/get-env");
    await form.getByLabel("Decision").selectOption("require_approval");
    await form.getByLabel("Approval expires after").fill("2h");
    await form.getByRole("button", { name: "Create policy" }).click();
    const row = page.getByRole("table", { name: "Policies" }).getByRole("row", { name: /ask-before-env/ });
    await row.waitFor();
    expect(await row.textContent()).toContain("tool mcp://gateway/everything/get-env");
    expect(await row.textContent()).toContain("every agent");
    expect(await row.textContent()).toContain("expires after 2 h 0 min");
    await shot("policies");
    // A second with the same name is refused, readably.
    await page.getByRole("button", { name: "New policy" }).click();
    await form.getByLabel("Name").fill("ask-before-env");
    await form.getByRole("button", { name: "Create policy" }).click();
    await expect.poll(() => form.getByRole("alert").textContent()).toMatch(/CONFLICT|VALIDATION/);
    await form.getByRole("button", { name: "Cancel" }).click();
    await row.getByRole("button", { name: "Delete" }).click();
    await row.getByRole("button", { name: "Yes, delete" }).click();
    await row.waitFor({ state: "detached" });
  });

  it("shows the period's spend, exports the ledger as CSV, and sets a budget", async () => {
    // The demo agents' scripted models are priced: their finished runs cost something.
    // The worker rolls the ledger up every second here (a minute by default): wait for the
    // daily totals that GET /v1/costs reads to show the demo agents' spend.
    const apiTotal = async (from: string, to: string) =>
      (await (await page.request.get(`${base}/v1/costs?from=${from}&to=${to}`)).json()).totalMicros as number;
    const tenant = (await (await page.request.get(`${base}/v1/tenant`)).json()) as { timeZone: string };
    const day = new Intl.DateTimeFormat("en-CA", { timeZone: tenant.timeZone }).format(new Date());
    await expect.poll(() => apiTotal(`${day.slice(0, 8)}01`, day), { timeout: LIVE_MS }).toBeGreaterThan(0);
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Costs" }).click();
    await page.getByRole("heading", { name: "Costs", level: 1 }).waitFor();
    const total = page.getByTestId("cost-total");
    await total.waitFor();
    expect(await total.textContent()).toMatch(/^\$\d[\d,]*\.\d+$/);
    expect(await total.textContent()).not.toMatch(/^\$0\.0+$/);
    await region("By agent").getByRole("link", { name: "reconciliation-finance" }).waitFor();
    expect(await region("By agent").textContent()).toMatch(/tokens \$[\d.]+ · actions \$[\d.]+ · compute \$[\d.]+/);
    await region("By model").getByText("scripted/scripted-small").waitFor();
    await shot("costs");

    // The export link carries the period; the browser downloads it with the session cookie.
    const link = page.getByRole("link", { name: "Export CSV" });
    const href = new URL((await link.getAttribute("href"))!, base);
    expect(href.pathname).toBe("/v1/costs/export.csv");
    const [download] = await Promise.all([page.waitForEvent("download"), link.click()]);
    expect(download.suggestedFilename()).toMatch(/^bosun-ledger-\d{4}-\d{2}-\d{2}-to-\d{4}-\d{2}-\d{2}\.csv$/);
    const rows = parseCsv(fs.readFileSync((await download.path())!, "utf8"));
    const header = rows[0]!;
    expect(header).toEqual(expect.arrayContaining(["id", "kind", "agent", "model", "cost_micros", "cost_usd"]));
    const data = rows.slice(1);
    expect(data.length).toBeGreaterThan(0);
    const col = header.indexOf("cost_micros");
    const ledgerTotal = data.reduce((n, r) => n + Number(r[col]), 0);
    // Every ledger row is a data row with its exact cost; the rollups behind GET /v1/costs
    // trail the ledger (they are rebuilt in the background), so the ledger holds at least their total.
    for (const r of data) expect(r[col]).toMatch(/^\d+$/);
    const apiMicros = await apiTotal(href.searchParams.get("from")!, href.searchParams.get("to")!);
    expect(apiMicros).toBeGreaterThan(0);
    expect(ledgerTotal).toBeGreaterThanOrEqual(apiMicros);

    // A tenant budget for the month, created in the UI and listed with its gauge.
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Budgets & alerts" }).click();
    await page.getByRole("heading", { name: "Budgets & alerts", level: 1 }).waitFor();
    await page.getByRole("button", { name: "New budget" }).click();
    const form = page.getByRole("form", { name: "New budget" });
    await form.getByLabel("Window").selectOption("month");
    await form.getByLabel("Limit (US$)").fill("25");
    await form.getByLabel(/Alert thresholds/).fill("50, 90, 100");
    await form.getByLabel("Enforcement").selectOption("soft");
    await form.getByRole("button", { name: "Create budget" }).click();
    const row = page.getByRole("row", { name: /whole tenant/ });
    await row.waitFor();
    expect(await row.textContent()).toContain("$25.00");
    expect(await row.textContent()).toContain("50 %, 90 %, 100 %");
    expect(await row.getByRole("img", { name: /% used: \$[\d.]+ of \$25\.00/ }).count()).toBe(1);

    // A descriptor budget belongs to its descriptor: the API's refusal is shown as it is.
    const declared = page.getByRole("row", { name: /reconciliation-finance.*per day/ });
    await declared.getByRole("button", { name: "Delete" }).click();
    await declared.getByRole("button", { name: "Yes, delete" }).click();
    const error = page.getByRole("alert");
    await expect.poll(() => error.textContent()).toContain("descriptor (spec.budgets): remove it there");
    expect(await error.textContent()).toContain("CONFLICT");
    await shot("budgets");
    await page.getByRole("button", { name: "Dismiss error" }).click();

    // The fleet shows the month's spend against the new budget.
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Fleet" }).click();
    const spend = region("Spend");
    await spend.getByText("of $25.00 tenant budget").waitFor();
    await shot("fleet-spend");

    await page.goto(`${base}/agents/reconciliation-finance`);
    const gauges = region("Budgets");
    await gauges.getByText(/\$40\.00 per day/).waitFor();
    expect(await gauges.getByRole("img", { name: /% used/ }).count()).toBeGreaterThanOrEqual(1);
    await shot("agent-budgets");
  });

  it("creates an API key, shows its secret once, and revokes it", async () => {
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "API keys" }).click();
    await page.getByRole("heading", { name: "API keys", level: 1 }).waitFor();
    const form = region("Create a key");
    await form.getByLabel("Name").fill("ci-deploy");
    await form.getByRole("radio", { name: /Write/ }).check();
    await form.getByRole("button", { name: "Create key" }).click();
    const secret = await page.getByTestId("new-key-secret").textContent();
    expect(secret).toMatch(/^bsn_[0-9A-Za-z_-]{32,}$/);
    await page.getByText("This is the only time Bosun shows it.").waitFor();
    await shot("api-keys-secret");

    // The key works; then it leaves the screen for good.
    expect((await fetch(`${base}/v1/agents`, { headers: { authorization: `Bearer ${secret}` } })).status).toBe(200);
    await page.getByRole("button", { name: "I have stored it" }).click();
    await page.reload();
    const row = page.getByRole("row", { name: /ci-deploy/ });
    await row.waitFor();
    expect(await row.textContent()).toContain("write");
    expect(await page.content()).not.toContain(secret!);

    await row.getByRole("button", { name: "Revoke" }).click();
    await row.getByRole("button", { name: "Yes, revoke" }).click();
    await row.waitFor({ state: "detached" });
    expect((await fetch(`${base}/v1/agents`, { headers: { authorization: `Bearer ${secret}` } })).status).toBe(401);
    await page.getByLabel(/Show revoked and expired/).check();
    expect(await page.getByRole("row", { name: /ci-deploy/ }).textContent()).toContain("revoked");
    await shot("api-keys");
  });

  it("decides a proposal, filters the audit log and verifies its chain", async () => {
    // A person proposes a change in finance's domain; reconciliation-finance owns finance/* and is asked.
    const created = await postJson("/v1/proposals", { title: "Move invoice intake to finance", body: "Finance should own the intake inbox.", domains: ["finance/invoices"] });
    expect(created.status()).toBe(201);
    await nav("Proposals").click();
    await page.getByRole("heading", { name: "Proposals", level: 1 }).waitFor();
    await page.getByRole("button", { name: "Move invoice intake to finance" }).click();
    const proposal = page.getByRole("article", { name: /Move invoice intake to finance/ });
    await proposal.getByRole("link", { name: "reconciliation-finance" }).waitFor();
    await proposal.getByLabel("Comment (optional)").fill("Agreed with the finance lead");
    await proposal.getByRole("button", { name: "Approve proposal" }).click();
    await expect.poll(() => proposal.textContent(), { timeout: LIVE_MS }).toContain("decided by a person");
    expect(await proposal.textContent()).toContain("Agreed with the finance lead");
    await shot("proposals");

    // Audit: admins only; a malformed filter is refused readably; a prefix filter finds the decisions.
    await nav("Audit").click();
    await page.getByRole("heading", { name: "Audit", level: 1 }).waitFor();
    const events = page.getByRole("table", { name: "Audit events" });
    await events.waitFor();
    expect(await events.getByRole("row").count()).toBeGreaterThan(5);
    await page.getByLabel("Action").fill("Not An Action");
    await page.getByRole("button", { name: "Apply filters" }).click();
    const error = page.getByRole("alert");
    await expect.poll(() => error.textContent()).toContain("VALIDATION");
    expect(await error.textContent()).toContain("action");
    await page.getByLabel("Action").fill("approval.*");
    await page.getByRole("button", { name: "Apply filters" }).click();
    await expect.poll(() => page.url()).toContain("action=approval.*");
    const row = events.getByRole("row", { name: /approval\.approve/ });
    await row.first().waitFor();
    expect(await events.getByRole("row").filter({ hasNotText: /approval\./ }).count()).toBe(1); // the header
    await row.first().getByRole("button", { name: /Details/ }).click();
    await page.getByRole("heading", { name: "After" }).waitFor();
    expect(await events.textContent()).toContain("Budgeted in the Q3 plan");

    await page.getByRole("button", { name: "Verify chain" }).click();
    const verdict = page.getByRole("status").filter({ hasText: "The chain is intact." });
    await verdict.waitFor();
    expect(await verdict.textContent()).toMatch(/\d+ events checked, up to #\d+/);
    await shot("audit");
    await page.setViewportSize(PHONE);
    await page.getByRole("button", { name: "Verify chain" }).waitFor();
    await shot("audit-phone");
    await page.setViewportSize(DESKTOP);
    await page.getByRole("button", { name: "Clear" }).click();
    await expect.poll(() => page.url()).not.toContain("action=");
  });

  it("shows an agent's memory layers and the MCP servers with their tools", async () => {
    await page.goto(`${base}/agents/reconciliation-finance`);
    const memory = region("Memory");
    await memory.getByRole("img", { name: /^Soul: \d+ % used, [\d,]+ of [\d,]+ tokens$/ }).waitFor();
    await memory.getByRole("img", { name: /^Working memory: \d+ % used, [\d,]+ of 2,000 tokens$/ }).waitFor();
    // The demo's seeded memories: acme survives the demo dream (which merges and archives others).
    const items = memory.getByRole("list", { name: "Working memory items" });
    await items.getByRole("button", { name: /acme/ }).click();
    await memory.getByText("Acme pays on the 5th of each month").waitFor();
    expect(await memory.textContent()).toMatch(/Archive\s*\d+ items?/);
    expect(await memory.textContent()).toMatch(/Last dream/);
    await shot("agent-memory");

    // The gateway demo registered server-everything and listed its tools.
    await nav("Tools").click();
    await page.getByRole("heading", { name: "Tools", level: 1 }).waitFor();
    const servers = page.getByRole("table", { name: "MCP servers" });
    await servers.getByRole("row", { name: /everything/ }).waitFor();
    await servers.getByRole("button", { name: "Refresh everything" }).click();
    await page.getByRole("status").getByText(/Refreshed everything: \d+ added, \d+ changed, \d+ unchanged, \d+ removed\./).waitFor();
    const tools = page.getByRole("table", { name: "Tools of everything" });
    await tools.getByRole("row", { name: /\becho\b/ }).first().waitFor();
    expect(await tools.textContent()).toContain("mcp://gateway/everything/echo");
    expect(await tools.textContent()).toMatch(/v\d+\s*current/);

    // Registering is validated by the API; its refusal is shown in the form.
    await page.getByRole("button", { name: "Register a server" }).click();
    const reg = page.getByRole("form", { name: "Register an MCP server" });
    await reg.getByLabel("Name", { exact: true }).fill("Bad Name");
    await reg.getByLabel("Command", { exact: true }).fill("mcp-server-everything");
    await reg.getByRole("button", { name: "Register server" }).click();
    await expect.poll(() => reg.getByRole("alert").textContent()).toContain("VALIDATION");
    await shot("tools");
    await reg.getByRole("button", { name: "Cancel" }).click();
  });

  it("changes the tenant's time zone and switches tenants", async () => {
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Settings" }).click();
    await page.getByRole("heading", { name: "Settings", level: 1 }).waitFor();
    await page.getByLabel("Time zone").selectOption("Europe/Paris");
    await page.getByRole("button", { name: "Save" }).click();
    await page.getByRole("status").getByText("Saved.").waitFor();
    const tenant = await (await page.request.get(`${base}/v1/tenant`)).json();
    expect(tenant.timeZone).toBe("Europe/Paris");
    // The Deployment section: this run's worker reported itself, with its SMTP state.
    const deployment = page.getByRole("region", { name: "Deployment" });
    await expect.poll(() => deployment.getByTestId("workers-online").textContent()).toContain("1 online");
    const smtp = process.env.SMTP_URL ? new URL(process.env.SMTP_URL).hostname : "not configured budget alerts are listed but not emailed; set SMTP_URL on the worker";
    await expect.poll(() => deployment.getByTestId("smtp-state").textContent()).toContain(smtp);
    await deployment.getByRole("table", { name: "Workers" }).getByRole("cell", { name: worker.id }).waitFor();
    expect(await deployment.getByTestId("provider-scripted").textContent()).toContain("configured");
    await shot("settings");

    // The operator belongs to two tenants: the header offers the switch.
    const switcher = page.getByLabel("Switch tenant");
    await switcher.selectOption({ label: "Staging (admin)" });
    await page.getByRole("heading", { name: "Fleet", level: 1 }).waitFor();
    await expect.poll(() => page.getByRole("link", { name: /Active agents/ }).textContent()).toMatch(/Active agents\s*0/);
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Agents" }).click();
    await page.getByText("No agents here yet.").waitFor();
    await shot("agents-empty-other-tenant");
    await page.getByLabel("Switch tenant").selectOption({ label: "Demo (owner)" });
    const active = page.getByRole("link", { name: /Active agents/ }).locator(".stat-value");
    await expect.poll(() => active.textContent()).not.toBe("0");
    const demoAgents = await activeAgents();
    expect(demoAgents).toBeGreaterThanOrEqual(5); // the demo fleet, launch-coordinator and procurement
    await expect.poll(() => active.textContent()).toBe(String(demoAgents));
  });

  it("logs out", async () => {
    await page.getByRole("button", { name: "Log out" }).click();
    await page.getByRole("button", { name: "Log in" }).waitFor();
    expect((await page.request.get(`${base}/v1/me`)).status()).toBe(401);
    // A deep link after logout lands on the login form, not on the page.
    await page.goto(`${base}/agents/launch-coordinator`);
    await page.getByRole("button", { name: "Log in" }).waitFor();
    expect(await page.getByRole("heading", { name: /launch-coordinator/ }).count()).toBe(0);
  });
});

/** RFC 4180 CSV: quoted fields may hold commas, doubled quotes and newlines; records end in CRLF. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ",") {
      row.push(field);
      field = "";
    } else if (ch === "\n" || ch === "\r") {
      if (ch === "\r" && text[i + 1] === "\n") i++;
      row.push(field);
      rows.push(row);
      row = [];
      field = "";
    } else field += ch;
  }
  if (field !== "" || row.length > 0) rows.push([...row, field]);
  return rows;
}

/** A coordinator on the scripted provider: its first model turn delegates to release-notes. */
const LAUNCH_COORDINATOR = `apiVersion: agent.os/v1
kind: Agent
metadata:
  name: launch-coordinator
  owner: platform
  description: Splits a launch into work for other agents
spec:
  model:
    provider: scripted
    name: scripted-small
    pinned_revision: "2026-01-01"
    script:
      - call: delegate
        input: { agent: release-notes, instructions: Draft the notes for the launch }
  soul: |
    You coordinate launches and hand the writing to release-notes.
  domains: [ launches/* ]
`;

/** Buys through create_task; anything worth over $1,000 waits for a person (spec.approval). */
const PROCUREMENT = `apiVersion: agent.os/v1
kind: Agent
metadata:
  name: procurement
  owner: finance
  description: Orders what the fleet needs, within limits
spec:
  model:
    provider: scripted
    name: scripted-small
    pinned_revision: "2026-01-01"
    script:
      - call: create_task
        input: { title: Order 40 servers, assignee: release-notes, action_value_usd: 1200 }
  soul: |
    You buy what the fleet needs and never spend over a limit without a person's approval.
  approval: { on_action_value_usd_gt: 1000 }
`;
