-- sessrev 1.0: user sessions kept in the database, revoked immediately.
\echo Use "CREATE EXTENSION sessrev" to load this file. \quit

--------------------------------------------------------------------------------
-- Tables
--------------------------------------------------------------------------------

CREATE TABLE sessrev.sessions (
    id              uuid        NOT NULL DEFAULT gen_random_uuid(),
    user_id         text        NOT NULL,
    token_hash      bytea       NOT NULL,
    device_info     text,
    ip_address      inet,
    user_agent      text,
    metadata        jsonb       NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_active_at  timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    revoked         boolean     NOT NULL DEFAULT false,
    revoked_at      timestamptz,
    revoked_reason  text,
    revoked_by      text,
    CONSTRAINT sessions_pkey PRIMARY KEY (id),
    CONSTRAINT sessions_token_hash_key UNIQUE (token_hash),
    CONSTRAINT sessions_user_id_not_empty CHECK (user_id <> ''),
    CONSTRAINT sessions_token_hash_is_sha256 CHECK (octet_length(token_hash) = 32),
    CONSTRAINT sessions_revoked_has_time CHECK (revoked = (revoked_at IS NOT NULL)),
    CONSTRAINT sessions_expires_after_creation CHECK (expires_at > created_at),
    CONSTRAINT sessions_metadata_is_object CHECK (jsonb_typeof(metadata) = 'object')
);

COMMENT ON TABLE sessrev.sessions IS
    'One row per session. The token itself is never stored: token_hash is its SHA-256.';
COMMENT ON COLUMN sessrev.sessions.id IS 'Session id, safe to show to the user (not a credential).';
COMMENT ON COLUMN sessrev.sessions.user_id IS 'The application''s user id, as text.';
COMMENT ON COLUMN sessrev.sessions.token_hash IS 'SHA-256 of the bearer token (sessrev.hash_token).';
COMMENT ON COLUMN sessrev.sessions.device_info IS 'Readable device name, e.g. ''Chrome on macOS''.';
COMMENT ON COLUMN sessrev.sessions.ip_address IS 'Client address at login.';
COMMENT ON COLUMN sessrev.sessions.user_agent IS 'User-Agent header at login.';
COMMENT ON COLUMN sessrev.sessions.metadata IS 'Application data attached to the session (a JSON object).';
COMMENT ON COLUMN sessrev.sessions.created_at IS 'When the session was created.';
COMMENT ON COLUMN sessrev.sessions.last_active_at IS
    'Last validation, moved forward at most once per sessrev.touch_interval.';
COMMENT ON COLUMN sessrev.sessions.expires_at IS 'After this instant the session is not valid.';
COMMENT ON COLUMN sessrev.sessions.revoked IS 'True once the session has been revoked.';
COMMENT ON COLUMN sessrev.sessions.revoked_at IS 'When it was revoked; set exactly when revoked is true.';
COMMENT ON COLUMN sessrev.sessions.revoked_reason IS 'Why it was revoked, e.g. ''User logout''.';
COMMENT ON COLUMN sessrev.sessions.revoked_by IS 'Who revoked it, as given by the caller.';

COMMENT ON INDEX sessrev.sessions_pkey IS 'Lookup by session id (is_revoked(uuid), revoke_session).';
COMMENT ON INDEX sessrev.sessions_token_hash_key IS 'Lookup by token hash (is_revoked(text), validate_session).';

-- A user's live sessions, newest activity first: user_sessions, revoke_user_sessions.
CREATE INDEX sessions_user_live_idx ON sessrev.sessions (user_id, last_active_at DESC)
    WHERE NOT revoked;
COMMENT ON INDEX sessrev.sessions_user_live_idx IS 'A user''s live sessions, most recently active first.';
-- Cleanup of expired sessions walks this index.
CREATE INDEX sessions_expires_at_idx ON sessrev.sessions (expires_at);
COMMENT ON INDEX sessrev.sessions_expires_at_idx IS 'Cleanup of expired sessions.';
-- Cleanup of long-revoked sessions walks this index.
CREATE INDEX sessions_revoked_at_idx ON sessrev.sessions (revoked_at) WHERE revoked;
COMMENT ON INDEX sessrev.sessions_revoked_at_idx IS 'Cleanup of revoked sessions.';

CREATE TABLE sessrev.retired_tokens (
    token_hash  bytea       NOT NULL,
    session_id  uuid        NOT NULL,
    retired_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    CONSTRAINT retired_tokens_pkey PRIMARY KEY (token_hash)
);
COMMENT ON TABLE sessrev.retired_tokens IS
    'Hashes of tokens replaced by rotate_token, kept until their session expires to detect reuse.';
COMMENT ON INDEX sessrev.retired_tokens_pkey IS 'Lookup of a presented token among retired ones.';
COMMENT ON COLUMN sessrev.retired_tokens.token_hash IS 'SHA-256 of the retired token.';
COMMENT ON COLUMN sessrev.retired_tokens.session_id IS
    'The session it belonged to (no foreign key, so that a DBA can TRUNCATE sessions; a retired token of a deleted session validates nothing).';
COMMENT ON COLUMN sessrev.retired_tokens.retired_at IS 'When rotate_token replaced it.';
COMMENT ON COLUMN sessrev.retired_tokens.expires_at IS 'The session''s expiry at rotation: cleanup deletes the row after it.';
CREATE INDEX retired_tokens_session_idx ON sessrev.retired_tokens (session_id);
COMMENT ON INDEX sessrev.retired_tokens_session_idx IS 'Retired tokens of a session.';
CREATE INDEX retired_tokens_expires_at_idx ON sessrev.retired_tokens (expires_at);
COMMENT ON INDEX sessrev.retired_tokens_expires_at_idx IS 'Cleanup of retired tokens.';

CREATE TABLE sessrev.session_audit_log (
    id          bigint      GENERATED ALWAYS AS IDENTITY,
    session_id  uuid,
    user_id     text,
    action      text        NOT NULL,
    actor       text,
    ip_address  inet,
    user_agent  text,
    details     jsonb       NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT session_audit_log_pkey PRIMARY KEY (id)
);

COMMENT ON TABLE sessrev.session_audit_log IS
    'Every change to a session, written in the same transaction as the change.';
COMMENT ON INDEX sessrev.session_audit_log_pkey IS 'Audit rows by id.';
COMMENT ON COLUMN sessrev.session_audit_log.id IS 'Audit row id, increasing in commit-independent insertion order.';
COMMENT ON COLUMN sessrev.session_audit_log.session_id IS 'The session concerned; NULL for summary rows.';
COMMENT ON COLUMN sessrev.session_audit_log.user_id IS 'The user concerned, if any.';
COMMENT ON COLUMN sessrev.session_audit_log.action IS
    'SESSION_CREATED, SESSION_REVOKED, REVOKE_ALL_USER, REVOKE_ALL, CLEANUP, JWT_REVOKED, USER_TOKENS_CUTOFF, SESSION_EXTENDED, TOKEN_ROTATED or TOKEN_REUSE.';
COMMENT ON COLUMN sessrev.session_audit_log.actor IS 'Who acted (revoked_by, or the database user for cleanup).';
COMMENT ON COLUMN sessrev.session_audit_log.ip_address IS 'Client address, where the action had one.';
COMMENT ON COLUMN sessrev.session_audit_log.user_agent IS 'User-Agent, where the action had one.';
COMMENT ON COLUMN sessrev.session_audit_log.details IS 'Reason, counts and other facts of the action.';
COMMENT ON COLUMN sessrev.session_audit_log.created_at IS 'When the action happened (transaction time).';

CREATE INDEX session_audit_log_user_idx ON sessrev.session_audit_log (user_id, created_at);
COMMENT ON INDEX sessrev.session_audit_log_user_idx IS 'A user''s audit trail in time order.';
CREATE INDEX session_audit_log_created_at_idx ON sessrev.session_audit_log (created_at);
COMMENT ON INDEX sessrev.session_audit_log_created_at_idx IS 'Audit trail in time order; audit retention.';

CREATE TABLE sessrev.jwt_denylist (
    jti         text        NOT NULL,
    user_id     text,
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz NOT NULL DEFAULT now(),
    reason      text,
    revoked_by  text,
    CONSTRAINT jwt_denylist_pkey PRIMARY KEY (jti),
    CONSTRAINT jwt_denylist_jti_size CHECK (jti <> '' AND octet_length(jti) <= 256)
);
COMMENT ON TABLE sessrev.jwt_denylist IS
    'Revoked JWTs by token id (jti), kept only until their own expiry: cleanup removes them after expires_at.';
COMMENT ON INDEX sessrev.jwt_denylist_pkey IS 'Lookup by jti (is_jwt_revoked).';
COMMENT ON COLUMN sessrev.jwt_denylist.jti IS 'The JWT''s jti claim.';
COMMENT ON COLUMN sessrev.jwt_denylist.user_id IS 'The JWT''s subject, if given.';
COMMENT ON COLUMN sessrev.jwt_denylist.expires_at IS 'The JWT''s exp claim: after it the entry is useless and is cleaned up.';
COMMENT ON COLUMN sessrev.jwt_denylist.revoked_at IS 'When the JWT was denylisted.';
COMMENT ON COLUMN sessrev.jwt_denylist.reason IS 'Why it was revoked.';
COMMENT ON COLUMN sessrev.jwt_denylist.revoked_by IS 'Who revoked it.';
CREATE INDEX jwt_denylist_expires_at_idx ON sessrev.jwt_denylist (expires_at);
COMMENT ON INDEX sessrev.jwt_denylist_expires_at_idx IS 'Cleanup of expired denylist entries.';

CREATE TABLE sessrev.user_token_cutoffs (
    user_id     text        NOT NULL,
    not_before  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT user_token_cutoffs_pkey PRIMARY KEY (user_id),
    CONSTRAINT user_token_cutoffs_user_id_not_empty CHECK (user_id <> '')
);
COMMENT ON TABLE sessrev.user_token_cutoffs IS
    'Per-user not-before cut-offs: every JWT of the user issued before not_before is revoked.';
COMMENT ON INDEX sessrev.user_token_cutoffs_pkey IS 'Lookup by user (is_jwt_revoked).';
COMMENT ON COLUMN sessrev.user_token_cutoffs.user_id IS 'The user (JWT subject).';
COMMENT ON COLUMN sessrev.user_token_cutoffs.not_before IS 'Tokens issued before this instant are revoked.';
COMMENT ON COLUMN sessrev.user_token_cutoffs.updated_at IS 'When the cut-off last moved.';

CREATE TABLE sessrev.global_token_cutoff (
    singleton   boolean     NOT NULL DEFAULT true,
    not_before  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT global_token_cutoff_pkey PRIMARY KEY (singleton),
    CONSTRAINT global_token_cutoff_one_row CHECK (singleton)
);
COMMENT ON TABLE sessrev.global_token_cutoff IS
    'At most one row: every JWT issued before not_before is revoked (emergency logout).';
COMMENT ON INDEX sessrev.global_token_cutoff_pkey IS 'The single row.';
COMMENT ON COLUMN sessrev.global_token_cutoff.singleton IS 'Always true: keeps the table to one row.';
COMMENT ON COLUMN sessrev.global_token_cutoff.not_before IS 'Tokens issued before this instant are revoked.';
COMMENT ON COLUMN sessrev.global_token_cutoff.updated_at IS 'When the cut-off last moved.';

