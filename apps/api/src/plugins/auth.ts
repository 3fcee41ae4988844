import { type Actor, AppError, type ApiKeyService, type IdentityService } from "@bosun/core";
import type { FastifyInstance, FastifyRequest } from "fastify";

declare module "fastify" {
  interface FastifyRequest {
    actor: Actor | null;
    sessionId: string | null;
  }
  interface FastifyContextConfig {
    /** Routes reachable without credentials (health, docs, signup, login). */
    public?: boolean;
  }
}

const MUTATING = new Set(["POST", "PUT", "PATCH", "DELETE"]);

/**
 * Resolves the caller once per request, before the body is read: a bearer API key, or
 * the console's session cookie. Routes read `req.actor`; services get it explicitly.
 */
export function registerAuth(app: FastifyInstance, deps: { apiKeys: ApiKeyService; identity: IdentityService; publicUrl: string }) {
  app.decorateRequest("actor", null);
  app.decorateRequest("sessionId", null);
  const cookieName = deps.identity.lucia.sessionCookieName;

  app.addHook("onRequest", async (req, reply) => {
    // Only the REST surface needs credentials; the console's files and /docs are public.
    // Judge by the matched route, not the raw URL: the router decodes percent-escapes, so
    // `/%761/agents` reaches /v1/agents although its raw URL does not start with "/v1/".
    const isPublic = req.routeOptions.config?.public === true || !(req.routeOptions.url ?? req.url).startsWith("/v1/");
    // Public writes (signup, login, logout) need no Origin (scripts send none), but one
    // that names another site is refused: that stops login CSRF, where a foreign page
    // logs the visitor into the attacker's account.
    if (isPublic && MUTATING.has(req.method) && req.headers.origin !== undefined && !sameOrigin(req, deps.publicUrl)) {
      throw new AppError("FORBIDDEN", "cross-site request refused: the Origin header does not match this server");
    }
    const header = req.headers.authorization;
    if (header !== undefined) {
      const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
      const actor = m ? await deps.apiKeys.authenticate(m[1]!) : null;
      if (!actor) {
        if (isPublic) return;
        throw new AppError("UNAUTHORIZED", "the API key is missing, malformed, unknown, revoked or expired");
      }
      req.actor = actor;
      return;
    }
    const sessionId = readCookie(req, cookieName);
    if (sessionId) {
      const resolved = await deps.identity.sessionActor(sessionId);
      if (resolved) {
        if (MUTATING.has(req.method) && !isPublic && !sameOrigin(req, deps.publicUrl)) {
          throw new AppError("FORBIDDEN", "cross-site request refused: the Origin header does not match this server");
        }
        req.actor = resolved.actor;
        req.sessionId = sessionId;
        if (resolved.session.fresh) {
          void reply.header("set-cookie", deps.identity.lucia.createSessionCookie(sessionId).serialize());
        }
        return;
      }
      void reply.header("set-cookie", deps.identity.lucia.createBlankSessionCookie().serialize());
    }
    if (!isPublic) throw new AppError("UNAUTHORIZED", "send 'Authorization: Bearer <API key>' or log in to the console");
  });
}

function readCookie(req: FastifyRequest, name: string): string | null {
  const raw = req.headers.cookie;
  if (!raw) return null;
  for (const part of raw.split(";")) {
    const i = part.indexOf("=");
    if (i > 0 && part.slice(0, i).trim() === name) {
      const value = part.slice(i + 1).trim();
      // A malformed %-escape must not become a 500: pass it on undecoded, so it is looked
      // up, not found, and the cookie is cleared like any other unknown session.
      try {
        return decodeURIComponent(value) || null;
      } catch {
        return value || null;
      }
    }
  }
  return null;
}

/** Cookie-authenticated writes must come from our own origin (CSRF defence with SameSite=Lax). */
function sameOrigin(req: FastifyRequest, publicUrl: string): boolean {
  const origin = req.headers.origin ?? req.headers.referer;
  if (!origin) return false;
  try {
    const o = new URL(origin);
    const allowed = [new URL(publicUrl).host, req.headers.host].filter(Boolean);
    return allowed.includes(o.host);
  } catch {
    return false;
  }
}

export function actorOf(req: FastifyRequest): Actor {
  if (!req.actor) throw new AppError("UNAUTHORIZED", "authentication required");
  return req.actor;
}
