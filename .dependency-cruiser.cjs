/**
 * The direction of dependencies between Bosun's apps and packages (see ARCHITECTURE.md).
 * `npm run deps` fails on any violation; CI runs it with typecheck and lint.
 */
module.exports = {
  forbidden: [
    {
      name: "apps-never-import-apps",
      comment: "An app may not import another app: shared code belongs in packages/.",
      severity: "error",
      from: { path: "^apps/([^/]+)/" },
      to: { path: "^apps/([^/]+)/", pathNot: "^apps/$1/" },
    },
    {
      name: "core-is-framework-free",
      comment: "packages/core holds the domain: no Fastify, no pg-boss.",
      severity: "error",
      from: { path: "^packages/core/" },
      to: { path: "node_modules/(fastify|@fastify|pg-boss)/" },
    },
    {
      name: "console-only-imports-contracts",
      comment: "The console talks to the API over HTTP; of our packages it may import only contracts.",
      severity: "error",
      from: { path: "^apps/console/" },
      to: { path: "^packages/(?!contracts/)" },
    },
    {
      name: "packages-never-import-apps",
      severity: "error",
      from: { path: "^packages/" },
      to: { path: "^apps/" },
    },
    {
      name: "contracts-stand-alone",
      comment: "contracts is shared with the browser: zod only.",
      severity: "error",
      from: { path: "^packages/contracts/" },
      to: { path: "^packages/(?!contracts/)|node_modules/(?!zod/)" },
    },
    {
      name: "db-below-core",
      comment: "db and jobs sit under core and never reach up into it.",
      severity: "error",
      from: { path: "^packages/(db|jobs)/" },
      to: { path: "^packages/core/" },
    },
    {
      name: "llm-is-a-leaf",
      comment: "packages/llm speaks to model providers only: no apps, no database, no queue, no HTTP server.",
      severity: "error",
      from: { path: "^packages/llm/" },
      to: { path: "^apps/|^packages/(core|db|jobs)/|node_modules/(fastify|@fastify|pg-boss|pg|drizzle-orm)/" },
    },
    {
      name: "no-circular",
      severity: "error",
      from: {},
      to: { circular: true },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: { exportsFields: ["exports"], conditionNames: ["import", "require", "node", "default", "types"] },
    exclude: { path: "(^|/)(dist|\\.data)/" },
  },
};
