-- sessrev 1.2 -> 1.3: touches from hot standbys; a cleanup that skips the cache's trigger.
\echo Use "ALTER EXTENSION sessrev UPDATE TO '1.3'" to load this file. \quit

--------------------------------------------------------------------------------
-- The cache's row trigger fires only for rows the cache may hold: a revoked
-- row, or one expired more than a day ago, has no live entry (the same test
-- as sessions_changed's own, with now() no later than its clock), so the
-- cleanup's deletes queue no trigger event at all
--------------------------------------------------------------------------------

DROP TRIGGER sessions_cache_invalidation ON sessrev.sessions;
-- ALWAYS: the cache must hear of changes even under session_replication_role = replica.
CREATE TRIGGER sessions_cache_invalidation
    AFTER UPDATE OR DELETE ON sessrev.sessions
    FOR EACH ROW
    WHEN (OLD.revoked IS NOT TRUE
          AND (OLD.expires_at IS NULL
               OR OLD.expires_at OPERATOR(pg_catalog.>=)
                  (pg_catalog.now() OPERATOR(pg_catalog.-) interval '1 day')))
    EXECUTE FUNCTION sessrev.sessions_changed();
ALTER TABLE sessrev.sessions ENABLE ALWAYS TRIGGER sessions_cache_invalidation;
COMMENT ON TRIGGER sessions_cache_invalidation ON sessrev.sessions IS
    'Keeps the is_revoked cache true to committed rows.';

--------------------------------------------------------------------------------
-- Touches made on a hot standby, sent by its worker (sessrev.primary_conninfo)
--------------------------------------------------------------------------------

CREATE FUNCTION sessrev.forward_touch(session_id uuid, at timestamptz, threshold timestamptz)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF forward_touch.session_id IS NULL OR forward_touch.at IS NULL OR forward_touch.threshold IS NULL THEN
        RAISE EXCEPTION 'sessrev.forward_touch: session_id, at and threshold must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    -- A standby's clock may run ahead: never past this server's now().
    RETURN sessrev.touch_session(forward_touch.session_id, LEAST(forward_touch.at, now()),
                                 LEAST(forward_touch.threshold, now())) IS TRUE;
END
$$;
COMMENT ON FUNCTION sessrev.forward_touch(uuid, timestamptz, timestamptz) IS
    'A touch made on a hot standby: moves last_active_at forward to at (never past now(), never on a revoked session, never waiting for a lock); true when written. For the role of a standby''s sessrev.primary_conninfo (grant_touch_forwarder).';

CREATE FUNCTION sessrev.grant_touch_forwarder(role regrole) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA sessrev TO %s', role);
    EXECUTE format('GRANT EXECUTE ON FUNCTION sessrev.forward_touch(uuid, timestamptz, timestamptz) TO %s', role);
END
$$;
COMMENT ON FUNCTION sessrev.grant_touch_forwarder(regrole) IS
    'Grants what the role of a standby''s sessrev.primary_conninfo needs: keeping sessions used on the standby active, nothing else.';

--------------------------------------------------------------------------------
-- Privileges: nothing for PUBLIC
--------------------------------------------------------------------------------

REVOKE EXECUTE ON FUNCTION sessrev.forward_touch(uuid, timestamptz, timestamptz),
                           sessrev.grant_touch_forwarder(regrole) FROM PUBLIC;
