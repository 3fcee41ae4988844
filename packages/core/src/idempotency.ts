import { createHash } from "node:crypto";
import { canonicalJson, type Database, repo, type Tx, withTenant } from "@bosun/db";
import { deferAudits } from "./audit";
import { AppError } from "./errors";

export interface IdempotencyRequest {
  key: string;
  /** Hash of method, route and body: a key reused for a different request is refused. */
  requestHash: string;
}

export const requestHash = (method: string, route: string, body: unknown) =>
  createHash("sha256").update(`${method} ${route}\n`).update(canonicalJson(body)).digest("hex");

export interface CreateResult<T> {
  status: number;
  body: T;
  /** What a replay returns, when it must differ (a secret shown once is not stored). */
  replayBody?: T;
  replayed?: boolean;
}

/**
 * Runs a create in one tenant transaction. With an Idempotency-Key the key is claimed in
 * that same transaction: a retry after success gets the stored response, a concurrent
 * duplicate waits for the first and then gets its response, and a retry after a failure
 * (rolled back, so no claim survives) runs again.
 */
export async function runCreate<T>(
  database: Database,
  tenantId: string,
  idem: IdempotencyRequest | undefined,
  fn: (tx: Tx) => Promise<CreateResult<T>>,
): Promise<CreateResult<T>> {
  return withTenant(database, tenantId, async (tx) => {
    if (idem) {
      const claim = await repo.claimIdempotencyKey(tx, { tenantId, key: idem.key, requestHash: idem.requestHash });
      if (!claim.claimed) {
        if (claim.existing.requestHash !== idem.requestHash) {
          throw new AppError(
            "IDEMPOTENCY_CONFLICT",
            "this Idempotency-Key was already used for a different request; use a new key",
          );
        }
        return { status: claim.existing.statusCode, body: claim.existing.response as T, replayed: true };
      }
    }
    // The create's audit events go with the COMMIT (one round trip less per create).
    const result = await deferAudits(tx, () => fn(tx));
    if (idem) {
      await repo.storeIdempotentResponse(tx, {
        tenantId,
        key: idem.key,
        statusCode: result.status,
        response: result.replayBody ?? result.body,
      });
    }
    return result;
  });
}
