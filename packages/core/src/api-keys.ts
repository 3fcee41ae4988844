import { createHash, timingSafeEqual } from "node:crypto";
import type { Scope } from "@bosun/contracts";
import { type Database, type Db, repo, withTenant } from "@bosun/db";
import { type Actor, hasScope, requireScope } from "./actor";
import { audit } from "./audit";
import { forbidden, notFound, validation } from "./errors";
import { type IdempotencyRequest, runCreate } from "./idempotency";
import { newId, randomToken } from "./ids";
import { decodeCursor, isString, page } from "./pagination";

export const KEY_PREFIX = "bsn_";
const LOOKUP_LENGTH = 12;
const KEY_FORMAT = /^bsn_[0-9A-Za-z_-]{32,200}$/;

export interface ParsedKey {
  lookup: string;
  hash: string;
}

/** `bsn_` + 12 characters of lookup + 32 of secret: 220 random bits. */
export const generateApiKey = () => `${KEY_PREFIX}${randomToken(LOOKUP_LENGTH)}${randomToken(32)}`;

export function parseApiKey(key: string): ParsedKey | null {
  if (!KEY_FORMAT.test(key)) return null;
  return { lookup: key.slice(4, 4 + LOOKUP_LENGTH), hash: sha256(key) };
}

export const isValidKeyFormat = (key: string) => KEY_FORMAT.test(key);

const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");

export type ApiKeyView = ReturnType<typeof toView>;

export function toView(k: repo.ApiKeyRow) {
  return {
    id: k.id,
    name: k.name,
    prefix: k.prefix,
    scopes: k.scopes as Scope[],
    agentId: k.agentId,
    expiresAt: k.expiresAt?.toISOString() ?? null,
    revokedAt: k.revokedAt?.toISOString() ?? null,
    lastUsedAt: k.lastUsedAt?.toISOString() ?? null,
    createdAt: k.createdAt.toISOString(),
  };
}

/** Inserts a key row for a secret we generated or were given; returns the row. */
export async function insertKey(
  tx: Db,
  input: {
    tenantId: string;
    name: string;
    scopes: Scope[];
    secret: string;
    agentId?: string | null;
    expiresAt?: Date | null;
    createdBy: { type: string; id: string };
  },
) {
  const parsed = parseApiKey(input.secret);
  if (!parsed) throw validation("API key has the wrong format: it must be bsn_ followed by 32 or more letters and digits");
  return repo.insertApiKey(tx, {
    tenantId: input.tenantId,
    id: newId("key"),
    name: input.name,
    lookup: parsed.lookup,
    prefix: input.secret.slice(0, 12),
    secretHash: parsed.hash,
    scopes: input.scopes,
    agentId: input.agentId ?? null,
    expiresAt: input.expiresAt ?? null,
    createdByType: input.createdBy.type,
    createdById: input.createdBy.id,
  });
}

/** How long a verified key may be trusted without asking the database again. */
const CACHE_TTL_MS = 30_000;
const CACHE_MAX = 10_000;

