import { foreignKey, index, pgTable, primaryKey, text, uniqueIndex } from "drizzle-orm/pg-core";
import { agents } from "./agents";
import { createdAt, tenantId, tenantPolicy, ts } from "./columns";
import { tenants } from "./tenants";

export const apiKeys = pgTable(
  "api_keys",
  {
    tenantId: tenantId().references(() => tenants.id, { onDelete: "cascade" }),
    id: text("id").notNull(),
    name: text("name").notNull(),
    /** Public part of the key used to find its row; the secret is compared by hash. */
    lookup: text("lookup").notNull(),
    prefix: text("prefix").notNull(),
    secretHash: text("secret_hash").notNull(),
    scopes: text("scopes").array().notNull(),
    agentId: text("agent_id"),
    createdByType: text("created_by_type").notNull(),
    createdById: text("created_by_id").notNull(),
    expiresAt: ts("expires_at"),
    revokedAt: ts("revoked_at"),
    lastUsedAt: ts("last_used_at"),
    createdAt: createdAt(),
  },
  (t) => [
    primaryKey({ columns: [t.tenantId, t.id] }),
    // Keys are found by their public lookup part before the tenant is known. The unique
    // key includes tenant_id (as every unique key here does, so the table can be
    // distributed by tenant); 96 random bits make a cross-tenant clash negligible, and
    // auth compares the secret hash of every row it finds.
    uniqueIndex("api_keys_tenant_lookup_key").on(t.tenantId, t.lookup),
    index("api_keys_lookup_idx").on(t.lookup),
    foreignKey({
      name: "api_keys_agent_fk",
      columns: [t.tenantId, t.agentId],
      foreignColumns: [agents.tenantId, agents.id],
    }),
    tenantPolicy(),
  ],
).enableRLS();
