-- sessrev 1.1 -> 1.2: validate_session at cache speed.
\echo Use "ALTER EXTENSION sessrev UPDATE TO '1.2'" to load this file. \quit

--------------------------------------------------------------------------------
-- validate_session in C++: the session cache when preloaded, one indexed read
-- otherwise; touches queued for the worker, never holding the row in the
-- caller's transaction
--------------------------------------------------------------------------------

CREATE FUNCTION sessrev.touch_session(session_id uuid, at timestamptz, threshold timestamptz)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- Never waits: while another transaction holds the row (a revocation in
    -- progress) or the table (revoke_all_sessions), or in a read-only
    -- transaction, the touch is skipped and a later request makes it.
    LOCK TABLE sessrev.sessions IN ROW EXCLUSIVE MODE NOWAIT;
    PERFORM FROM sessrev.sessions s WHERE s.id = touch_session.session_id FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    UPDATE sessrev.sessions s SET last_active_at = touch_session.at
     WHERE s.id = touch_session.session_id AND NOT s.revoked
       AND s.last_active_at <= touch_session.threshold;
    IF FOUND THEN
        RETURN true;
    END IF;
    -- Revoked by a transaction that committed meanwhile: no longer valid.
    RETURN CASE WHEN EXISTS (SELECT FROM sessrev.sessions s
                              WHERE s.id = touch_session.session_id AND NOT s.revoked)
                THEN false END;
EXCEPTION WHEN lock_not_available OR serialization_failure OR read_only_sql_transaction THEN
    RETURN false;
END
$$;
COMMENT ON FUNCTION sessrev.touch_session(uuid, timestamptz, timestamptz) IS
    'Internal: validate_session''s touch where no worker takes it (true: written, false: skipped, NULL: revoked meanwhile). Never grant it.';

CREATE FUNCTION sessrev.validate_retired_token(token_hash bytea) RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_retired sessrev.retired_tokens%ROWTYPE;
BEGIN
    SELECT * INTO v_retired FROM sessrev.retired_tokens r WHERE r.token_hash = validate_retired_token.token_hash;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    -- A token replaced by rotate_token still serves requests already in
    -- flight; presented later, it was stolen: the whole session goes.
    IF now() - v_retired.retired_at > current_setting('sessrev.reuse_interval')::interval THEN
        PERFORM sessrev.revoke_session(v_retired.session_id, 'Token reuse detected', 'sessrev');
        INSERT INTO sessrev.session_audit_log (session_id, user_id, action, actor, details)
        SELECT s.id, s.user_id, 'TOKEN_REUSE', 'sessrev',
               jsonb_build_object('retired_at', v_retired.retired_at)
          FROM sessrev.sessions s WHERE s.id = v_retired.session_id;
        RETURN NULL;
    END IF;
    RETURN v_retired.session_id;
END
$$;
COMMENT ON FUNCTION sessrev.validate_retired_token(bytea) IS
    'Internal: the session a rotated-out token still stands for within sessrev.reuse_interval; after it, revokes the session (token reuse). Never grant it.';

CREATE FUNCTION sessrev.warm_session_cache(token text) RETURNS void
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'warm_session_cache';
COMMENT ON FUNCTION sessrev.warm_session_cache(text) IS
    'Internal: caches the session of a token this transaction created once it commits (create_session, rotate_token). Never grant it.';

CREATE OR REPLACE FUNCTION sessrev.validate_session(token text)
RETURNS TABLE (session_id uuid, user_id text, expires_at timestamptz,
               last_active_at timestamptz, metadata jsonb)
    LANGUAGE c VOLATILE PARALLEL UNSAFE ROWS 1
    AS 'MODULE_PATHNAME', 'validate_session';
COMMENT ON FUNCTION sessrev.validate_session(text) IS
    'One row for the live session of this token, none otherwise; makes it the transaction''s current session. Touches last_active_at at most once per sessrev.touch_interval, without waiting and outside the caller''s transaction when the worker serves this database. A rotated-out token validates within sessrev.reuse_interval; after it, it revokes the session (TOKEN_REUSE).';

CREATE FUNCTION sessrev.session_cache_stats()
RETURNS TABLE (enabled boolean, capacity bigint, entries bigint, hits bigint, misses bigint,
               evictions bigint, too_large bigint)
    LANGUAGE c VOLATILE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'session_cache_stats';
COMMENT ON FUNCTION sessrev.session_cache_stats() IS
    'The validate_session cache''s state: capacity and entries in sessions, hits, misses, evictions, and sessions too large to cache.';

--------------------------------------------------------------------------------
-- create_session and rotate_token keep the cache warm for the new token
--------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION sessrev.create_session(
    user_id     text,
    ttl         interval DEFAULT NULL,
    ip_address  inet     DEFAULT NULL,
    user_agent  text     DEFAULT NULL,
    device_info text     DEFAULT NULL,
    metadata    jsonb    DEFAULT '{}')
RETURNS TABLE (session_id uuid, token text, expires_at timestamptz)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    -- A fresh token on every call: a session id is never chosen by the client.
    v_token   text := sessrev.generate_token(32);
    v_ttl     interval := coalesce(create_session.ttl,
                                   current_setting('sessrev.session_ttl')::interval);
    v_max_ttl interval := current_setting('sessrev.max_ttl')::interval;
    v_limit   integer := current_setting('sessrev.max_sessions_per_user')::integer;
    v_device  text;
    v_id      uuid;
    v_expires timestamptz;