-- pg_dump keeps the rows of extension tables only when they are registered.
SELECT pg_catalog.pg_extension_config_dump('sessrev.sessions', '');
SELECT pg_catalog.pg_extension_config_dump('sessrev.session_audit_log', '');
SELECT pg_catalog.pg_extension_config_dump('sessrev.session_audit_log_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('sessrev.retired_tokens', '');
SELECT pg_catalog.pg_extension_config_dump('sessrev.jwt_denylist', '');
SELECT pg_catalog.pg_extension_config_dump('sessrev.user_token_cutoffs', '');
SELECT pg_catalog.pg_extension_config_dump('sessrev.global_token_cutoff', '');

--------------------------------------------------------------------------------
-- Views
--------------------------------------------------------------------------------

CREATE VIEW sessrev.active_sessions AS
SELECT id, user_id, device_info, ip_address, user_agent, metadata,
       created_at, last_active_at, expires_at
  FROM sessrev.sessions
 WHERE NOT revoked AND expires_at > now();

COMMENT ON VIEW sessrev.active_sessions IS
    'Live sessions (not revoked, not expired), without token_hash.';

--------------------------------------------------------------------------------
-- Tokens (C++)
--------------------------------------------------------------------------------

CREATE FUNCTION sessrev.hash_token(token text) RETURNS bytea
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'hash_token';
COMMENT ON FUNCTION sessrev.hash_token(text) IS
    'SHA-256 of a token: what sessrev stores instead of the token.';

CREATE FUNCTION sessrev.generate_token(nbytes integer DEFAULT 32) RETURNS text
    LANGUAGE c VOLATILE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'generate_token';
COMMENT ON FUNCTION sessrev.generate_token(integer) IS
    'nbytes (16..256) of OpenSSL RAND_bytes, base64url without padding.';

CREATE FUNCTION sessrev.device_from_user_agent(user_agent text) RETURNS text
    LANGUAGE c IMMUTABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'device_from_user_agent';
COMMENT ON FUNCTION sessrev.device_from_user_agent(text) IS
    'Readable device name from a User-Agent, e.g. ''Firefox on Linux''; ''Unknown device'' otherwise.';

--------------------------------------------------------------------------------
-- Checking a session
--------------------------------------------------------------------------------

-- PARALLEL UNSAFE: each call reads the latest committed state, a snapshot that
-- cannot be taken while a parallel plan runs, even in the leader.
CREATE FUNCTION sessrev.is_revoked(token text) RETURNS boolean
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'is_revoked_token';
COMMENT ON FUNCTION sessrev.is_revoked(text) IS
    'False only for an active, unexpired, not idle-expired session; true otherwise, including NULL and unknown tokens. Reads the latest committed state (from the shared-memory cache when preloaded). Never writes.';

CREATE FUNCTION sessrev.is_revoked(session_id uuid) RETURNS boolean
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'is_revoked_session';
COMMENT ON FUNCTION sessrev.is_revoked(uuid) IS
    'is_revoked by session id.';

CREATE FUNCTION sessrev.validate_session(token text)
RETURNS TABLE (session_id uuid, user_id text, expires_at timestamptz,
               last_active_at timestamptz, metadata jsonb)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_hash    bytea := sessrev.hash_token(validate_session.token);
    v_idle    interval := current_setting('sessrev.idle_timeout')::interval;
    v_touch   interval := current_setting('sessrev.touch_interval')::interval;
    v_row     sessrev.sessions%ROWTYPE;
    v_retired sessrev.retired_tokens%ROWTYPE;
BEGIN
    IF v_hash IS NULL OR validate_session.token = '' THEN
        RETURN;
    END IF;
    SELECT * INTO v_row FROM sessrev.sessions s WHERE s.token_hash = v_hash;
    IF NOT FOUND THEN
        -- A token replaced by rotate_token still serves requests already in
        -- flight; presented later, it was stolen: the whole session goes.
        SELECT * INTO v_retired FROM sessrev.retired_tokens r WHERE r.token_hash = v_hash;
        IF NOT FOUND THEN
            RETURN;
        END IF;
        IF now() - v_retired.retired_at > current_setting('sessrev.reuse_interval')::interval THEN
            PERFORM sessrev.revoke_session(v_retired.session_id, 'Token reuse detected', 'sessrev');
            INSERT INTO sessrev.session_audit_log (session_id, user_id, action, actor, details)
            SELECT s.id, s.user_id, 'TOKEN_REUSE', 'sessrev',
                   jsonb_build_object('retired_at', v_retired.retired_at)
              FROM sessrev.sessions s WHERE s.id = v_retired.session_id;
            RETURN;
        END IF;
        SELECT * INTO v_row FROM sessrev.sessions s WHERE s.id = v_retired.session_id;
    END IF;
    IF v_row.id IS NULL OR v_row.revoked OR v_row.expires_at <= now()
       OR (v_idle > interval '0' AND v_row.last_active_at <= now() - v_idle) THEN
        RETURN;
    END IF;
    -- Touch at most once per touch_interval, and often enough that an active
    -- session never looks idle.
    IF v_idle > interval '0' AND v_idle / 2 < v_touch THEN
        v_touch := v_idle / 2;
    END IF;
    IF v_row.last_active_at <= now() - v_touch THEN
        UPDATE sessrev.sessions s SET last_active_at = now()
         WHERE s.id = v_row.id AND NOT s.revoked;
        IF NOT FOUND THEN
            RETURN;  -- revoked by a transaction that committed meanwhile
        END IF;
        v_row.last_active_at := now();
    END IF;
    -- The rest of this transaction knows its session (current_session_id()).
    PERFORM sessrev.remember_current_session(v_row.id, v_row.user_id);
    RETURN QUERY SELECT v_row.id, v_row.user_id, v_row.expires_at, v_row.last_active_at,
                        v_row.metadata;
END
$$;
COMMENT ON FUNCTION sessrev.validate_session(text) IS
    'One row for an active session, none otherwise; moves last_active_at forward at most once per sessrev.touch_interval and makes it the transaction''s current session. A rotated-out token validates within sessrev.reuse_interval; after it, it revokes the session (TOKEN_REUSE).';

--------------------------------------------------------------------------------
-- Creating a session
--------------------------------------------------------------------------------

CREATE FUNCTION sessrev.create_session(
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
    IF now() + v_ttl <= now() THEN
        RAISE EXCEPTION 'ttl must be positive, got %', v_ttl
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF now() + v_ttl > now() + v_max_ttl THEN
        RAISE EXCEPTION 'ttl % is longer than sessrev.max_ttl (%)', v_ttl, v_max_ttl
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
        -- Concurrent logins of one user count against the limit one at a time.
        PERFORM pg_advisory_xact_lock(hashtextextended('sessrev.user:' || create_session.user_id, 0));
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
        WITH excess AS (
            SELECT s.id FROM sessrev.sessions s
             WHERE s.user_id = create_session.user_id AND NOT s.revoked AND s.expires_at > now()
             ORDER BY s.id = v_id DESC, s.last_active_at DESC, s.created_at DESC
            OFFSET v_limit
        ), revoked AS (
            UPDATE sessrev.sessions s
               SET revoked = true, revoked_at = now(), revoked_reason = 'Session limit',
                   revoked_by = 'sessrev'
              FROM excess e WHERE s.id = e.id
         RETURNING s.id, s.user_id
        )
        INSERT INTO sessrev.session_audit_log (session_id, user_id, action, actor, details)
        SELECT r.id, r.user_id, 'SESSION_REVOKED', 'sessrev', jsonb_build_object('reason', 'Session limit')
          FROM revoked r;
    END IF;

    RETURN QUERY SELECT v_id, v_token, v_expires;
END
$$;
COMMENT ON FUNCTION sessrev.create_session(text, interval, inet, text, text, jsonb) IS
    'Creates a session with a fresh random token; returns the token once (only its hash is stored). Beyond sessrev.max_sessions_per_user, the user''s least recently active sessions are revoked.';

--------------------------------------------------------------------------------
-- Listing sessions
--------------------------------------------------------------------------------

CREATE FUNCTION sessrev.user_sessions(user_id text)
RETURNS SETOF sessrev.active_sessions
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT * FROM sessrev.active_sessions a
     WHERE a.user_id = user_sessions.user_id
     ORDER BY a.last_active_at DESC, a.created_at DESC
$$;
COMMENT ON FUNCTION sessrev.user_sessions(text) IS
    'A user''s live sessions, most recently active first.';

--------------------------------------------------------------------------------
-- Revoking sessions
--------------------------------------------------------------------------------

CREATE FUNCTION sessrev.revoke_session(
    session_id uuid,
    reason     text DEFAULT 'User logout',
    revoked_by text DEFAULT NULL)
RETURNS boolean
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH revoked AS (
        UPDATE sessrev.sessions s
           SET revoked = true, revoked_at = now(),
               revoked_reason = revoke_session.reason, revoked_by = revoke_session.revoked_by
         WHERE s.id = revoke_session.session_id AND NOT s.revoked AND s.expires_at > now()
     RETURNING s.id, s.user_id
    ), audit AS (
        INSERT INTO sessrev.session_audit_log (session_id, user_id, action, actor, details)
        SELECT r.id, r.user_id, 'SESSION_REVOKED', revoke_session.revoked_by,
               jsonb_build_object('reason', revoke_session.reason)
          FROM revoked r
    )
    SELECT EXISTS (SELECT 1 FROM revoked)
$$;
COMMENT ON FUNCTION sessrev.revoke_session(uuid, text, text) IS
    'Revokes one live session (log out one device); false when unknown, expired or already revoked.';

CREATE FUNCTION sessrev.revoke_token(
    token      text,
    reason     text DEFAULT 'User logout',
    revoked_by text DEFAULT NULL)
RETURNS boolean
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(sessrev.revoke_session(
               (SELECT s.id FROM sessrev.sessions s
                 WHERE s.token_hash = sessrev.hash_token(revoke_token.token)),
               revoke_token.reason, revoke_token.revoked_by), false)
$$;
COMMENT ON FUNCTION sessrev.revoke_token(text, text, text) IS
    'Revokes the session of a token (logout); false when unknown, expired or already revoked.';

CREATE FUNCTION sessrev.revoke_user_sessions(
    user_id            text,
    reason             text DEFAULT 'Admin action',
    revoked_by         text DEFAULT NULL,
    exclude_session_id uuid DEFAULT NULL)
RETURNS integer
LANGUAGE c VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'revoke_user_sessions';
COMMENT ON FUNCTION sessrev.revoke_user_sessions(text, text, text, uuid) IS
    'Revokes every live session of a user except exclude_session_id (password change, force logout) and sets the user''s JWT cut-off; returns the count.';

CREATE FUNCTION sessrev.revoke_all_sessions(
    reason     text DEFAULT 'Emergency revocation',
    revoked_by text DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_count integer;
BEGIN
    WITH revoked AS (
        UPDATE sessrev.sessions s
           SET revoked = true, revoked_at = now(),
               revoked_reason = revoke_all_sessions.reason,
               revoked_by = revoke_all_sessions.revoked_by
         WHERE NOT s.revoked AND s.expires_at > now()
     RETURNING s.id, s.user_id
    ), per_session AS (
        INSERT INTO sessrev.session_audit_log (session_id, user_id, action, actor, details)
        SELECT r.id, r.user_id, 'SESSION_REVOKED', revoke_all_sessions.revoked_by,
               jsonb_build_object('reason', revoke_all_sessions.reason)
          FROM revoked r
    )
    SELECT count(*) INTO v_count FROM revoked;

    -- JWTs issued until now are revoked too.
    INSERT INTO sessrev.global_token_cutoff AS g (not_before) VALUES (now())
    ON CONFLICT ON CONSTRAINT global_token_cutoff_pkey
    DO UPDATE SET not_before = greatest(g.not_before, excluded.not_before), updated_at = now();

    -- The summary follows the per-session rows in id order.
    INSERT INTO sessrev.session_audit_log (action, actor, details)
    VALUES ('REVOKE_ALL', revoke_all_sessions.revoked_by,
            jsonb_build_object('reason', revoke_all_sessions.reason, 'count', v_count));
    RETURN v_count;
END
$$;
COMMENT ON FUNCTION sessrev.revoke_all_sessions(text, text) IS
    'Emergency global logout: revokes every live session and sets the global JWT cut-off; returns the count.';

--------------------------------------------------------------------------------
-- The shared-memory cache (when sessrev is in shared_preload_libraries)
--------------------------------------------------------------------------------

CREATE FUNCTION sessrev.sessions_changed() RETURNS trigger
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'sessions_changed';
COMMENT ON FUNCTION sessrev.sessions_changed() IS
    'Trigger: records changed sessions so that the cache drops them when the transaction commits.';

-- ALWAYS: the cache must hear of changes even under session_replication_role = replica.
CREATE TRIGGER sessions_cache_invalidation
    AFTER UPDATE OR DELETE ON sessrev.sessions
    FOR EACH ROW EXECUTE FUNCTION sessrev.sessions_changed();
ALTER TABLE sessrev.sessions ENABLE ALWAYS TRIGGER sessions_cache_invalidation;
COMMENT ON TRIGGER sessions_cache_invalidation ON sessrev.sessions IS
    'Keeps the is_revoked cache true to committed rows.';
CREATE TRIGGER sessions_cache_flush
    AFTER TRUNCATE ON sessrev.sessions
    FOR EACH STATEMENT EXECUTE FUNCTION sessrev.sessions_changed();
ALTER TABLE sessrev.sessions ENABLE ALWAYS TRIGGER sessions_cache_flush;
COMMENT ON TRIGGER sessions_cache_flush ON sessrev.sessions IS
    'Empties the is_revoked cache when the table is truncated.';

CREATE FUNCTION sessrev.cache_stats()
RETURNS TABLE (enabled boolean, capacity bigint, entries bigint, hits bigint,
               misses bigint, evictions bigint, invalidations bigint)
    LANGUAGE c VOLATILE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'cache_stats';
COMMENT ON FUNCTION sessrev.cache_stats() IS
    'The is_revoked cache: whether it is enabled, its capacity and entries, and hits, misses, evictions and invalidations since the last reset.';

CREATE FUNCTION sessrev.cache_reset() RETURNS void
    LANGUAGE c VOLATILE PARALLEL UNSAFE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'cache_reset';
COMMENT ON FUNCTION sessrev.cache_reset() IS
    'Empties the is_revoked cache, zeroes its counters and rebuilds the JWT filters.';

--------------------------------------------------------------------------------
-- Cleanup
--------------------------------------------------------------------------------

CREATE FUNCTION sessrev.cleanup_expired_sessions(
    expired_retention interval DEFAULT '7 days',
    revoked_retention interval DEFAULT '30 days')
RETURNS integer
LANGUAGE c VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'cleanup_expired_sessions';
COMMENT ON FUNCTION sessrev.cleanup_expired_sessions(interval, interval) IS
    'Deletes sessions expired longer than expired_retention and revoked longer than revoked_retention, and audit rows older than sessrev.audit_retention, in batches; returns the sessions deleted.';

--------------------------------------------------------------------------------
-- The background worker
--------------------------------------------------------------------------------

CREATE FUNCTION sessrev.worker_status()
RETURNS TABLE (pid integer, last_run_at timestamptz, last_deleted bigint,
               total_deleted bigint, runs bigint, last_error text)
    LANGUAGE c VOLATILE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'worker_status';
COMMENT ON FUNCTION sessrev.worker_status() IS
    'The cleanup worker: its pid (NULL when not running), last run, rows deleted, runs and last error. NULL counts when not preloaded.';

CREATE FUNCTION sessrev.wake_cleanup_worker() RETURNS boolean
    LANGUAGE c VOLATILE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'wake_cleanup_worker';
COMMENT ON FUNCTION sessrev.wake_cleanup_worker() IS
    'Asks the running cleanup worker to clean up now; false when no worker runs.';

CREATE FUNCTION sessrev.run_cleanup_now() RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF sessrev.wake_cleanup_worker() THEN
        RETURN true;
    END IF;
    PERFORM sessrev.cleanup_expired_sessions();
    RETURN false;
END
$$;
COMMENT ON FUNCTION sessrev.run_cleanup_now() IS
    'Wakes the cleanup worker (true), or runs cleanup_expired_sessions() here when there is none (false).';

--------------------------------------------------------------------------------
-- Stateless tokens (JWT): denylist and not-before cut-offs
--------------------------------------------------------------------------------

CREATE FUNCTION sessrev.revoke_jwt(
    jti        text,
    expires_at timestamptz,
    user_id    text DEFAULT NULL,
    reason     text DEFAULT 'Token revoked',
    revoked_by text DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_added boolean;
BEGIN
    IF revoke_jwt.jti IS NULL OR revoke_jwt.expires_at IS NULL THEN
        RAISE EXCEPTION 'jti and expires_at must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF revoke_jwt.jti = '' THEN
        RAISE EXCEPTION 'jti must not be empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF octet_length(revoke_jwt.jti) > 256 OR octet_length(revoke_jwt.user_id) > 256 THEN
        RAISE EXCEPTION 'jti and user_id must not be longer than 256 bytes'
            USING ERRCODE = 'string_data_right_truncation';
    END IF;
    IF revoke_jwt.expires_at <= now() THEN
        RAISE EXCEPTION 'expires_at is in the past: the token is unusable already'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO sessrev.jwt_denylist (jti, user_id, expires_at, reason, revoked_by)
    VALUES (revoke_jwt.jti, revoke_jwt.user_id, revoke_jwt.expires_at, revoke_jwt.reason,
            revoke_jwt.revoked_by)
    ON CONFLICT ON CONSTRAINT jwt_denylist_pkey DO NOTHING
    RETURNING true INTO v_added;
    IF v_added THEN
        INSERT INTO sessrev.session_audit_log (user_id, action, actor, details)
        VALUES (revoke_jwt.user_id, 'JWT_REVOKED', revoke_jwt.revoked_by,
                jsonb_build_object('jti', revoke_jwt.jti, 'reason', revoke_jwt.reason,
                                   'expires_at', revoke_jwt.expires_at));
    END IF;
    RETURN coalesce(v_added, false);
END
$$;
COMMENT ON FUNCTION sessrev.revoke_jwt(text, timestamptz, text, text, text) IS
    'Denylists one JWT by jti until its own expiry; false when it was denylisted already.';

CREATE FUNCTION sessrev.revoke_user_tokens_before(
    user_id text,
    cutoff  timestamptz DEFAULT now())
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
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
    -- A cut-off only moves forward: an earlier one must not revive revoked tokens.
    INSERT INTO sessrev.user_token_cutoffs AS c (user_id, not_before)
    VALUES (revoke_user_tokens_before.user_id, revoke_user_tokens_before.cutoff)
    ON CONFLICT ON CONSTRAINT user_token_cutoffs_pkey
    DO UPDATE SET not_before = greatest(c.not_before, excluded.not_before), updated_at = now();
    INSERT INTO sessrev.session_audit_log (user_id, action, actor, details)
    VALUES (revoke_user_tokens_before.user_id, 'USER_TOKENS_CUTOFF', session_user,
            jsonb_build_object('not_before', revoke_user_tokens_before.cutoff));
END
$$;
COMMENT ON FUNCTION sessrev.revoke_user_tokens_before(text, timestamptz) IS
    'Revokes every JWT of the user issued before cutoff (a per-user not-before); never moves an existing cut-off back.';

CREATE FUNCTION sessrev.jwt_tables_changed() RETURNS trigger
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'jwt_tables_changed';
COMMENT ON FUNCTION sessrev.jwt_tables_changed() IS
    'Trigger: keeps the is_jwt_revoked filters and cached cut-offs true to committed rows.';

CREATE TRIGGER jwt_denylist_cache AFTER INSERT OR UPDATE OR DELETE ON sessrev.jwt_denylist
    FOR EACH ROW EXECUTE FUNCTION sessrev.jwt_tables_changed();
CREATE TRIGGER jwt_denylist_cache_truncate AFTER TRUNCATE ON sessrev.jwt_denylist
    FOR EACH STATEMENT EXECUTE FUNCTION sessrev.jwt_tables_changed();
CREATE TRIGGER user_token_cutoffs_cache AFTER INSERT OR UPDATE OR DELETE ON sessrev.user_token_cutoffs
    FOR EACH ROW EXECUTE FUNCTION sessrev.jwt_tables_changed();
CREATE TRIGGER user_token_cutoffs_cache_truncate AFTER TRUNCATE ON sessrev.user_token_cutoffs
    FOR EACH STATEMENT EXECUTE FUNCTION sessrev.jwt_tables_changed();
CREATE TRIGGER global_token_cutoff_cache AFTER INSERT OR UPDATE OR DELETE ON sessrev.global_token_cutoff
    FOR EACH ROW EXECUTE FUNCTION sessrev.jwt_tables_changed();
CREATE TRIGGER global_token_cutoff_cache_truncate AFTER TRUNCATE ON sessrev.global_token_cutoff
    FOR EACH STATEMENT EXECUTE FUNCTION sessrev.jwt_tables_changed();
ALTER TABLE sessrev.jwt_denylist ENABLE ALWAYS TRIGGER jwt_denylist_cache;
ALTER TABLE sessrev.jwt_denylist ENABLE ALWAYS TRIGGER jwt_denylist_cache_truncate;
ALTER TABLE sessrev.user_token_cutoffs ENABLE ALWAYS TRIGGER user_token_cutoffs_cache;
ALTER TABLE sessrev.user_token_cutoffs ENABLE ALWAYS TRIGGER user_token_cutoffs_cache_truncate;
ALTER TABLE sessrev.global_token_cutoff ENABLE ALWAYS TRIGGER global_token_cutoff_cache;
ALTER TABLE sessrev.global_token_cutoff ENABLE ALWAYS TRIGGER global_token_cutoff_cache_truncate;
COMMENT ON TRIGGER jwt_denylist_cache ON sessrev.jwt_denylist IS 'Adds new jtis to the is_jwt_revoked filter before commit.';
COMMENT ON TRIGGER jwt_denylist_cache_truncate ON sessrev.jwt_denylist IS 'Marks the JWT cache as changed by this transaction.';
COMMENT ON TRIGGER user_token_cutoffs_cache ON sessrev.user_token_cutoffs IS 'Adds users to the cut-off filter and drops cached cut-offs at commit.';
COMMENT ON TRIGGER user_token_cutoffs_cache_truncate ON sessrev.user_token_cutoffs IS 'Empties the cache at commit.';
COMMENT ON TRIGGER global_token_cutoff_cache ON sessrev.global_token_cutoff IS 'Drops the cached global cut-off at commit.';
COMMENT ON TRIGGER global_token_cutoff_cache_truncate ON sessrev.global_token_cutoff IS 'Drops the cached global cut-off at commit.';

CREATE FUNCTION sessrev.is_jwt_revoked(jti text, user_id text, issued_at timestamptz)
RETURNS boolean
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'is_jwt_revoked';
COMMENT ON FUNCTION sessrev.is_jwt_revoked(text, text, timestamptz) IS
    'True when the jti is denylisted or the token was issued before the user''s or the global cut-off; jti NULL checks only the cut-offs. Reads the latest committed state (cached when preloaded).';

--------------------------------------------------------------------------------
-- The current session of a transaction, and self-service
--------------------------------------------------------------------------------

CREATE FUNCTION sessrev.remember_current_session(session_id uuid, user_id text) RETURNS void
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'remember_current_session';
COMMENT ON FUNCTION sessrev.remember_current_session(uuid, text) IS
    'Internal: records the transaction''s current session once sessrev has checked it. Never grant it.';

CREATE FUNCTION sessrev.current_session_id() RETURNS uuid
    LANGUAGE c VOLATILE PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'current_session_id';
COMMENT ON FUNCTION sessrev.current_session_id() IS
    'The session validated (or set) in this transaction; NULL when none. Forgotten at transaction end.';

CREATE FUNCTION sessrev.current_user_id() RETURNS text
    LANGUAGE c VOLATILE PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'current_user_id';
COMMENT ON FUNCTION sessrev.current_user_id() IS
    'The user of the session validated (or set) in this transaction; NULL when none.';

CREATE FUNCTION sessrev.set_current_session(session_id uuid) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_user text;
BEGIN
    IF sessrev.is_revoked(set_current_session.session_id) THEN
        RAISE EXCEPTION 'session is not live' USING ERRCODE = 'insufficient_privilege';
    END IF;
    SELECT s.user_id INTO v_user FROM sessrev.sessions s WHERE s.id = set_current_session.session_id;
    PERFORM sessrev.remember_current_session(set_current_session.session_id, v_user);
END
$$;
COMMENT ON FUNCTION sessrev.set_current_session(uuid) IS
    'Makes a live session the transaction''s current session, for applications that validate elsewhere.';

CREATE FUNCTION sessrev.my_sessions()
RETURNS TABLE (id uuid, device_info text, ip_address inet, user_agent text,
               created_at timestamptz, last_active_at timestamptz, expires_at timestamptz,
               is_current boolean)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_user text := sessrev.current_user_id();
BEGIN
    IF v_user IS NULL THEN
        RAISE EXCEPTION 'no current session: call sessrev.validate_session first'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN QUERY
    SELECT a.id, a.device_info, a.ip_address, a.user_agent, a.created_at, a.last_active_at,
           a.expires_at, a.id = sessrev.current_session_id()
      FROM sessrev.active_sessions a WHERE a.user_id = v_user
     ORDER BY a.last_active_at DESC, a.created_at DESC;
END
$$;
COMMENT ON FUNCTION sessrev.my_sessions() IS
    'The current user''s live sessions, most recently active first, marking the current one.';

CREATE FUNCTION sessrev.revoke_my_session(session_id uuid) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_user text := sessrev.current_user_id();
BEGIN
    IF v_user IS NULL THEN
        RAISE EXCEPTION 'no current session: call sessrev.validate_session first'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF revoke_my_session.session_id = sessrev.current_session_id() THEN
        RAISE EXCEPTION 'cannot revoke the current session here'
            USING ERRCODE = 'invalid_parameter_value', HINT = 'To log out, use sessrev.revoke_token.';
    END IF;
    -- Another user's session id answers false and changes nothing.
    IF NOT EXISTS (SELECT 1 FROM sessrev.sessions s
                    WHERE s.id = revoke_my_session.session_id AND s.user_id = v_user) THEN
        RETURN false;
    END IF;
    RETURN sessrev.revoke_session(revoke_my_session.session_id, 'Signed out by user', v_user);
END
$$;
COMMENT ON FUNCTION sessrev.revoke_my_session(uuid) IS
    'Revokes one of the current user''s other sessions; false for unknown or other users'' sessions.';

CREATE FUNCTION sessrev.revoke_my_other_sessions() RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_user text := sessrev.current_user_id();
BEGIN
    IF v_user IS NULL THEN
        RAISE EXCEPTION 'no current session: call sessrev.validate_session first'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN sessrev.revoke_user_sessions(v_user, 'Signed out from other devices', v_user,
                                        sessrev.current_session_id());
END
$$;
COMMENT ON FUNCTION sessrev.revoke_my_other_sessions() IS
    'Revokes every session of the current user but the current one; returns the count.';

--------------------------------------------------------------------------------
-- Lifetimes and token rotation
--------------------------------------------------------------------------------

CREATE FUNCTION sessrev.extend_session(session_id uuid, by interval) RETURNS timestamptz
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_expires timestamptz;
    v_user    text;
BEGIN
    IF extend_session.session_id IS NULL OR extend_session.by IS NULL THEN
        RAISE EXCEPTION 'session_id and by must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF now() + extend_session.by <= now() THEN
        RAISE EXCEPTION 'by must be positive' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF sessrev.is_revoked(extend_session.session_id) THEN
        RETURN NULL;
    END IF;
    UPDATE sessrev.sessions s
       SET expires_at = least(s.expires_at + extend_session.by,
                              s.created_at + current_setting('sessrev.max_ttl')::interval)
     WHERE s.id = extend_session.session_id AND NOT s.revoked AND s.expires_at > now()
    RETURNING s.expires_at, s.user_id INTO v_expires, v_user;
    IF FOUND THEN
        INSERT INTO sessrev.session_audit_log (session_id, user_id, action, actor, details)
        VALUES (extend_session.session_id, v_user, 'SESSION_EXTENDED', session_user,
                jsonb_build_object('by', extend_session.by, 'expires_at', v_expires));
    END IF;
    RETURN v_expires;
END
$$;
COMMENT ON FUNCTION sessrev.extend_session(uuid, interval) IS
    'Extends a live session by an interval, never beyond created_at + sessrev.max_ttl; returns the new expiry, NULL when not live.';

-- PL/pgSQL cannot name an input and an output column alike (token), which the
-- contract of rotate_token does: the body lives in rotate_session_token.
CREATE FUNCTION sessrev.rotate_session_token(old_token text)
RETURNS TABLE (new_token text, expires_at timestamptz)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_new     text := sessrev.generate_token(32);
    v_old     bytea := sessrev.hash_token(rotate_session_token.old_token);
    v_idle    interval := current_setting('sessrev.idle_timeout')::interval;
    v_id      uuid;
    v_user    text;
    v_expires timestamptz;
BEGIN
    UPDATE sessrev.sessions s
       SET token_hash = sessrev.hash_token(v_new), last_active_at = now()
     WHERE s.token_hash = v_old AND NOT s.revoked AND s.expires_at > now()
       AND (v_idle = interval '0' OR s.last_active_at > now() - v_idle)
    RETURNING s.id, s.user_id, s.expires_at INTO v_id, v_user, v_expires;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    INSERT INTO sessrev.retired_tokens (token_hash, session_id, expires_at)
    VALUES (v_old, v_id, v_expires);
    INSERT INTO sessrev.session_audit_log (session_id, user_id, action, actor)
    VALUES (v_id, v_user, 'TOKEN_ROTATED', v_user);
    PERFORM sessrev.remember_current_session(v_id, v_user);
    RETURN QUERY SELECT v_new, v_expires;
END
$$;
COMMENT ON FUNCTION sessrev.rotate_session_token(text) IS
    'Internal: the body of rotate_token. Never grant it.';

CREATE FUNCTION sessrev.rotate_token(token text)
RETURNS TABLE (token text, expires_at timestamptz)
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT r.new_token, r.expires_at FROM sessrev.rotate_session_token($1) r
$$;
COMMENT ON FUNCTION sessrev.rotate_token(text) IS
    'Issues a new token for the live session of this one and retires the old; no row when not live.';

--------------------------------------------------------------------------------
-- Automatic revocation on account changes
--------------------------------------------------------------------------------

CREATE FUNCTION sessrev.user_table_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id_column   text := TG_ARGV[0];
    v_credentials text[] := TG_ARGV[1]::text[];
    v_privileges  text[] := TG_ARGV[2]::text[];
    v_old         jsonb := to_jsonb(OLD);
    v_new         jsonb;
    v_user        text := v_old ->> v_id_column;
    v_column      text;
BEGIN
    IF v_user IS NULL OR v_user = '' THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'DELETE' THEN
        PERFORM sessrev.revoke_user_sessions(v_user, 'User deleted', session_user);
        RETURN NULL;
    END IF;
    v_new := to_jsonb(NEW);
    FOREACH v_column IN ARRAY v_privileges LOOP
        IF v_old -> v_column IS DISTINCT FROM v_new -> v_column THEN
            PERFORM sessrev.revoke_user_sessions(v_user, 'Privileges changed', session_user);
            RETURN NULL;
        END IF;
    END LOOP;
    FOREACH v_column IN ARRAY v_credentials LOOP
        IF v_old -> v_column IS DISTINCT FROM v_new -> v_column THEN
            IF sessrev.current_user_id() = v_user THEN
                -- The user changed their own credentials: keep the session they did it from.
                PERFORM sessrev.revoke_user_sessions(v_user, 'Credentials changed', v_user,
                                                     sessrev.current_session_id());
            ELSE
                PERFORM sessrev.revoke_user_sessions(v_user, 'Credentials reset', session_user);
            END IF;
            RETURN NULL;
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION sessrev.user_table_changed() IS
    'Trigger installed by track_user_table: revokes a user''s sessions when the user is deleted or their credentials or privileges change.';

CREATE FUNCTION sessrev.track_user_table(
    tbl                regclass,
    id_column          name,
    credential_columns name[] DEFAULT '{}',
    privilege_columns  name[] DEFAULT '{}')
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_column name;
BEGIN
    IF tbl IS NULL OR id_column IS NULL OR credential_columns IS NULL OR privilege_columns IS NULL THEN
        RAISE EXCEPTION 'arguments must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF (SELECT relkind FROM pg_class WHERE oid = tbl) NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '% is not a table', tbl USING ERRCODE = 'wrong_object_type';
    END IF;
    FOREACH v_column IN ARRAY ARRAY[id_column] || credential_columns || privilege_columns LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_attribute
                        WHERE attrelid = tbl AND attname = v_column AND attnum > 0 AND NOT attisdropped) THEN
            RAISE EXCEPTION 'column "%" of % does not exist', v_column, tbl
                USING ERRCODE = 'undefined_column';
        END IF;
    END LOOP;
    PERFORM sessrev.untrack_user_table(tbl);
    EXECUTE format('CREATE TRIGGER sessrev_revoke_sessions AFTER UPDATE OR DELETE ON %s '
                   'FOR EACH ROW EXECUTE FUNCTION sessrev.user_table_changed(%L, %L, %L)',
                   tbl, id_column, credential_columns, privilege_columns);
END
$$;
COMMENT ON FUNCTION sessrev.track_user_table(regclass, name, name[], name[]) IS
    'Installs the trigger that revokes a user''s sessions when the user row is deleted or a credential or privilege column changes.';

CREATE FUNCTION sessrev.untrack_user_table(tbl regclass) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = tbl AND tgname = 'sessrev_revoke_sessions') THEN
        EXECUTE format('DROP TRIGGER sessrev_revoke_sessions ON %s', tbl);
    END IF;
END
$$;
COMMENT ON FUNCTION sessrev.untrack_user_table(regclass) IS
    'Removes the trigger installed by track_user_table.';

--------------------------------------------------------------------------------
-- Privileges: nothing for PUBLIC. See README.md for an application role's grants.
--------------------------------------------------------------------------------

REVOKE ALL ON ALL TABLES IN SCHEMA sessrev FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA sessrev FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA sessrev FROM PUBLIC;
REVOKE ALL ON SCHEMA sessrev FROM PUBLIC;
-- sessrev 1.0 -> 1.1: the security release. See SECURITY.md for the threat
-- model; each change below names the hole it closes.
\echo Use "ALTER EXTENSION sessrev UPDATE TO '1.1'" to load this file. \quit

--------------------------------------------------------------------------------
-- The schema belongs to whoever installs sessrev (schema squatting)
--------------------------------------------------------------------------------

-- CREATE EXTENSION adopts an existing schema named sessrev. One created
-- beforehand by another role would let that role swap sessrev's objects for
-- its own: refuse it, and refuse objects in it that sessrev does not own.
DO $$
DECLARE
    v_owner   oid := (SELECT n.nspowner FROM pg_catalog.pg_namespace n
                       WHERE n.nspname OPERATOR(pg_catalog.=) 'sessrev');
    v_foreign text;
BEGIN
    IF v_owner OPERATOR(pg_catalog.<>) (SELECT r.oid FROM pg_catalog.pg_roles r
                                        WHERE r.rolname OPERATOR(pg_catalog.=) current_user)
       AND NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid OPERATOR(pg_catalog.=) v_owner) THEN
        RAISE EXCEPTION 'schema sessrev is owned by role %, not by the role installing sessrev',
                        v_owner::regrole
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Another role created schema sessrev first. Inspect it, then DROP it (or ALTER SCHEMA sessrev OWNER TO a superuser) and try again.';
    END IF;
    SELECT c.oid::regclass::text INTO v_foreign
      FROM pg_catalog.pg_class c
     WHERE c.relnamespace OPERATOR(pg_catalog.=) 'sessrev'::regnamespace
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                        WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::regclass
                          AND d.objid OPERATOR(pg_catalog.=) c.oid
                          AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::regclass
                          AND d.deptype OPERATOR(pg_catalog.=) 'e')
       AND c.relkind OPERATOR(pg_catalog.<>) ALL (ARRAY['i', 'S', 't']::"char"[])
    UNION ALL
    SELECT o.oid::regprocedure::text FROM pg_catalog.pg_proc o
     WHERE o.pronamespace OPERATOR(pg_catalog.=) 'sessrev'::regnamespace
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                        WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::regclass
                          AND d.objid OPERATOR(pg_catalog.=) o.oid
                          AND d.deptype OPERATOR(pg_catalog.=) 'e')
    UNION ALL
    SELECT o.oid::regoperator::text FROM pg_catalog.pg_operator o
     WHERE o.oprnamespace OPERATOR(pg_catalog.=) 'sessrev'::regnamespace
    UNION ALL
    SELECT t.oid::regtype::text FROM pg_catalog.pg_type t
     WHERE t.typnamespace OPERATOR(pg_catalog.=) 'sessrev'::regnamespace
       AND t.typrelid OPERATOR(pg_catalog.=) 0
       AND t.typelem OPERATOR(pg_catalog.=) 0
     LIMIT 1;
    IF v_foreign IS NOT NULL THEN
        RAISE EXCEPTION 'schema sessrev holds %, which is not part of the extension', v_foreign
            USING ERRCODE = 'insufficient_privilege';
    END IF;
