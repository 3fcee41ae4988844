import { createServices } from "@bosun/core";
import type { Database } from "@bosun/db";
import type { Jobs } from "@bosun/jobs";
import type { FastifyInstance } from "fastify";
import { buildApp } from "./app";
import type { ApiConfig } from "./config";

export interface ApiServer {
  app: FastifyInstance;
  services: ReturnType<typeof createServices>;
  url: string;
  /** Stops accepting connections and waits for requests in flight. */
  close(): Promise<void>;
}

/** The API's composition root: services on one database and job producer, then Fastify. */
export async function startApi(deps: { database: Database; jobs: Jobs; config: ApiConfig; logger?: boolean | object }): Promise<ApiServer> {
  const services = createServices({
    database: deps.database,
    jobs: deps.jobs,
    secureCookies: deps.config.publicUrl.startsWith("https://"),
  });
  const app = await buildApp(services, deps.config, { logger: deps.logger ?? true });
  const address = await app.listen({ host: deps.config.host, port: deps.config.port });
  return { app, services, url: address, close: () => app.close() };
}

export { buildApp };
