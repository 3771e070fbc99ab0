-- sessrev 1.7: sessions distributed over a Citus cluster (sessrev.distribute()).
\echo Use "ALTER EXTENSION sessrev UPDATE TO '1.7'" to load this file. \quit

-- The user of a retired token, so that it can be kept in the user's shard;
-- on every node, as Citus creates the extension on every node.
ALTER TABLE sessrev.retired_tokens ADD COLUMN user_id text;
COMMENT ON COLUMN sessrev.retired_tokens.user_id IS
    'The session''s user (sessrev.distribute() keeps the row in the user''s shard).';
-- Filled for the rows retired before: rotate_token prunes a session's retired
-- tokens by session and user.
UPDATE sessrev.retired_tokens r SET user_id = s.user_id
  FROM sessrev.sessions s WHERE s.id = r.session_id AND r.user_id IS NULL;

CREATE FUNCTION sessrev.allow_shards() RETURNS void
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'allow_shards';
COMMENT ON FUNCTION sessrev.allow_shards() IS
    'Internal: lets this transaction make Citus tables of sessrev''s tables (sessrev.distribute()).';
REVOKE ALL ON FUNCTION sessrev.allow_shards() FROM PUBLIC;

-- Every row of a user in the shard of the user id: sessions, the revocations
-- recorded apart, retired tokens and JWT cut-offs, co-located; the JWT
-- denylist and the global cut-off on every node (reference tables, written
-- only by the backend and administrator profiles). The audit log stays on
-- the coordinator.
CREATE FUNCTION sessrev.distribute(shard_count integer DEFAULT NULL) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    v_shards integer;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_extension WHERE extname = 'citus') THEN
        RAISE EXCEPTION 'sessrev.distribute() needs the citus extension in this database'
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF (SELECT groupid FROM pg_dist_local_group) <> 0 THEN
        RAISE EXCEPTION 'sessrev.distribute() runs on the coordinator'
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF EXISTS (SELECT FROM pg_dist_partition WHERE logicalrelid = 'sessrev.sessions'::regclass) THEN
        RAISE EXCEPTION 'sessrev''s tables are already distributed'
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    v_shards := coalesce(distribute.shard_count, current_setting('citus.shard_count')::integer);
    IF v_shards < 1 THEN
        RAISE EXCEPTION 'shard_count must be positive, got %', v_shards USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM sessrev.allow_shards();
    PERFORM set_config('citus.enable_unsafe_triggers', 'on', true);
    -- No write may slip between the re-keying and the move into the shards.
    LOCK TABLE sessrev.sessions, sessrev.pending_revocations, sessrev.retired_tokens,
               sessrev.user_token_cutoffs, sessrev.jwt_denylist, sessrev.global_token_cutoff
        IN ACCESS EXCLUSIVE MODE;

    -- A unique key of a distributed table includes the distribution column.
    ALTER TABLE sessrev.sessions
        DROP CONSTRAINT sessions_pkey,
        DROP CONSTRAINT sessions_token_hash_key,
        ADD CONSTRAINT sessions_pkey PRIMARY KEY (id, user_id),
        ADD CONSTRAINT sessions_token_hash_key UNIQUE (token_hash, user_id);

    UPDATE sessrev.retired_tokens r SET user_id = s.user_id
      FROM sessrev.sessions s WHERE s.id = r.session_id;
    -- A retired token of a deleted session validates nothing.
    DELETE FROM sessrev.retired_tokens WHERE user_id IS NULL;
    ALTER TABLE sessrev.retired_tokens
        ALTER COLUMN user_id SET NOT NULL,
        DROP CONSTRAINT retired_tokens_pkey,
        ADD CONSTRAINT retired_tokens_pkey PRIMARY KEY (token_hash, user_id);

    -- A session's revocation recorded apart is kept with the session (the
    -- 1.5 constraint, which wanted its user NULL, goes first).
    ALTER TABLE sessrev.pending_revocations DROP CONSTRAINT pending_revocations_one_target;
    UPDATE sessrev.pending_revocations p SET user_id = s.user_id
      FROM sessrev.sessions s WHERE p.session_id IS NOT NULL AND s.id = p.session_id;
    DELETE FROM sessrev.pending_revocations WHERE user_id IS NULL;
    ALTER TABLE sessrev.pending_revocations
        ADD CONSTRAINT pending_revocations_one_target CHECK (
            (session_id IS NOT NULL AND not_before IS NULL)
            OR (session_id IS NULL AND not_before IS NOT NULL)),
        ALTER COLUMN user_id SET NOT NULL,
        DROP CONSTRAINT pending_revocations_pkey,
        ADD CONSTRAINT pending_revocations_pkey PRIMARY KEY (id, user_id);

    PERFORM create_distributed_table('sessrev.sessions', 'user_id', shard_count => v_shards);
    PERFORM create_distributed_table('sessrev.pending_revocations', 'user_id', colocate_with => 'sessrev.sessions');
    PERFORM create_distributed_table('sessrev.retired_tokens', 'user_id', colocate_with => 'sessrev.sessions');
    PERFORM create_distributed_table('sessrev.user_token_cutoffs', 'user_id', colocate_with => 'sessrev.sessions');
    PERFORM create_reference_table('sessrev.jwt_denylist');
    PERFORM create_reference_table('sessrev.global_token_cutoff');
    -- The rows now live in the shards: the tables' own copies are emptied.
    PERFORM truncate_local_data_after_distributing_table(t)
       FROM unnest(ARRAY['sessrev.sessions', 'sessrev.pending_revocations', 'sessrev.retired_tokens',
                         'sessrev.user_token_cutoffs', 'sessrev.jwt_denylist',
                         'sessrev.global_token_cutoff']::regclass[]) AS t;
