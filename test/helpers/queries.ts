import pg from "pg";

/**
 * Records what every pg client sends from now until `stop()`, in order: a query's text, or
 * a named statement's name. For tests that count round trips or check what travelled
 * together in one.
 */
export function recordQueries() {
  const sent: string[] = [];
  const original = pg.Client.prototype.query;
  (pg.Client.prototype as unknown as { query: (...a: unknown[]) => unknown }).query = function (this: pg.Client, ...args: unknown[]) {
    const q = args[0] as string | { text?: string; name?: string } | undefined;
    sent.push(typeof q === "string" ? q : (q?.name ?? q?.text ?? ""));
    return (original as unknown as (...a: unknown[]) => unknown).apply(this, args);
  };
  return {
    sent,
    stop() {
      pg.Client.prototype.query = original;
    },
  };
}
