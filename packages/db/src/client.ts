import { drizzle, type NodePgDatabase } from "drizzle-orm/node-postgres";
import pg from "pg";
import * as schema from "./schema/index";

export type Schema = typeof schema;
/** A drizzle handle: the pool (system access) or one transaction's client. */
export type Db = NodePgDatabase<Schema> & { $client: pg.Pool | pg.PoolClient };
/** A drizzle handle bound to one open transaction. */
export type Tx = NodePgDatabase<Schema> & { $client: pg.PoolClient };

export interface Database {
  pool: pg.Pool;
  /** Queries on the pool run as the connecting (owner) role: no RLS. System paths only. */
  db: Db;
  close(): Promise<void>;
}

export interface DatabaseOptions {
  max?: number;
  applicationName?: string;
}

export function createDatabase(url: string, opts: DatabaseOptions = {}): Database {
  const pool = new pg.Pool({
    connectionString: url,
    max: opts.max ?? 10,
    application_name: opts.applicationName ?? "bosun",
    idleTimeoutMillis: 30_000,
    // Named (prepared) statements are the hot path's, each keyed by tenant and ids: one
    // generic plan serves them all. Left to choose, Postgres kept making custom plans for
    // some (agentsToWake: ~0.9 ms of planning per call). Unnamed statements are planned
    // for their values, as before.
    //
    // No JIT: a generic plan is costed without the tenant's numbers, and past ~1,000
    // agents in a tenant some hot statements' estimates crossed jit_above_cost, so every
    // execution compiled its expressions with LLVM first. The wake choice of a task create
    // in a tenant of 5,000 agents spent 25 ms of its 35 compiling, each time. These are
    // short OLTP statements that JIT cannot pay back; reports that could use it run on
    // their own connections.
    options: "-c plan_cache_mode=force_generic_plan -c jit=off",
  });
  // An idle client that errors (server restart) must not crash the process.
  pool.on("error", () => {});
  const db = drizzle({ client: pool, schema, casing: "snake_case" }) as Db;
  return {
    pool,
    db,
    close: () => pool.end(),
  };
}

// No schema here: building the relational config costs more than the queries we run in a
// transaction, and nothing uses `db.query.*` inside one.
export const bindClient = (client: pg.PoolClient): Tx => drizzle({ client, casing: "snake_case" }) as unknown as Tx;
