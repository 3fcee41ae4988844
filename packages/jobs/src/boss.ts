import pg from "pg";
import { PgBoss } from "pg-boss";
import { DEAD_LETTER_QUEUE, type JobName, type JobPayload, jobs } from "./catalogue";

export const BOSS_SCHEMA = "pgboss";

/** The one capability `enqueue` needs from a transaction: run SQL on its connection. */
export interface SqlClient {
  query(text: string, values?: unknown[]): Promise<{ rows: unknown[] }>;
}

export interface EnqueueOptions {
  singletonKey?: string;
  startAfter?: Date | number;
  priority?: number;
}

export interface Jobs {
  boss: PgBoss;
  /**
   * Enqueues a job on the caller's transaction connection: the job exists if and only
   * if the transaction commits. The payload is validated against the catalogue first.
   */
  enqueue<N extends JobName>(
    tx: { $client: SqlClient },
    name: N,
    payload: JobPayload<N>,
    opts?: EnqueueOptions,
  ): Promise<string | null>;
  start(): Promise<void>;
  stop(opts?: { graceful?: boolean; timeout?: number }): Promise<void>;
}

export interface JobsOptions {
  connectionString: string;
  /** Workers run maintenance and the supervisor; API processes only send. */
  role: "producer" | "worker";
  max?: number;
}

export function createJobs(opts: JobsOptions): Jobs {
  const boss = new PgBoss({
    connectionString: opts.connectionString,
    schema: BOSS_SCHEMA,
    max: opts.max ?? 4,
    application_name: `bosun-${opts.role}-jobs`,
    supervise: opts.role === "worker",
    schedule: opts.role === "worker",
    migrate: true,
    useListenNotify: opts.role === "worker",
  } as ConstructorParameters<typeof PgBoss>[0]);
  // pg-boss reports transient errors (a lost connection) as events; the process lives on.
  boss.on("error", () => {});
  return {
    boss,
    async enqueue(tx, name, payload, o = {}) {
      const def = jobs[name];
      const data = def.payload.parse(payload) as object;
      return boss.send(name, data, {
        ...o,
        deadLetter: DEAD_LETTER_QUEUE,
        db: { executeSql: (text: string, values?: unknown[]) => tx.$client.query(text, values) as Promise<{ rows: never[] }> },
      });
    },
    async start() {
      await boss.start();
      await ensureQueues(boss);
      await grantQueueAccess(opts.connectionString);
    },
    async stop(s = {}) {
      await boss.stop({ graceful: s.graceful ?? true, timeout: s.timeout ?? 10_000, close: true });
    },
  };
}

/** Creates the catalogue's queues (and the dead-letter queue) if they are missing. */
export async function ensureQueues(boss: PgBoss): Promise<void> {
  const existing = new Set((await boss.getQueues()).map((q) => q.name));
  if (!existing.has(DEAD_LETTER_QUEUE)) await boss.createQueue(DEAD_LETTER_QUEUE, { policy: "standard" });
  for (const [name, def] of Object.entries(jobs)) {
    if (!existing.has(name)) await boss.createQueue(name, { ...def.queue, deadLetter: DEAD_LETTER_QUEUE });
  }
}

/**
 * Tenant transactions run as the `bosun_app` role (see packages/db/src/tx.ts) and enqueue
 * jobs on that same connection, so the role needs to write pg-boss's tables. pg-boss
 * creates its schema at start and a table per queue, hence grants on what exists now plus
 * default privileges for queues created later.
 *
 * Only what is missing is granted. A GRANT rewrites the catalog row even when the
 * privilege is held already, and a changed schema row (`pg_namespace`) makes every backend
 * of the database drop every cached plan: each process start (an API replica, a worker)
 * made every connection of every other process plan all its prepared statements again.
 */
async function grantQueueAccess(connectionString: string): Promise<void> {
  const client = new pg.Client({ connectionString, application_name: "bosun-jobs-grants" });
  await client.connect();
  try {
    const role = await client.query("SELECT 1 FROM pg_roles WHERE rolname = 'bosun_app'");
    if (role.rowCount === 0) return;
    const { rows } = await client.query<Record<string, boolean>>(MISSING_GRANTS, [BOSS_SCHEMA]);
    const missing = rows[0]!;
    const grants = [
      missing.schema && `GRANT USAGE ON SCHEMA ${BOSS_SCHEMA} TO bosun_app`,
      missing.tables && `GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA ${BOSS_SCHEMA} TO bosun_app`,
      missing.sequences && `GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA ${BOSS_SCHEMA} TO bosun_app`,
      missing.functions && `GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA ${BOSS_SCHEMA} TO bosun_app`,
      missing.defaultTables && `ALTER DEFAULT PRIVILEGES IN SCHEMA ${BOSS_SCHEMA} GRANT SELECT, INSERT, UPDATE ON TABLES TO bosun_app`,
      missing.defaultSequences && `ALTER DEFAULT PRIVILEGES IN SCHEMA ${BOSS_SCHEMA} GRANT USAGE, SELECT ON SEQUENCES TO bosun_app`,
    ].filter(Boolean);
    if (grants.length > 0) await client.query(grants.join(";\n"));
  } finally {
    await client.end();
  }
}

/**
 * Which of grantQueueAccess's grants `bosun_app` lacks in schema $1 (each true when one
 * is). Default privileges are those of the connecting role, as ALTER DEFAULT PRIVILEGES
 * without FOR ROLE sets them.
 */
const MISSING_GRANTS = `
  WITH n AS (SELECT oid FROM pg_namespace WHERE nspname = $1),
  defaults AS (
    SELECT d.defaclobjtype AS kind, a.privilege_type AS privilege
    FROM pg_default_acl d, n, aclexplode(d.defaclacl) a
    WHERE d.defaclnamespace = n.oid AND d.defaclrole = current_user::regrole AND a.grantee = 'bosun_app'::regrole)
  SELECT NOT has_schema_privilege('bosun_app', $1, 'USAGE') AS schema,
    EXISTS (SELECT 1 FROM pg_class c, n, unnest(ARRAY['SELECT', 'INSERT', 'UPDATE']) p
            WHERE c.relnamespace = n.oid AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT has_table_privilege('bosun_app', c.oid, p)) AS tables,
    EXISTS (SELECT 1 FROM pg_class c, n, unnest(ARRAY['USAGE', 'SELECT']) p
            WHERE c.relnamespace = n.oid AND c.relkind = 'S' AND NOT has_sequence_privilege('bosun_app', c.oid, p)) AS sequences,
    EXISTS (SELECT 1 FROM pg_proc f, n WHERE f.pronamespace = n.oid AND NOT has_function_privilege('bosun_app', f.oid, 'EXECUTE')) AS functions,
    (SELECT count(DISTINCT privilege) FROM defaults WHERE kind = 'r' AND privilege IN ('SELECT', 'INSERT', 'UPDATE')) < 3 AS "defaultTables",
    (SELECT count(DISTINCT privilege) FROM defaults WHERE kind = 'S' AND privilege IN ('USAGE', 'SELECT')) < 2 AS "defaultSequences"`;
