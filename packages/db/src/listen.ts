import pg from "pg";

export interface Listener {
  /** True while the LISTEN connection is up: only then may callers trust what it would tell them. */
  readonly connected: boolean;
  close(): Promise<void>;
}

/**
 * LISTENs on a dedicated connection and reconnects with backoff. `onState(false)` is
 * called as soon as the connection is lost, and `onState(true)` once it listens again:
 * whoever caches on the strength of these notifications must drop the cache on either,
 * because notifications sent in between are lost.
 */
export function listen(
  url: string,
  channel: string,
  onMessage: (payload: string) => void,
  onState: (connected: boolean) => void,
): Listener {
  if (!/^[a-z_][a-z0-9_]*$/.test(channel)) throw new Error(`bad channel name ${channel}`);
  let client: pg.Client | null = null;
  let connected = false;
  let closed = false;
  let delay = 250;
  let timer: NodeJS.Timeout | undefined;

  const down = () => {
    if (connected) {
      connected = false;
      onState(false);
    }
    client?.removeAllListeners();
    client?.end().catch(() => {});
    client = null;
    if (!closed) {
      timer = setTimeout(connect, delay);
      timer.unref();
      delay = Math.min(delay * 2, 10_000);
    }
  };

  const connect = async () => {
    const c = new pg.Client({ connectionString: url, application_name: `bosun-listen-${channel}` });
    client = c;
    c.on("error", down);
    c.on("end", () => {
      if (client === c) down();
    });
    c.on("notification", (m) => {
      if (m.channel === channel) onMessage(m.payload ?? "");
    });
    try {
      await c.connect();
      await c.query(`LISTEN ${channel}`);
      if (closed) return void c.end();
      delay = 250;
      connected = true;
      onState(true);
    } catch {
      if (client === c) down();
    }
  };
  void connect();

  return {
    get connected() {
      return connected;
    },
    async close() {
      closed = true;
      clearTimeout(timer);
      const c = client;
      client = null;
      if (connected) {
        connected = false;
        onState(false);
      }
      await c?.end().catch(() => {});
    },
  };
}
