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
