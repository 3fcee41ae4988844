import { randomBytes } from "node:crypto";
import { runMigrations } from "@bosun/db";
import { createJobs } from "@bosun/jobs";
import pg from "pg";
import type { TestProject } from "vitest/node";
import { testServer } from "./server";

declare module "vitest" {
  export interface ProvidedContext {
    adminUrl: string;
    templateDb: string;
    runId: string;
  }
}

export const withDatabase = (url: string, db: string) => {
  const u = new URL(url);
  u.pathname = `/${db}`;
  return u.toString();
};

/**
 * Migrates one template database per run (schema, RLS, pg-boss and its queues); each
 * test file then clones it with CREATE DATABASE … TEMPLATE, which takes milliseconds.
 */
export default async function setup(project: TestProject) {
  const server = await testServer();
  const runId = randomBytes(3).toString("hex");
  const templateDb = `bosun_tpl_${runId}`;
  const admin = new pg.Client({ connectionString: server.adminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${templateDb}`);
  const url = withDatabase(server.adminUrl, templateDb);
  await runMigrations(url);
  const jobs = createJobs({ connectionString: url, role: "worker" });
  await jobs.start();
  await jobs.stop({ graceful: false, timeout: 1000 });
  console.log(`tests use ${server.kind}; template database ${templateDb}`);
  project.provide("adminUrl", server.adminUrl);
  project.provide("templateDb", templateDb);
  project.provide("runId", runId);

  return async () => {
    const { rows } = await admin.query<{ datname: string }>("SELECT datname FROM pg_database WHERE datname LIKE $1", [`bosun_%_${runId}%`]);
    for (const { datname } of rows) {
      await admin.query(`DROP DATABASE IF EXISTS ${datname} WITH (FORCE)`).catch(() => {});
    }
    await admin.end();
    await server.stop();
  };
}
