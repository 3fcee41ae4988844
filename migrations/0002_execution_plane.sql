CREATE TABLE "agent_sessions" (
	"tenant_id" text NOT NULL,
	"agent_id" text NOT NULL,
	"lease_owner" text,
	"lease_epoch" bigint DEFAULT 0 NOT NULL,
	"lease_expires_at" timestamp with time zone,
	"wake_requested_at" timestamp with time zone,
	"last_run_at" timestamp with time zone,
	"idle_cycles" bigint DEFAULT 0 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "agent_sessions_tenant_id_agent_id_pk" PRIMARY KEY("tenant_id","agent_id")
);
--> statement-breakpoint
ALTER TABLE "agent_sessions" ENABLE ROW LEVEL SECURITY;--> statement-breakpoint
CREATE TABLE "messages" (
	"tenant_id" text NOT NULL,
	"id" text NOT NULL,
	"to_agent_id" text NOT NULL,
	"from_type" text NOT NULL,
	"from_id" text NOT NULL,
	"body" text NOT NULL,
	"read_at" timestamp with time zone,
	"read_by_run_id" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "messages_tenant_id_id_pk" PRIMARY KEY("tenant_id","id")
);
--> statement-breakpoint
ALTER TABLE "messages" ENABLE ROW LEVEL SECURITY;--> statement-breakpoint
CREATE TABLE "runs" (
	"tenant_id" text NOT NULL,
	"id" text NOT NULL,
	"agent_id" text NOT NULL,
	"task_id" text,
	"parent_run_id" text,
	"root_run_id" text NOT NULL,
	"traceparent" text NOT NULL,
	"trigger" text NOT NULL,
	"status" text DEFAULT 'running' NOT NULL,
	"model" text,
	"step_count" integer DEFAULT 0 NOT NULL,
	"input_tokens" bigint DEFAULT 0 NOT NULL,
	"output_tokens" bigint DEFAULT 0 NOT NULL,
	"limits" jsonb NOT NULL,
	"input" jsonb,
	"result" jsonb,
	"error" jsonb,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"started_at" timestamp with time zone,
	"ended_at" timestamp with time zone,
	CONSTRAINT "runs_tenant_id_id_pk" PRIMARY KEY("tenant_id","id")
);
--> statement-breakpoint
ALTER TABLE "runs" ENABLE ROW LEVEL SECURITY;--> statement-breakpoint
CREATE TABLE "steps" (
	"tenant_id" text NOT NULL,
	"run_id" text NOT NULL,
	"run_created_at" timestamp with time zone NOT NULL,
	"seq" integer NOT NULL,
	"kind" text NOT NULL,
	"name" text,
	"status" text NOT NULL,
	"input" jsonb,
	"output" jsonb,
	"provider" text,
	"model" text,
	"input_tokens" integer DEFAULT 0 NOT NULL,
	"cache_read_tokens" integer DEFAULT 0 NOT NULL,
	"cache_write_tokens" integer DEFAULT 0 NOT NULL,
	"output_tokens" integer DEFAULT 0 NOT NULL,
	"latency_ms" integer,
	"lease_epoch" bigint,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "steps_tenant_id_run_id_seq_run_created_at_pk" PRIMARY KEY("tenant_id","run_id","seq","run_created_at")
) PARTITION BY RANGE ("run_created_at");
--> statement-breakpoint
ALTER TABLE "steps" ENABLE ROW LEVEL SECURITY;--> statement-breakpoint
CREATE TABLE "waitpoints" (
	"tenant_id" text NOT NULL,
	"id" text NOT NULL,
	"run_id" text NOT NULL,
	"agent_id" text NOT NULL,
	"kind" text NOT NULL,
	"status" text DEFAULT 'pending' NOT NULL,
	"ref" text,
	"resume_at" timestamp with time zone,
	"expires_at" timestamp with time zone,
	"payload" jsonb,
	"resolution" jsonb,
	"consumed_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"resolved_at" timestamp with time zone,
	CONSTRAINT "waitpoints_tenant_id_id_pk" PRIMARY KEY("tenant_id","id")
);
--> statement-breakpoint
ALTER TABLE "waitpoints" ENABLE ROW LEVEL SECURITY;--> statement-breakpoint
CREATE TABLE "task_dependencies" (
	"tenant_id" text NOT NULL,
	"task_id" text NOT NULL,
	"depends_on_id" text NOT NULL,
	CONSTRAINT "task_dependencies_tenant_id_task_id_depends_on_id_pk" PRIMARY KEY("tenant_id","task_id","depends_on_id"),
	CONSTRAINT "task_deps_not_self" CHECK (task_id <> depends_on_id)
);
--> statement-breakpoint
ALTER TABLE "task_dependencies" ENABLE ROW LEVEL SECURITY;--> statement-breakpoint
CREATE TABLE "tasks" (
	"tenant_id" text NOT NULL,
	"id" text NOT NULL,
	"title" text NOT NULL,
	"body" text DEFAULT '' NOT NULL,
	"priority" integer DEFAULT 50 NOT NULL,
	"status" text DEFAULT 'queued' NOT NULL,
	"assignee_agent_id" text,
	"domain" text,
	"requires_review" boolean DEFAULT false NOT NULL,
	"reviewer_agent_id" text,
	"max_attempts" integer DEFAULT 3 NOT NULL,
	"attempts" integer DEFAULT 0 NOT NULL,
	"claimed_by_agent_id" text,
	"lease_owner" text,
	"lease_epoch" bigint DEFAULT 0 NOT NULL,
	"lease_expires_at" timestamp with time zone,
	"run_id" text,
	"result" jsonb,
	"failure" jsonb,
	"review_comment" text,
	"created_by_type" text NOT NULL,
	"created_by_id" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"completed_at" timestamp with time zone,
	CONSTRAINT "tasks_tenant_id_id_pk" PRIMARY KEY("tenant_id","id"),
	CONSTRAINT "tasks_priority_range" CHECK (priority BETWEEN 0 AND 100),
	CONSTRAINT "tasks_attempts_range" CHECK (max_attempts BETWEEN 1 AND 100 AND attempts >= 0)
);
--> statement-breakpoint
ALTER TABLE "tasks" ENABLE ROW LEVEL SECURITY;--> statement-breakpoint
ALTER TABLE "agent_sessions" ADD CONSTRAINT "agent_sessions_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "agent_sessions" ADD CONSTRAINT "agent_sessions_agent_fk" FOREIGN KEY ("tenant_id","agent_id") REFERENCES "public"."agents"("tenant_id","id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "messages" ADD CONSTRAINT "messages_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "messages" ADD CONSTRAINT "messages_to_fk" FOREIGN KEY ("tenant_id","to_agent_id") REFERENCES "public"."agents"("tenant_id","id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "runs" ADD CONSTRAINT "runs_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "runs" ADD CONSTRAINT "runs_agent_fk" FOREIGN KEY ("tenant_id","agent_id") REFERENCES "public"."agents"("tenant_id","id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "waitpoints" ADD CONSTRAINT "waitpoints_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "task_dependencies" ADD CONSTRAINT "task_deps_task_fk" FOREIGN KEY ("tenant_id","task_id") REFERENCES "public"."tasks"("tenant_id","id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "task_dependencies" ADD CONSTRAINT "task_deps_on_fk" FOREIGN KEY ("tenant_id","depends_on_id") REFERENCES "public"."tasks"("tenant_id","id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "tasks" ADD CONSTRAINT "tasks_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "tasks" ADD CONSTRAINT "tasks_assignee_fk" FOREIGN KEY ("tenant_id","assignee_agent_id") REFERENCES "public"."agents"("tenant_id","id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "tasks" ADD CONSTRAINT "tasks_reviewer_fk" FOREIGN KEY ("tenant_id","reviewer_agent_id") REFERENCES "public"."agents"("tenant_id","id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "agent_sessions_lease_idx" ON "agent_sessions" USING btree ("lease_expires_at") WHERE lease_owner IS NOT NULL;--> statement-breakpoint
CREATE INDEX "messages_unread_idx" ON "messages" USING btree ("tenant_id","to_agent_id","created_at") WHERE read_at IS NULL;--> statement-breakpoint
CREATE INDEX "runs_agent_idx" ON "runs" USING btree ("tenant_id","agent_id","created_at" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "runs_root_idx" ON "runs" USING btree ("tenant_id","root_run_id");--> statement-breakpoint
CREATE INDEX "runs_active_idx" ON "runs" USING btree ("tenant_id","agent_id") WHERE status IN ('running', 'waiting');--> statement-breakpoint
CREATE INDEX "waitpoints_run_idx" ON "waitpoints" USING btree ("tenant_id","run_id");--> statement-breakpoint
CREATE INDEX "waitpoints_due_idx" ON "waitpoints" USING btree ("resume_at") WHERE status = 'pending' AND resume_at IS NOT NULL;--> statement-breakpoint
CREATE INDEX "task_deps_on_idx" ON "task_dependencies" USING btree ("tenant_id","depends_on_id");--> statement-breakpoint
CREATE INDEX "tasks_claimable_idx" ON "tasks" USING btree ("tenant_id","priority" DESC NULLS LAST,"created_at") WHERE status = 'queued';--> statement-breakpoint
CREATE INDEX "tasks_lease_idx" ON "tasks" USING btree ("lease_expires_at") WHERE status IN ('claimed', 'in_progress');--> statement-breakpoint
CREATE INDEX "tasks_status_idx" ON "tasks" USING btree ("tenant_id","status");--> statement-breakpoint
CREATE POLICY "tenant_isolation" ON "agent_sessions" AS PERMISSIVE FOR ALL TO public USING (tenant_id = current_setting('bosun.tenant_id', true)) WITH CHECK (tenant_id = current_setting('bosun.tenant_id', true));--> statement-breakpoint
CREATE POLICY "tenant_isolation" ON "messages" AS PERMISSIVE FOR ALL TO public USING (tenant_id = current_setting('bosun.tenant_id', true)) WITH CHECK (tenant_id = current_setting('bosun.tenant_id', true));--> statement-breakpoint
CREATE POLICY "tenant_isolation" ON "runs" AS PERMISSIVE FOR ALL TO public USING (tenant_id = current_setting('bosun.tenant_id', true)) WITH CHECK (tenant_id = current_setting('bosun.tenant_id', true));--> statement-breakpoint
CREATE POLICY "tenant_isolation" ON "steps" AS PERMISSIVE FOR ALL TO public USING (tenant_id = current_setting('bosun.tenant_id', true)) WITH CHECK (tenant_id = current_setting('bosun.tenant_id', true));--> statement-breakpoint
CREATE POLICY "tenant_isolation" ON "waitpoints" AS PERMISSIVE FOR ALL TO public USING (tenant_id = current_setting('bosun.tenant_id', true)) WITH CHECK (tenant_id = current_setting('bosun.tenant_id', true));--> statement-breakpoint
CREATE POLICY "tenant_isolation" ON "task_dependencies" AS PERMISSIVE FOR ALL TO public USING (tenant_id = current_setting('bosun.tenant_id', true)) WITH CHECK (tenant_id = current_setting('bosun.tenant_id', true));--> statement-breakpoint
CREATE POLICY "tenant_isolation" ON "tasks" AS PERMISSIVE FOR ALL TO public USING (tenant_id = current_setting('bosun.tenant_id', true)) WITH CHECK (tenant_id = current_setting('bosun.tenant_id', true));--> statement-breakpoint
-- Hand-written (drizzle-kit does not model partitioning): monthly partitions of steps, a
-- default partition so an insert never fails for want of one, and the function the
-- worker's maintenance job calls to create the coming months ahead of time.
CREATE OR REPLACE FUNCTION bosun_ensure_partitions(parent text, months_ahead int) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
  m date := date_trunc('month', now())::date;
  made int := 0;
  name text;
BEGIN
  FOR i IN 0..months_ahead LOOP
    name := format('%s_%s', parent, to_char(m, 'YYYY_MM'));
    IF to_regclass(name) IS NULL THEN
      EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)', name, parent, m, (m + interval '1 month')::date);
      made := made + 1;
    END IF;
    m := (m + interval '1 month')::date;
  END LOOP;
  RETURN made;
END
$$;
--> statement-breakpoint
CREATE TABLE "steps_default" PARTITION OF "steps" DEFAULT;
--> statement-breakpoint
SELECT bosun_ensure_partitions('steps', 2);
