import { ModelError, type StopReason } from "./types";

/**
 * Parses a tool call's streamed JSON arguments. An empty string is a call without
 * arguments. A call cut off by max_tokens is dropped (returns undefined): the stop reason
 * already tells the runtime the turn is incomplete. Any other invalid input is an error,
 * because running a tool on a guess is worse than failing the step.
 */
export function parseToolInput(
  provider: string,
  name: string,
  json: string,
  stopReason: StopReason,
): Record<string, unknown> | undefined {
  if (json.trim() === "") return {};
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    if (stopReason === "max_tokens") return undefined;
    throw new ModelError(`${provider}: tool call ${name} has invalid JSON input`, { kind: "other", retryable: false, provider });
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ModelError(`${provider}: tool call ${name} input is not a JSON object`, { kind: "other", retryable: false, provider });
  }
  return value as Record<string, unknown>;
}
