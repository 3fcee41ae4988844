-- The archive's full-text index was never used: an archive search runs in the agent's
-- tenant transaction, under row-level security, where Postgres takes only leakproof
-- operators as index conditions, and tsvector @@ tsquery is not one. The search reads the
-- agent's archive by memory_items_agent_idx and matches each item's stored `search`
-- vector (repositories/memory.ts, searchArchiveSql); the GIN index only cost an entry for
-- every archived item, one for every finished task.
DROP INDEX "memory_items_search_idx";