END
$$;

--------------------------------------------------------------------------------
-- One rule for "live"
--------------------------------------------------------------------------------

CREATE FUNCTION sessrev.session_is_live(revoked boolean, expires_at timestamptz,
                                        last_active_at timestamptz) RETURNS boolean
    LANGUAGE c STABLE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'session_is_live';
COMMENT ON FUNCTION sessrev.session_is_live(boolean, timestamptz, timestamptz) IS
    'The one rule for a live session: not revoked, not expired, not idle longer than sessrev.idle_timeout. Every view and function of sessrev applies it; is_revoked answers its negation.';

-- NOT revoked repeats part of the rule so that the partial indexes apply.
CREATE OR REPLACE VIEW sessrev.active_sessions AS
SELECT id, user_id, device_info, ip_address, user_agent, metadata,
       created_at, last_active_at, expires_at
  FROM sessrev.sessions
 WHERE NOT revoked AND sessrev.session_is_live(revoked, expires_at, last_active_at);
COMMENT ON VIEW sessrev.active_sessions IS
    'Live sessions by sessrev.session_is_live (not revoked, expired or idle), without token_hash.';

--------------------------------------------------------------------------------
-- One revoke-and-audit path (C++), in one lock order
--------------------------------------------------------------------------------

-- COST: each runs a query, and the planner must evaluate the caller's cheap
-- conditions first (WHERE i % 3 = 0 AND sessrev.revoke_session(id)).

