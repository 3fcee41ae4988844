import type { Role, Scope } from "@bosun/contracts";
import { forbidden } from "./errors";

/** Who is calling, resolved once per request by the API's auth plugin. */
export interface Actor {
  type: "user" | "api_key" | "agent" | "system";
  /** user id, key id, agent id, or a system component's name */
  id: string;
  tenantId: string;
  scopes: Scope[];
  role: Role | null;
  /** Set when the credential is an agent's own key: it may act only as that agent. */
  agentId: string | null;
  keyId: string | null;
}

const rank: Record<Scope, number> = { read: 1, write: 2, admin: 3 };

/** Scopes are ordered: `admin` includes `write`, which includes `read`. */
export function hasScope(actor: Pick<Actor, "scopes">, needed: Scope): boolean {
  return actor.scopes.some((s) => rank[s] >= rank[needed]);
}

export function requireScope(actor: Pick<Actor, "scopes">, needed: Scope): void {
  if (!hasScope(actor, needed)) throw forbidden(`this credential lacks the '${needed}' scope`);
}

export const scopesForRole = (role: Role): Scope[] =>
  role === "owner" || role === "admin" ? ["admin"] : role === "operator" ? ["write"] : ["read"];

export const auditActor = (a: Actor) => ({ actorType: a.type, actorId: a.id });

/** An agent acting through the runtime (not through one of its API keys). */
export const agentActor = (tenantId: string, agentId: string): Actor => ({
  type: "agent",
  id: agentId,
  tenantId,
  scopes: ["write"],
  role: null,
  agentId,
  keyId: null,
});

export const systemActor = (tenantId: string, component: string): Actor => ({
  type: "system",
  id: component,
  tenantId,
  scopes: ["admin"],
  role: null,
  agentId: null,
  keyId: null,
});
