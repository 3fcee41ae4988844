-- A task's wake choice takes a tenant's active agents in the order of the hash of their id,
-- from a point its seed gives, and stops at WAKE_CANDIDATES covering ones: a create costs
-- the same in a fleet of 10,000 as in one of 100 (repositories/tasks.ts).
CREATE INDEX "agents_wake_order_idx" ON "agents" USING btree ("tenant_id",hashtext("id")) WHERE status = 'active';