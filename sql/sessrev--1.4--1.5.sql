-- sessrev 1.4 -> 1.5: revocation is final. Revoked, expired and idle-expired
-- are end states that no writer can leave; every revocation takes every row
-- not yet revoked; a forwarded touch only moves time forward on a live
-- session; the audit log says which role and which application user acted;
-- end users' rows per session are bounded; JWT issuers get an iat that a
-- cut-off of the same second does not refuse.
\echo Use "ALTER EXTENSION sessrev UPDATE TO '1.5'" to load this file. \quit

--------------------------------------------------------------------------------
-- Final states, enforced where every writer passes: the row's own trigger.
--------------------------------------------------------------------------------

CREATE FUNCTION sessrev.sessions_final_state() RETURNS trigger
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'sessions_final_state';
COMMENT ON FUNCTION sessrev.sessions_final_state() IS
    'BEFORE UPDATE trigger on sessrev.sessions: refuses (23514) any update that makes a row that is not live by sessrev.session_is_live live again.';

-- An ordinary (origin) trigger: changes applied by logical replication were
-- judged where they were made; judged again at apply time, with a later
-- now(), a touch made in time could look like a revival and stop the apply.
CREATE TRIGGER sessions_final_state BEFORE UPDATE ON sessrev.sessions
    FOR EACH ROW EXECUTE FUNCTION sessrev.sessions_final_state();

--------------------------------------------------------------------------------
-- Revocations that wait for no one. A revocation updates the rows it can lock
-- at once; a row another transaction holds (an end user's open or prepared
-- transaction) is revoked by a row here instead, an insert that waits for no
-- one, which every check reads beside the session's row; the worker folds it
-- into the row later. A user's JWT cut-off whose row is held is recorded here
-- too. The emergency logout is the global cut-off alone.
--------------------------------------------------------------------------------

CREATE TABLE sessrev.pending_revocations (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id uuid,
    user_id    text,
    not_before timestamptz,
    reason     text,
    actor      text,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pending_revocations_one_target CHECK (
        (session_id IS NOT NULL AND user_id IS NULL AND not_before IS NULL)
        OR (session_id IS NULL AND user_id IS NOT NULL AND not_before IS NOT NULL))
);
COMMENT ON TABLE sessrev.pending_revocations IS
    'Revocations recorded apart from rows another transaction held: a session (session_id) or a user''s JWT cut-off (user_id, not_before). Checks read them beside the rows; the worker folds them in. No unique key, so that recording one never waits.';
CREATE INDEX pending_revocations_session_idx ON sessrev.pending_revocations (session_id)
    WHERE session_id IS NOT NULL;
CREATE INDEX pending_revocations_user_idx ON sessrev.pending_revocations (user_id)
    WHERE user_id IS NOT NULL;
COMMENT ON INDEX sessrev.pending_revocations_pkey IS 'One row per recorded revocation.';
COMMENT ON INDEX sessrev.pending_revocations_session_idx IS 'What checks probe for a session.';
COMMENT ON INDEX sessrev.pending_revocations_user_idx IS 'What JWT checks probe for a user''s cut-off.';
SELECT pg_catalog.pg_extension_config_dump('sessrev.pending_revocations', '');
SELECT pg_catalog.pg_extension_config_dump('sessrev.pending_revocations_id_seq', '');

CREATE FUNCTION sessrev.pending_revocations_changed() RETURNS trigger
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'pending_revocations_changed';
COMMENT ON FUNCTION sessrev.pending_revocations_changed() IS
    'Cache trigger on sessrev.pending_revocations (AFTER INSERT OR UPDATE, per row): empties the cache at commit and adds a JWT cut-off''s user to the user filter before it.';
-- Per row, so that a revocation that recorded nothing apart changes nothing.
-- A deleted pending revocation needs no invalidation: the cache holds only
-- live sessions.
CREATE TRIGGER pending_revocations_cache AFTER INSERT OR UPDATE ON sessrev.pending_revocations
    FOR EACH ROW EXECUTE FUNCTION sessrev.pending_revocations_changed();
ALTER TABLE sessrev.pending_revocations ENABLE ALWAYS TRIGGER pending_revocations_cache;

-- PARALLEL RESTRICTED: it reads with a fresh snapshot, which a parallel
-- worker cannot take.
CREATE FUNCTION sessrev.session_revoked_apart(session_id uuid, created_at timestamptz) RETURNS boolean
    LANGUAGE c STABLE PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'session_revoked_apart';