CREATE OR REPLACE FUNCTION sessrev.revoke_session(
    session_id uuid,
    reason     text DEFAULT 'User logout',
    revoked_by text DEFAULT NULL)
RETURNS boolean
LANGUAGE c VOLATILE SECURITY DEFINER COST 1000
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'revoke_session';
COMMENT ON FUNCTION sessrev.revoke_session(uuid, text, text) IS
    'Revokes one live session (log out one device); false when unknown or not live. revoked_by defaults to the session user.';

CREATE OR REPLACE FUNCTION sessrev.revoke_user_sessions(
    user_id            text,
    reason             text DEFAULT 'Admin action',
    revoked_by         text DEFAULT NULL,
    exclude_session_id uuid DEFAULT NULL)
RETURNS integer
LANGUAGE c VOLATILE SECURITY DEFINER COST 1000
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'revoke_user_sessions';

CREATE OR REPLACE FUNCTION sessrev.revoke_all_sessions(
    reason     text DEFAULT 'Emergency revocation',
    revoked_by text DEFAULT NULL)
RETURNS integer
LANGUAGE c VOLATILE SECURITY DEFINER COST 1000
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'revoke_all_sessions';

--------------------------------------------------------------------------------
-- The cache's triggers: re-arming them after a restore
--------------------------------------------------------------------------------

