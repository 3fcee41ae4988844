import { randomBytes } from "node:crypto";

/** W3C trace context: `00-<trace id>-<span id>-01`. A child run keeps its root's trace id. */
export function newTraceparent(parent?: string | null): string {
  const traceId = parent?.split("-")[1] ?? randomBytes(16).toString("hex");
  return `00-${traceId}-${randomBytes(8).toString("hex")}-01`;
}
