/** The signed-in user, their tenant and scopes, and the tenant's agents by id (for names). */
import type { Scope } from "@bosun/contracts";
import { createContext, useContext } from "react";
import type { Agent, Me } from "./api";

export interface Session {
  me: Me;
  /** Re-reads /v1/me (after a tenant switch or a settings change). */
  refresh(): Promise<void>;
  /** Scopes are ordered: admin includes write, which includes read. */
  can(scope: Scope): boolean;
  /** The tenant's agents by id; refreshed in the background and after applies. */
  agentsById: Map<string, Agent>;
  refreshAgents(): Promise<void>;
}

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const s = useContext(SessionContext);
  if (!s) throw new Error("useSession outside a signed-in console");
  return s;
}

const rank: Record<Scope, number> = { read: 1, write: 2, admin: 3 };
export const hasScope = (scopes: Scope[], needed: Scope) => scopes.some((s) => rank[s] >= rank[needed]);

/** An agent's name from its id, falling back to a short id for agents not (yet) loaded. */
export function useAgentName() {
  const { agentsById } = useSession();
  return (id: string | null | undefined) => (id ? (agentsById.get(id)?.name ?? `${id.slice(0, 10)}…`) : "—");
}
