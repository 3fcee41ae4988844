import { type JSX, useCallback, useEffect, useMemo, useState } from "react";
import { type Agent, ApiError, api, type Me, setUnauthorizedHandler } from "./api";
import { ErrorBanner, INBOX_CHANGED, Loading } from "./components";
import { TimeZoneContext } from "./format";
import { useLoad } from "./hooks";
import { AgentDetailPage } from "./pages/AgentDetail";
import { AgentsPage } from "./pages/Agents";
import { ApiKeysPage } from "./pages/ApiKeys";
import { AuditPage } from "./pages/Audit";
import { BudgetsPage } from "./pages/Budgets";
import { CostsPage } from "./pages/Costs";
import { FleetPage } from "./pages/Fleet";
import { InboxPage } from "./pages/Inbox";
import { LoginPage } from "./pages/Login";
import { PoliciesPage } from "./pages/Policies";
import { ProposalsPage } from "./pages/Proposals";
import { RunsPage } from "./pages/Runs";
import { RunTracePage } from "./pages/RunTrace";
import { SettingsPage } from "./pages/Settings";
import { TaskDetailPage } from "./pages/TaskDetail";
import { TasksPage } from "./pages/Tasks";
import { ToolsPage } from "./pages/Tools";
import { Link, match, navigate, useLocation } from "./router";
import { hasScope, type Session, SessionContext } from "./session";

const NAV = [
  { href: "/", label: "Fleet" },
  { href: "/inbox", label: "Inbox" },
  { href: "/agents", label: "Agents" },
  { href: "/tasks", label: "Tasks" },
  { href: "/runs", label: "Runs" },
  { href: "/proposals", label: "Proposals" },
  { href: "/policies", label: "Policies" },
  { href: "/tools", label: "Tools" },
  { href: "/costs", label: "Costs" },
  { href: "/budgets", label: "Budgets & alerts" },
  { href: "/audit", label: "Audit", scope: "admin" as const },
  { href: "/api-keys", label: "API keys" },
  { href: "/settings", label: "Settings" },
];
const INBOX_POLL_MS = 5000;

/** How many items wait in the inbox ("100+" past one page), polled for the nav; refreshed at once when a page decides one. */
function useInboxCount(tenantId: string): string | undefined {
  const inbox = useLoad(`nav-inbox:${tenantId}`, () => api.inbox(), { pollMs: INBOX_POLL_MS });
  const { reload } = inbox;
  useEffect(() => {
    const onChange = () => void reload();
    window.addEventListener(INBOX_CHANGED, onChange);
    return () => window.removeEventListener(INBOX_CHANGED, onChange);
  }, [reload]);
  if (!inbox.data) return undefined;
  return `${inbox.data.items.length}${inbox.data.nextCursor ? "+" : ""}`;
}

type Auth = { state: "checking" } | { state: "signed-out"; error?: unknown } | { state: "signed-in"; me: Me };

export function App() {
  const [auth, setAuth] = useState<Auth>({ state: "checking" });
  const [agents, setAgents] = useState<Agent[]>([]);
  const [epoch, setEpoch] = useState(0);
  const { path } = useLocation();

  const refresh = useCallback(async () => {
    try {
      setAuth({ state: "signed-in", me: await api.me(true) });
    } catch (e) {
      setAuth(e instanceof ApiError && e.status === 401 ? { state: "signed-out" } : { state: "signed-out", error: e });
    }
  }, []);

  const signedIn = auth.state === "signed-in";
  const refreshAgents = useCallback(async () => {
    try {
      setAgents((await api.agents()).items);
    } catch {
      // Names fall back to ids; the pages report their own errors.
    }
  }, []);

  useEffect(() => {
    setUnauthorizedHandler(() => setAuth({ state: "signed-out" }));
    void refresh();
  }, [refresh]);

  useEffect(() => {
    if (signedIn && path === "/login") navigate("/", { replace: true });
  }, [signedIn, path]);

  useEffect(() => {
    if (!signedIn) return;
    void refreshAgents();
    const t = window.setInterval(() => void refreshAgents(), 15_000);
    return () => window.clearInterval(t);
  }, [signedIn, refreshAgents]);

  const session = useMemo<Session | null>(() => {
    if (auth.state !== "signed-in") return null;
    return {
      me: auth.me,
      refresh,
      can: (scope) => hasScope(auth.me.scopes, scope),
      agentsById: new Map(agents.map((a) => [a.id, a])),
      refreshAgents,
    };
  }, [auth, agents, refresh, refreshAgents]);

  if (auth.state === "checking") {
    return (
      <main className="centered">
        <Loading label="Connecting to Bosun…" />
      </main>
    );
  }
  if (!session) {
    return (
      <LoginPage
        error={auth.state === "signed-out" ? auth.error : undefined}
        onSignedIn={async () => {
          await refresh();
          if (path === "/login") navigate("/", { replace: true });
        }}
      />
    );
  }

  const switchTenant = async (tenantId: string) => {
    await api.switchTenant(tenantId);
    await refresh();
    setAgents([]);
    await refreshAgents();
    setEpoch((n) => n + 1);
    navigate("/");
  };

  return (
    <SessionContext.Provider value={session}>
      <TimeZoneContext.Provider value={session.me.tenant.timeZone}>
        <a className="skip-link" href="#main">
          Skip to content
        </a>
        <Header
          me={session.me}
          path={path}
          onSwitch={switchTenant}
          onLogout={async () => {
            await api.logout().catch(() => {});
            setAuth({ state: "signed-out" });
            navigate("/login", { replace: true });
          }}
        />
        <main id="main" className="content" key={`${session.me.tenant.id}:${epoch}`}>
          <Page path={path} />
        </main>
      </TimeZoneContext.Provider>
    </SessionContext.Provider>
  );
}