BEGIN
    IF create_session.user_id IS NULL THEN
        RAISE EXCEPTION 'user_id must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF create_session.user_id = '' THEN
        RAISE EXCEPTION 'user_id must not be empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF octet_length(create_session.user_id) > 256 THEN
        RAISE EXCEPTION 'user_id is longer than 256 bytes'
            USING ERRCODE = 'string_data_right_truncation';
    END IF;
    -- Compared as intervals first: now() + a huge ttl would overflow (22008).
    IF v_ttl <= interval '0' THEN
        RAISE EXCEPTION 'ttl must be positive, got %', v_ttl
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_ttl > v_max_ttl OR now() + v_ttl > now() + v_max_ttl THEN
        RAISE EXCEPTION 'ttl % is longer than sessrev.max_ttl (%)', v_ttl, v_max_ttl
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF now() + v_ttl <= now() THEN
        RAISE EXCEPTION 'ttl must be positive, got %', v_ttl
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF octet_length(create_session.user_agent) > 1024 THEN
        RAISE EXCEPTION 'user_agent is longer than 1024 bytes'
            USING ERRCODE = 'string_data_right_truncation';
    END IF;
    IF octet_length(create_session.device_info) > 256 THEN
        RAISE EXCEPTION 'device_info is longer than 256 bytes'
            USING ERRCODE = 'string_data_right_truncation';
    END IF;
    IF create_session.metadata IS NOT NULL AND jsonb_typeof(create_session.metadata) <> 'object' THEN
        RAISE EXCEPTION 'metadata must be a JSON object, got %', jsonb_typeof(create_session.metadata)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF octet_length(create_session.metadata::text) > 8192 THEN
        RAISE EXCEPTION 'metadata is larger than 8192 bytes'
            USING ERRCODE = 'program_limit_exceeded';
    END IF;

    IF v_limit > 0 THEN
        -- Concurrent logins of one user count against the limit one at a time,
        -- under a lock that no role can hold to stop them (unlike 1.0's
        -- advisory lock).
        PERFORM sessrev.lock_user_sessions(create_session.user_id);
    END IF;
    v_device := coalesce(create_session.device_info,
                         sessrev.device_from_user_agent(create_session.user_agent));
    INSERT INTO sessrev.sessions AS s
           (user_id, token_hash, device_info, ip_address, user_agent, metadata, expires_at)
    VALUES (create_session.user_id, sessrev.hash_token(v_token), v_device,
            create_session.ip_address, create_session.user_agent,
            coalesce(create_session.metadata, '{}'), now() + v_ttl)
    RETURNING s.id, s.expires_at INTO v_id, v_expires;

    INSERT INTO sessrev.session_audit_log
           (session_id, user_id, action, actor, ip_address, user_agent, details)
    VALUES (v_id, create_session.user_id, 'SESSION_CREATED', create_session.user_id,
            create_session.ip_address, create_session.user_agent,
            jsonb_build_object('device_info', v_device, 'expires_at', v_expires));

    IF v_limit > 0 THEN
        -- Revoked one by one in id order, the lock order of every revocation.
        PERFORM sessrev.revoke_session(e.id, 'Session limit', 'sessrev')
           FROM (SELECT s.id FROM sessrev.sessions s
                  WHERE s.user_id = create_session.user_id
                    AND sessrev.session_is_live(s.revoked, s.expires_at, s.last_active_at)
                  ORDER BY s.id = v_id DESC, s.last_active_at DESC, s.created_at DESC
                 OFFSET v_limit) e
          ORDER BY e.id;
    END IF;

    -- The first request after login is a cache hit (filled at COMMIT).
    PERFORM sessrev.warm_session_cache(v_token);
    RETURN QUERY SELECT v_id, v_token, v_expires;
END
$$;

CREATE OR REPLACE FUNCTION sessrev.rotate_session_token(old_token text)
RETURNS TABLE (new_token text, expires_at timestamptz)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_new     text := sessrev.generate_token(32);
    v_old     bytea := sessrev.hash_token(rotate_session_token.old_token);
    v_id      uuid;
    v_user    text;
    v_expires timestamptz;
BEGIN
    UPDATE sessrev.sessions s
       SET token_hash = sessrev.hash_token(v_new), last_active_at = now()
     WHERE s.token_hash = v_old
       AND sessrev.session_is_live(s.revoked, s.expires_at, s.last_active_at)
    RETURNING s.id, s.user_id, s.expires_at INTO v_id, v_user, v_expires;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    INSERT INTO sessrev.retired_tokens (token_hash, session_id, expires_at)
    VALUES (v_old, v_id, v_expires);
    INSERT INTO sessrev.session_audit_log (session_id, user_id, action, actor)
    VALUES (v_id, v_user, 'TOKEN_ROTATED', v_user);
    PERFORM sessrev.remember_current_session(v_id, v_user);
    PERFORM sessrev.warm_session_cache(v_new);
    RETURN QUERY SELECT v_new, v_expires;
END
$$;

--------------------------------------------------------------------------------
-- The auditor also reads the session cache's statistics
--------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION sessrev.grant_auditor(role regrole) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA sessrev TO %s', role);
    EXECUTE format('GRANT SELECT ON sessrev.session_audit_log, sessrev.active_sessions TO %s', role);
    EXECUTE format('GRANT EXECUTE ON FUNCTION sessrev.session_is_live(boolean, timestamptz, timestamptz), '
                   'sessrev.cache_stats(), sessrev.session_cache_stats(), sessrev.worker_status() TO %s', role);
END
$$;

--------------------------------------------------------------------------------
-- Privileges: nothing for PUBLIC
--------------------------------------------------------------------------------

REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA sessrev FROM PUBLIC;
