-- Whether an agent has a task it may claim, without walking the tenant's queue: its assigned
-- queued tasks, and the unassigned queued ones by domain in byte order (text_pattern_ops),
-- so that each of its globs' literal head is a range scan (repositories/tasks.ts,
-- claimableTaskExists). A task has an entry in one of them while it is queued.
CREATE INDEX "tasks_queued_assignee_idx" ON "tasks" USING btree ("tenant_id","assignee_agent_id") WHERE status = 'queued' AND assignee_agent_id IS NOT NULL;--> statement-breakpoint
CREATE INDEX "tasks_queued_domain_idx" ON "tasks" USING btree ("tenant_id","domain" text_pattern_ops) WHERE status = 'queued' AND assignee_agent_id IS NULL AND domain IS NOT NULL;