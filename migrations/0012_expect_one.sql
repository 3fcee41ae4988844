-- A write sent with its transaction's COMMIT (commitWith) cannot be checked before the
-- COMMIT runs: a statement that must change exactly one row (a task's fenced completion)
-- ends with SELECT bosun_expect_one(count, message), which fails it, and so the whole
-- transaction, when it did not. SQLSTATE 40001 (serialization_failure): the caller's
-- view of the row was stale, as when a fenced write loses a race.
CREATE FUNCTION bosun_expect_one(n bigint, message text) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
  IF n IS DISTINCT FROM 1 THEN
    RAISE EXCEPTION '%', message USING ERRCODE = 'serialization_failure';
  END IF;
  RETURN n;
END
$$;
