-- The chain's unique (tenant_id, seq) index held every event from its insert, the
-- unsealed ones under a NULL seq that constrains nothing, and the seal then added the
-- event's real entry: two entries per event where one does. Now it holds sealed events
-- only. Every query that reads by seq (seq > n, seq < n, seq IS NOT NULL, ORDER BY seq
-- over sealed events) implies the predicate and still uses it. Built before the old one
-- is dropped, in the migration's transaction: the chain is never unguarded. (On a very
-- large audit_events the build holds writes back for its duration; CREATE UNIQUE INDEX
-- CONCURRENTLY beforehand under the new name makes this a rename.)
CREATE UNIQUE INDEX IF NOT EXISTS "audit_events_seq_key_sealed" ON "audit_events" USING btree ("tenant_id","seq") WHERE seq IS NOT NULL;--> statement-breakpoint
DROP INDEX "audit_events_seq_key";--> statement-breakpoint
ALTER INDEX "audit_events_seq_key_sealed" RENAME TO "audit_events_seq_key";
