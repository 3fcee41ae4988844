import type { Role, Scope } from "@bosun/contracts";
import { type Database, repo, withSystem, withTenant } from "@bosun/db";
import { type Actor, scopesForRole, systemActor } from "./actor";
import { generateApiKey, insertKey, toView } from "./api-keys";
import { audit } from "./audit";
import { AppError, conflict, notFound } from "./errors";
import { newId } from "./ids";
import { dummyHash, hashPassword, verifyPassword } from "./passwords";
import type { BosunLucia } from "./sessions";

export function tenantView(t: repo.TenantRow) {
  return { id: t.id, name: t.name, timeZone: t.timeZone, createdAt: t.createdAt.toISOString() };
}

export interface SignupInput {
  tenant: { name: string; timeZone: string };
  owner: { email: string; password: string; name?: string | undefined };
  /** A key chosen by the operator (headless initialisation); generated when absent. */
  apiKey?: string | undefined;
}

export const identityService = (deps: { database: Database; lucia: BosunLucia }) => {
  const { database, lucia } = deps;

  /** Creates a tenant, its owner and a first admin key, atomically. */
  async function signup(input: SignupInput, requestId?: string) {
    const passwordHash = await hashPassword(input.owner.password);
    const tenantId = newId("ten");
    // The tenant row must exist before the tenant transaction can see it under RLS, so
    // signup runs as the system; every row it writes still carries the new tenant_id.
    return withSystem(database, async (tx) => {
      const tenant = await repo.insertTenant(tx, { id: tenantId, name: input.tenant.name, timeZone: input.tenant.timeZone });
      const user = await repo.insertUser(tx, {
        id: newId("usr"),
        email: input.owner.email,
        name: input.owner.name ?? null,
        passwordHash,
      });
      if (!user) throw conflict("a user with this email already exists; log in instead");
      await repo.insertMembership(tx, { tenantId, userId: user.id, role: "owner" });
      const secret = input.apiKey ?? generateApiKey();
      const key = await insertKey(tx, {
        tenantId,
        name: "bootstrap admin key",
        scopes: ["admin"],
        secret,
        createdBy: { type: "user", id: user.id },
      });
      const actor: Actor = { ...systemActor(tenantId, "signup"), type: "user", id: user.id, role: "owner" };
      await audit(tx, actor, { action: "tenant.create", targetType: "tenant", targetId: tenantId, after: tenantView(tenant) }, requestId);
      await audit(tx, actor, { action: "api_key.create", targetType: "api_key", targetId: key.id, after: toView(key) }, requestId);
      return {
        tenant: tenantView(tenant),
        user: { id: user.id, email: user.email },
        apiKey: { ...toView(key), key: secret as string | null },
      };
    });
  }

  /** Password login; returns a lucia session in the chosen (or first) tenant. */
  async function login(input: { email: string; password: string; tenantId?: string | undefined }) {
    const user = await repo.findUserByEmail(database.db, input.email);
    const ok = user ? await verifyPassword(user.passwordHash, input.password) : await verifyPassword(await dummyHash(), input.password).then(() => false);
    if (!user || !ok) throw new AppError("UNAUTHORIZED", "email or password is wrong");
    const tenants = await repo.listUserTenants(database.db, user.id);
    const tenant = input.tenantId ? tenants.find((t) => t.id === input.tenantId) : tenants[0];
    if (!tenant) throw new AppError("FORBIDDEN", "this user is not a member of that tenant");
    const session = await lucia.createSession(user.id, { activeTenantId: tenant.id });
    return { session, user, tenant };
  }

  /** Resolves a console session cookie to an actor in the session's active tenant. */
  async function sessionActor(sessionId: string) {
    const { session, user } = await lucia.validateSession(sessionId);
    if (!session?.activeTenantId) return null;
    const m = await repo.getMembership(database.db, { tenantId: session.activeTenantId, userId: user.id });
    if (!m) return null;
    const actor: Actor = {
      type: "user",
      id: user.id,
      tenantId: session.activeTenantId,
      scopes: scopesForRole(m.role as Role),
      role: m.role as Role,
      agentId: null,
      keyId: null,
    };
    return { actor, session, user };
  }

  async function switchTenant(sessionId: string, userId: string, tenantId: string) {
    const m = await repo.getMembership(database.db, { tenantId, userId });
    if (!m) throw notFound("tenant");
    await repo.setSessionTenant(database.db, sessionId, tenantId);
  }

  async function me(actor: Actor) {
    const tenant = await withTenant(database, actor.tenantId, (tx) => repo.getTenant(tx, { tenantId: actor.tenantId }));
    if (!tenant) throw notFound("tenant");
    const user = actor.type === "user" ? await repo.getUser(database.db, actor.id) : undefined;
    const tenants = user ? await repo.listUserTenants(database.db, user.id) : [];
    return {
      actor: { type: actor.type, id: actor.id },
      tenant: tenantView(tenant),
      scopes: actor.scopes as Scope[],
      role: actor.role,
      agentId: actor.agentId,
      user: user ? { id: user.id, email: user.email, name: user.name } : null,
      tenants: tenants.map((t) => ({ id: t.id, name: t.name, role: t.role as Role })),
    };
  }

  async function updateTenant(actor: Actor, patch: { name?: string | undefined; timeZone?: string | undefined }, requestId?: string) {
    if (!actor.scopes.includes("admin") || actor.agentId) throw new AppError("FORBIDDEN", "changing the tenant needs an admin");
    return withTenant(database, actor.tenantId, async (tx) => {
      const before = await repo.getTenant(tx, { tenantId: actor.tenantId });
      if (!before) throw notFound("tenant");
      const clean = Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined));
      const after = await repo.updateTenant(tx, { tenantId: actor.tenantId, patch: clean });
      await audit(tx, actor, { action: "tenant.update", targetType: "tenant", targetId: actor.tenantId, before: tenantView(before), after: tenantView(after!) }, requestId);
      return tenantView(after!);
    });
  }

  return { signup, login, sessionActor, switchTenant, me, updateTenant, lucia };
};

export type IdentityService = ReturnType<typeof identityService>;