END
$$;
COMMENT ON FUNCTION sessrev.distribute(integer) IS
    'Makes sessrev''s tables Citus tables: sessions and every row of a user distributed by user id, co-located; the JWT denylist and global cut-off reference tables. Run once, on the coordinator.';
REVOKE ALL ON FUNCTION sessrev.distribute(integer) FROM PUBLIC;

-- Citus refuses a non-IMMUTABLE function in DO UPDATE SET on a distributed
-- table: the update takes the time from the row it would have inserted. And
-- Citus runs the statements in the user's shard on a worker, where a
-- function's SET clause does not reach: lock_timeout is set with SET LOCAL,
-- which Citus sends along (citus.propagate_set_commands, with Citus loaded),
-- and set back to the caller's the same way, so that a first cut-off an
-- open transaction inserted is recorded apart there too.
CREATE OR REPLACE FUNCTION sessrev.record_user_token_cutoff(user_id text, cutoff timestamptz) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    v_citus   text := current_setting('citus.propagate_set_commands', true);
    v_timeout text := current_setting('lock_timeout');
BEGIN
    IF v_citus IS NOT NULL THEN
        PERFORM set_config('citus.propagate_set_commands', 'local', true);
    END IF;
    -- A first cut-off of the user being inserted by an open transaction makes
    -- the INSERT wait: past this, it is recorded apart instead.
    SET LOCAL lock_timeout = '10ms';
    BEGIN
        PERFORM FROM sessrev.user_token_cutoffs c
         WHERE c.user_id = record_user_token_cutoff.user_id FOR UPDATE NOWAIT;
        INSERT INTO sessrev.user_token_cutoffs AS c (user_id, not_before)
        VALUES (record_user_token_cutoff.user_id, record_user_token_cutoff.cutoff)
        ON CONFLICT ON CONSTRAINT user_token_cutoffs_pkey
        DO UPDATE SET not_before = greatest(c.not_before, excluded.not_before), updated_at = excluded.updated_at;
    EXCEPTION WHEN lock_not_available THEN
        INSERT INTO sessrev.pending_revocations (user_id, not_before)
        VALUES (record_user_token_cutoff.user_id, record_user_token_cutoff.cutoff);
    END;
    EXECUTE format('SET LOCAL lock_timeout = %L', v_timeout);
    IF v_citus IS NOT NULL THEN
        PERFORM set_config('citus.propagate_set_commands', v_citus, true);
    END IF;
