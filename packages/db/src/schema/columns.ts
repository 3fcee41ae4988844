import { sql } from "drizzle-orm";
import { pgPolicy, text, timestamp } from "drizzle-orm/pg-core";

export const tenantId = () => text("tenant_id").notNull();
export const createdAt = () => timestamp("created_at", { withTimezone: true, mode: "date" }).notNull().defaultNow();
export const updatedAt = () => timestamp("updated_at", { withTimezone: true, mode: "date" }).notNull().defaultNow();
export const ts = (name: string) => timestamp(name, { withTimezone: true, mode: "date" });

/**
 * Row-level security, the second wall behind `tenant_id` in every WHERE: a transaction
 * opened with `withTenant` runs as the `bosun_app` role with `bosun.tenant_id` set, and
 * sees and writes only that tenant's rows. Superusers and the table owner bypass RLS, so
 * system paths (auth lookups, signup, migrations) run outside `withTenant`.
 */
export const tenantPolicy = (column = "tenant_id") =>
  pgPolicy("tenant_isolation", {
    as: "permissive",
    for: "all",
    using: sql.raw(`${column} = current_setting('bosun.tenant_id', true)`),
    withCheck: sql.raw(`${column} = current_setting('bosun.tenant_id', true)`),
  });
