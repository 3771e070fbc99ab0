-- The extension's objects: tables, columns, constraints, indexes, functions, comments.
BEGIN;
SELECT plan(54);

SELECT has_schema('sessrev');
SELECT is((SELECT extrelocatable FROM pg_extension WHERE extname = 'sessrev'), false,
          'the extension is not relocatable');
SELECT is((SELECT n.nspname::text FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
            WHERE e.extname = 'sessrev'), 'sessrev', 'the extension lives in schema sessrev');

SELECT has_table('sessrev', 'sessions', 'sessions table exists');
SELECT columns_are('sessrev', 'sessions', ARRAY[
    'id', 'user_id', 'token_hash', 'device_info', 'ip_address', 'user_agent', 'metadata',
    'created_at', 'last_active_at', 'expires_at', 'revoked', 'revoked_at', 'revoked_reason',
    'revoked_by', 'user_id_bigint', 'user_id_uuid'], 'sessions has exactly the contracted columns');
SELECT col_type_is('sessrev', 'sessions', 'id', 'uuid', 'sessions.id is uuid');
SELECT col_is_pk('sessrev', 'sessions', 'id', 'sessions.id is the primary key');
SELECT col_default_is('sessrev', 'sessions', 'id', 'gen_random_uuid()', 'ids come from gen_random_uuid()');
SELECT col_type_is('sessrev', 'sessions', 'token_hash', 'bytea', 'token_hash is bytea');
SELECT col_is_unique('sessrev', 'sessions', 'token_hash', 'token_hash is unique');
SELECT col_not_null('sessrev', 'sessions', 'user_id', 'user_id is required');
SELECT col_not_null('sessrev', 'sessions', 'expires_at', 'expires_at is required');
SELECT col_type_is('sessrev', 'sessions', 'ip_address', 'inet', 'ip_address is inet');
SELECT col_type_is('sessrev', 'sessions', 'metadata', 'jsonb', 'metadata is jsonb');
SELECT col_default_is('sessrev', 'sessions', 'metadata', '{}'::jsonb, 'metadata defaults to {}');
SELECT col_default_is('sessrev', 'sessions', 'revoked', 'false', 'sessions start not revoked');
SELECT col_type_is('sessrev', 'sessions', 'expires_at', 'timestamp with time zone', 'expires_at is timestamptz');
SELECT has_check('sessrev', 'sessions', 'sessions has CHECK constraints');
SELECT ok(EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'sessions_revoked_has_time'
                   AND conrelid = 'sessrev.sessions'::regclass),
          'revoked <=> revoked_at is enforced');
SELECT ok(EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'sessions_expires_after_creation'
                   AND conrelid = 'sessrev.sessions'::regclass),
          'expires_at > created_at is enforced');
SELECT has_index('sessrev', 'sessions', 'sessions_user_live_idx', ARRAY['user_id', 'last_active_at'],
                 'live sessions are indexed by user');
SELECT has_index('sessrev', 'sessions', 'sessions_expires_at_idx', ARRAY['expires_at'],
                 'sessions are indexed by expiry');
SELECT has_index('sessrev', 'sessions', 'sessions_revoked_at_idx', ARRAY['revoked_at'],
                 'revoked sessions are indexed by revocation time');

SELECT has_table('sessrev', 'session_audit_log', 'audit log table exists');
SELECT columns_are('sessrev', 'session_audit_log', ARRAY[
    'id', 'session_id', 'user_id', 'action', 'actor', 'ip_address', 'user_agent', 'details',
    'created_at', 'db_role'], 'audit log has exactly the contracted columns');
SELECT col_is_pk('sessrev', 'session_audit_log', 'id', 'audit id is the primary key');
SELECT is((SELECT attidentity::text FROM pg_attribute
            WHERE attrelid = 'sessrev.session_audit_log'::regclass AND attname = 'id'),
          'a', 'audit id is GENERATED ALWAYS AS IDENTITY');