COMMENT ON FUNCTION sessrev.session_revoked_apart(uuid, timestamptz) IS
    'The part of the rule for a live session that its row does not hold: true when the global cut-off (revoke_all_sessions) or a pending revocation revokes it. A session is live when session_is_live holds of its row and this is false.';

-- The view, and every listing over it, applies the whole rule.
CREATE OR REPLACE VIEW sessrev.active_sessions AS
SELECT id, user_id, device_info, ip_address, user_agent, metadata,
       created_at, last_active_at, expires_at
  FROM sessrev.sessions
 WHERE NOT revoked AND sessrev.session_is_live(revoked, expires_at, last_active_at)
   AND NOT sessrev.session_revoked_apart(id, created_at);

-- A user's JWT cut-off, recorded apart when another transaction holds the
-- user's row (NOWAIT), so that it never waits.
CREATE FUNCTION sessrev.record_user_token_cutoff(user_id text, cutoff timestamptz) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    -- A first cut-off of the user being inserted by an open transaction makes
    -- the INSERT wait: past this, it is recorded apart instead.
    SET lock_timeout = '10ms'
    AS $$
BEGIN
    BEGIN
        PERFORM FROM sessrev.user_token_cutoffs c
         WHERE c.user_id = record_user_token_cutoff.user_id FOR UPDATE NOWAIT;
        INSERT INTO sessrev.user_token_cutoffs AS c (user_id, not_before)
        VALUES (record_user_token_cutoff.user_id, record_user_token_cutoff.cutoff)
        ON CONFLICT ON CONSTRAINT user_token_cutoffs_pkey
        DO UPDATE SET not_before = greatest(c.not_before, excluded.not_before), updated_at = now();
    EXCEPTION WHEN lock_not_available THEN
        INSERT INTO sessrev.pending_revocations (user_id, not_before)
        VALUES (record_user_token_cutoff.user_id, record_user_token_cutoff.cutoff);
    END;
END
$$;
COMMENT ON FUNCTION sessrev.record_user_token_cutoff(text, timestamptz) IS
    'Internal: moves the user''s JWT cut-off forward, or records it in pending_revocations when another transaction holds the user''s row; never waits.';

-- Folds pending revocations into the rows, where no one holds them; run by
-- the worker, and by cleanup_expired_sessions.
CREATE FUNCTION sessrev.apply_pending_revocations() RETURNS integer
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    SET lock_timeout = '10ms'
    AS $$
DECLARE
    v_done integer := 0;
    v_rows integer;
    r      record;
BEGIN
    WITH p AS (
        SELECT DISTINCT ON (session_id) session_id, reason, actor
          FROM sessrev.pending_revocations
         WHERE session_id IS NOT NULL ORDER BY session_id, id),
    locked AS (
        SELECT s.id, p.reason, p.actor FROM sessrev.sessions s JOIN p ON s.id = p.session_id
         WHERE NOT s.revoked ORDER BY s.id FOR UPDATE OF s SKIP LOCKED)
    UPDATE sessrev.sessions s
       SET revoked = true, revoked_at = now(), revoked_reason = locked.reason,
           revoked_by = coalesce(locked.actor, 'sessrev')
      FROM locked WHERE s.id = locked.id;
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    v_done := v_rows;
    -- Done where the row now says revoked, or is gone.
    DELETE FROM sessrev.pending_revocations p
     WHERE p.session_id IS NOT NULL
       AND NOT EXISTS (SELECT FROM sessrev.sessions s WHERE s.id = p.session_id AND NOT s.revoked);
    FOR r IN SELECT p.id, p.user_id, p.not_before FROM sessrev.pending_revocations p
              WHERE p.user_id IS NOT NULL ORDER BY p.id LOOP
        BEGIN
            PERFORM FROM sessrev.user_token_cutoffs c WHERE c.user_id = r.user_id FOR UPDATE NOWAIT;
            INSERT INTO sessrev.user_token_cutoffs AS c (user_id, not_before)
            VALUES (r.user_id, r.not_before)
            ON CONFLICT ON CONSTRAINT user_token_cutoffs_pkey
            DO UPDATE SET not_before = greatest(c.not_before, excluded.not_before), updated_at = now();
            DELETE FROM sessrev.pending_revocations p WHERE p.id = r.id;
            v_done := v_done + 1;
        EXCEPTION WHEN lock_not_available THEN
            NULL;  -- still held: a later run folds it
        END;
    END LOOP;
    RETURN v_done;
