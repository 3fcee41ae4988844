import fs from "node:fs";
import path from "node:path";
import fastifyStatic from "@fastify/static";
import type { FastifyInstance } from "fastify";

const PLACEHOLDER = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Bosun</title></head>
<body><main><h1>Bosun</h1><p>The API is running. The console has not been built: run <code>npm run build</code>.</p>
<p>API reference: <a href="/docs">/docs</a></p></main></body></html>`;

/**
 * The console's client-side routes (apps/console/src/App.tsx): a reload or a shared link
 * on one of them gets index.html, and the SPA's router shows the page. Listed rather than
 * a catch-all so that every other unknown path stays a problem+json 404.
 */
const consoleRoutes = [
  "/login",
  "/agents",
  "/agents/:name",
  "/tasks",
  "/tasks/:id",
  "/runs",
  "/runs/:id",
  "/costs",
  "/budgets",
  "/api-keys",
  "/settings",
];

/** Serves the console's built files at `/`; the console's own routes get index.html. */
export async function registerConsole(app: FastifyInstance, dir: string) {
  const index = path.join(dir, "index.html");
  if (!fs.existsSync(index)) {
    app.get("/", { config: { public: true }, schema: { hide: true } }, (_req, reply) => reply.type("text/html").send(PLACEHOLDER));
    return;
  }
  // One route per built file (wildcard: false), so API 404s stay problem+json.
  await app.register(fastifyStatic, { root: dir, prefix: "/", wildcard: false, index: ["index.html"], schemaHide: true });
  for (const page of consoleRoutes) {
    app.get(page, { config: { public: true }, schema: { hide: true } }, (_req, reply) => reply.sendFile("index.html"));
  }
}