SELECT col_not_null('sessrev', 'session_audit_log', 'action', 'audit action is required');
SELECT has_index('sessrev', 'session_audit_log', 'session_audit_log_user_idx', ARRAY['user_id', 'created_at'],
                 'audit rows are indexed by user');
SELECT has_index('sessrev', 'session_audit_log', 'session_audit_log_created_at_idx', ARRAY['created_at'],
                 'audit rows are indexed by time');

SELECT set_eq($$SELECT c.relname::text FROM pg_extension e
                 JOIN pg_class c ON c.oid = ANY (e.extconfig) WHERE e.extname = 'sessrev'$$,
              ARRAY['sessions', 'session_audit_log', 'session_audit_log_id_seq', 'jwt_denylist',
                    'user_token_cutoffs', 'global_token_cutoff', 'retired_tokens',
                    'pending_revocations', 'pending_revocations_id_seq'],
              'pg_dump keeps every table and the audit and pending revocation sequences');

SELECT has_view('sessrev', 'active_sessions', 'active_sessions view exists');
SELECT hasnt_column('sessrev', 'active_sessions', 'token_hash', 'active_sessions hides token_hash');

SELECT has_function('sessrev', 'hash_token', ARRAY['text'], 'hash_token(text)');
SELECT function_returns('sessrev', 'hash_token', ARRAY['text'], 'bytea', 'hash_token returns bytea');
SELECT volatility_is('sessrev', 'hash_token', ARRAY['text'], 'immutable', 'hash_token is immutable');
SELECT is_strict('sessrev', 'hash_token', ARRAY['text'], 'hash_token is strict');
SELECT is((SELECT proparallel::text FROM pg_proc WHERE oid = 'sessrev.hash_token(text)'::regprocedure),
          's', 'hash_token is parallel safe');
SELECT has_function('sessrev', 'generate_token', ARRAY['integer'], 'generate_token(int)');
SELECT has_function('sessrev', 'create_session',
                    ARRAY['text', 'interval', 'inet', 'text', 'text', 'jsonb'], 'create_session(...)');
SELECT has_function('sessrev', 'validate_session', ARRAY['text'], 'validate_session(text)');
SELECT has_function('sessrev', 'is_revoked', ARRAY['text'], 'is_revoked(text)');
SELECT has_function('sessrev', 'is_revoked', ARRAY['uuid'], 'is_revoked(uuid)');
SELECT has_function('sessrev', 'revoke_user_sessions', ARRAY['text', 'text', 'text', 'uuid'],
                    'revoke_user_sessions(...)');
SELECT is(ARRAY(SELECT p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')'
                  FROM pg_proc p WHERE p.pronamespace = 'sessrev'::regnamespace
                   AND p.prolang = (SELECT oid FROM pg_language WHERE lanname = 'c')
                 ORDER BY 1),
          ARRAY['allow_shards()',
                'cache_reset()',
                'cache_stats()',
                'cleanup_expired_sessions(expired_retention interval, revoked_retention interval)',
                'current_session_id()',
                'current_user_id()',
                'device_from_user_agent(user_agent text)',
                'forget_current_session()',
                'generate_token(nbytes integer)',
                'hash_token(token text)',
                'is_jwt_revoked(jti text, user_id text, issued_at timestamp with time zone)',
                'is_revoked(session_id uuid)',
                'is_revoked(token text)',
                'jwt_tables_changed()',
                'lock_user_sessions(user_id text)',
                'outer_role_may_execute(function regprocedure)',
                'pending_revocations_changed()',
                'remember_current_session(session_id uuid, user_id text)',
                'require_sessions_here()',
                'revoke_all_sessions(reason text, revoked_by text)',
                'revoke_session(session_id uuid, reason text, revoked_by text)',
                'revoke_user_in_shard(user_id text, reason text)',
                'revoke_user_sessions(user_id text, reason text, revoked_by text, exclude_session_id uuid)',
                'session_cache_stats()',
                'session_is_live(revoked boolean, expires_at timestamp with time zone, last_active_at timestamp with time zone)',
                'session_revoked_apart(session_id uuid, created_at timestamp with time zone)',
                'session_token(user_id text)',
                'sessions_changed()',
                'sessions_final_state()',
                'touch_queue_waiting()',
                'user_table_changed()',
                'validate_session_record(token text, OUT session_id uuid, OUT user_id text, OUT expires_at timestamp with time zone, OUT last_active_at timestamp with time zone, OUT metadata jsonb)',
                'wake_cleanup_worker()',
                'warm_session_cache(token text)',
                'worker_status()'],
          'the C++ functions are the ones the contract names');