END
$$;
COMMENT ON FUNCTION sessrev.apply_pending_revocations() IS
    'Internal: folds pending revocations into the session rows and JWT cut-offs that no one holds; returns how many. Run by the worker and by cleanup_expired_sessions.';

REVOKE EXECUTE ON FUNCTION sessrev.record_user_token_cutoff(text, timestamptz),
                           sessrev.apply_pending_revocations(),
                           sessrev.pending_revocations_changed() FROM PUBLIC;

-- arm_triggers, which ends a restore made with the triggers disabled, enables
-- the rule again too.
CREATE OR REPLACE FUNCTION sessrev.arm_triggers() RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    ALTER TABLE sessrev.sessions ENABLE ALWAYS TRIGGER sessions_cache_invalidation,
                                 ENABLE ALWAYS TRIGGER sessions_cache_flush,
                                 ENABLE TRIGGER sessions_final_state;
    ALTER TABLE sessrev.jwt_denylist ENABLE ALWAYS TRIGGER jwt_denylist_cache,
                                     ENABLE ALWAYS TRIGGER jwt_denylist_cache_truncate;
    ALTER TABLE sessrev.user_token_cutoffs ENABLE ALWAYS TRIGGER user_token_cutoffs_cache,
                                           ENABLE ALWAYS TRIGGER user_token_cutoffs_cache_truncate;
    ALTER TABLE sessrev.global_token_cutoff ENABLE ALWAYS TRIGGER global_token_cutoff_cache,
                                            ENABLE ALWAYS TRIGGER global_token_cutoff_cache_truncate;
    ALTER TABLE sessrev.pending_revocations ENABLE ALWAYS TRIGGER pending_revocations_cache;
END
$$;

-- The session limit counts only sessions live by the whole rule.
CREATE OR REPLACE FUNCTION sessrev.create_session(
    user_id     text,
    ttl         interval DEFAULT NULL,
    ip_address  inet     DEFAULT NULL,
    user_agent  text     DEFAULT NULL,
    device_info text     DEFAULT NULL,
    metadata    jsonb    DEFAULT '{}'
)
RETURNS TABLE (session_id uuid, token text, expires_at timestamptz)
    LANGUAGE plpgsql SECURITY DEFINER
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
                    AND NOT sessrev.session_revoked_apart(s.id, s.created_at)
                  ORDER BY s.id = v_id DESC, s.last_active_at DESC, s.created_at DESC
                 OFFSET v_limit) e
          ORDER BY e.id;
    END IF;

    -- The first request after login is a cache hit (filled at COMMIT).
    PERFORM sessrev.warm_session_cache(v_token);
    RETURN QUERY SELECT v_id, v_token, v_expires;
END
$$;

--------------------------------------------------------------------------------
-- Touches: only forward, only on a live row.
--------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION sessrev.touch_session(session_id uuid, at timestamptz, threshold timestamptz)
RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    -- Never waits: while another transaction holds the row (a revocation in
    -- progress) or the table, or in a read-only transaction, the touch is
    -- skipped and a later request makes it.
    LOCK TABLE sessrev.sessions IN ROW EXCLUSIVE MODE NOWAIT;
    PERFORM FROM sessrev.sessions s WHERE s.id = touch_session.session_id FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    UPDATE sessrev.sessions s SET last_active_at = touch_session.at
     WHERE s.id = touch_session.session_id
       AND sessrev.session_is_live(s.revoked, s.expires_at, s.last_active_at)
       AND NOT sessrev.session_revoked_apart(s.id, s.created_at)
       AND s.last_active_at <= touch_session.threshold
       AND s.last_active_at < touch_session.at;
    IF FOUND THEN
        RETURN true;
    END IF;
    -- Revoked, expired or idle meanwhile: no longer valid.
    RETURN CASE WHEN EXISTS (SELECT FROM sessrev.sessions s
                              WHERE s.id = touch_session.session_id
                                AND sessrev.session_is_live(s.revoked, s.expires_at, s.last_active_at)
                                AND NOT sessrev.session_revoked_apart(s.id, s.created_at))
                THEN false END;
EXCEPTION WHEN lock_not_available OR serialization_failure OR read_only_sql_transaction THEN
    RETURN false;
END
$$;

