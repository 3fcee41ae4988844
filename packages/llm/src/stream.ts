import { ModelError } from "./types";

/**
 * Iterates a provider's event stream, telling apart failures of the stream itself (the
 * connection dropped mid-body, unreadable SSE: a retryable server failure) from errors the
 * provider's API reported in-band (`isApiError`: classified by the caller) and from errors
 * thrown while handling an event (e.g. by an onText callback: not retried).
 */
export async function forEachEvent<T>(
  provider: string,
  stream: AsyncIterable<T>,
  isApiError: (err: unknown) => boolean,
  handle: (event: T) => void,
): Promise<void> {
  const it = stream[Symbol.asyncIterator]();
  for (;;) {
    let next: IteratorResult<T>;
    try {
      next = await it.next();
    } catch (err) {
      if (isApiError(err) || (err instanceof Error && err.name === "AbortError")) throw err;
      const message = err instanceof Error ? err.message : String(err);
      throw new ModelError(`${provider}: stream interrupted: ${message}`, { kind: "server", provider, cause: err });
    }
    if (next.done) return;
    try {
      handle(next.value);
    } catch (err) {
      // Stop reading: the SDK aborts the request when its iterator is closed early.
      await it.return?.().catch(() => {});
      throw err;
    }
  }
}