export const apiKeyService = (deps: { database: Database }) => {
  const { database } = deps;
  // When this process last recorded each key's use; saves a write on most requests.
  const touched = new Map<string, number>();
  // Verified keys by the hash of the presented secret. Only used while a revocation
  // listener is connected (see `enableCache`): a revoke anywhere evicts the key here
  // within a notification's delay, and losing the listener drops the cache.
  const cache = new Map<string, { row: repo.AuthKeyRow; until: number }>();
  let cacheEnabled = false;

  function toActor(row: repo.AuthKeyRow): Actor {
    return {
      type: row.agentId ? "agent" : "api_key",
      id: row.agentId ?? row.id,
      tenantId: row.tenantId,
      scopes: row.scopes as Scope[],
      role: null,
      agentId: row.agentId,
      keyId: row.id,
    };
  }

  function usable(row: repo.AuthKeyRow, now: number) {
    if (row.revokedAt && row.revokedAt.getTime() <= now) return false;
    if (row.expiresAt && row.expiresAt.getTime() <= now) return false;
    return true;
  }

  function touch(row: repo.AuthKeyRow, now: number) {
    const last = touched.get(row.id) ?? row.lastUsedAt?.getTime() ?? 0;
    if (now - last > 60_000) {
      touched.set(row.id, now);
      repo.touchApiKey(database.db, { tenantId: row.tenantId, keyId: row.id }).catch(() => touched.delete(row.id));
    }
  }

  function evict(keyId: string) {
    for (const [h, e] of cache) if (e.row.id === keyId) cache.delete(h);
  }

  return {
    /**
     * Resolves a bearer key to an actor, or null. Every candidate row's hash is compared
     * in constant time; revoked and expired keys fail the same way as unknown ones.
     */
    async authenticate(key: string): Promise<Actor | null> {
      const parsed = parseApiKey(key);
      if (!parsed) return null;
      const now = Date.now();
      if (cacheEnabled) {
        const hit = cache.get(parsed.hash);
        if (hit && hit.until > now) {
          if (!usable(hit.row, now)) return null;
          touch(hit.row, now);
          return toActor(hit.row);
        }
      }
      const rows = await repo.findApiKeysByLookup(database.db, parsed.lookup);
      const given = Buffer.from(parsed.hash, "hex");
      let match: repo.AuthKeyRow | undefined;
      for (const row of rows) {
        const stored = Buffer.from(row.secretHash, "hex");
        if (stored.length === given.length && timingSafeEqual(stored, given)) match = row;
      }
      if (!match || !usable(match, now)) return null;
      if (cacheEnabled) {
        if (cache.size >= CACHE_MAX) cache.clear();
        cache.set(parsed.hash, { row: match, until: now + CACHE_TTL_MS });
      }
      touch(match, now);
      return toActor(match);
    },

    /**
     * Turns the verified-key cache on while `connected` is true. The API's composition root
     * wires this to a LISTEN on `bosun_api_key_revoked`; revocations call `evict`.
     */
    setCacheEnabled(connected: boolean) {
      cache.clear();
      cacheEnabled = connected;
    },
    evict,

    async create(
      actor: Actor,
      body: { name: string; scopes: Scope[]; agent?: string | undefined; expiresAt?: string | undefined },
      opts: { idempotency?: IdempotencyRequest | undefined; requestId?: string } = {},
    ) {
      requireScope(actor, "admin");
      if (actor.agentId) throw forbidden("an agent's key cannot create API keys");
      for (const s of body.scopes) {
        if (!hasScope(actor, s)) throw forbidden(`cannot grant the '${s}' scope, which this credential lacks`);
      }
      const expiresAt = body.expiresAt ? new Date(body.expiresAt) : null;
      if (expiresAt && expiresAt.getTime() <= Date.now()) {
        throw validation("expiresAt must be in the future", [{ path: "expiresAt", message: "must be in the future" }]);
      }
      return runCreate(database, actor.tenantId, opts.idempotency, async (tx) => {
        let agentId: string | null = null;
        if (body.agent) {
          const agent = await repo.getAgentByName(tx, { tenantId: actor.tenantId, name: body.agent });
          if (!agent) throw validation(`agent '${body.agent}' does not exist`, [{ path: "agent", message: "no such agent" }]);
          agentId = agent.id;
        }
        const secret = generateApiKey();
        const row = await insertKey(tx, {
          tenantId: actor.tenantId,
          name: body.name,
          scopes: body.scopes,
          secret,
          agentId,
          expiresAt,
          createdBy: { type: actor.type, id: actor.id },
        });
        const view = toView(row);
        await audit(tx, actor, { action: "api_key.create", targetType: "api_key", targetId: row.id, after: view }, opts.requestId);
        return { status: 201, body: { ...view, key: secret as string | null }, replayBody: { ...view, key: null } };
      });
    },

    async list(actor: Actor, q: { limit: number; cursor?: string | undefined }) {
      requireScope(actor, "admin");
      if (actor.agentId) throw forbidden("an agent's key cannot list API keys");
      const before = decodeCursor(q.cursor, isString);
      const rows = await withTenant(database, actor.tenantId, (tx) =>
        repo.listApiKeys(tx, { tenantId: actor.tenantId, limit: q.limit + 1, before }),
      );
      const p = page(rows, q.limit, (r) => r.id);
      return { items: p.items.map(toView), nextCursor: p.nextCursor };
    },

    async revoke(actor: Actor, keyId: string, requestId?: string) {
      requireScope(actor, "admin");
      if (actor.agentId) throw forbidden("an agent's key cannot revoke API keys");
      const view = await withTenant(database, actor.tenantId, async (tx) => {
        // Locked, so concurrent revokes of one key write one audit event between them.
        const before = await repo.getApiKey(tx, { tenantId: actor.tenantId, keyId, forUpdate: true });
        if (!before) throw notFound("API key");
        if (before.revokedAt) return toView(before);
        const after = await repo.revokeApiKey(tx, { tenantId: actor.tenantId, keyId });
        await repo.notifyKeyRevoked(tx, keyId);
        await audit(
          tx,
          actor,
          { action: "api_key.revoke", targetType: "api_key", targetId: keyId, before: toView(before), after: toView(after!) },
          requestId,
        );
        return toView(after!);
      });
      // After commit: evicting earlier would let a request in between re-cache the row
      // that was still unrevoked in its snapshot.
      evict(keyId);
      return view;
    },
  };
};

export type ApiKeyService = ReturnType<typeof apiKeyService>;
