import { createServices } from "@bosun/core";
import { type Database, listen } from "@bosun/db";
import type { Jobs } from "@bosun/jobs";
import type { FastifyInstance } from "fastify";
import { buildApp } from "./app";
import type { ApiConfig } from "./config";

export interface ApiServer {
  app: FastifyInstance;
  services: ReturnType<typeof createServices>;
  url: string;
  /** True while the API-key revocation listener is connected (and keys may be cached). */
  keyCacheActive(): boolean;
  /** Stops accepting connections and waits for requests in flight. */
  close(): Promise<void>;
}

/** The API's composition root: services on one database and job producer, then Fastify. */
export async function startApi(deps: {
  database: Database;
  /** For the LISTEN connection that lets this process cache verified API keys safely. */
  databaseUrl: string;
  jobs: Jobs;
  config: ApiConfig;
  logger?: boolean | object;
}): Promise<ApiServer> {
  const services = createServices({
    database: deps.database,
    jobs: deps.jobs,
    secureCookies: deps.config.publicUrl.startsWith("https://"),
  });
  const app = await buildApp(services, deps.config, { logger: deps.logger ?? true });
  const revocations = listen(deps.databaseUrl, "bosun_api_key_revoked", services.apiKeys.evict, services.apiKeys.setCacheEnabled);
  app.addHook("onClose", () => revocations.close());
  const address = await app.listen({ host: deps.config.host, port: deps.config.port });
  return { app, services, url: address, keyCacheActive: () => revocations.connected, close: () => app.close() };
}

export { buildApp };
