export * from "./client";
export * from "./embedded";
export * from "./listen";
export * from "./migrate";
export * as repo from "./repositories/index";
export { canonicalJson } from "./repositories/audit";
export * as schema from "./schema/index";
export * from "./tx";
export type { QueryResult } from "pg";
