CREATE TABLE "policies" (
	"tenant_id" text NOT NULL,
	"id" text NOT NULL,
	"agent_id" text,
	"name" text NOT NULL,
	"priority" integer DEFAULT 100 NOT NULL,
	"tool_pattern" text,
	"side_effect" text,
	"action_value_gt_micros" bigint,
	"decision" text NOT NULL,
	"approval_expires_seconds" integer,
	"description" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "policies_tenant_id_id_pk" PRIMARY KEY("tenant_id","id"),
	CONSTRAINT "policies_expiry_check" CHECK (approval_expires_seconds IS NULL OR approval_expires_seconds > 0)
);
--> statement-breakpoint
ALTER TABLE "policies" ENABLE ROW LEVEL SECURITY;--> statement-breakpoint
ALTER TABLE "messages" ALTER COLUMN "to_agent_id" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "messages" ADD COLUMN "to_type" text DEFAULT 'agent' NOT NULL;--> statement-breakpoint
ALTER TABLE "messages" ADD COLUMN "to_id" text;--> statement-breakpoint
ALTER TABLE "messages" ADD COLUMN "thread_id" text;--> statement-breakpoint
ALTER TABLE "messages" ADD COLUMN "reply_to" text;--> statement-breakpoint
ALTER TABLE "messages" ADD COLUMN "broadcast_id" text;--> statement-breakpoint
ALTER TABLE "policies" ADD CONSTRAINT "policies_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "policies" ADD CONSTRAINT "policies_agent_fk" FOREIGN KEY ("tenant_id","agent_id") REFERENCES "public"."agents"("tenant_id","id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "policies_tenant_name_key" ON "policies" USING btree ("tenant_id","name");--> statement-breakpoint
CREATE INDEX "policies_agent_idx" ON "policies" USING btree ("tenant_id","agent_id");--> statement-breakpoint
CREATE INDEX "messages_thread_idx" ON "messages" USING btree ("tenant_id","thread_id","created_at");--> statement-breakpoint
CREATE POLICY "tenant_isolation" ON "policies" AS PERMISSIVE FOR ALL TO public USING (tenant_id = current_setting('bosun.tenant_id', true)) WITH CHECK (tenant_id = current_setting('bosun.tenant_id', true));--> statement-breakpoint
-- Hand-written: the sweeper's scan for approvals past their expiry (waitpoints are the
-- execution plane's table; this partial index serves only the approval gate).
CREATE INDEX "waitpoints_approval_expiry_idx" ON "waitpoints" USING btree ("expires_at") WHERE status = 'pending' AND kind = 'approval';