END
$$;

CREATE FUNCTION sessrev.session_token(user_id text) RETURNS text
    LANGUAGE c VOLATILE STRICT
    AS 'MODULE_PATHNAME', 'session_token';
COMMENT ON FUNCTION sessrev.session_token(text) IS
    'Internal: a new session token for user_id; in the distributed layout it starts with the user id''s hash (8 hex digits and a dot), so that any node finds its shard.';
REVOKE ALL ON FUNCTION sessrev.session_token(text) FROM PUBLIC;

-- Every statement below reads or writes one user's rows with the user id in
-- its filter, and keeps functions that read a row out of its UPDATEs: so
-- that Citus runs each one in the user's shard when the tables are
-- distributed, as PostgreSQL runs it on a single server.
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
    -- A fresh token on every call (NULL for a NULL user_id, refused below);
    -- distributed, it carries the shard of the user (sessrev.session_token).
    v_token   text := sessrev.session_token(create_session.user_id);
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
CREATE OR REPLACE FUNCTION sessrev.user_sessions(user_id text)
RETURNS SETOF sessrev.active_sessions
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- PL/pgSQL, not SQL: Citus plans no parameters of SQL functions.
    RETURN QUERY
    SELECT * FROM sessrev.active_sessions a
     WHERE a.user_id = user_sessions.user_id
     ORDER BY a.last_active_at DESC, a.created_at DESC;
END
$$;

CREATE OR REPLACE FUNCTION sessrev.extend_session(session_id uuid, by interval) RETURNS timestamptz
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    v_max     interval := current_setting('sessrev.max_ttl')::interval;
    v_expires timestamptz;
    v_user    text;
    v_row     record;
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
    SELECT s.user_id INTO v_user FROM sessrev.sessions s WHERE s.id = extend_session.session_id;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    SELECT s.revoked, s.expires_at, s.last_active_at, s.created_at INTO v_row
      FROM sessrev.sessions s
     WHERE s.id = extend_session.session_id AND s.user_id = v_user
       FOR UPDATE;
    IF NOT FOUND OR NOT sessrev.session_is_live(v_row.revoked, v_row.expires_at, v_row.last_active_at) THEN
        RETURN NULL;
    END IF;
    v_expires := least(v_row.expires_at + least(extend_session.by, v_max), v_row.created_at + v_max);
    UPDATE sessrev.sessions s SET expires_at = v_expires
     WHERE s.id = extend_session.session_id AND s.user_id = v_user;
    INSERT INTO sessrev.session_audit_log (session_id, user_id, action, actor, details)
    VALUES (extend_session.session_id, v_user, 'SESSION_EXTENDED', sessrev.current_user_id(),
            jsonb_build_object('by', extend_session.by, 'expires_at', v_expires));
    RETURN v_expires;
END
$$;

CREATE OR REPLACE FUNCTION sessrev.rotate_session_token(old_token text)
RETURNS TABLE (new_token text, expires_at timestamptz)
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
#variable_conflict use_column
DECLARE
    v_old     bytea := sessrev.hash_token(rotate_session_token.old_token);
    v_limit   integer := current_setting('sessrev.max_rotations_per_minute')::integer;
    v_keep    integer := current_setting('sessrev.max_retired_tokens')::integer;
    v_new     text;
    v_id      uuid;
    v_user    text;
    v_row     record;