CREATE OR REPLACE FUNCTION sessrev.forward_touch(session_id uuid, at timestamptz, threshold timestamptz)
RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF forward_touch.session_id IS NULL OR forward_touch.at IS NULL OR forward_touch.threshold IS NULL THEN
        RAISE EXCEPTION 'sessrev.forward_touch: session_id, at and threshold must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT isfinite(forward_touch.at) OR NOT isfinite(forward_touch.threshold) THEN
        RAISE EXCEPTION 'sessrev.forward_touch: at and threshold must be finite'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF forward_touch.threshold > forward_touch.at THEN
        RAISE EXCEPTION 'sessrev.forward_touch: threshold must not be later than at'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- A standby's clock may run ahead: never past this server's now(). A
    -- session that is not live, or a time at or before last_active_at, is
    -- left as it is (false): touch_session moves only a live row, only forward.
    RETURN sessrev.touch_session(forward_touch.session_id, LEAST(forward_touch.at, now()),
                                 LEAST(forward_touch.threshold, now())) IS TRUE;
END
$$;
COMMENT ON FUNCTION sessrev.forward_touch(uuid, timestamptz, timestamptz) IS
    'A standby''s touch, sent by its worker as the touch forwarder: moves last_active_at of a live session forward to at (at most now()), unless it already passed threshold; false, changing nothing, for a session that is not live. Refuses non-finite times.';

--------------------------------------------------------------------------------
-- The audit log says who: the database role (session_user, always) beside the
-- application's actor.
--------------------------------------------------------------------------------

-- Rows written before 1.5 have no role recorded (NULL), not the upgrader's.
ALTER TABLE sessrev.session_audit_log ADD COLUMN db_role text;
ALTER TABLE sessrev.session_audit_log ALTER COLUMN db_role SET DEFAULT session_user;
COMMENT ON COLUMN sessrev.session_audit_log.db_role IS
    'The database role that made the change (session_user). NULL on rows written before 1.5.';
COMMENT ON COLUMN sessrev.session_audit_log.actor IS
    'The application''s actor: the user of the current session on end-user paths, revoked_by where a backend passed one, else the current session''s user if any.';

CREATE FUNCTION sessrev.outer_role_may_execute(function regprocedure) RETURNS boolean
    LANGUAGE c STABLE
    AS 'MODULE_PATHNAME', 'outer_role_may_execute';
COMMENT ON FUNCTION sessrev.outer_role_may_execute(regprocedure) IS
    'Whether the role the client runs as (its SET ROLE role, which SECURITY DEFINER functions do not change) may execute the function: what sessrev''s own functions ask of their caller.';

