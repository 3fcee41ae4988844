import { type Database, repo, withTenant } from "@bosun/db";
import { windowAdjective } from "./budgets";
import { formatUsd } from "./money";

const c = repo.costs;

/** What alert delivery needs from a mail transport (apps/worker wires nodemailer). */
export interface Mailer {
  send(m: { to: string[]; subject: string; text: string; messageId: string }): Promise<void>;
}

export interface AlertEmail {
  to: string[];
  subject: string;
  text: string;
  messageId: string;
}

export function alertView(a: repo.costs.AlertRow) {
  return {
    id: a.id,
    budgetId: a.budgetId,
    agent: a.agentName,
    threshold: a.threshold,
    windowStart: a.windowStart.toISOString(),
    windowEnd: a.windowEnd?.toISOString() ?? null,
    spent: a.spent,
    limit: a.limitValue,
    status: a.status,
    attempts: a.attempts,
    lastError: a.lastError,
    sentAt: a.sentAt?.toISOString() ?? null,
    createdAt: a.createdAt.toISOString(),
  };
}

/**
 * Delivers budget alerts (the `alert.send` job). An alert is mailed at most once per
 * claim as far as this side can tell: a lease on the row keeps two attempts from running
 * at once and a sent alert is never taken again. SMTP cannot promise more than that (a
 * worker that dies after the server accepted the message but before the row says `sent`
 * sends it again), so every copy carries the same Message-ID for receivers to de-duplicate.
 */
export function alertDelivery(deps: {
  database: Database;
  /** Null when no SMTP server is configured: alerts are kept (`unsent`) and listed over the API. */
  mailer: Mailer | null;
  publicUrl: string;
  log?: { info: (o: object, m?: string) => void; warn: (o: object, m?: string) => void };
}) {
  const { database, mailer, publicUrl } = deps;

  async function compose(tenantId: string, a: repo.costs.AlertRow): Promise<AlertEmail | null> {
    return withTenant(database, tenantId, async (tx) => {
      const budget = await c.getBudget(tx, { tenantId, id: a.budgetId });
      const settings = await c.getCostSettings(tx, { tenantId });
      const to = settings.alertEmails.length ? settings.alertEmails : await c.adminEmails(tx, { tenantId });
      if (to.length === 0) return null;
      const usd = (budget?.metric ?? "usd") === "usd";
      const amount = (n: number) => (usd ? formatUsd(n) : `${n} call${n === 1 ? "" : "s"}`);
      const period = budget?.period ?? "window";
      const what = budget?.scope === "tenant" ? "The tenant" : `Agent ${a.agentName ?? a.agentId}`;
      const perName = budget ? windowAdjective(budget.period) : "";
      const drivers = await c.topCostDrivers(tx, {
        tenantId,
        agentId: budget?.scope === "tenant" ? null : a.agentId,
        from: a.windowStart,
        to: a.windowEnd,
        runId: period === "invocation" ? a.windowKey.replace(/^run:/, "") : null,
        limit: 5,
      });
      const when = (d: Date) =>
        new Intl.DateTimeFormat("en-GB", { timeZone: settings.timeZone, dateStyle: "medium", timeStyle: "short" }).format(d);
      const link = budget?.scope === "agent" && a.agentName ? `${publicUrl}/agents/${encodeURIComponent(a.agentName)}` : `${publicUrl}/`;
      const lines = [
        `${what} has used ${Math.floor((a.spent * 100) / Math.max(1, a.limitValue))}% of its ${perName} ${usd ? "budget" : "call limit"}.`,
        `The ${a.threshold}% threshold was crossed.`,
        "",
        `Agent:   ${budget?.scope === "tenant" ? "(all agents of the tenant)" : (a.agentName ?? a.agentId ?? "")}`,
        `Spent:   ${amount(a.spent)} of ${amount(a.limitValue)}`,
        `Window:  ${period === "invocation" ? `run ${a.windowKey.replace(/^run:/, "")}` : `${when(a.windowStart)} to ${a.windowEnd ? when(a.windowEnd) : "..."} (${settings.timeZone})`}`,
        `Budget:  ${a.budgetId} (${budget ? `${budget.enforcement}, at 100%: ${budget.onExhausted === "pause_agent" ? "pause the agent" : "refuse new spend"}` : "since deleted"})`,
        "",
        "Top cost drivers in this window (cost, charges):",
        ...(drivers.length
          ? drivers.map((d) => `  ${d.by.padEnd(5)} ${d.label.slice(0, 40).padEnd(40)} ${formatUsd(d.costMicros).padStart(10)} (${d.charges})`)
          : ["  (no priced charges yet)"]),
        "",
        `Open the console: ${link}`,
        `Alert ${a.id}; GET /v1/alerts lists every alert.`,
      ];
      return {
        to,
        subject: `[Bosun] ${a.agentName ?? "Tenant"}: ${a.threshold}% of the ${perName} ${usd ? "budget" : "call limit"} (${amount(a.spent)} of ${amount(a.limitValue)})`,
        text: lines.join("\n"),
        messageId: `<${a.id}@bosun.alerts>`,
      };
    });
  }

  return {
    /** Throws on an SMTP failure, so the job is retried with backoff. */
    async deliver(p: { tenantId: string; alertId: string }): Promise<{ status: "sent" | "unsent" | "skipped" }> {
      const taken = await withTenant(database, p.tenantId, (tx) => c.beginAlertDelivery(tx, { tenantId: p.tenantId, id: p.alertId, leaseSeconds: 120 }));
      if (!taken) return { status: "skipped" }; // sent already, or an attempt is in flight
      const alert = (await withTenant(database, p.tenantId, (tx) => c.getAlert(tx, { tenantId: p.tenantId, id: p.alertId })))!;
      const finishAs = (status: "sent" | "unsent" | "failed", error?: string) =>
        withTenant(database, p.tenantId, (tx) => c.finishAlertDelivery(tx, { tenantId: p.tenantId, id: p.alertId, status, error: error ?? null }));
      if (!mailer) {
        await finishAs("unsent", "no SMTP server configured (SMTP_URL)");
        deps.log?.info({ alertId: p.alertId }, "budget alert kept but not emailed: set SMTP_URL (e.g. smtp://localhost:1025 for Mailpit) to mail alerts");
        return { status: "unsent" };
      }
      const mail = await compose(p.tenantId, alert);
      if (!mail) {
        await finishAs("unsent", "no recipients: the tenant has no owner or admin email and no alertEmails");
        return { status: "unsent" };
      }
      try {
        await mailer.send(mail);
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        await finishAs("failed", message.slice(0, 1000));
        throw err;
      }
      await finishAs("sent");
      return { status: "sent" };
    },
  };
}

export type AlertDelivery = ReturnType<typeof alertDelivery>;