BEGIN
    -- Counted before the row is locked, a refused rotation holds nothing; by
    -- the audit rows, which max_retired_tokens does not prune.
    SELECT s.id, s.user_id INTO v_id, v_user FROM sessrev.sessions s WHERE s.token_hash = v_old;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF (SELECT count(*) FROM sessrev.session_audit_log a
         WHERE a.user_id = v_user AND a.created_at > now() - interval '1 minute'
           AND a.session_id = v_id AND a.action = 'TOKEN_ROTATED') >= v_limit THEN
        RAISE EXCEPTION 'session rotated its token % times in the last minute', v_limit
            USING ERRCODE = 'program_limit_exceeded',
                  HINT = 'sessrev.max_rotations_per_minute bounds rotations of one session.';
    END IF;
    -- The row is locked and judged where it is (its shard, when distributed).
    SELECT s.revoked, s.expires_at, s.last_active_at,
           sessrev.session_revoked_apart(s.id, s.created_at) AS apart INTO v_row
      FROM sessrev.sessions s
     WHERE s.id = v_id AND s.user_id = v_user AND s.token_hash = v_old
       FOR UPDATE;
    IF NOT FOUND OR v_row.apart
       OR NOT sessrev.session_is_live(v_row.revoked, v_row.expires_at, v_row.last_active_at) THEN
        RETURN;
    END IF;
    v_new := sessrev.session_token(v_user);
    UPDATE sessrev.sessions s SET token_hash = sessrev.hash_token(v_new), last_active_at = now()
     WHERE s.id = v_id AND s.user_id = v_user;
    INSERT INTO sessrev.retired_tokens (token_hash, session_id, expires_at, user_id)
    VALUES (v_old, v_id, v_row.expires_at, v_user);
    -- The oldest retired tokens past the bound are forgotten: presented
    -- again, such a token is unknown, which no longer validates either.
    DELETE FROM sessrev.retired_tokens r
     WHERE r.session_id = v_id AND r.user_id = v_user
       AND r.token_hash IN (SELECT o.token_hash FROM sessrev.retired_tokens o
                             WHERE o.session_id = v_id AND o.user_id = v_user
                             ORDER BY o.retired_at DESC, o.token_hash OFFSET v_keep);
    INSERT INTO sessrev.session_audit_log (session_id, user_id, action, actor)
    VALUES (v_id, v_user, 'TOKEN_ROTATED', v_user);
    PERFORM sessrev.remember_current_session(v_id, v_user);
    PERFORM sessrev.warm_session_cache(v_new);
    RETURN QUERY SELECT v_new, v_row.expires_at;
END
$$;

-- Folds pending revocations into the rows, where no one holds them; run by
-- the worker, and by cleanup_expired_sessions. One session or user at a
-- time, each statement within that user's rows.
CREATE OR REPLACE FUNCTION sessrev.apply_pending_revocations() RETURNS integer
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    v_done    integer := 0;
    v_user    text;
    v_actor   text;
    v_citus   text := current_setting('citus.propagate_set_commands', true);
    v_timeout text := current_setting('lock_timeout');
    r         record;
