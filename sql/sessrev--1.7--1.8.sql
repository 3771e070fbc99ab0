-- sessrev 1.8: a users table distributed co-located with sessrev's sessions
-- can be tracked (sessrev.distribute()).
\echo Use "ALTER EXTENSION sessrev UPDATE TO '1.8'" to load this file. \quit

CREATE FUNCTION sessrev.revoke_user_in_shard(user_id text, reason text) RETURNS bigint
    LANGUAGE c SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'revoke_user_in_shard';
COMMENT ON FUNCTION sessrev.revoke_user_in_shard(text, text) IS
    'Internal: records the revocation of every live session of user_id in the shard held on this node (a tracked users table co-located with the sessions fires its trigger on its shards); the worker folds it into the rows.';
REVOKE ALL ON FUNCTION sessrev.revoke_user_in_shard(text, text) FROM PUBLIC;

-- Citus drops a distributed table's triggers (on its shards too) only with
-- citus.enable_unsafe_triggers on.
CREATE OR REPLACE FUNCTION sessrev.untrack_user_table(tbl regclass) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_unsafe text := current_setting('citus.enable_unsafe_triggers', true);
BEGIN
    IF v_unsafe IS NOT NULL THEN
        PERFORM set_config('citus.enable_unsafe_triggers', 'on', true);
    END IF;
    IF EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = tbl AND tgname = 'sessrev_revoke_sessions') THEN
        EXECUTE format('DROP TRIGGER sessrev_revoke_sessions ON %s', tbl);
    END IF;
    IF EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = tbl AND tgname = 'sessrev_revoke_sessions_truncate') THEN
        EXECUTE format('DROP TRIGGER sessrev_revoke_sessions_truncate ON %s', tbl);
    END IF;
    IF v_unsafe IS NOT NULL THEN
        PERFORM set_config('citus.enable_unsafe_triggers', v_unsafe, true);
    END IF;
END
$$;

-- A Citus table fires its triggers on its shards. Tracked are: tables that
-- are not Citus tables, and, once sessrev's tables are distributed, a table
-- distributed by the tracked id and co-located with the sessions, whose
-- shards are on the nodes of the users' sessions (revoke_user_in_shard).
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
    v_citus   boolean := false;
    v_refusal text;
    v_unsafe  text;
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
    IF pg_catalog.to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL THEN
        EXECUTE 'SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_partition
                                 WHERE logicalrelid OPERATOR(pg_catalog.=) $1)'
            INTO v_citus USING tbl;
    END IF;
    IF v_citus THEN
        -- Why not, or NULL: the shards of tbl hold its rows by the hash of
        -- id_column, as sessrev's hold each user's sessions.
        EXECUTE $q$
            SELECT CASE
                WHEN s.logicalrelid IS NULL
                    THEN 'sessrev''s sessions are on the coordinator, where the triggers of a Citus table do not fire'
                WHEN t.partmethod OPERATOR(pg_catalog.<>) 'h' OR t.colocationid OPERATOR(pg_catalog.<>) s.colocationid
                    THEN 'it is not distributed co-located with sessrev.sessions'
                WHEN pg_catalog.column_to_column_name(t.logicalrelid, t.partkey) OPERATOR(pg_catalog.<>) $2::text
                    THEN 'it is not distributed by ' || pg_catalog.quote_ident($2)
                WHEN EXISTS (SELECT FROM pg_catalog.pg_attribute a
                              WHERE a.attrelid OPERATOR(pg_catalog.=) $1 AND a.attisdropped)
                    THEN 'it has dropped columns, which its shards do not number as it does'
            END
              FROM pg_catalog.pg_dist_partition t
              LEFT JOIN pg_catalog.pg_dist_partition s
                ON s.logicalrelid OPERATOR(pg_catalog.=) 'sessrev.sessions'::pg_catalog.regclass
             WHERE t.logicalrelid OPERATOR(pg_catalog.=) $1 $q$
            INTO v_refusal USING tbl, id_column;
        IF v_refusal IS NOT NULL THEN
            RAISE EXCEPTION '% is a Citus table that cannot be tracked: %', tbl, v_refusal
                USING ERRCODE = 'feature_not_supported',
                      DETAIL = 'A Citus table''s triggers run on its shards; they revoke in the shards of sessrev''s sessions on the same node.',
                      HINT = 'After sessrev.distribute(), distribute the users table by its id with '
                             'colocate_with => ''sessrev.sessions''; otherwise revoke in the transaction that changes '
                             'the user: SELECT sessrev.revoke_user_sessions(id, reason) (see docs/SCALING.md).';
        END IF;
        -- Citus creates a distributed table's triggers on its shards only so.
        v_unsafe := current_setting('citus.enable_unsafe_triggers');
        PERFORM set_config('citus.enable_unsafe_triggers', 'on', true);
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
    IF v_citus THEN
        PERFORM set_config('citus.enable_unsafe_triggers', v_unsafe, true);
    END IF;
END
$$;
COMMENT ON FUNCTION sessrev.track_user_table(regclass, name, name[], name[]) IS
    'Installs the triggers that revoke a user''s sessions when the user row is deleted or truncated, its id changes, or a credential or privilege column changes. A Citus table is tracked when distributed by the id, co-located with sessrev.sessions (after sessrev.distribute()).';

-- Folds pending revocations into the rows, where no one holds them; run by
-- the worker, and by cleanup_expired_sessions; 1.8 audits those that a
-- shard's node recorded, and deletes a cut-off only as it read it. One session or user at a
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
                -- Recorded apart on a shard's node (revoke_user_in_shard),
                -- which has no audit log: audited here, once.
                IF NOT EXISTS (SELECT FROM sessrev.session_audit_log a
                                WHERE a.user_id = v_user AND a.session_id = r.session_id
                                  AND a.action = 'SESSION_REVOKED') THEN
                    INSERT INTO sessrev.session_audit_log (session_id, user_id, action, actor, details)
                    VALUES (r.session_id, v_user, 'SESSION_REVOKED', v_actor,
                            jsonb_build_object('reason', r.reason));
                END IF;
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
            -- Only as read: a shard's node may have moved it forward since
            -- (revoke_user_in_shard), which a later run folds.
            DELETE FROM sessrev.pending_revocations p
             WHERE p.id = r.id AND p.user_id = r.user_id AND p.not_before = r.not_before;
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