-- pg_restore --disable-triggers ends with ENABLE TRIGGER ALL, which leaves
-- sessrev's triggers ordinary ones (silent under session_replication_role =
-- replica): the cache then stops serving the database until they are ALWAYS
-- again (see SECURITY.md).
CREATE FUNCTION sessrev.arm_triggers() RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    ALTER TABLE sessrev.sessions ENABLE ALWAYS TRIGGER sessions_cache_invalidation,
                                 ENABLE ALWAYS TRIGGER sessions_cache_flush;
    ALTER TABLE sessrev.jwt_denylist ENABLE ALWAYS TRIGGER jwt_denylist_cache,
                                     ENABLE ALWAYS TRIGGER jwt_denylist_cache_truncate;
    ALTER TABLE sessrev.user_token_cutoffs ENABLE ALWAYS TRIGGER user_token_cutoffs_cache,
                                           ENABLE ALWAYS TRIGGER user_token_cutoffs_cache_truncate;
    ALTER TABLE sessrev.global_token_cutoff ENABLE ALWAYS TRIGGER global_token_cutoff_cache,
                                            ENABLE ALWAYS TRIGGER global_token_cutoff_cache_truncate;
END
$$;
COMMENT ON FUNCTION sessrev.arm_triggers() IS
    'Enables every trigger the cache relies on ALWAYS again (after pg_restore --disable-triggers); the cache is flushed and serves the database again at commit. Needs the tables'' owner.';

CREATE FUNCTION sessrev.lock_user_sessions(user_id text) RETURNS void
    LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'lock_user_sessions';
COMMENT ON FUNCTION sessrev.lock_user_sessions(text) IS
    'Internal: takes the user''s revocation lock until the transaction ends (a lock no SQL role can take). Never grant it.';

--------------------------------------------------------------------------------
-- The current session
--------------------------------------------------------------------------------

CREATE FUNCTION sessrev.forget_current_session() RETURNS void
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'forget_current_session';
COMMENT ON FUNCTION sessrev.forget_current_session() IS
    'Internal: clears the transaction''s current session when a validation fails. Never grant it.';

--------------------------------------------------------------------------------
-- validate_session: revocation wins at every isolation level
--------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION sessrev.validate_session(token text)
RETURNS TABLE (session_id uuid, user_id text, expires_at timestamptz,
               last_active_at timestamptz, metadata jsonb)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_hash    bytea := sessrev.hash_token(validate_session.token);
    v_idle    interval := current_setting('sessrev.idle_timeout')::interval;
    v_touch   interval := current_setting('sessrev.touch_interval')::interval;
    v_row     sessrev.sessions%ROWTYPE;
    v_retired sessrev.retired_tokens%ROWTYPE;
BEGIN
    -- Until this validation succeeds, the transaction has no current session.
    PERFORM sessrev.forget_current_session();
    IF v_hash IS NULL OR validate_session.token = '' THEN
        RETURN;
    END IF;
    SELECT * INTO v_row FROM sessrev.sessions s WHERE s.token_hash = v_hash;
    IF NOT FOUND THEN
        -- A token replaced by rotate_token still serves requests already in
        -- flight; presented later, it was stolen: the whole session goes.
        SELECT * INTO v_retired FROM sessrev.retired_tokens r WHERE r.token_hash = v_hash;
        IF NOT FOUND THEN
            RETURN;
        END IF;
        IF now() - v_retired.retired_at > current_setting('sessrev.reuse_interval')::interval THEN
            PERFORM sessrev.revoke_session(v_retired.session_id, 'Token reuse detected', 'sessrev');
            INSERT INTO sessrev.session_audit_log (session_id, user_id, action, actor, details)
            SELECT s.id, s.user_id, 'TOKEN_REUSE', 'sessrev',
                   jsonb_build_object('retired_at', v_retired.retired_at)
              FROM sessrev.sessions s WHERE s.id = v_retired.session_id;
            RETURN;
        END IF;
        SELECT * INTO v_row FROM sessrev.sessions s WHERE s.id = v_retired.session_id;
    END IF;
    -- is_revoked reads the latest committed state, whatever this transaction's
    -- snapshot: a revocation that committed after it began still wins.
    IF v_row.id IS NULL OR sessrev.is_revoked(v_row.id) THEN
        RETURN;
    END IF;
    -- Touch at most once per touch_interval, and often enough that an active
    -- session never looks idle.
    IF v_idle > interval '0' AND v_idle / 2 < v_touch THEN
        v_touch := v_idle / 2;
    END IF;
    -- A touch never waits: while another transaction holds the row (a
    -- revocation in progress, a concurrent request's touch) or the table
    -- (revoke_all_sessions), or in a read-only transaction, it is skipped and
    -- a later request touches.
    IF v_row.last_active_at <= now() - v_touch THEN
        BEGIN
            LOCK TABLE sessrev.sessions IN ROW EXCLUSIVE MODE NOWAIT;
            PERFORM FROM sessrev.sessions s WHERE s.id = v_row.id FOR UPDATE SKIP LOCKED;
            IF FOUND THEN
                UPDATE sessrev.sessions s SET last_active_at = now()
                 WHERE s.id = v_row.id AND NOT s.revoked;
                IF NOT FOUND THEN
                    RETURN;  -- revoked by a transaction that committed meanwhile
                END IF;
                v_row.last_active_at := now();
            END IF;
        EXCEPTION WHEN lock_not_available OR serialization_failure OR read_only_sql_transaction THEN
            NULL;
        END;
    END IF;
    -- The rest of this transaction knows its session (current_session_id()).
    PERFORM sessrev.remember_current_session(v_row.id, v_row.user_id);
    RETURN QUERY SELECT v_row.id, v_row.user_id, v_row.expires_at, v_row.last_active_at,
                        v_row.metadata;
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
    RETURN QUERY SELECT v_new, v_expires;
END
$$;

CREATE OR REPLACE FUNCTION sessrev.extend_session(session_id uuid, by interval) RETURNS timestamptz
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
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
        VALUES (extend_session.session_id, v_user, 'SESSION_EXTENDED', session_user,
                jsonb_build_object('by', extend_session.by, 'expires_at', v_expires));
    END IF;
    RETURN v_expires;
END
$$;

--------------------------------------------------------------------------------
-- create_session: ttl checked before any arithmetic; the limit revokes through
-- the one path, in id order
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

    RETURN QUERY SELECT v_id, v_token, v_expires;
END
$$;

--------------------------------------------------------------------------------
-- Automatic revocation on account changes: no table owner's code runs with
-- sessrev's rights; columns followed by number; TRUNCATE, id changes and
-- replication apply revoke too
--------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION sessrev.user_table_changed() RETURNS trigger
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'user_table_changed';
COMMENT ON FUNCTION sessrev.user_table_changed() IS
    'Trigger installed by track_user_table: revokes a user''s sessions when the user row is deleted or truncated, its id changes, or a credential or privilege column changes. Runs as the role that changed the table and compares stored bytes, never the table''s own operators or casts.';

CREATE OR REPLACE FUNCTION sessrev.untrack_user_table(tbl regclass) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = tbl AND tgname = 'sessrev_revoke_sessions') THEN
        EXECUTE format('DROP TRIGGER sessrev_revoke_sessions ON %s', tbl);
    END IF;
    IF EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = tbl AND tgname = 'sessrev_revoke_sessions_truncate') THEN
        EXECUTE format('DROP TRIGGER sessrev_revoke_sessions_truncate ON %s', tbl);
    END IF;
