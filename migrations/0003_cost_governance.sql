CREATE TABLE "budget_alerts" (
	"tenant_id" text NOT NULL,
	"id" text NOT NULL,
	"budget_id" text NOT NULL,
	"window_key" text NOT NULL,
	"threshold" integer NOT NULL,
	"agent_id" text,
	"window_start" timestamp with time zone NOT NULL,
	"window_end" timestamp with time zone,
	"spent" bigint NOT NULL,
	"limit_value" bigint NOT NULL,
	"status" text DEFAULT 'pending' NOT NULL,
	"attempts" integer DEFAULT 0 NOT NULL,
	"last_error" text,
	"sending_until" timestamp with time zone,
	"sent_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "budget_alerts_tenant_id_id_pk" PRIMARY KEY("tenant_id","id")
);
--> statement-breakpoint
ALTER TABLE "budget_alerts" ENABLE ROW LEVEL SECURITY;--> statement-breakpoint
CREATE TABLE "budget_reservations" (
	"tenant_id" text NOT NULL,
	"id" text NOT NULL,
	"key" text NOT NULL,
	"agent_id" text NOT NULL,
	"run_id" text,
	"holds" jsonb NOT NULL,
	"estimate_micros" bigint NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	CONSTRAINT "budget_reservations_tenant_id_id_pk" PRIMARY KEY("tenant_id","id")
);
--> statement-breakpoint
ALTER TABLE "budget_reservations" ENABLE ROW LEVEL SECURITY;--> statement-breakpoint
CREATE TABLE "budget_windows" (
	"tenant_id" text NOT NULL,
	"budget_id" text NOT NULL,
	"window_key" text NOT NULL,
	"window_start" timestamp with time zone NOT NULL,
	"window_end" timestamp with time zone,
	"limit_value" bigint NOT NULL,
	"spent" bigint DEFAULT 0 NOT NULL,
	"reserved" bigint DEFAULT 0 NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "budget_windows_tenant_id_budget_id_window_key_pk" PRIMARY KEY("tenant_id","budget_id","window_key"),
	CONSTRAINT "budget_windows_non_negative" CHECK (spent >= 0 AND reserved >= 0)
);
--> statement-breakpoint
ALTER TABLE "budget_windows" ENABLE ROW LEVEL SECURITY;--> statement-breakpoint
CREATE TABLE "budgets" (
	"tenant_id" text NOT NULL,
	"id" text NOT NULL,
	"scope" text NOT NULL,
	"agent_id" text,
	"metric" text NOT NULL,
	"period" text NOT NULL,
	"limit_value" bigint NOT NULL,
	"enforcement" text DEFAULT 'hard' NOT NULL,
	"thresholds" jsonb DEFAULT '[50, 80, 100]'::jsonb NOT NULL,
	"on_exhausted" text DEFAULT 'refuse' NOT NULL,
	"source" text DEFAULT 'api' NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "budgets_tenant_id_id_pk" PRIMARY KEY("tenant_id","id"),
	CONSTRAINT "budgets_scope_agent" CHECK ((scope = 'agent') = (agent_id IS NOT NULL)),
	CONSTRAINT "budgets_limit" CHECK (limit_value >= 0)
);
--> statement-breakpoint
ALTER TABLE "budgets" ENABLE ROW LEVEL SECURITY;--> statement-breakpoint
CREATE TABLE "cost_daily" (
	"tenant_id" text NOT NULL,
	"day" date NOT NULL,
	"agent_id" text NOT NULL,
	"kind" text NOT NULL,
	"provider" text NOT NULL,
	"model" text NOT NULL,
	"cost_micros" bigint NOT NULL,
	"charges" integer NOT NULL,
	"unpriced_charges" integer NOT NULL,
	"input_tokens" bigint NOT NULL,
	"cache_read_tokens" bigint NOT NULL,
	"cache_write_tokens" bigint NOT NULL,
	"output_tokens" bigint NOT NULL,
	"compute_ms" bigint NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "cost_daily_tenant_id_day_agent_id_kind_provider_model_pk" PRIMARY KEY("tenant_id","day","agent_id","kind","provider","model")
);
--> statement-breakpoint
ALTER TABLE "cost_daily" ENABLE ROW LEVEL SECURITY;--> statement-breakpoint
CREATE TABLE "cost_ledger" (
	"tenant_id" text NOT NULL,
	"id" text NOT NULL,
	"run_created_at" timestamp with time zone NOT NULL,
	"idempotency_key" text NOT NULL,
	"kind" text NOT NULL,
	"agent_id" text NOT NULL,
	"run_id" text,
	"step_seq" integer,
	"task_id" text,
	"provider" text,
	"model" text,
	"price_id" text,
	"input_tokens" bigint DEFAULT 0 NOT NULL,
	"cache_read_tokens" bigint DEFAULT 0 NOT NULL,
	"cache_write_tokens" bigint DEFAULT 0 NOT NULL,
	"output_tokens" bigint DEFAULT 0 NOT NULL,
	"raw_usage" jsonb,
	"compute_ms" bigint,
	"rate_micros_per_hour" bigint,
	"description" text,
	"cost_micros" bigint,
	"unpriced" boolean DEFAULT false NOT NULL,
	"estimated" boolean DEFAULT false NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "cost_ledger_tenant_id_id_run_created_at_pk" PRIMARY KEY("tenant_id","id","run_created_at"),
	CONSTRAINT "cost_ledger_cost" CHECK (cost_micros >= 0 OR (cost_micros IS NULL AND unpriced))
) PARTITION BY RANGE ("run_created_at");
--> statement-breakpoint
ALTER TABLE "cost_ledger" ENABLE ROW LEVEL SECURITY;--> statement-breakpoint
CREATE TABLE "cost_rollup_state" (
	"id" integer PRIMARY KEY DEFAULT 1 NOT NULL,
	"rolled_up_to" timestamp with time zone NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "cost_settings" (
	"tenant_id" text PRIMARY KEY NOT NULL,
	"allow_unpriced_models" boolean DEFAULT false NOT NULL,
	"compute_micros_per_hour" bigint DEFAULT 50000 NOT NULL,
	"alert_emails" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "cost_settings_rate" CHECK (compute_micros_per_hour >= 0)
);
--> statement-breakpoint
ALTER TABLE "cost_settings" ENABLE ROW LEVEL SECURITY;--> statement-breakpoint
CREATE TABLE "model_prices" (
	"id" text PRIMARY KEY NOT NULL,
	"provider" text NOT NULL,
	"model" text NOT NULL,
	"input_micros_per_mtok" bigint NOT NULL,
	"output_micros_per_mtok" bigint NOT NULL,
	"cache_read_micros_per_mtok" bigint NOT NULL,
	"cache_write_micros_per_mtok" bigint NOT NULL,
	"effective_from" timestamp with time zone NOT NULL,
	"source" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "model_prices_non_negative" CHECK (input_micros_per_mtok >= 0 AND output_micros_per_mtok >= 0 AND cache_read_micros_per_mtok >= 0 AND cache_write_micros_per_mtok >= 0)
);
--> statement-breakpoint
CREATE TABLE "price_overrides" (
	"tenant_id" text NOT NULL,
	"id" text NOT NULL,
	"provider" text NOT NULL,
	"model" text NOT NULL,
	"input_micros_per_mtok" bigint NOT NULL,
	"output_micros_per_mtok" bigint NOT NULL,
	"cache_read_micros_per_mtok" bigint NOT NULL,
	"cache_write_micros_per_mtok" bigint NOT NULL,
	"effective_from" timestamp with time zone NOT NULL,
	"note" text,
	"created_by_type" text NOT NULL,
	"created_by_id" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "price_overrides_tenant_id_id_pk" PRIMARY KEY("tenant_id","id"),
	CONSTRAINT "price_overrides_non_negative" CHECK (input_micros_per_mtok >= 0 AND output_micros_per_mtok >= 0 AND cache_read_micros_per_mtok >= 0 AND cache_write_micros_per_mtok >= 0)
);
--> statement-breakpoint
ALTER TABLE "price_overrides" ENABLE ROW LEVEL SECURITY;--> statement-breakpoint
ALTER TABLE "budget_alerts" ADD CONSTRAINT "budget_alerts_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "budget_windows" ADD CONSTRAINT "budget_windows_budget_fk" FOREIGN KEY ("tenant_id","budget_id") REFERENCES "public"."budgets"("tenant_id","id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "budgets" ADD CONSTRAINT "budgets_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "budgets" ADD CONSTRAINT "budgets_agent_fk" FOREIGN KEY ("tenant_id","agent_id") REFERENCES "public"."agents"("tenant_id","id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "cost_settings" ADD CONSTRAINT "cost_settings_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "price_overrides" ADD CONSTRAINT "price_overrides_tenant_id_tenants_id_fk" FOREIGN KEY ("tenant_id") REFERENCES "public"."tenants"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "budget_alerts_claim_key" ON "budget_alerts" USING btree ("tenant_id","budget_id","window_key","threshold");--> statement-breakpoint
CREATE INDEX "budget_alerts_time_idx" ON "budget_alerts" USING btree ("tenant_id","created_at");--> statement-breakpoint
CREATE UNIQUE INDEX "budget_reservations_key" ON "budget_reservations" USING btree ("tenant_id","key");--> statement-breakpoint
CREATE INDEX "budget_reservations_expiry_idx" ON "budget_reservations" USING btree ("expires_at");--> statement-breakpoint
CREATE INDEX "budgets_agent_idx" ON "budgets" USING btree ("tenant_id","agent_id");--> statement-breakpoint
CREATE UNIQUE INDEX "budgets_descriptor_key" ON "budgets" USING btree ("tenant_id","agent_id","metric","period") WHERE source = 'descriptor';--> statement-breakpoint
CREATE UNIQUE INDEX "cost_ledger_idempotency_key" ON "cost_ledger" USING btree ("tenant_id","idempotency_key","run_created_at");--> statement-breakpoint
CREATE INDEX "cost_ledger_time_idx" ON "cost_ledger" USING btree ("tenant_id","created_at");--> statement-breakpoint
CREATE INDEX "cost_ledger_agent_idx" ON "cost_ledger" USING btree ("tenant_id","agent_id","created_at");--> statement-breakpoint
CREATE UNIQUE INDEX "model_prices_version_key" ON "model_prices" USING btree ("provider","model","effective_from");--> statement-breakpoint
CREATE UNIQUE INDEX "price_overrides_version_key" ON "price_overrides" USING btree ("tenant_id","provider","model","effective_from");--> statement-breakpoint
CREATE POLICY "tenant_isolation" ON "budget_alerts" AS PERMISSIVE FOR ALL TO public USING (tenant_id = current_setting('bosun.tenant_id', true)) WITH CHECK (tenant_id = current_setting('bosun.tenant_id', true));--> statement-breakpoint
CREATE POLICY "tenant_isolation" ON "budget_reservations" AS PERMISSIVE FOR ALL TO public USING (tenant_id = current_setting('bosun.tenant_id', true)) WITH CHECK (tenant_id = current_setting('bosun.tenant_id', true));--> statement-breakpoint
CREATE POLICY "tenant_isolation" ON "budget_windows" AS PERMISSIVE FOR ALL TO public USING (tenant_id = current_setting('bosun.tenant_id', true)) WITH CHECK (tenant_id = current_setting('bosun.tenant_id', true));--> statement-breakpoint
CREATE POLICY "tenant_isolation" ON "budgets" AS PERMISSIVE FOR ALL TO public USING (tenant_id = current_setting('bosun.tenant_id', true)) WITH CHECK (tenant_id = current_setting('bosun.tenant_id', true));--> statement-breakpoint
CREATE POLICY "tenant_isolation" ON "cost_daily" AS PERMISSIVE FOR ALL TO public USING (tenant_id = current_setting('bosun.tenant_id', true)) WITH CHECK (tenant_id = current_setting('bosun.tenant_id', true));--> statement-breakpoint
CREATE POLICY "tenant_isolation" ON "cost_ledger" AS PERMISSIVE FOR ALL TO public USING (tenant_id = current_setting('bosun.tenant_id', true)) WITH CHECK (tenant_id = current_setting('bosun.tenant_id', true));--> statement-breakpoint
CREATE POLICY "tenant_isolation" ON "cost_settings" AS PERMISSIVE FOR ALL TO public USING (tenant_id = current_setting('bosun.tenant_id', true)) WITH CHECK (tenant_id = current_setting('bosun.tenant_id', true));--> statement-breakpoint
CREATE POLICY "tenant_isolation" ON "price_overrides" AS PERMISSIVE FOR ALL TO public USING (tenant_id = current_setting('bosun.tenant_id', true)) WITH CHECK (tenant_id = current_setting('bosun.tenant_id', true));--> statement-breakpoint
-- Hand-written (drizzle-kit models neither partitions, grants nor data). The ledger is
-- partitioned by month of its runs' creation like steps (see 0002), with a default
-- partition so an insert never fails for want of one; the worker's sweep keeps two
-- months ahead.
CREATE TABLE "cost_ledger_default" PARTITION OF "cost_ledger" DEFAULT;
--> statement-breakpoint
SELECT bosun_ensure_partitions('cost_ledger', 2);
--> statement-breakpoint
-- The ledger is append-only for the application, like the audit trail.
REVOKE UPDATE, DELETE ON "cost_ledger" FROM bosun_app;
--> statement-breakpoint
-- The price catalogue is global: tenants read it and add their own prices to price_overrides.
REVOKE INSERT, UPDATE, DELETE ON "model_prices" FROM bosun_app;
--> statement-breakpoint
-- The rollup watermark is written by the rollup job (a system path); tenants only read it.
REVOKE INSERT, UPDATE, DELETE ON "cost_rollup_state" FROM bosun_app;
--> statement-breakpoint
INSERT INTO "cost_rollup_state" ("id", "rolled_up_to") VALUES (1, 'epoch');
--> statement-breakpoint
-- The list prices as published in November 2026, in micro-dollars per million tokens.
-- OpenAI bills cache writes as plain input. A price change is a new row with a later
-- effective_from (claude-sonnet-5-5 shows one); old rows stay, as old charges name them.
INSERT INTO "model_prices" ("id", "provider", "model", "input_micros_per_mtok", "output_micros_per_mtok", "cache_read_micros_per_mtok", "cache_write_micros_per_mtok", "effective_from", "source") VALUES
  ('prc_01m7yn0kxp4a654grbwg1ehv0b', 'anthropic', 'claude-fable-5-1', 10000000, 50000000, 250000, 12500000, '2026-11-01T00:00:00Z', 'https://platform.claude.com/docs/en/about-claude/pricing'),
  ('prc_01m7yn0kxpca3zsxgwfyp327rr', 'anthropic', 'claude-mythos-5-1', 10000000, 50000000, 250000, 12500000, '2026-11-01T00:00:00Z', 'https://platform.claude.com/docs/en/about-claude/pricing'),
  ('prc_01m7yn0kxps4n4xz00staf9cqx', 'anthropic', 'claude-fable-5', 10000000, 50000000, 1000000, 12500000, '2026-11-01T00:00:00Z', 'https://platform.claude.com/docs/en/about-claude/pricing'),
  ('prc_01m7yn0kxp7kytd1q4594k0djh', 'anthropic', 'claude-mythos-5', 10000000, 50000000, 1000000, 12500000, '2026-11-01T00:00:00Z', 'https://platform.claude.com/docs/en/about-claude/pricing'),
  ('prc_01m7yn0kxp0ys8b8582df4bpsb', 'anthropic', 'claude-opus-5-5', 4000000, 20000000, 200000, 5000000, '2026-11-01T00:00:00Z', 'https://platform.claude.com/docs/en/about-claude/pricing'),
  ('prc_01m7yn0kxpd930wm0f1mhzes6e', 'anthropic', 'claude-opus-5', 5000000, 25000000, 500000, 6250000, '2026-11-01T00:00:00Z', 'https://platform.claude.com/docs/en/about-claude/pricing'),
  ('prc_01m7yn0kxpw3a44m6p0w2a98pe', 'anthropic', 'claude-opus-4-8', 5000000, 25000000, 500000, 6250000, '2026-11-01T00:00:00Z', 'https://platform.claude.com/docs/en/about-claude/pricing'),
  ('prc_01m7yn0kxpv60sd0wjm0dsbc6r', 'anthropic', 'claude-opus-4-7', 5000000, 25000000, 500000, 6250000, '2026-11-01T00:00:00Z', 'https://platform.claude.com/docs/en/about-claude/pricing'),
  ('prc_01m7yn0kxpkekstjgtt3et5qkb', 'anthropic', 'claude-opus-4-6', 5000000, 25000000, 500000, 6250000, '2026-11-01T00:00:00Z', 'https://platform.claude.com/docs/en/about-claude/pricing'),
  ('prc_01m7yn0kxpk2nfyb3jnsa2199h', 'anthropic', 'claude-opus-4-5', 5000000, 25000000, 500000, 6250000, '2026-11-01T00:00:00Z', 'https://platform.claude.com/docs/en/about-claude/pricing'),
  ('prc_01m7yn0kxp6r0bkvyda38c32n7', 'anthropic', 'claude-opus-4-1', 15000000, 75000000, 1500000, 18750000, '2026-11-01T00:00:00Z', 'https://platform.claude.com/docs/en/about-claude/pricing'),
  ('prc_01m7yn0kxpseb8age7yj5cys68', 'anthropic', 'claude-sonnet-5-5', 2000000, 10000000, 200000, 2500000, '2026-09-01T00:00:00Z', 'https://platform.claude.com/docs/en/about-claude/pricing'),
  ('prc_01m7yn0kxp0asw2pp9zgbraxtx', 'anthropic', 'claude-sonnet-5-5', 2000000, 10000000, 100000, 2500000, '2026-10-07T00:00:00Z', 'https://platform.claude.com/docs/en/about-claude/pricing (cache reads cut from $0.20 to $0.10 / MTok on 2026-10-07)'),
  ('prc_01m7yn0kxpw4k5b5q4bt1vd2wf', 'anthropic', 'claude-sonnet-5', 2000000, 10000000, 200000, 2500000, '2026-11-01T00:00:00Z', 'https://platform.claude.com/docs/en/about-claude/pricing'),
  ('prc_01m7yn0kxpsmqkqt6yw2qb06pk', 'anthropic', 'claude-sonnet-4-6', 3000000, 15000000, 300000, 3750000, '2026-11-01T00:00:00Z', 'https://platform.claude.com/docs/en/about-claude/pricing'),
  ('prc_01m7yn0kxp5e8ntszqjf88s3s6', 'anthropic', 'claude-sonnet-4-5', 3000000, 15000000, 300000, 3750000, '2026-11-01T00:00:00Z', 'https://platform.claude.com/docs/en/about-claude/pricing'),
  ('prc_01m7yn0kxp1k1gwr2pd84a9jh3', 'anthropic', 'claude-haiku-5-5', 100000, 500000, 10000, 125000, '2026-11-01T00:00:00Z', 'https://platform.claude.com/docs/en/about-claude/pricing (prompts up to 100k tokens; longer prompts bill at 5x, not modelled: add a tenant price if you send them)'),
  ('prc_01m7yn0kxpm2q6x9j8em1arzww', 'anthropic', 'claude-haiku-4-5', 1000000, 5000000, 100000, 1250000, '2026-11-01T00:00:00Z', 'https://platform.claude.com/docs/en/about-claude/pricing'),
  ('prc_01m7yn0kxp8dtg3461mnhzvpqt', 'openai', 'gpt-5.5', 5000000, 30000000, 500000, 5000000, '2026-11-01T00:00:00Z', 'https://developers.openai.com/api/docs/pricing'),
  ('prc_01m7yn0kxpqymwrpyss7d9q71m', 'openai', 'gpt-5.5-pro', 30000000, 180000000, 30000000, 30000000, '2026-11-01T00:00:00Z', 'https://developers.openai.com/api/docs/pricing'),
  ('prc_01m7yn0kxpbevytb497gz3ygmv', 'openai', 'gpt-5.4', 2500000, 15000000, 250000, 2500000, '2026-11-01T00:00:00Z', 'https://developers.openai.com/api/docs/pricing'),
  ('prc_01m7yn0kxpv4tqewqytdm5qjk2', 'openai', 'gpt-5.4-mini', 750000, 4500000, 75000, 750000, '2026-11-01T00:00:00Z', 'https://developers.openai.com/api/docs/pricing'),
  ('prc_01m7yn0kxpzajwd07j6x20w1sv', 'openai', 'gpt-5.4-nano', 200000, 1250000, 20000, 200000, '2026-11-01T00:00:00Z', 'https://developers.openai.com/api/docs/pricing'),
  ('prc_01m7yn0kxpkpjkndbegsrmrpd7', 'openai', 'gpt-5.4-pro', 30000000, 180000000, 30000000, 30000000, '2026-11-01T00:00:00Z', 'https://developers.openai.com/api/docs/pricing'),
  ('prc_01m7yn0kxpr6ak5bfrb65nv1bz', 'openai', 'gpt-5', 1250000, 10000000, 125000, 1250000, '2026-11-01T00:00:00Z', 'https://developers.openai.com/api/docs/pricing'),
  ('prc_01m7yn0kxp5cx4z3zhtvw89rwg', 'openai', 'gpt-5-mini', 250000, 2000000, 25000, 250000, '2026-11-01T00:00:00Z', 'https://developers.openai.com/api/docs/pricing'),
  ('prc_01m7yn0kxpejy0wt45gqtstgav', 'openai', 'gpt-5-nano', 50000, 400000, 5000, 50000, '2026-11-01T00:00:00Z', 'https://developers.openai.com/api/docs/pricing'),
  ('prc_01m7yn0kxp8r2c5h57xmjcye97', 'openai', 'gpt-4.1', 2000000, 8000000, 500000, 2000000, '2026-11-01T00:00:00Z', 'https://developers.openai.com/api/docs/pricing'),
  ('prc_01m7yn0kxp9bsajpqeq5ytj0aj', 'openai', 'gpt-4.1-mini', 400000, 1600000, 100000, 400000, '2026-11-01T00:00:00Z', 'https://developers.openai.com/api/docs/pricing'),
  ('prc_01m7yn0kxpgankartem4aqcqxp', 'openai', 'gpt-4.1-nano', 100000, 400000, 25000, 100000, '2026-11-01T00:00:00Z', 'https://developers.openai.com/api/docs/pricing'),
  ('prc_01m7yn0kxpjyjmkks7rbcs37hz', 'openai', 'gpt-4o', 2500000, 10000000, 1250000, 2500000, '2026-11-01T00:00:00Z', 'https://developers.openai.com/api/docs/pricing'),
  ('prc_01m7yn0kxp54yjvxhwy18hc9p5', 'openai', 'gpt-4o-mini', 150000, 600000, 75000, 150000, '2026-11-01T00:00:00Z', 'https://developers.openai.com/api/docs/pricing'),
  ('prc_01m7yn0kxpjn6vrgfy7qe3fwyw', 'scripted', 'scripted-small', 1000000, 5000000, 100000, 1250000, '2026-01-01T00:00:00Z', 'offline demo provider: small prices so demos show spend'),
  ('prc_01m7yn0kxp0t77hywmxxd0zyfx', 'scripted', 'scripted-large', 5000000, 25000000, 500000, 6250000, '2026-01-01T00:00:00Z', 'offline demo provider: small prices so demos show spend'),
  ('prc_01m7yn0kxppfwq25ybtwwkrwv1', 'scripted', '*', 1000000, 5000000, 100000, 1250000, '2026-01-01T00:00:00Z', 'offline demo provider: any other scripted model, at scripted-small''s price');
--> statement-breakpoint
-- Agents applied before budgets existed: their descriptors' spec.budgets become their
-- budgets, as an apply would make them (packages/core/src/costs/budgets.ts).
INSERT INTO "budgets" ("tenant_id", "id", "scope", "agent_id", "metric", "period", "limit_value", "on_exhausted", "source")
SELECT a.tenant_id, 'bud_' || substr(md5(a.tenant_id || a.id || m.key), 1, 26), 'agent', a.id, m.metric, m.period,
       CASE WHEN m.metric = 'usd' THEN round((a.descriptor #>> ARRAY['spec', 'budgets', m.key])::numeric * 1000000)::bigint
            ELSE (a.descriptor #>> ARRAY['spec', 'budgets', m.key])::bigint END,
       m.on_exhausted, 'descriptor'
FROM "agents" a
CROSS JOIN (VALUES ('calls_per_hour', 'calls', 'hour', 'refuse'), ('usd_per_invocation', 'usd', 'invocation', 'refuse'),
                   ('usd_per_day', 'usd', 'day', 'pause_agent'), ('usd_per_month', 'usd', 'month', 'pause_agent')) AS m(key, metric, period, on_exhausted)
WHERE a.status <> 'retired' AND a.descriptor #> ARRAY['spec', 'budgets', m.key] IS NOT NULL;
