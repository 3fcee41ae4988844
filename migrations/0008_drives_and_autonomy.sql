CREATE TABLE "agent_drives" (
	"tenant_id" text NOT NULL,
	"agent_id" text NOT NULL,
	"name" text NOT NULL,
	"next_due_at" timestamp with time zone NOT NULL,
	"last_consulted_at" timestamp with time zone,
	"last_run_id" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "agent_drives_tenant_id_agent_id_name_pk" PRIMARY KEY("tenant_id","agent_id","name")
);
--> statement-breakpoint
ALTER TABLE "agent_drives" ENABLE ROW LEVEL SECURITY;--> statement-breakpoint
CREATE TABLE "autonomy_days" (
	"tenant_id" text NOT NULL,
	"agent_id" text NOT NULL,
	"day" date NOT NULL,
	"tasks_created" integer DEFAULT 0 NOT NULL,
	CONSTRAINT "autonomy_days_tenant_id_agent_id_day_pk" PRIMARY KEY("tenant_id","agent_id","day")
);
--> statement-breakpoint
ALTER TABLE "autonomy_days" ENABLE ROW LEVEL SECURITY;--> statement-breakpoint
ALTER TABLE "agent_drives" ADD CONSTRAINT "agent_drives_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "agent_drives" ADD CONSTRAINT "agent_drives_agent_fk" FOREIGN KEY ("tenant_id","agent_id") REFERENCES "public"."agents"("tenant_id","id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "autonomy_days" ADD CONSTRAINT "autonomy_days_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "autonomy_days" ADD CONSTRAINT "autonomy_days_agent_fk" FOREIGN KEY ("tenant_id","agent_id") REFERENCES "public"."agents"("tenant_id","id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE POLICY "tenant_isolation" ON "agent_drives" AS PERMISSIVE FOR ALL TO public USING (tenant_id = current_setting('bosun.tenant_id', true)) WITH CHECK (tenant_id = current_setting('bosun.tenant_id', true));--> statement-breakpoint
CREATE POLICY "tenant_isolation" ON "autonomy_days" AS PERMISSIVE FOR ALL TO public USING (tenant_id = current_setting('bosun.tenant_id', true)) WITH CHECK (tenant_id = current_setting('bosun.tenant_id', true));