END
$$;
COMMENT ON FUNCTION sessrev.untrack_user_table(regclass) IS
    'Removes the triggers installed by track_user_table.';

CREATE OR REPLACE FUNCTION sessrev.track_user_table(
    tbl                regclass,
    id_column          name,
    credential_columns name[] DEFAULT '{}',
    privilege_columns  name[] DEFAULT '{}')
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_column  name;
    v_attnum  int2;
    v_id      int2;
    v_creds   int2[] := '{}';
    v_privs   int2[] := '{}';
    v_watched text[] := '{}';
BEGIN
    IF tbl IS NULL OR id_column IS NULL OR credential_columns IS NULL OR privilege_columns IS NULL THEN
        RAISE EXCEPTION 'arguments must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF (SELECT relkind FROM pg_class WHERE oid = tbl) = 'p' THEN
        -- TRUNCATE of one partition would fire no trigger of the parent's.
        RAISE EXCEPTION '% is partitioned: track a plain table', tbl
            USING ERRCODE = 'feature_not_supported';
    END IF;
    IF (SELECT relkind FROM pg_class WHERE oid = tbl) <> 'r' THEN
        RAISE EXCEPTION '% is not a table', tbl USING ERRCODE = 'wrong_object_type';
    END IF;
    FOREACH v_column IN ARRAY ARRAY[id_column] || credential_columns || privilege_columns LOOP
        SELECT attnum INTO v_attnum FROM pg_attribute
         WHERE attrelid = tbl AND attname = v_column AND attnum > 0 AND NOT attisdropped;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'column "%" of % does not exist', v_column, tbl
                USING ERRCODE = 'undefined_column';
        END IF;
        IF NOT 'OLD.' || quote_ident(v_column) = ANY (v_watched) THEN
            v_watched := v_watched || ('OLD.' || quote_ident(v_column));
        END IF;
    END LOOP;
    v_id := (SELECT attnum FROM pg_attribute WHERE attrelid = tbl AND attname = id_column);
    SELECT coalesce(array_agg(a.attnum ORDER BY u.n), '{}') INTO v_creds
      FROM unnest(credential_columns) WITH ORDINALITY u(name, n)
      JOIN pg_attribute a ON a.attrelid = tbl AND a.attname = u.name;
    SELECT coalesce(array_agg(a.attnum ORDER BY u.n), '{}') INTO v_privs
      FROM unnest(privilege_columns) WITH ORDINALITY u(name, n)
      JOIN pg_attribute a ON a.attrelid = tbl AND a.attname = u.name;
    PERFORM sessrev.untrack_user_table(tbl);
    -- Columns go by number, so a renamed column stays tracked. The WHEN
    -- clause, always true and free of the columns' own operators, makes the
    -- trigger depend on each column, so dropping one is refused (UPDATE OF
    -- would too, but would miss columns that a BEFORE trigger changes).
    -- ALWAYS: changes applied by logical replication (session_replication_role
    -- = replica) revoke too.
    EXECUTE format('CREATE TRIGGER sessrev_revoke_sessions AFTER UPDATE OR DELETE ON %s '
                   'FOR EACH ROW WHEN (pg_catalog.num_nulls(%s) OPERATOR(pg_catalog.>=) 0) '
                   'EXECUTE FUNCTION sessrev.user_table_changed(%L, %L, %L)',
                   tbl, array_to_string(v_watched, ', '), v_id, v_creds, v_privs);
    EXECUTE format('CREATE TRIGGER sessrev_revoke_sessions_truncate BEFORE TRUNCATE ON %s '
                   'FOR EACH STATEMENT EXECUTE FUNCTION sessrev.user_table_changed(%L, %L, %L)',
                   tbl, v_id, v_creds, v_privs);
    EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER sessrev_revoke_sessions', tbl);
    EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER sessrev_revoke_sessions_truncate', tbl);
END
$$;
COMMENT ON FUNCTION sessrev.track_user_table(regclass, name, name[], name[]) IS
    'Installs the triggers that revoke a user''s sessions when the user row is deleted or truncated, its id changes, or a credential or privilege column changes.';

-- Tables tracked under 1.0 (columns by name, plpgsql trigger) are tracked anew.
DO $$
DECLARE
    v_trigger record;
    v_args    text[];
BEGIN
    FOR v_trigger IN
        SELECT t.tgrelid::regclass AS tbl, t.tgargs
          FROM pg_catalog.pg_trigger t
         WHERE t.tgname OPERATOR(pg_catalog.=) 'sessrev_revoke_sessions'
           AND t.tgparentid OPERATOR(pg_catalog.=) 0  -- not a partition's clone
           AND t.tgfoid OPERATOR(pg_catalog.=) 'sessrev.user_table_changed()'::pg_catalog.regprocedure
    LOOP
        v_args := pg_catalog.string_to_array(pg_catalog.encode(v_trigger.tgargs, 'escape'), '\000');
        BEGIN
            PERFORM sessrev.track_user_table(v_trigger.tbl, v_args[1]::name,
                                             v_args[2]::name[], v_args[3]::name[]);
        EXCEPTION WHEN undefined_column OR feature_not_supported THEN
            RAISE WARNING 'sessrev: % cannot be tracked by 1.1 (%); its updates and deletes raise an error until sessrev.untrack_user_table or track_user_table is run for it', v_trigger.tbl, SQLERRM;
        END;
    END LOOP;
END
$$;

--------------------------------------------------------------------------------
-- JWT denylist: bounded expiry, bounded reason, an actor on every audit row
--------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION sessrev.revoke_jwt(
    jti        text,
    expires_at timestamptz,
    user_id    text DEFAULT NULL,
    reason     text DEFAULT 'Token revoked',
    revoked_by text DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_added boolean;
    v_actor text := coalesce(revoke_jwt.revoked_by, session_user);
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
    INSERT INTO sessrev.jwt_denylist (jti, user_id, expires_at, reason, revoked_by)
    VALUES (revoke_jwt.jti, revoke_jwt.user_id, revoke_jwt.expires_at, revoke_jwt.reason, v_actor)
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
COMMENT ON FUNCTION sessrev.revoke_jwt(text, timestamptz, text, text, text) IS
    'Denylists one JWT by jti until its own expiry (at most sessrev.max_ttl away); false when it was denylisted already.';

--------------------------------------------------------------------------------
-- Grant profiles: a trusted backend, an end user (browser-facing), an auditor
--------------------------------------------------------------------------------

CREATE FUNCTION sessrev.grant_end_user(role regrole) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- Only what acts on the session the caller's own token validated.
    EXECUTE format('GRANT USAGE ON SCHEMA sessrev TO %s', role);
    EXECUTE format('GRANT EXECUTE ON FUNCTION sessrev.validate_session(text), sessrev.is_revoked(text), '
                   'sessrev.current_session_id(), sessrev.current_user_id(), sessrev.my_sessions(), '
                   'sessrev.revoke_my_session(uuid), sessrev.revoke_my_other_sessions(), '
                   'sessrev.revoke_token(text, text, text), sessrev.rotate_token(text), '
                   'sessrev.session_is_live(boolean, timestamptz, timestamptz) TO %s', role);
END
$$;
COMMENT ON FUNCTION sessrev.grant_end_user(regrole) IS
    'Grants what an end user (a browser behind PostgREST or Supabase) may call: only functions that act on the session its own token validated.';

CREATE FUNCTION sessrev.grant_backend(role regrole) RETURNS void
LANGUAGE plpgsql VOLATILE
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
                   'sessrev.is_jwt_revoked(text, text, timestamptz), '
                   'sessrev.revoke_jwt(text, timestamptz, text, text, text), '
                   'sessrev.revoke_user_tokens_before(text, timestamptz) TO %s', role);
END
$$;
COMMENT ON FUNCTION sessrev.grant_backend(regrole) IS
    'Grants what a trusted application backend may call: the end-user functions plus creating, checking and revoking any user''s sessions and JWTs.';

CREATE FUNCTION sessrev.grant_auditor(role regrole) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA sessrev TO %s', role);
    EXECUTE format('GRANT SELECT ON sessrev.session_audit_log, sessrev.active_sessions TO %s', role);
    EXECUTE format('GRANT EXECUTE ON FUNCTION sessrev.session_is_live(boolean, timestamptz, timestamptz), '
                   'sessrev.cache_stats(), sessrev.worker_status() TO %s', role);
END
$$;
COMMENT ON FUNCTION sessrev.grant_auditor(regrole) IS
    'Grants read access to the audit log, the live sessions (without token hashes) and the cache and worker statistics.';

--------------------------------------------------------------------------------
-- Privileges: nothing for PUBLIC
--------------------------------------------------------------------------------

REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA sessrev FROM PUBLIC;
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
-- sessrev 1.3 -> 1.4: validate_session inlined into the caller's query.
\echo Use "ALTER EXTENSION sessrev UPDATE TO '1.4'" to load this file. \quit