BEGIN
    -- Its lock_timeout reaches the shards' nodes too, as in
    -- record_user_token_cutoff.
    IF v_citus IS NOT NULL THEN
        PERFORM set_config('citus.propagate_set_commands', 'local', true);
    END IF;
    SET LOCAL lock_timeout = '10ms';
    FOR r IN SELECT DISTINCT ON (p.session_id) p.session_id, p.user_id, p.reason, p.actor
               FROM sessrev.pending_revocations p
              WHERE p.session_id IS NOT NULL ORDER BY p.session_id, p.id LOOP
        v_user := NULL;
        SELECT s.user_id INTO v_user FROM sessrev.sessions s WHERE s.id = r.session_id;
        IF FOUND THEN
            PERFORM FROM sessrev.sessions s
             WHERE s.id = r.session_id AND s.user_id = v_user AND NOT s.revoked
               FOR UPDATE SKIP LOCKED;
            IF FOUND THEN
                v_actor := coalesce(r.actor, 'sessrev');
                UPDATE sessrev.sessions s
                   SET revoked = true, revoked_at = now(), revoked_reason = r.reason, revoked_by = v_actor
                 WHERE s.id = r.session_id AND s.user_id = v_user AND NOT s.revoked;
                v_done := v_done + 1;
            END IF;
        END IF;
        -- Done where the row now says revoked, or is gone.
        IF NOT EXISTS (SELECT FROM sessrev.sessions s
                        WHERE s.id = r.session_id AND s.user_id = v_user AND NOT s.revoked) THEN
            DELETE FROM sessrev.pending_revocations p
             WHERE p.session_id = r.session_id AND p.user_id IS NOT DISTINCT FROM r.user_id;
        END IF;
    END LOOP;
    FOR r IN SELECT p.id, p.user_id, p.not_before FROM sessrev.pending_revocations p
              WHERE p.session_id IS NULL AND p.not_before IS NOT NULL ORDER BY p.id LOOP
        BEGIN
            PERFORM FROM sessrev.user_token_cutoffs c WHERE c.user_id = r.user_id FOR UPDATE NOWAIT;
            INSERT INTO sessrev.user_token_cutoffs AS c (user_id, not_before)
            VALUES (r.user_id, r.not_before)
            ON CONFLICT ON CONSTRAINT user_token_cutoffs_pkey
            DO UPDATE SET not_before = greatest(c.not_before, excluded.not_before),
                          updated_at = excluded.updated_at;
            DELETE FROM sessrev.pending_revocations p WHERE p.id = r.id AND p.user_id = r.user_id;
            v_done := v_done + 1;
        EXCEPTION WHEN lock_not_available THEN
            NULL;  -- still held: a later run folds it
        END;
    END LOOP;
    EXECUTE format('SET LOCAL lock_timeout = %L', v_timeout);
    IF v_citus IS NOT NULL THEN
        PERFORM set_config('citus.propagate_set_commands', v_citus, true);
    END IF;
    RETURN v_done;
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
    -- A plain INSERT, not ON CONFLICT: as a Citus reference table (the
    -- distributed layout), the denylist takes concurrent plain inserts,
    -- while Citus serializes every other write through it.
    BEGIN
        INSERT INTO sessrev.jwt_denylist (jti, user_id, expires_at, reason, revoked_by)
        VALUES (revoke_jwt.jti, revoke_jwt.user_id, revoke_jwt.expires_at, revoke_jwt.reason,
                coalesce(v_actor, session_user));
        v_added := true;
    EXCEPTION WHEN unique_violation THEN
        v_added := false;
    END;
    IF v_added THEN
        INSERT INTO sessrev.session_audit_log (user_id, action, actor, details)
        VALUES (revoke_jwt.user_id, 'JWT_REVOKED', v_actor,
                jsonb_build_object('jti', revoke_jwt.jti, 'reason', revoke_jwt.reason,
                                   'expires_at', revoke_jwt.expires_at));
    END IF;
    RETURN coalesce(v_added, false);
END
$$;

-- As two statements: Citus fails to plan the EXISTS of a row-less SELECT of
-- a distributed table beside a function call.
CREATE OR REPLACE FUNCTION sessrev.report_token_reuse(token_hash bytea) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF report_token_reuse.token_hash IS NULL OR octet_length(report_token_reuse.token_hash) <> 32 THEN
        RAISE EXCEPTION 'sessrev.report_token_reuse: token_hash must be a SHA-256 (32 bytes)'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Within reuse_interval the token is still in flight: nothing happens.
    IF NOT EXISTS (SELECT 1 FROM sessrev.retired_tokens r
                    WHERE r.token_hash = report_token_reuse.token_hash
                      AND now() - r.retired_at > current_setting('sessrev.reuse_interval')::interval) THEN
        RETURN false;
    END IF;
    RETURN sessrev.validate_retired_token(report_token_reuse.token_hash) IS NULL;
END
$$;
