-- sessrev 1.9: sessions co-located with an application's users table whose
-- id is a bigint or a uuid (sessrev.distribute(user_id_type => ...)).
\echo Use "ALTER EXTENSION sessrev UPDATE TO '1.9'" to load this file. \quit

-- The user id as a bigint and as a uuid, NULL until sessrev.distribute()
-- distributes by one of them. On every node, from the extension's own
-- script: Citus creates no copy of an extension's tables on its nodes, and
-- names the distribution column to each node, new nodes too. IF NOT EXISTS:
-- on a distributed cluster, the coordinator's ALTER TABLE reaches the nodes
-- before their own run of this script (one column each: Citus 14 sends an
-- ALTER TABLE of two as two commands in one prepared statement, refused).
ALTER TABLE sessrev.sessions ADD COLUMN IF NOT EXISTS user_id_bigint bigint;
ALTER TABLE sessrev.sessions ADD COLUMN IF NOT EXISTS user_id_uuid uuid;
ALTER TABLE sessrev.pending_revocations ADD COLUMN IF NOT EXISTS user_id_bigint bigint;
ALTER TABLE sessrev.pending_revocations ADD COLUMN IF NOT EXISTS user_id_uuid uuid;
ALTER TABLE sessrev.retired_tokens ADD COLUMN IF NOT EXISTS user_id_bigint bigint;
ALTER TABLE sessrev.retired_tokens ADD COLUMN IF NOT EXISTS user_id_uuid uuid;
ALTER TABLE sessrev.user_token_cutoffs ADD COLUMN IF NOT EXISTS user_id_bigint bigint;
ALTER TABLE sessrev.user_token_cutoffs ADD COLUMN IF NOT EXISTS user_id_uuid uuid;
COMMENT ON COLUMN sessrev.sessions.user_id_bigint IS
    'user_id as a bigint, when sessrev.distribute(user_id_type => ''bigint'') distributed the table by it; else NULL.';
COMMENT ON COLUMN sessrev.sessions.user_id_uuid IS
    'user_id as a uuid, when sessrev.distribute(user_id_type => ''uuid'') distributed the table by it; else NULL.';

DROP FUNCTION sessrev.distribute(integer);

