import { AppError, type IdempotencyRequest, requestHash } from "@bosun/core";
import type { FastifyReply, FastifyRequest } from "fastify";

const KEY = /^[\x21-\x7e]{1,255}$/;

/** Reads `Idempotency-Key` (optional) and binds it to this exact request. */
export function idempotencyOf(req: FastifyRequest): IdempotencyRequest | undefined {
  const raw = req.headers["idempotency-key"];
  if (raw === undefined) return undefined;
  const key = Array.isArray(raw) ? raw[0]! : raw;
  if (!KEY.test(key)) throw new AppError("BAD_REQUEST", "Idempotency-Key must be 1 to 255 visible ASCII characters");
  return { key, requestHash: requestHash(req.method, req.routeOptions.url ?? req.url, req.body ?? null) };
}

export function sendCreated<T>(reply: FastifyReply, r: { status: number; body: T; replayed?: boolean }) {
  if (r.replayed) void reply.header("idempotent-replayed", "true");
  return reply.code(r.status).send(r.body);
}