function Header({ me, path, onSwitch, onLogout }: { me: Me; path: string; onSwitch(id: string): Promise<void>; onLogout(): Promise<void> }) {
  const [error, setError] = useState<unknown>();
  const current = (href: string) => (href === "/" ? path === "/" : path === href || path.startsWith(`${href}/`));
  const inboxCount = useInboxCount(me.tenant.id);
  const admin = hasScope(me.scopes, "admin");
  return (
    <header className="topbar">
      <div className="topbar-row">
        <Link href="/" className="brand" aria-label="Bosun, fleet overview">
          <span aria-hidden="true">⚓</span> Bosun
        </Link>
        <div className="tenant">
          {me.tenants.length > 1 ? (
            <label className="tenant-switch">
              <span className="sr-only">Tenant</span>
              <select
                aria-label="Switch tenant"
                value={me.tenant.id}
                onChange={(e) => {
                  setError(undefined);
                  onSwitch(e.target.value).catch(setError);
                }}
              >
                {me.tenants.map((t) => (
                  <option key={t.id} value={t.id}>
                    {t.name} ({t.role})
                  </option>
                ))}
              </select>
            </label>
          ) : (
            <span className="tenant-name" title="Your tenant">
              {me.tenant.name}
            </span>
          )}
        </div>
        <div className="user">
          <span className="user-email" title={me.role ? `Role: ${me.role}` : undefined}>
            {me.user?.email ?? me.actor.id}
          </span>
          <button type="button" className="link-button" onClick={() => void onLogout()}>
            Log out
          </button>
        </div>
      </div>
      <nav aria-label="Main">
        <ul>
          {NAV.filter((n) => !n.scope || admin).map((n) => (
            <li key={n.href}>
              <Link href={n.href} aria-current={current(n.href) ? "page" : undefined}>
                {n.label}
                {n.href === "/inbox" && inboxCount !== undefined ? (
                  <span className={`nav-count${inboxCount === "0" ? " nav-count-zero" : ""}`}>
                    {inboxCount}
                    <span className="sr-only"> waiting</span>
                  </span>
                ) : null}
              </Link>
            </li>
          ))}
        </ul>
      </nav>
      {error ? <ErrorBanner error={error} onDismiss={() => setError(undefined)} /> : null}
    </header>
  );
}

const ROUTES: Array<[string, (p: Record<string, string>) => JSX.Element]> = [
  ["/", () => <FleetPage />],
  ["/agents", () => <AgentsPage />],
  ["/agents/:name", (p) => <AgentDetailPage key={p.name} name={p.name!} />],
  ["/tasks", () => <TasksPage />],
  ["/tasks/:id", (p) => <TaskDetailPage key={p.id} id={p.id!} />],
  ["/runs", () => <RunsPage />],
  ["/runs/:id", (p) => <RunTracePage key={p.id} id={p.id!} />],
  ["/inbox", () => <InboxPage />],
  ["/proposals", () => <ProposalsPage />],
  ["/policies", () => <PoliciesPage />],
  ["/tools", () => <ToolsPage />],
  ["/audit", () => <AuditPage />],
  ["/costs", () => <CostsPage />],
  ["/budgets", () => <BudgetsPage />],
  ["/api-keys", () => <ApiKeysPage />],
  ["/settings", () => <SettingsPage />],
];

function Page({ path }: { path: string }) {
  for (const [pattern, render] of ROUTES) {
    const params = match(pattern, path);
    if (params) return render(params);
  }
  return (
    <div className="empty">
      <h1>Page not found</h1>
      <p className="muted">
        There is no console page at <code>{path}</code>. <Link href="/">Back to the fleet</Link>
      </p>
    </div>
  );
}
