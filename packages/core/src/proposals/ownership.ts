import type { AgentDescriptor } from "@bosun/contracts";
import { repo, type Tx } from "@bosun/db";
import type { Actor } from "../actor";
import { AppError } from "../errors";

/** How an agent changes what it does not own: named in every OUTSIDE_DOMAIN error. */
export const PROPOSAL_HINT = "make a proposal instead (POST /v1/proposals, or the `propose` tool in a run); the agents owning the domain will be asked";

export const outsideDomain = (agentName: string, domain: string, globs: string[], what: string) =>
  new AppError(
    "OUTSIDE_DOMAIN",
    `agent '${agentName}' may not ${what} domain '${domain}': its spec.domains (${globs.length > 0 ? globs.join(", ") : "none"}) do not cover it; ${PROPOSAL_HINT}`,
  );

/**
 * Ownership: an agent (the runtime's agent actor or an agent-bound key) writes only inside
 * the domains its descriptor covers, by the same glob rule as task claims. People and
 * unbound keys are not limited by domains (their scopes limit them). `what` completes
 * "may not … domain 'x'" in the error.
 */
export async function assertOwnsDomain(tx: Tx, actor: Actor, domain: string, what: string): Promise<void> {
  if (!actor.agentId) return;
  if (await repo.agentCoversDomain(tx, { tenantId: actor.tenantId, agentId: actor.agentId, domain })) return;
  const a = await repo.getAgentById(tx, { tenantId: actor.tenantId, agentId: actor.agentId });
  const globs = ((a?.descriptor as AgentDescriptor | undefined)?.spec?.domains ?? []) as string[];
  throw outsideDomain(a?.name ?? actor.agentId, domain, globs, what);
}