-- An end user logs itself out (the actor is the current session's user, else
-- the token's own); only a role that may revoke any session (grant_backend)
-- may name the actor.
CREATE OR REPLACE FUNCTION sessrev.revoke_token(token text, reason text DEFAULT 'User logout',
                                                revoked_by text DEFAULT NULL)
RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    v_id   uuid;
    v_user text;
BEGIN
    IF revoke_token.revoked_by IS NOT NULL AND NOT sessrev.outer_role_may_execute(
            'sessrev.revoke_session(uuid, text, text)'::regprocedure) THEN
        RAISE EXCEPTION 'revoked_by may be given only by a role that may revoke any session (sessrev.grant_backend)'
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Leave revoked_by out: the audit log then records the session''s own user.';
    END IF;
    SELECT s.id, s.user_id INTO v_id, v_user FROM sessrev.sessions s
     WHERE s.token_hash = sessrev.hash_token(revoke_token.token);
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    RETURN coalesce(sessrev.revoke_session(v_id, revoke_token.reason,
                                           coalesce(revoke_token.revoked_by, sessrev.current_user_id(), v_user)),
                    false);
END
$$;
COMMENT ON FUNCTION sessrev.revoke_token(text, text, text) IS
    'Revokes the session of a token (logout). revoked_by, the audit actor, may be given only by a role granted grant_backend; without it the actor is the current session''s user, else the token''s own.';

CREATE OR REPLACE FUNCTION sessrev.extend_session(session_id uuid, by interval) RETURNS timestamptz
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    v_expires timestamptz;
    v_user    text;
BEGIN
    IF extend_session.session_id IS NULL OR extend_session.by IS NULL THEN
        RAISE EXCEPTION 'session_id and by must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF extend_session.by <= interval '0' THEN
        RAISE EXCEPTION 'by must be positive' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF sessrev.is_revoked(extend_session.session_id) THEN
        RETURN NULL;
    END IF;
    UPDATE sessrev.sessions s
       SET expires_at = least(s.expires_at + least(extend_session.by,
                                                   current_setting('sessrev.max_ttl')::interval),
                              s.created_at + current_setting('sessrev.max_ttl')::interval)
     WHERE s.id = extend_session.session_id
       AND sessrev.session_is_live(s.revoked, s.expires_at, s.last_active_at)
    RETURNING s.expires_at, s.user_id INTO v_expires, v_user;
    IF FOUND THEN
        INSERT INTO sessrev.session_audit_log (session_id, user_id, action, actor, details)
        VALUES (extend_session.session_id, v_user, 'SESSION_EXTENDED', sessrev.current_user_id(),
                jsonb_build_object('by', extend_session.by, 'expires_at', v_expires));
    END IF;
    RETURN v_expires;
END
$$;

CREATE OR REPLACE FUNCTION sessrev.revoke_user_tokens_before(user_id text, cutoff timestamptz DEFAULT now())
RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF revoke_user_tokens_before.user_id IS NULL OR revoke_user_tokens_before.cutoff IS NULL THEN
        RAISE EXCEPTION 'user_id and cutoff must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF revoke_user_tokens_before.user_id = '' THEN
        RAISE EXCEPTION 'user_id must not be empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF octet_length(revoke_user_tokens_before.user_id) > 256 THEN
        RAISE EXCEPTION 'user_id is longer than 256 bytes' USING ERRCODE = 'string_data_right_truncation';
    END IF;
    IF revoke_user_tokens_before.cutoff > now() THEN
        RAISE EXCEPTION 'cutoff must not be in the future' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- A cut-off only moves forward: an earlier one must not revive revoked
    -- tokens. Never waits for a transaction holding the user's row.
    PERFORM sessrev.record_user_token_cutoff(revoke_user_tokens_before.user_id,
                                             revoke_user_tokens_before.cutoff);
    INSERT INTO sessrev.session_audit_log (user_id, action, actor, details)
    VALUES (revoke_user_tokens_before.user_id, 'USER_TOKENS_CUTOFF', sessrev.current_user_id(),
            jsonb_build_object('not_before', revoke_user_tokens_before.cutoff));
END
$$;

CREATE OR REPLACE FUNCTION sessrev.revoke_jwt(
    jti        text,
    expires_at timestamptz,
    user_id    text DEFAULT NULL,
    reason     text DEFAULT 'Token revoked',
    revoked_by text DEFAULT NULL
) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    v_added boolean;
    v_actor text := coalesce(revoke_jwt.revoked_by, sessrev.current_user_id());
BEGIN
    IF revoke_jwt.jti IS NULL OR revoke_jwt.expires_at IS NULL THEN
        RAISE EXCEPTION 'jti and expires_at must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF revoke_jwt.jti = '' THEN
        RAISE EXCEPTION 'jti must not be empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF octet_length(revoke_jwt.jti) > 256 OR octet_length(revoke_jwt.user_id) > 256
       OR octet_length(revoke_jwt.revoked_by) > 256 THEN
        RAISE EXCEPTION 'jti, user_id and revoked_by must not be longer than 256 bytes'
            USING ERRCODE = 'string_data_right_truncation';
    END IF;
    IF octet_length(revoke_jwt.reason) > 1024 THEN
        RAISE EXCEPTION 'reason is longer than 1024 bytes' USING ERRCODE = 'string_data_right_truncation';
    END IF;
    IF revoke_jwt.expires_at <= now() THEN
        RAISE EXCEPTION 'expires_at is in the past: the token is unusable already'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Cleanup removes a row after expires_at: an unbounded one would stay forever.
    IF revoke_jwt.expires_at > now() + current_setting('sessrev.max_ttl')::interval THEN
        RAISE EXCEPTION 'expires_at is further away than sessrev.max_ttl (%)',
                        current_setting('sessrev.max_ttl')::interval
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- The denylist row always names someone: the actor, else the database role.
    INSERT INTO sessrev.jwt_denylist (jti, user_id, expires_at, reason, revoked_by)
    VALUES (revoke_jwt.jti, revoke_jwt.user_id, revoke_jwt.expires_at, revoke_jwt.reason,
            coalesce(v_actor, session_user))
    ON CONFLICT ON CONSTRAINT jwt_denylist_pkey DO NOTHING
    RETURNING true INTO v_added;
    IF v_added THEN
        INSERT INTO sessrev.session_audit_log (user_id, action, actor, details)
        VALUES (revoke_jwt.user_id, 'JWT_REVOKED', v_actor,
                jsonb_build_object('jti', revoke_jwt.jti, 'reason', revoke_jwt.reason,
                                   'expires_at', revoke_jwt.expires_at));
    END IF;
    RETURN coalesce(v_added, false);
END
$$;

--------------------------------------------------------------------------------
-- Bounded rows per session: rotations per minute, retired tokens kept.
--------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION sessrev.rotate_session_token(old_token text)
RETURNS TABLE (new_token text, expires_at timestamptz)
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
#variable_conflict use_column
DECLARE
    v_new     text := sessrev.generate_token(32);
    v_old     bytea := sessrev.hash_token(rotate_session_token.old_token);
    v_limit   integer := current_setting('sessrev.max_rotations_per_minute')::integer;
    v_keep    integer := current_setting('sessrev.max_retired_tokens')::integer;
    v_id      uuid;
    v_user    text;
    v_expires timestamptz;
BEGIN
    -- Counted before the row is locked, a refused rotation holds nothing; by
    -- the audit rows, which max_retired_tokens does not prune.
    SELECT s.id, s.user_id INTO v_id, v_user FROM sessrev.sessions s WHERE s.token_hash = v_old;
    IF FOUND AND (SELECT count(*) FROM sessrev.session_audit_log a
                   WHERE a.user_id = v_user AND a.created_at > now() - interval '1 minute'
                     AND a.session_id = v_id AND a.action = 'TOKEN_ROTATED') >= v_limit THEN
        RAISE EXCEPTION 'session rotated its token % times in the last minute', v_limit
            USING ERRCODE = 'program_limit_exceeded',
                  HINT = 'sessrev.max_rotations_per_minute bounds rotations of one session.';
    END IF;
    UPDATE sessrev.sessions s
       SET token_hash = sessrev.hash_token(v_new), last_active_at = now()
     WHERE s.token_hash = v_old
       AND sessrev.session_is_live(s.revoked, s.expires_at, s.last_active_at)
       AND NOT sessrev.session_revoked_apart(s.id, s.created_at)
    RETURNING s.id, s.user_id, s.expires_at INTO v_id, v_user, v_expires;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    INSERT INTO sessrev.retired_tokens (token_hash, session_id, expires_at)
    VALUES (v_old, v_id, v_expires);
    -- The oldest retired tokens past the bound are forgotten: presented
    -- again, such a token is unknown, which no longer validates either.
    DELETE FROM sessrev.retired_tokens r
     WHERE r.session_id = v_id
       AND r.token_hash IN (SELECT o.token_hash FROM sessrev.retired_tokens o
                             WHERE o.session_id = v_id
                             ORDER BY o.retired_at DESC, o.token_hash OFFSET v_keep);
    INSERT INTO sessrev.session_audit_log (session_id, user_id, action, actor)
    VALUES (v_id, v_user, 'TOKEN_ROTATED', v_user);
    PERFORM sessrev.remember_current_session(v_id, v_user);
    PERFORM sessrev.warm_session_cache(v_new);
    RETURN QUERY SELECT v_new, v_expires;
END
$$;

--------------------------------------------------------------------------------
-- Reuse detection that its caller cannot undo: validate_session reports a
-- rotated-out token presented after reuse_interval to the worker, which calls
-- validate_retired_token in a transaction of its own (a standby's worker
-- calls report_token_reuse on the primary, as the touch forwarder). Only
-- where no worker serves the database does the caller's transaction revoke.
--------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION sessrev.validate_retired_token(token_hash bytea) RETURNS uuid
    LANGUAGE plpgsql SECURITY DEFINER
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
    -- flight; presented later, it was stolen: the whole session goes. One
    -- TOKEN_REUSE row, by the presentation that revoked it.
    IF now() - v_retired.retired_at > current_setting('sessrev.reuse_interval')::interval THEN
        IF sessrev.revoke_session(v_retired.session_id, 'Token reuse detected', 'sessrev') THEN
            INSERT INTO sessrev.session_audit_log (session_id, user_id, action, actor, details)
            SELECT s.id, s.user_id, 'TOKEN_REUSE', 'sessrev',
                   jsonb_build_object('retired_at', v_retired.retired_at)
              FROM sessrev.sessions s WHERE s.id = v_retired.session_id;
        END IF;
        RETURN NULL;
    END IF;
    RETURN v_retired.session_id;
END
$$;

CREATE FUNCTION sessrev.report_token_reuse(token_hash bytea) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF report_token_reuse.token_hash IS NULL OR octet_length(report_token_reuse.token_hash) <> 32 THEN
        RAISE EXCEPTION 'sessrev.report_token_reuse: token_hash must be a SHA-256 (32 bytes)'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Within reuse_interval the token is still in flight: nothing happens.
    RETURN EXISTS (SELECT FROM sessrev.retired_tokens r
                    WHERE r.token_hash = report_token_reuse.token_hash
                      AND now() - r.retired_at > current_setting('sessrev.reuse_interval')::interval)
           AND sessrev.validate_retired_token(report_token_reuse.token_hash) IS NULL;
END
$$;
COMMENT ON FUNCTION sessrev.report_token_reuse(bytea) IS
    'A standby''s report, sent by its worker as the touch forwarder: the rotated-out token with this hash was presented after sessrev.reuse_interval, so its session is revoked (TOKEN_REUSE); true then. Does nothing (false) within the interval, or for an unknown hash.';

CREATE OR REPLACE FUNCTION sessrev.grant_touch_forwarder(role regrole) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA sessrev TO %s', role);
    EXECUTE format('GRANT EXECUTE ON FUNCTION sessrev.forward_touch(uuid, timestamptz, timestamptz), '
                   'sessrev.report_token_reuse(bytea) TO %s', role);
END
$$;

REVOKE EXECUTE ON FUNCTION sessrev.report_token_reuse(bytea) FROM PUBLIC;

-- Forwarders granted before 1.5 report reuse too.
DO $$
DECLARE
    v_role regrole;
BEGIN
    FOR v_role IN
        SELECT DISTINCT a.grantee::regrole
          FROM pg_catalog.pg_proc p, pg_catalog.aclexplode(p.proacl) a
         WHERE p.oid OPERATOR(pg_catalog.=)
               'sessrev.forward_touch(uuid, timestamptz, timestamptz)'::pg_catalog.regprocedure
           AND a.privilege_type OPERATOR(pg_catalog.=) 'EXECUTE'
           AND a.grantee OPERATOR(pg_catalog.<>) p.proowner
           AND a.grantee OPERATOR(pg_catalog.<>) 0
    LOOP
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION sessrev.report_token_reuse(bytea) TO %s', v_role);
    END LOOP;
END
$$;

-- Signing out other devices moves the user's JWT cut-off, which is audited:
-- bounded per user and minute, counted by those audit rows.
CREATE OR REPLACE FUNCTION sessrev.revoke_my_other_sessions() RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    v_user  text := sessrev.current_user_id();
    v_limit integer := current_setting('sessrev.max_self_revocations_per_minute')::integer;
BEGIN
    IF v_user IS NULL THEN
        RAISE EXCEPTION 'no current session: call sessrev.validate_session first'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF (SELECT count(*) FROM sessrev.session_audit_log a
         WHERE a.user_id = v_user AND a.created_at > now() - interval '1 minute'
           AND a.action = 'USER_TOKENS_CUTOFF' AND a.actor = v_user) >= v_limit THEN
        RAISE EXCEPTION 'signed out other devices % times in the last minute', v_limit
            USING ERRCODE = 'program_limit_exceeded',
                  HINT = 'sessrev.max_self_revocations_per_minute bounds them.';
    END IF;
    RETURN sessrev.revoke_user_sessions(v_user, 'Signed out from other devices', v_user,
                                        sessrev.current_session_id());
END
$$;

--------------------------------------------------------------------------------
-- JWTs: an iat that no cut-off of the same second refuses.
--------------------------------------------------------------------------------

CREATE FUNCTION sessrev.jwt_issued_at(user_id text) RETURNS bigint
    LANGUAGE sql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    -- iat has whole seconds, a cut-off microseconds: a token issued in the
    -- second of a cut-off but after it gets the next second, since its
    -- floor would be refused like the tokens issued before the cut-off.
    SELECT greatest(floor(extract(epoch FROM clock_timestamp())),
                    ceil(extract(epoch FROM (SELECT c.not_before FROM sessrev.user_token_cutoffs c
                                              WHERE c.user_id = jwt_issued_at.user_id))),
                    ceil(extract(epoch FROM (SELECT max(p.not_before) FROM sessrev.pending_revocations p
                                              WHERE p.user_id = jwt_issued_at.user_id))),
                    ceil(extract(epoch FROM (SELECT g.not_before FROM sessrev.global_token_cutoff g))))::bigint
$$;
COMMENT ON FUNCTION sessrev.jwt_issued_at(text) IS
    'The iat (seconds since the epoch) to put in a new JWT of the user: now, or the second after a cut-off made in this same second, so that is_jwt_revoked accepts it.';

--------------------------------------------------------------------------------
-- Grant profiles
--------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION sessrev.grant_end_user(role regrole) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    -- Only what acts on the session the caller's own token validated.
    EXECUTE format('GRANT USAGE ON SCHEMA sessrev TO %s', role);
    EXECUTE format('GRANT EXECUTE ON FUNCTION sessrev.validate_session(text), sessrev.is_revoked(text), '
                   'sessrev.current_session_id(), sessrev.current_user_id(), sessrev.my_sessions(), '
                   'sessrev.revoke_my_session(uuid), sessrev.revoke_my_other_sessions(), '
                   'sessrev.revoke_token(text, text, text), sessrev.rotate_token(text), '
                   'sessrev.session_is_live(boolean, timestamptz, timestamptz), '
                   'sessrev.session_revoked_apart(uuid, timestamptz) TO %s', role);
END
$$;

CREATE OR REPLACE FUNCTION sessrev.grant_auditor(role regrole) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA sessrev TO %s', role);
    EXECUTE format('GRANT SELECT ON sessrev.session_audit_log, sessrev.active_sessions TO %s', role);
    EXECUTE format('GRANT EXECUTE ON FUNCTION sessrev.session_is_live(boolean, timestamptz, timestamptz), '
                   'sessrev.session_revoked_apart(uuid, timestamptz), '
                   'sessrev.cache_stats(), sessrev.session_cache_stats(), sessrev.worker_status() TO %s', role);
END
$$;

CREATE OR REPLACE FUNCTION sessrev.grant_backend(role regrole) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    PERFORM sessrev.grant_end_user(role);
    -- A trusted application server, which may act for any user.
    EXECUTE format('GRANT EXECUTE ON FUNCTION '
                   'sessrev.create_session(text, interval, inet, text, text, jsonb), '
                   'sessrev.is_revoked(uuid), sessrev.set_current_session(uuid), '
                   'sessrev.user_sessions(text), sessrev.extend_session(uuid, interval), '
                   'sessrev.revoke_session(uuid, text, text), '
                   'sessrev.revoke_user_sessions(text, text, text, uuid), '
                   'sessrev.is_jwt_revoked(text, text, timestamptz), sessrev.jwt_issued_at(text), '
                   'sessrev.revoke_jwt(text, timestamptz, text, text, text), '
                   'sessrev.revoke_user_tokens_before(text, timestamptz) TO %s', role);
END
$$;

REVOKE EXECUTE ON FUNCTION sessrev.outer_role_may_execute(regprocedure), sessrev.jwt_issued_at(text),
                           sessrev.sessions_final_state(), sessrev.session_revoked_apart(uuid, timestamptz)
                   FROM PUBLIC;

-- Roles granted a profile before 1.5 get what it now holds.
DO $$
DECLARE
    v_role regrole;
BEGIN
    FOR v_role IN
        SELECT DISTINCT a.grantee::regrole
          FROM pg_catalog.pg_proc p, pg_catalog.aclexplode(p.proacl) a
         WHERE p.oid OPERATOR(pg_catalog.=) 'sessrev.revoke_jwt(text, timestamptz, text, text, text)'::pg_catalog.regprocedure
           AND a.privilege_type OPERATOR(pg_catalog.=) 'EXECUTE'
           AND a.grantee OPERATOR(pg_catalog.<>) p.proowner
           AND a.grantee OPERATOR(pg_catalog.<>) 0
    LOOP
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION sessrev.jwt_issued_at(text) TO %s', v_role);
    END LOOP;
    -- Whoever may apply the rule's first part (the grant profiles) gets its second.
    FOR v_role IN
        SELECT DISTINCT a.grantee::regrole
          FROM pg_catalog.pg_proc p, pg_catalog.aclexplode(p.proacl) a
         WHERE p.oid OPERATOR(pg_catalog.=)
               'sessrev.session_is_live(boolean, timestamptz, timestamptz)'::pg_catalog.regprocedure
           AND a.privilege_type OPERATOR(pg_catalog.=) 'EXECUTE'
           AND a.grantee OPERATOR(pg_catalog.<>) p.proowner
           AND a.grantee OPERATOR(pg_catalog.<>) 0
    LOOP
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION sessrev.session_revoked_apart(uuid, timestamptz) TO %s',
                                  v_role);
    END LOOP;
END
$$;
