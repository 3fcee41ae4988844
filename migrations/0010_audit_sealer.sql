CREATE SEQUENCE "public"."audit_events_pos_seq" INCREMENT BY 1024 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1;--> statement-breakpoint
ALTER TABLE "audit_events" ALTER COLUMN "seq" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "audit_events" ALTER COLUMN "prev_hash" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "audit_events" ALTER COLUMN "hash" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "audit_events" ADD COLUMN "pos" bigint DEFAULT nextval('audit_events_pos_seq') NOT NULL;--> statement-breakpoint
CREATE INDEX "audit_events_unsealed_idx" ON "audit_events" USING btree ("tenant_id","pos") WHERE seq IS NULL;--> statement-breakpoint
-- Events are inserted unsealed by the app role (the mutation's own transaction, no lock
-- shared by the tenant), and chained afterwards by the sealer, which runs as the owner
-- (packages/db/src/repositories/audit.ts). The app role needs the sequence behind `pos`.
GRANT USAGE ON SEQUENCE audit_events_pos_seq TO bosun_app;
--> statement-breakpoint
-- The app role has no UPDATE or DELETE on audit_events (0001). For every other role an
-- UPDATE may only seal: set seq, prev_hash and hash on a row that has none, nothing else.
-- A sealed row is never updated. (A superuser can still disable the trigger: the chain
-- and `GET /v1/audit/verify` are what catch that.)
CREATE OR REPLACE FUNCTION bosun_audit_events_seal_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.seq IS NOT NULL OR OLD.prev_hash IS NOT NULL OR OLD.hash IS NOT NULL THEN
    RAISE EXCEPTION 'audit event % is sealed and cannot be changed', OLD.id USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF NEW.seq IS NULL OR NEW.prev_hash IS NULL OR NEW.hash IS NULL THEN
    RAISE EXCEPTION 'audit event %: an update may only seal it (set seq, prev_hash and hash)', OLD.id USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF to_jsonb(NEW) - 'seq' - 'prev_hash' - 'hash' IS DISTINCT FROM to_jsonb(OLD) - 'seq' - 'prev_hash' - 'hash' THEN
    RAISE EXCEPTION 'audit event %: sealing changes only seq, prev_hash and hash', OLD.id USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NEW;
END
$$;
--> statement-breakpoint
CREATE TRIGGER audit_events_seal_only BEFORE UPDATE ON audit_events FOR EACH ROW EXECUTE FUNCTION bosun_audit_events_seal_only();
