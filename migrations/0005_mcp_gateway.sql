CREATE TABLE "mcp_call_counters" (
	"tenant_id" text NOT NULL,
	"server_id" text NOT NULL,
	"window_start" timestamp with time zone NOT NULL,
	"calls" integer NOT NULL,
	CONSTRAINT "mcp_call_counters_tenant_id_server_id_window_start_pk" PRIMARY KEY("tenant_id","server_id","window_start")
);
--> statement-breakpoint
ALTER TABLE "mcp_call_counters" ENABLE ROW LEVEL SECURITY;--> statement-breakpoint
CREATE TABLE "mcp_servers" (
	"tenant_id" text NOT NULL,
	"id" text NOT NULL,
	"name" text NOT NULL,
	"transport" text NOT NULL,
	"command" text,
	"args" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"url" text,
	"secrets_enc" text,
	"secret_names" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"calls_per_minute" integer NOT NULL,
	"result_cap_bytes" integer NOT NULL,
	"timeout_ms" integer NOT NULL,
	"status" text DEFAULT 'active' NOT NULL,
	"last_error" text,
	"last_listed_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "mcp_servers_tenant_id_id_pk" PRIMARY KEY("tenant_id","id")
);
--> statement-breakpoint
ALTER TABLE "mcp_servers" ENABLE ROW LEVEL SECURITY;--> statement-breakpoint
CREATE TABLE "mcp_tools" (
	"tenant_id" text NOT NULL,
	"server_id" text NOT NULL,
	"name" text NOT NULL,
	"version" integer NOT NULL,
	"schema_hash" text NOT NULL,
	"input_schema" jsonb NOT NULL,
	"description" text DEFAULT '' NOT NULL,
	"side_effect" text DEFAULT 'external' NOT NULL,
	"fee_micros" bigint DEFAULT 0 NOT NULL,
	"value_field" text,
	"current" boolean DEFAULT true NOT NULL,
	"first_seen_at" timestamp with time zone DEFAULT now() NOT NULL,
	"last_seen_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "mcp_tools_tenant_id_server_id_name_version_pk" PRIMARY KEY("tenant_id","server_id","name","version")
);
--> statement-breakpoint
ALTER TABLE "mcp_tools" ENABLE ROW LEVEL SECURITY;--> statement-breakpoint
ALTER TABLE "mcp_call_counters" ADD CONSTRAINT "mcp_call_counters_server_fk" FOREIGN KEY ("tenant_id","server_id") REFERENCES "public"."mcp_servers"("tenant_id","id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "mcp_servers" ADD CONSTRAINT "mcp_servers_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "mcp_tools" ADD CONSTRAINT "mcp_tools_server_fk" FOREIGN KEY ("tenant_id","server_id") REFERENCES "public"."mcp_servers"("tenant_id","id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "mcp_call_counters_window_idx" ON "mcp_call_counters" USING btree ("window_start");--> statement-breakpoint
CREATE UNIQUE INDEX "mcp_servers_tenant_name_key" ON "mcp_servers" USING btree ("tenant_id","name");--> statement-breakpoint
CREATE UNIQUE INDEX "mcp_tools_current_key" ON "mcp_tools" USING btree ("tenant_id","server_id","name") WHERE current;--> statement-breakpoint
CREATE POLICY "tenant_isolation" ON "mcp_call_counters" AS PERMISSIVE FOR ALL TO public USING (tenant_id = current_setting('bosun.tenant_id', true)) WITH CHECK (tenant_id = current_setting('bosun.tenant_id', true));--> statement-breakpoint
CREATE POLICY "tenant_isolation" ON "mcp_servers" AS PERMISSIVE FOR ALL TO public USING (tenant_id = current_setting('bosun.tenant_id', true)) WITH CHECK (tenant_id = current_setting('bosun.tenant_id', true));--> statement-breakpoint
CREATE POLICY "tenant_isolation" ON "mcp_tools" AS PERMISSIVE FOR ALL TO public USING (tenant_id = current_setting('bosun.tenant_id', true)) WITH CHECK (tenant_id = current_setting('bosun.tenant_id', true));