-- Every row of a user in the shard of the user id: sessions, the revocations
-- recorded apart, retired tokens and JWT cut-offs, co-located; the JWT
-- denylist and the global cut-off on every node (reference tables, written
-- only by the backend and administrator profiles). The audit log stays on
-- the coordinator.
--
-- Citus co-locates only tables distributed by columns of one type. With
-- user_id_type bigint or uuid, the co-located tables are distributed by
-- user_id_bigint or user_id_uuid, filled from user_id: an application's
-- users table distributed by a bigint or uuid id can then be co-located
-- with them. A CHECK keeps user_id the key's own text; the planner hook
-- names the key wherever a statement names user_id (src/key_routing.hpp).
CREATE FUNCTION sessrev.distribute(shard_count integer DEFAULT NULL, user_id_type regtype DEFAULT 'text')
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    v_shards integer;
    v_key    text;
    v_bad    text;
    v_table  text;
    v_column text := 'user_id';
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
    v_key := CASE distribute.user_id_type
                 WHEN 'pg_catalog.text'::regtype THEN NULL
                 WHEN 'pg_catalog.int8'::regtype THEN 'bigint'
                 WHEN 'pg_catalog.uuid'::regtype THEN 'uuid'
             END;
    IF distribute.user_id_type IS NULL
       OR (v_key IS NULL AND distribute.user_id_type <> 'pg_catalog.text'::regtype) THEN
        RAISE EXCEPTION 'user_id_type must be text, bigint or uuid, got %', distribute.user_id_type
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Give the type of the id that the application''s users table is distributed by.';
    END IF;
    PERFORM sessrev.allow_shards();
    PERFORM set_config('citus.enable_unsafe_triggers', 'on', true);
    -- No write may slip between the re-keying and the move into the shards.
    LOCK TABLE sessrev.sessions, sessrev.pending_revocations, sessrev.retired_tokens,
               sessrev.user_token_cutoffs, sessrev.jwt_denylist, sessrev.global_token_cutoff
        IN ACCESS EXCLUSIVE MODE;

    UPDATE sessrev.retired_tokens r SET user_id = s.user_id
      FROM sessrev.sessions s WHERE s.id = r.session_id;
    -- A retired token of a deleted session validates nothing.
    DELETE FROM sessrev.retired_tokens WHERE user_id IS NULL;
    -- A session's revocation recorded apart is kept with the session (the
    -- 1.5 constraint, which wanted its user NULL, goes first).
    ALTER TABLE sessrev.pending_revocations DROP CONSTRAINT pending_revocations_one_target;
    UPDATE sessrev.pending_revocations p SET user_id = s.user_id
      FROM sessrev.sessions s WHERE p.session_id IS NOT NULL AND s.id = p.session_id;
    DELETE FROM sessrev.pending_revocations WHERE user_id IS NULL;
    ALTER TABLE sessrev.pending_revocations
        ADD CONSTRAINT pending_revocations_one_target CHECK (
            (session_id IS NOT NULL AND not_before IS NULL)
            OR (session_id IS NULL AND not_before IS NOT NULL));

    IF v_key IS NOT NULL THEN
        -- Each user id as the key type writes it (so that the users table's
        -- id, written by its type, names the same user), checked before
        -- anything changes.
        SELECT u.user_id INTO v_bad
          FROM (SELECT user_id FROM sessrev.sessions
                UNION ALL SELECT user_id FROM sessrev.pending_revocations
                UNION ALL SELECT user_id FROM sessrev.retired_tokens
                UNION ALL SELECT user_id FROM sessrev.user_token_cutoffs) u
         WHERE CASE
                   WHEN v_key = 'uuid'
                       THEN u.user_id !~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                   WHEN u.user_id ~ '^(0|-?[1-9][0-9]{0,18})$'
                       THEN u.user_id::numeric NOT BETWEEN -9223372036854775808 AND 9223372036854775807
                   ELSE true
               END
         LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'user id "%" is not a % as % writes it', v_bad, distribute.user_id_type, distribute.user_id_type
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = 'Distributed by a user key, sessrev keeps each user id as the key''s own text.',
                      HINT = 'Revoke and delete the sessions of such ids first; nothing was changed.';
        END IF;
        v_column := 'user_id_' || v_key;
        FOREACH v_table IN ARRAY ARRAY['sessions', 'pending_revocations', 'retired_tokens', 'user_token_cutoffs'] LOOP
            EXECUTE format('UPDATE sessrev.%I SET %I = user_id::%s', v_table, v_column, v_key);
            EXECUTE format('ALTER TABLE sessrev.%I ALTER COLUMN %I SET NOT NULL, '
                           'ADD CONSTRAINT %I CHECK (%I::pg_catalog.text OPERATOR(pg_catalog.=) user_id)',
                           v_table, v_column, v_table || '_' || v_column, v_column);
        END LOOP;
    END IF;

    -- A unique key of a distributed table includes the distribution column.
    EXECUTE format('ALTER TABLE sessrev.sessions
        DROP CONSTRAINT sessions_pkey,
        DROP CONSTRAINT sessions_token_hash_key,
        ADD CONSTRAINT sessions_pkey PRIMARY KEY (id, %1$I),
        ADD CONSTRAINT sessions_token_hash_key UNIQUE (token_hash, %1$I)', v_column);
    EXECUTE format('ALTER TABLE sessrev.retired_tokens
        ALTER COLUMN user_id SET NOT NULL,
        DROP CONSTRAINT retired_tokens_pkey,
        ADD CONSTRAINT retired_tokens_pkey PRIMARY KEY (token_hash, %1$I)', v_column);
    EXECUTE format('ALTER TABLE sessrev.pending_revocations
        ALTER COLUMN user_id SET NOT NULL,
        DROP CONSTRAINT pending_revocations_pkey,
        ADD CONSTRAINT pending_revocations_pkey PRIMARY KEY (id, %1$I)', v_column);
    IF v_key IS NOT NULL THEN
        EXECUTE format('ALTER TABLE sessrev.user_token_cutoffs
            DROP CONSTRAINT user_token_cutoffs_pkey,
            ADD CONSTRAINT user_token_cutoffs_pkey PRIMARY KEY (user_id, %I)', v_column);
    END IF;

    PERFORM create_distributed_table('sessrev.sessions', v_column, shard_count => v_shards);
    PERFORM create_distributed_table('sessrev.pending_revocations', v_column, colocate_with => 'sessrev.sessions');
    PERFORM create_distributed_table('sessrev.retired_tokens', v_column, colocate_with => 'sessrev.sessions');
    PERFORM create_distributed_table('sessrev.user_token_cutoffs', v_column, colocate_with => 'sessrev.sessions');
    PERFORM create_reference_table('sessrev.jwt_denylist');
    PERFORM create_reference_table('sessrev.global_token_cutoff');
    -- The rows now live in the shards: the tables' own copies are emptied.
    PERFORM truncate_local_data_after_distributing_table(t)
       FROM unnest(ARRAY['sessrev.sessions', 'sessrev.pending_revocations', 'sessrev.retired_tokens',
                         'sessrev.user_token_cutoffs', 'sessrev.jwt_denylist',
                         'sessrev.global_token_cutoff']::regclass[]) AS t;
END
$$;
COMMENT ON FUNCTION sessrev.distribute(integer, regtype) IS
    'Makes sessrev''s tables Citus tables: sessions and every row of a user distributed by user id (or by user_id_bigint or user_id_uuid, to co-locate with a users table distributed by such an id), co-located; the JWT denylist and global cut-off reference tables. Run once, on the coordinator.';
REVOKE ALL ON FUNCTION sessrev.distribute(integer, regtype) FROM PUBLIC;
