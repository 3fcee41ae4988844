-- A task's wake choice, for big fleets (repositories/tasks.ts, agentsToWake): the covering
-- agents are found by their globs' literal heads (everything before a glob's first `*` or
-- `?`), with the tenant's id in front: an agent one of whose heads is a prefix of the
-- tenant's id and the domain may cover the task (a GIN index holds the heads, 0018); the
-- glob is then matched as everywhere. Without it, finding the 8 agents of 10,000 that
-- cover a domain read every agent's globs. With more than `k` covering agents, `k` of them
-- are taken in the order of hashtext(id) from the point hashtext(seed), wrapping around
-- (agents_wake_order_idx, 0016).
--
-- bosun_glob_heads is costed as what it is (COST 1000), so that the GIN index is taken at
-- any size: costed like an operator, the planner scanned a small tenant's few rows and
-- computed every agent's heads row by row (~0.47 ms a create against ~0.17 ms before). The
-- domain's prefixes are computed once per call.
--
-- The lookup is SECURITY DEFINER: under row-level security Postgres uses only leakproof
-- operators as index conditions, and neither the heads' overlap (&&) nor hashtext is, so in
-- a tenant's transaction both indexes went unused. It returns agent ids of one tenant only,
-- the tenant of the calling transaction when it has one.
CREATE OR REPLACE FUNCTION bosun_glob_heads(tenant text, descriptor jsonb) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE COST 1000 AS $$
  SELECT coalesce(array_agg(tenant || split_part(split_part(g, '*', 1), '?', 1)), '{}')
  FROM jsonb_array_elements_text(
    CASE WHEN jsonb_typeof(descriptor -> 'spec' -> 'domains') = 'array' THEN descriptor -> 'spec' -> 'domains' ELSE '[]'::jsonb END) AS g
$$;--> statement-breakpoint
CREATE OR REPLACE FUNCTION bosun_domain_prefixes(tenant text, domain text) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT array_agg(tenant || left(domain, n)) FROM generate_series(0, length(domain)) AS n
$$;--> statement-breakpoint
-- Whether a domain glob covers a domain: the one text of the rule, which every statement
-- of the application uses (repositories/tasks.ts, globCovers; Postgres inlines it). The
-- glob's literal head is compared first, then the glob as an anchored regular expression.
CREATE OR REPLACE FUNCTION bosun_glob_covers(pattern text, domain text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN starts_with(domain, split_part(split_part(pattern, '*', 1), '?', 1))
    THEN domain ~ ('^' || replace(replace(replace(regexp_replace(pattern, '([]\\[(){}.+*?^$|])', '\\\1', 'g'), '\*\*', '.*'), '\*', '[^/]*'), '\?', '[^/]') || '$')
    ELSE false END
$$;--> statement-breakpoint
CREATE OR REPLACE FUNCTION bosun_wake_candidates(p_tenant text, p_domain text, p_reviewer text, p_seed bigint, p_k integer)
RETURNS SETOF text LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  few text[];
  prefixes text[] := bosun_domain_prefixes(p_tenant, p_domain);
BEGIN
  IF coalesce(current_setting('bosun.tenant_id', true), '') NOT IN ('', p_tenant) THEN
    RETURN;
  END IF;
  SELECT array_agg(x.id) INTO few FROM (
    SELECT a.id FROM agents a
    WHERE a.tenant_id = p_tenant AND a.status = 'active'
      AND bosun_glob_heads(a.tenant_id, a.descriptor) && prefixes
      AND a.id IS DISTINCT FROM p_reviewer
      AND EXISTS (SELECT 1 FROM jsonb_array_elements_text(COALESCE(a.descriptor -> 'spec' -> 'domains', '[]'::jsonb)) AS g(pattern) WHERE bosun_glob_covers(g.pattern, p_domain))
    LIMIT p_k + 1) x;
  IF coalesce(cardinality(few), 0) <= p_k THEN
    RETURN QUERY SELECT unnest(few);
    RETURN;
  END IF;
  RETURN QUERY
    SELECT w.id FROM (
      (SELECT a.id FROM agents a
       WHERE a.tenant_id = p_tenant AND a.status = 'active' AND hashtext(a.id) >= hashtext(p_seed::text) AND a.id IS DISTINCT FROM p_reviewer
         AND EXISTS (SELECT 1 FROM jsonb_array_elements_text(COALESCE(a.descriptor -> 'spec' -> 'domains', '[]'::jsonb)) AS g(pattern) WHERE bosun_glob_covers(g.pattern, p_domain))
       ORDER BY hashtext(a.id) LIMIT p_k)
      UNION ALL
      (SELECT a.id FROM agents a
       WHERE a.tenant_id = p_tenant AND a.status = 'active' AND hashtext(a.id) < hashtext(p_seed::text) AND a.id IS DISTINCT FROM p_reviewer
         AND EXISTS (SELECT 1 FROM jsonb_array_elements_text(COALESCE(a.descriptor -> 'spec' -> 'domains', '[]'::jsonb)) AS g(pattern) WHERE bosun_glob_covers(g.pattern, p_domain))
       ORDER BY hashtext(a.id) LIMIT p_k)) w
    LIMIT p_k;
END
$$;--> statement-breakpoint
REVOKE ALL ON FUNCTION bosun_wake_candidates(text, text, text, bigint, integer) FROM PUBLIC;--> statement-breakpoint
GRANT EXECUTE ON FUNCTION bosun_wake_candidates(text, text, text, bigint, integer) TO bosun_app;