--------------------------------------------------------------------------------
-- validate_session as an SQL function PostgreSQL inlines: the caller's query
-- calls the C++ validate_session_record once, in a subquery (it is volatile,
-- so never pulled up and never called twice), instead of scanning a
-- set-returning function through a tuplestore. Same rows, same rights. The
-- body is parsed here, once (BEGIN ATOMIC), so the caller's search_path never
-- picks what it calls.
--------------------------------------------------------------------------------

CREATE FUNCTION sessrev.validate_session_record(token text, OUT session_id uuid, OUT user_id text,
                                                OUT expires_at timestamptz,
                                                OUT last_active_at timestamptz, OUT metadata jsonb)
RETURNS record
    LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'validate_session_record';
COMMENT ON FUNCTION sessrev.validate_session_record(text) IS
    'validate_session''s answer as one record, NULL when the token has no live session; only for roles that may execute validate_session(text). Call validate_session, which PostgreSQL inlines into a query over this.';

-- STABLE (not VOLATILE) only so that the planner inlines it: the body's own
-- call is volatile and runs exactly once per scan.
CREATE OR REPLACE FUNCTION sessrev.validate_session(token text)
RETURNS TABLE (session_id uuid, user_id text, expires_at timestamptz,
               last_active_at timestamptz, metadata jsonb)
    LANGUAGE sql STABLE PARALLEL UNSAFE ROWS 1
BEGIN ATOMIC
    SELECT (v.s).session_id, (v.s).user_id, (v.s).expires_at, (v.s).last_active_at, (v.s).metadata
      FROM (SELECT sessrev.validate_session_record(validate_session.token) AS s) AS v
     WHERE (v.s).session_id IS NOT NULL;
END;

-- The one privilege to grant stays EXECUTE on validate_session:
-- validate_session_record answers only a role that holds it (checked in C++
-- on every call), so it may be executable by anyone who can reach the schema.
GRANT EXECUTE ON FUNCTION sessrev.validate_session_record(text) TO PUBLIC;

--------------------------------------------------------------------------------
-- An update from 1.0 or 1.1 ran 1.2's REVOKE ... ON ALL FUNCTIONS, which
-- recorded the grants a DBA had made on sessrev's functions as the
-- extension's own (pg_init_privs): pg_dump left them out, and a restore lost
-- them. The extension itself grants EXECUTE to no role but PUBLIC: only the
-- owner's and PUBLIC's entries are its own.
--------------------------------------------------------------------------------

UPDATE pg_catalog.pg_init_privs i
   SET initprivs = ARRAY(SELECT pg_catalog.makeaclitem(a.grantee, a.grantor, a.privilege_type, a.is_grantable)
                           FROM pg_catalog.aclexplode(i.initprivs) a
                          WHERE a.grantee OPERATOR(pg_catalog.=) 0
                             OR a.grantee OPERATOR(pg_catalog.=) p.proowner)
  FROM pg_catalog.pg_proc p
 WHERE i.classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
   AND i.objoid OPERATOR(pg_catalog.=) p.oid
   AND i.privtype OPERATOR(pg_catalog.=) 'e'
   AND p.pronamespace OPERATOR(pg_catalog.=) 'sessrev'::pg_catalog.regnamespace;
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
-- sessrev 1.5 -> 1.6: sessrev in a Citus cluster (its tables stay on the
-- coordinator; the library refuses checks on a node whose tables do not hold
-- the rows, docs/SCALING.md; a Citus table, whose triggers fire on its shards,
-- cannot be tracked); an end user's own security history; monitoring; and an
-- iat from jwt_issued_at that is never later than the token's issue.
\echo Use "ALTER EXTENSION sessrev UPDATE TO '1.6'" to load this file. \quit

--------------------------------------------------------------------------------
-- Citus: only the node that holds the rows answers
--------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION sessrev.track_user_table(
    tbl                regclass,
    id_column          name,
    credential_columns name[] DEFAULT '{}',
    privilege_columns  name[] DEFAULT '{}')
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_column  name;
    v_attnum  int2;
    v_id      int2;
    v_creds   int2[] := '{}';
    v_privs   int2[] := '{}';
    v_watched text[] := '{}';
    v_citus   boolean;
BEGIN
    IF tbl IS NULL OR id_column IS NULL OR credential_columns IS NULL OR privilege_columns IS NULL THEN
        RAISE EXCEPTION 'arguments must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF (SELECT relkind FROM pg_class WHERE oid = tbl) = 'p' THEN
        -- TRUNCATE of one partition would fire no trigger of the parent's.
        RAISE EXCEPTION '% is partitioned: track a plain table', tbl
            USING ERRCODE = 'feature_not_supported';
    END IF;
    IF (SELECT relkind FROM pg_class WHERE oid = tbl) <> 'r' THEN
        RAISE EXCEPTION '% is not a table', tbl USING ERRCODE = 'wrong_object_type';
    END IF;
    -- A Citus table fires its triggers on its shards: a distributed or
    -- reference table's on the workers, where sessrev's sessions are not; and
    -- the shard of a Citus local table numbers its columns as the table did
    -- before it joined Citus, not as the table does now.
    IF pg_catalog.to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL THEN
        EXECUTE 'SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_partition
                                 WHERE logicalrelid OPERATOR(pg_catalog.=) $1)'
            INTO v_citus USING tbl;
        IF v_citus THEN
            RAISE EXCEPTION '% is a Citus table', tbl
                USING ERRCODE = 'feature_not_supported',
                      DETAIL = 'Its triggers run on its shards, on the workers for a distributed or reference table, and sessrev''s sessions are on the coordinator.',
                      HINT = 'Revoke in the transaction that changes the user, on the coordinator: '
                             'SELECT sessrev.revoke_user_sessions(id, reason) (see docs/SCALING.md).';
        END IF;
    END IF;
    FOREACH v_column IN ARRAY ARRAY[id_column] || credential_columns || privilege_columns LOOP
        SELECT attnum INTO v_attnum FROM pg_attribute
         WHERE attrelid = tbl AND attname = v_column AND attnum > 0 AND NOT attisdropped;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'column "%" of % does not exist', v_column, tbl
                USING ERRCODE = 'undefined_column';
        END IF;
        IF NOT 'OLD.' || quote_ident(v_column) = ANY (v_watched) THEN
            v_watched := v_watched || ('OLD.' || quote_ident(v_column));
        END IF;
    END LOOP;
    v_id := (SELECT attnum FROM pg_attribute WHERE attrelid = tbl AND attname = id_column);
    SELECT coalesce(array_agg(a.attnum ORDER BY u.n), '{}') INTO v_creds
      FROM unnest(credential_columns) WITH ORDINALITY u(name, n)
      JOIN pg_attribute a ON a.attrelid = tbl AND a.attname = u.name;
    SELECT coalesce(array_agg(a.attnum ORDER BY u.n), '{}') INTO v_privs
      FROM unnest(privilege_columns) WITH ORDINALITY u(name, n)
      JOIN pg_attribute a ON a.attrelid = tbl AND a.attname = u.name;
    PERFORM sessrev.untrack_user_table(tbl);
    -- Columns go by number, so a renamed column stays tracked. The WHEN
    -- clause, always true and free of the columns' own operators, makes the
    -- trigger depend on each column, so dropping one is refused (UPDATE OF
    -- would too, but would miss columns that a BEFORE trigger changes).
    -- ALWAYS: changes applied by logical replication (session_replication_role
    -- = replica) revoke too.
    EXECUTE format('CREATE TRIGGER sessrev_revoke_sessions AFTER UPDATE OR DELETE ON %s '
                   'FOR EACH ROW WHEN (pg_catalog.num_nulls(%s) OPERATOR(pg_catalog.>=) 0) '
                   'EXECUTE FUNCTION sessrev.user_table_changed(%L, %L, %L)',
                   tbl, array_to_string(v_watched, ', '), v_id, v_creds, v_privs);
    EXECUTE format('CREATE TRIGGER sessrev_revoke_sessions_truncate BEFORE TRUNCATE ON %s '
                   'FOR EACH STATEMENT EXECUTE FUNCTION sessrev.user_table_changed(%L, %L, %L)',
                   tbl, v_id, v_creds, v_privs);
    EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER sessrev_revoke_sessions', tbl);
    EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER sessrev_revoke_sessions_truncate', tbl);
END
$$;
COMMENT ON FUNCTION sessrev.track_user_table(regclass, name, name[], name[]) IS
    'Installs the triggers that revoke a user''s sessions when the user row is deleted or truncated, its id changes, or a credential or privilege column changes.';

CREATE FUNCTION sessrev.require_sessions_here() RETURNS void
    LANGUAGE c STABLE PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'require_sessions_here';
COMMENT ON FUNCTION sessrev.require_sessions_here() IS
    'Raises (55000) on a Citus worker, whose copies of sessrev''s tables are empty (the rows are on the coordinator), and where one of sessrev''s tables is a Citus table; returns otherwise.';
REVOKE ALL ON FUNCTION sessrev.require_sessions_here() FROM PUBLIC;

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
        -- Not "no such session" from a Citus worker's empty tables.
        PERFORM sessrev.require_sessions_here();
        RETURN false;
    END IF;
    RETURN coalesce(sessrev.revoke_session(v_id, revoke_token.reason,
                                           coalesce(revoke_token.revoked_by, sessrev.current_user_id(), v_user)),
                    false);
END
$$;

--------------------------------------------------------------------------------
-- End users' own security history
--------------------------------------------------------------------------------

CREATE FUNCTION sessrev.my_security_events(max_events integer DEFAULT 50)
RETURNS TABLE (occurred_at timestamptz, action text, session_id uuid, device_info text,
               ip_address inet, reason text, is_current boolean)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_user     text := sessrev.current_user_id();
    v_released bigint;
BEGIN
    IF v_user IS NULL THEN
        RAISE EXCEPTION 'no current session: call sessrev.validate_session first'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF max_events IS NULL OR max_events < 1 OR max_events > 1000 THEN
        RAISE EXCEPTION 'max_events must be between 1 and 1000' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Only this holder's events: an id freed and taken again (its row
    -- deleted or its id changed in a tracked users table, or
    -- sessrev.release_user_id) starts a history of its own.
    SELECT max(r.id) INTO v_released FROM sessrev.session_audit_log r
     WHERE r.user_id = v_user AND r.action = 'USER_ID_RELEASED';
    -- The session row, while cleanup keeps it, gives a revocation's device.
    -- A reason written by someone else (an administrator's note) is theirs:
    -- only the user's own and sessrev's are shown.
    RETURN QUERY
    SELECT a.created_at, a.action, a.session_id,
           coalesce(s.device_info, sessrev.device_from_user_agent(coalesce(a.user_agent, s.user_agent))),
           coalesce(a.ip_address, s.ip_address),
           CASE WHEN a.actor IS NULL OR a.actor = v_user THEN a.details ->> 'reason' END,
           coalesce(a.session_id = sessrev.current_session_id(), false)
      FROM sessrev.session_audit_log a
      LEFT JOIN sessrev.sessions s ON s.id = a.session_id AND s.user_id = a.user_id
     WHERE a.user_id = v_user AND a.id > coalesce(v_released, 0) AND a.action <> 'USER_ID_RELEASED'
     ORDER BY a.created_at DESC, a.id DESC
     LIMIT max_events;
END
$$;
COMMENT ON FUNCTION sessrev.my_security_events(integer) IS
    'The current session''s user''s own audit events (logins, revocations, rotations, token reuse, JWT revocations), newest first, with device, IP and reason (the user''s own or sessrev''s; an administrator''s is not shown); nothing of other users, nor of a former holder of the same user id (before its release_user_id). For the end-user profile (grant_end_user); 42501 without a current session.';
REVOKE ALL ON FUNCTION sessrev.my_security_events(integer) FROM PUBLIC;

CREATE FUNCTION sessrev.release_user_id(user_id text) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF release_user_id.user_id IS NULL THEN
        RAISE EXCEPTION 'user_id must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    INSERT INTO sessrev.session_audit_log (user_id, action, actor)
    VALUES (release_user_id.user_id, 'USER_ID_RELEASED', sessrev.current_user_id());
END
$$;
COMMENT ON FUNCTION sessrev.release_user_id(text) IS
    'Marks a user id as freed (audit USER_ID_RELEASED): a later holder of the same id does not see the former one''s events in my_security_events. A tracked users table does it when a row is deleted or its id changes; call it yourself when you delete users otherwise. Granted by grant_backend.';
REVOKE ALL ON FUNCTION sessrev.release_user_id(text) FROM PUBLIC;

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
                   'sessrev.session_revoked_apart(uuid, timestamptz), '
                   'sessrev.my_security_events(integer) TO %s', role);