SELECT triggers_are('sessrev', 'sessions', ARRAY['sessions_cache_invalidation', 'sessions_cache_flush',
                                                 'sessions_final_state'],
                    'sessions carries the cache invalidation triggers and the final-state rule');
SELECT is(ARRAY(SELECT tgenabled::text FROM pg_trigger WHERE tgrelid = 'sessrev.sessions'::regclass
                 AND NOT tgisinternal AND tgname LIKE 'sessions_cache%' ORDER BY tgname), ARRAY['A', 'A'],
          'the cache triggers fire even under session_replication_role = replica');
SELECT has_function('sessrev', 'cache_stats', '{}'::name[], 'cache_stats()');

-- Every object explains itself in \d+ and \df+.
SELECT is(ARRAY(SELECT c.relname::text FROM pg_class c
                 WHERE c.relnamespace = 'sessrev'::regnamespace AND c.relkind IN ('r', 'v', 'i')
                   AND obj_description(c.oid, 'pg_class') IS NULL ORDER BY 1),
          '{}'::text[], 'every table, view and index has a comment');
SELECT is(ARRAY(SELECT p.oid::regprocedure::text FROM pg_proc p
                 WHERE p.pronamespace = 'sessrev'::regnamespace
                   AND obj_description(p.oid, 'pg_proc') IS NULL ORDER BY 1),
          '{}'::text[], 'every function has a comment');
SELECT is(ARRAY(SELECT a.attname::text FROM pg_attribute a
                 WHERE a.attrelid IN ('sessrev.sessions'::regclass, 'sessrev.session_audit_log'::regclass)
                   AND a.attnum > 0 AND NOT a.attisdropped
                   AND col_description(a.attrelid, a.attnum) IS NULL ORDER BY 1),
          '{}'::text[], 'every column has a comment');


-- The SECURITY DEFINER surface: pinned search_path, plain scalar arguments,
-- and no trigger (triggers see rows that other roles control).
SELECT is(ARRAY(SELECT p.oid::regprocedure::text FROM pg_proc p
                 WHERE p.pronamespace = 'sessrev'::regnamespace AND p.prosecdef
                   AND NOT coalesce(p.proconfig @> '{"search_path=pg_catalog, pg_temp"}', false)
                 ORDER BY 1),
          '{}'::text[], 'every SECURITY DEFINER function pins search_path to pg_catalog, pg_temp');
SELECT is(ARRAY(SELECT DISTINCT p.oid::regprocedure::text
                  FROM pg_proc p, unnest(p.proargtypes::oid[]) a(t) JOIN pg_type ty ON ty.oid = a.t
                 WHERE p.pronamespace = 'sessrev'::regnamespace AND p.prosecdef
                   AND NOT (ty.typtype = 'b' AND ty.typcategory <> 'A' AND ty.oid < 16384)
                 ORDER BY 1),
          '{}'::text[], 'SECURITY DEFINER functions take only built-in scalar arguments');
SELECT is(ARRAY(SELECT p.oid::regprocedure::text FROM pg_proc p
                 WHERE p.pronamespace = 'sessrev'::regnamespace AND p.prosecdef
                   AND p.prorettype = 'trigger'::regtype ORDER BY 1),
          '{}'::text[], 'no trigger function is SECURITY DEFINER');

SELECT * FROM finish();
ROLLBACK;
