CREATE TABLE "agent_memory" (
	"tenant_id" text NOT NULL,
	"agent_id" text NOT NULL,
	"changes_since_dream" integer DEFAULT 0 NOT NULL,
	"last_dream_at" timestamp with time zone,
	"last_dream_run_id" text,
	"next_dream_at" timestamp with time zone,
	"dream_epoch" bigint DEFAULT 0 NOT NULL,
	"dream_until" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "agent_memory_tenant_id_agent_id_pk" PRIMARY KEY("tenant_id","agent_id")
);
--> statement-breakpoint
ALTER TABLE "agent_memory" ENABLE ROW LEVEL SECURITY;--> statement-breakpoint
CREATE TABLE "memory_items" (
	"tenant_id" text NOT NULL,
	"id" text NOT NULL,
	"agent_id" text NOT NULL,
	"layer" text NOT NULL,
	"title" text DEFAULT '' NOT NULL,
	"content" text NOT NULL,
	"tokens" integer NOT NULL,
	"version" integer DEFAULT 1 NOT NULL,
	"source" text NOT NULL,
	"ref" text,
	"search" "tsvector" GENERATED ALWAYS AS (to_tsvector('english', coalesce(title, '') || ' ' || content)) STORED NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"expires_at" timestamp with time zone,
	CONSTRAINT "memory_items_tenant_id_id_pk" PRIMARY KEY("tenant_id","id"),
	CONSTRAINT "memory_items_tokens_nonneg" CHECK (tokens >= 0 AND version >= 1)
);
--> statement-breakpoint
ALTER TABLE "memory_items" ENABLE ROW LEVEL SECURITY;--> statement-breakpoint
ALTER TABLE "agent_memory" ADD CONSTRAINT "agent_memory_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "agent_memory" ADD CONSTRAINT "agent_memory_agent_fk" FOREIGN KEY ("tenant_id","agent_id") REFERENCES "public"."agents"("tenant_id","id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "memory_items" ADD CONSTRAINT "memory_items_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "memory_items" ADD CONSTRAINT "memory_items_agent_fk" FOREIGN KEY ("tenant_id","agent_id") REFERENCES "public"."agents"("tenant_id","id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "agent_memory_dream_due_idx" ON "agent_memory" USING btree ("next_dream_at");--> statement-breakpoint
CREATE INDEX "memory_items_agent_idx" ON "memory_items" USING btree ("tenant_id","agent_id","layer","created_at");--> statement-breakpoint
CREATE INDEX "memory_items_search_idx" ON "memory_items" USING gin ("search");--> statement-breakpoint
CREATE INDEX "memory_items_expiry_idx" ON "memory_items" USING btree ("expires_at") WHERE expires_at IS NOT NULL;--> statement-breakpoint
CREATE POLICY "tenant_isolation" ON "agent_memory" AS PERMISSIVE FOR ALL TO public USING (tenant_id = current_setting('bosun.tenant_id', true)) WITH CHECK (tenant_id = current_setting('bosun.tenant_id', true));--> statement-breakpoint
CREATE POLICY "tenant_isolation" ON "memory_items" AS PERMISSIVE FOR ALL TO public USING (tenant_id = current_setting('bosun.tenant_id', true)) WITH CHECK (tenant_id = current_setting('bosun.tenant_id', true));