END
$$;


--------------------------------------------------------------------------------
-- Monitoring: what the caches' and the worker's functions do not say
--------------------------------------------------------------------------------

CREATE FUNCTION sessrev.touch_queue_waiting() RETURNS bigint
    LANGUAGE c VOLATILE
    AS 'MODULE_PATHNAME', 'touch_queue_waiting';
COMMENT ON FUNCTION sessrev.touch_queue_waiting() IS
    'Touches queued in shared memory for the worker to write (every database''s); 0 when the library is not preloaded.';
REVOKE ALL ON FUNCTION sessrev.touch_queue_waiting() FROM PUBLIC;

CREATE FUNCTION sessrev.metrics()
RETURNS TABLE (sessions_unexpired bigint, sessions_due_for_cleanup bigint,
               pending_revocations bigint, jwt_denylist_entries bigint, touch_queue_waiting bigint)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT (SELECT count(*) FROM sessrev.sessions s
             WHERE NOT s.revoked AND s.expires_at OPERATOR(pg_catalog.>) now()),
           -- The worker's retention: expired a week, revoked a month.
           (SELECT count(*) FROM sessrev.sessions s
             WHERE s.expires_at OPERATOR(pg_catalog.<) (now() OPERATOR(pg_catalog.-) interval '7 days'))
         OPERATOR(pg_catalog.+)
           (SELECT count(*) FROM sessrev.sessions s
             WHERE s.revoked AND s.revoked_at OPERATOR(pg_catalog.<) (now() OPERATOR(pg_catalog.-) interval '30 days')
               AND s.expires_at OPERATOR(pg_catalog.>=) (now() OPERATOR(pg_catalog.-) interval '7 days')),
           (SELECT count(*) FROM sessrev.pending_revocations),
           (SELECT count(*) FROM sessrev.jwt_denylist),
           sessrev.touch_queue_waiting()
$$;
COMMENT ON FUNCTION sessrev.metrics() IS
    'One row for monitoring (monitoring/prometheus-queries.yaml): sessions neither revoked nor expired (idle ones and those behind a cut-off included), sessions the cleanup worker will delete, revocations waiting to be folded into their rows, denylisted JWTs, touches queued for the worker. Counts rows: each call reads the indexes of the sessions table. Granted by grant_auditor.';
REVOKE ALL ON FUNCTION sessrev.metrics() FROM PUBLIC;

CREATE OR REPLACE FUNCTION sessrev.grant_auditor(role regrole) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA sessrev TO %s', role);
    EXECUTE format('GRANT SELECT ON sessrev.session_audit_log, sessrev.active_sessions TO %s', role);
    EXECUTE format('GRANT EXECUTE ON FUNCTION sessrev.session_is_live(boolean, timestamptz, timestamptz), '
                   'sessrev.session_revoked_apart(uuid, timestamptz), '
                   'sessrev.cache_stats(), sessrev.session_cache_stats(), sessrev.worker_status(), '
                   'sessrev.metrics() TO %s', role);
END
$$;


--------------------------------------------------------------------------------
-- jwt_issued_at never hands out an iat later than the clock
--------------------------------------------------------------------------------

-- iat has whole seconds, a cut-off microseconds. 1.5 gave a token issued in
-- the second of a cut-off, after it, the next second as its iat: an iat later
-- than its issue, which a second cut-off in that same second did not revoke
-- (the token, issued before it, carried an iat after it). Now the call waits
-- for that next second instead (under a second, and only right after a
-- cut-off of the user or of everyone), so that every iat is a time the token
-- was issued at or after.
CREATE OR REPLACE FUNCTION sessrev.jwt_issued_at(user_id text) RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    v_latest timestamptz;
    v_next   timestamptz;
BEGIN
    SELECT greatest((SELECT c.not_before FROM sessrev.user_token_cutoffs c
                      WHERE c.user_id OPERATOR(pg_catalog.=) jwt_issued_at.user_id),
                    (SELECT max(p.not_before) FROM sessrev.pending_revocations p
                      WHERE p.user_id OPERATOR(pg_catalog.=) jwt_issued_at.user_id),
                    (SELECT g.not_before FROM sessrev.global_token_cutoff g))
      INTO v_latest;
    -- The first whole second not before the latest cut-off: a token issued
    -- from then on has an iat the cut-off does not refuse.
    v_next := date_trunc('second', v_latest);
    IF v_next OPERATOR(pg_catalog.<) v_latest THEN
        v_next := v_next OPERATOR(pg_catalog.+) interval '1 second';
    END IF;
    IF v_next OPERATOR(pg_catalog.>) (clock_timestamp() OPERATOR(pg_catalog.+) interval '1 second') THEN
        -- Cut-offs are never set ahead of the clock: this one is, or the
        -- clock went back. Waiting for it could take any time.
        RAISE EXCEPTION 'the latest JWT cut-off of user % is % ahead of the clock', user_id,
            v_next OPERATOR(pg_catalog.-) clock_timestamp()
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF v_next OPERATOR(pg_catalog.>) clock_timestamp() THEN
        PERFORM pg_sleep(extract(epoch FROM v_next OPERATOR(pg_catalog.-) clock_timestamp()));
    END IF;
    RETURN floor(extract(epoch FROM greatest(clock_timestamp(), v_next)))::bigint;
END
$$;
COMMENT ON FUNCTION sessrev.jwt_issued_at(text) IS
    'The iat (Unix seconds) to put in a new JWT of the user: now in whole seconds. Right after a cut-off of the user or of everyone, it first waits for the next whole second (under a second), so that the token is not refused by that cut-off and no iat is later than its issue.';

-- A backend frees user ids (release_user_id).
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
                   'sessrev.revoke_user_tokens_before(text, timestamptz), sessrev.release_user_id(text) TO %s', role);
END
$$;

--------------------------------------------------------------------------------
-- Roles granted a profile before 1.6 get what it now holds: each profile is
-- known by a function that only it grants.
--------------------------------------------------------------------------------

DO $$
DECLARE
    v_added record;
    v_role  regrole;
BEGIN
    FOR v_added IN
        SELECT * FROM (VALUES
            ('sessrev.my_sessions()'::pg_catalog.regprocedure, 'sessrev.my_security_events(integer)'::pg_catalog.regprocedure),
            ('sessrev.worker_status()', 'sessrev.metrics()'),
            ('sessrev.revoke_user_sessions(text, text, text, uuid)', 'sessrev.release_user_id(text)')) AS a(profile, fn)
    LOOP
        FOR v_role IN
            SELECT DISTINCT a.grantee::regrole
              FROM pg_catalog.pg_proc p, pg_catalog.aclexplode(p.proacl) a
             WHERE p.oid OPERATOR(pg_catalog.=) v_added.profile
               AND a.privilege_type OPERATOR(pg_catalog.=) 'EXECUTE'
               AND a.grantee OPERATOR(pg_catalog.<>) p.proowner
               AND a.grantee OPERATOR(pg_catalog.<>) 0
        LOOP
            EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO %s', v_added.fn, v_role);
        END LOOP;
    END LOOP;
END
$$;
-- sessrev 1.6 -> 1.7: the replicated layout in a Citus cluster. sessrev's
-- tables become reference tables, so that every node holds every row and
-- answers checks from its own placement and its own cache, while each write
-- reaches every placement in Citus's transaction.
\echo Use "ALTER EXTENSION sessrev UPDATE TO '1.7'" to load this file. \quit

--------------------------------------------------------------------------------
-- sessrev.replicate(): every one of sessrev's tables a reference table
--------------------------------------------------------------------------------

-- Not SECURITY DEFINER: making a table a reference table takes its owner
-- (create_reference_table checks it), so whoever may call this could run
-- those calls by hand. Refuses before changing anything where the result
-- would not serve (Citus missing, not the coordinator).
CREATE FUNCTION sessrev.replicate() RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_table  text;
    v_group  int;
    v_done   int := 0;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname OPERATOR(pg_catalog.=) 'citus') THEN
        RAISE EXCEPTION 'sessrev.replicate() needs Citus'
            USING ERRCODE = '55000',
                  HINT = 'CREATE EXTENSION citus, then add the nodes (docs/SCALING.md).';
    END IF;
    EXECUTE 'SELECT groupid FROM pg_catalog.pg_dist_local_group' INTO v_group;
    IF v_group IS DISTINCT FROM 0 THEN
        RAISE EXCEPTION 'sessrev.replicate() runs on the coordinator'
            USING ERRCODE = '55000',
                  DETAIL = format('This node is in Citus group %s.', v_group);
    END IF;
    -- Reference tables get a placement on the coordinator only once it is in
    -- the metadata: without one, its checks would have nothing to read.
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_dist_node WHERE groupid OPERATOR(pg_catalog.=) 0) THEN
        RAISE EXCEPTION 'the coordinator is not in Citus''s metadata'
            USING ERRCODE = '55000',
                  HINT = 'Run SELECT citus_set_coordinator_host(''<its host>'', <its port>); first.';
    END IF;
    -- sessrev's triggers keep the caches right: Citus copies them onto every
    -- shard only with this set.
    PERFORM pg_catalog.set_config('citus.enable_unsafe_triggers', 'on', true);
    FOREACH v_table IN ARRAY ARRAY['sessions', 'retired_tokens', 'session_audit_log', 'jwt_denylist',
                                   'user_token_cutoffs', 'global_token_cutoff', 'pending_revocations'] LOOP
        IF EXISTS (SELECT FROM pg_catalog.pg_dist_partition
                    WHERE logicalrelid OPERATOR(pg_catalog.=) pg_catalog.format('sessrev.%I', v_table)::pg_catalog.regclass) THEN
            CONTINUE;
        END IF;
        EXECUTE 'SELECT pg_catalog.create_reference_table($1)' USING pg_catalog.format('sessrev.%I', v_table)::pg_catalog.regclass;
        v_done := v_done + 1;
    END LOOP;
    IF v_done = 0 THEN
        RAISE NOTICE 'sessrev''s tables are reference tables already';
    END IF;
END
$$;
COMMENT ON FUNCTION sessrev.replicate() IS
    'Citus: makes every sessrev table a reference table (the replicated layout), so that each node answers checks from its own placement and cache. Run on the coordinator, by the tables'' owner.';
REVOKE ALL ON FUNCTION sessrev.replicate() FROM PUBLIC;
