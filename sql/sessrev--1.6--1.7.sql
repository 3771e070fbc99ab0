-- sessrev 1.7: sessions distributed over a Citus cluster (sessrev.distribute()).
\echo Use "ALTER EXTENSION sessrev UPDATE TO '1.7'" to load this file. \quit

-- The user of a retired token, so that it can be kept in the user's shard;
-- on every node, as Citus creates the extension on every node.
ALTER TABLE sessrev.retired_tokens ADD COLUMN user_id text;
COMMENT ON COLUMN sessrev.retired_tokens.user_id IS
    'The session''s user (sessrev.distribute() keeps the row in the user''s shard); NULL in rows retired before 1.7.';

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

    -- A session's revocation recorded apart is kept with the session.
    UPDATE sessrev.pending_revocations p SET user_id = s.user_id
      FROM sessrev.sessions s WHERE p.session_id IS NOT NULL AND s.id = p.session_id;
    DELETE FROM sessrev.pending_revocations WHERE user_id IS NULL;
    ALTER TABLE sessrev.pending_revocations
        DROP CONSTRAINT pending_revocations_one_target,
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
-- table: the update takes the time from the row it would have inserted.
CREATE OR REPLACE FUNCTION sessrev.record_user_token_cutoff(user_id text, cutoff timestamptz) RETURNS void
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
        DO UPDATE SET not_before = greatest(c.not_before, excluded.not_before), updated_at = excluded.updated_at;
    EXCEPTION WHEN lock_not_available THEN
        INSERT INTO sessrev.pending_revocations (user_id, not_before)
        VALUES (record_user_token_cutoff.user_id, record_user_token_cutoff.cutoff);
    END;
END
$$;
