CREATE TABLE "proposal_responses" (
	"tenant_id" text NOT NULL,
	"proposal_id" text NOT NULL,
	"agent_id" text NOT NULL,
	"stance" text,
	"comment" text,
	"responded_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "proposal_responses_tenant_id_proposal_id_agent_id_pk" PRIMARY KEY("tenant_id","proposal_id","agent_id")
);
--> statement-breakpoint
ALTER TABLE "proposal_responses" ENABLE ROW LEVEL SECURITY;--> statement-breakpoint
CREATE TABLE "proposal_settings" (
	"tenant_id" text PRIMARY KEY NOT NULL,
	"approve_after_seconds" integer NOT NULL,
	"escalate_after_seconds" integer NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "proposal_settings_order" CHECK (approve_after_seconds > 0 AND approve_after_seconds <= escalate_after_seconds)
);
--> statement-breakpoint
ALTER TABLE "proposal_settings" ENABLE ROW LEVEL SECURITY;--> statement-breakpoint
CREATE TABLE "proposals" (
	"tenant_id" text NOT NULL,
	"id" text NOT NULL,
	"title" text NOT NULL,
	"body" text DEFAULT '' NOT NULL,
	"domains" jsonb NOT NULL,
	"action" jsonb,
	"proposer_type" text NOT NULL,
	"proposer_id" text NOT NULL,
	"proposer_agent_id" text,
	"status" text DEFAULT 'open' NOT NULL,
	"approve_at" timestamp with time zone NOT NULL,
	"escalate_at" timestamp with time zone NOT NULL,
	"due_at" timestamp with time zone,
	"decided_at" timestamp with time zone,
	"decided_by_type" text,
	"decided_by_id" text,
	"decision_reason" text,
	"decision_comment" text,
	"escalated_at" timestamp with time zone,
	"applied_at" timestamp with time zone,
	"action_result" jsonb,
	"action_error" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "proposals_tenant_id_id_pk" PRIMARY KEY("tenant_id","id"),
	CONSTRAINT "proposals_windows_order" CHECK (approve_at <= escalate_at)
);
--> statement-breakpoint
ALTER TABLE "proposals" ENABLE ROW LEVEL SECURITY;--> statement-breakpoint
ALTER TABLE "proposal_responses" ADD CONSTRAINT "proposal_responses_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "proposal_responses" ADD CONSTRAINT "proposal_responses_proposal_fk" FOREIGN KEY ("tenant_id","proposal_id") REFERENCES "public"."proposals"("tenant_id","id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "proposal_responses" ADD CONSTRAINT "proposal_responses_agent_fk" FOREIGN KEY ("tenant_id","agent_id") REFERENCES "public"."agents"("tenant_id","id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "proposal_settings" ADD CONSTRAINT "proposal_settings_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "proposals" ADD CONSTRAINT "proposals_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "proposals" ADD CONSTRAINT "proposals_proposer_agent_fk" FOREIGN KEY ("tenant_id","proposer_agent_id") REFERENCES "public"."agents"("tenant_id","id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "proposals_due_idx" ON "proposals" USING btree ("due_at") WHERE due_at IS NOT NULL;--> statement-breakpoint
CREATE INDEX "proposals_status_idx" ON "proposals" USING btree ("tenant_id","status","id");--> statement-breakpoint
CREATE POLICY "tenant_isolation" ON "proposal_responses" AS PERMISSIVE FOR ALL TO public USING (tenant_id = current_setting('bosun.tenant_id', true)) WITH CHECK (tenant_id = current_setting('bosun.tenant_id', true));--> statement-breakpoint
CREATE POLICY "tenant_isolation" ON "proposal_settings" AS PERMISSIVE FOR ALL TO public USING (tenant_id = current_setting('bosun.tenant_id', true)) WITH CHECK (tenant_id = current_setting('bosun.tenant_id', true));--> statement-breakpoint
CREATE POLICY "tenant_isolation" ON "proposals" AS PERMISSIVE FOR ALL TO public USING (tenant_id = current_setting('bosun.tenant_id', true)) WITH CHECK (tenant_id = current_setting('bosun.tenant_id', true));