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
