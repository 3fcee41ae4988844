import { randomHex } from "../ids";

/** W3C trace context: `00-<trace id>-<span id>-01`. A child run keeps its root's trace id. */
export function newTraceparent(parent?: string | null): string {
  const traceId = parent?.split("-")[1] ?? randomHex(16);
  return `00-${traceId}-${randomHex(8)}-01`;
}
