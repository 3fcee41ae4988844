import { index, integer, jsonb, pgTable, text } from "drizzle-orm/pg-core";
import { ts } from "./columns";

/** What a worker reports it can do: SMTP as configured (never its credentials). */
export interface WorkerSmtp {
  configured: boolean;
  host: string | null;
  port: number | null;
  secure: boolean | null;
  from: string | null;
}

/** A model provider as a worker sees it: is it usable without per-agent configuration? */
export interface WorkerProvider {
  name: "anthropic" | "openai" | "openai-compatible" | "scripted";
  configured: boolean;
  note: string;
}

/**
 * Worker processes and what they can do. Global (deployment configuration, not tenant
 * data): no tenant column and no RLS. Each worker upserts its row at start and on every
 * refresh; a row not seen for a while is shown as offline; a graceful stop sets stopped_at.
 */
export const workers = pgTable(
  "workers",
  {
    id: text("id").primaryKey(),
    host: text("host").notNull(),
    pid: integer("pid").notNull(),
    version: text("version").notNull(),
    startedAt: ts("started_at").notNull(),
    lastSeenAt: ts("last_seen_at").notNull(),
    stoppedAt: ts("stopped_at"),
    smtp: jsonb("smtp").$type<WorkerSmtp>().notNull(),
    providers: jsonb("providers").$type<WorkerProvider[]>().notNull(),
  },
  (t) => [index("workers_last_seen_idx").on(t.lastSeenAt)],
);
