-- Privileges: nothing for PUBLIC; an application role with only the documented grants
-- can run sessions but cannot read secrets or run the admin functions.
BEGIN;
SELECT plan(26);

SELECT is(ARRAY(SELECT c.oid::regclass::text FROM pg_class c, aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a
                 WHERE c.relnamespace = 'sessrev'::regnamespace AND a.grantee = 0 ORDER BY 1),
          '{}'::text[], 'no table, view or sequence is granted to PUBLIC');
SELECT is(ARRAY(SELECT p.oid::regprocedure::text FROM pg_proc p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                 WHERE p.pronamespace = 'sessrev'::regnamespace AND a.grantee = 0 ORDER BY 1),
          ARRAY['sessrev.validate_session_record(text)'],
          'no function is executable by PUBLIC but validate_session''s body, which checks validate_session''s privilege');
SELECT is((SELECT count(*)::int FROM pg_namespace n, aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
            WHERE n.nspname = 'sessrev' AND a.grantee = 0), 0, 'schema sessrev grants nothing to PUBLIC');
SELECT is(ARRAY(SELECT p.oid::regprocedure::text FROM pg_proc p
                 WHERE p.pronamespace = 'sessrev'::regnamespace AND p.prosecdef
                   AND NOT coalesce(p.proconfig, '{}') @> ARRAY['search_path=pg_catalog, pg_temp']
                 ORDER BY 1),
          '{}'::text[], 'every SECURITY DEFINER function pins search_path');

-- The application role of README.md: no table privileges at all.
CREATE ROLE sessrev_test_app NOLOGIN;
GRANT USAGE ON SCHEMA sessrev TO sessrev_test_app;
GRANT EXECUTE ON FUNCTION
    sessrev.create_session(text, interval, inet, text, text, jsonb),
    sessrev.validate_session(text),
    sessrev.is_revoked(text), sessrev.is_revoked(uuid),
    sessrev.revoke_session(uuid, text, text), sessrev.revoke_token(text, text, text),
    sessrev.revoke_user_sessions(text, text, text, uuid),
    sessrev.user_sessions(text)
  TO sessrev_test_app;

SET LOCAL ROLE sessrev_test_app;
SELECT lives_ok($$SELECT * FROM sessrev.create_session('app-user-1') $$, 'app role can create a session');
CREATE TEMP TABLE app_session AS SELECT * FROM sessrev.create_session('app-user-1');
SELECT is((SELECT count(*)::int FROM sessrev.validate_session((SELECT token FROM app_session))), 1,
          'app role can validate a session');
SELECT is(sessrev.is_revoked((SELECT token FROM app_session)), false, 'app role can check a token');
SELECT is(sessrev.is_revoked((SELECT session_id FROM app_session)), false, 'app role can check a session id');
SELECT is((SELECT count(*)::int FROM sessrev.user_sessions('app-user-1')), 2, 'app role can list a user''s sessions');
SELECT is(sessrev.revoke_token((SELECT token FROM app_session)), true, 'app role can revoke a token');
SELECT is(sessrev.is_revoked((SELECT token FROM app_session)), true, 'the revocation took effect');
SELECT is(sessrev.revoke_user_sessions('app-user-1'), 1, 'app role can force a user''s logout');
SELECT throws_ok($$SELECT token_hash FROM sessrev.sessions$$, '42501', NULL, 'app role cannot read token_hash');
SELECT throws_ok($$SELECT * FROM sessrev.session_audit_log$$, '42501', NULL, 'app role cannot read the audit log');
SELECT throws_ok($$UPDATE sessrev.sessions SET revoked = false$$, '42501', NULL, 'app role cannot write sessions directly');
SELECT throws_ok($$SELECT sessrev.revoke_all_sessions()$$, '42501', NULL,
                 'app role cannot call revoke_all_sessions');
SELECT throws_ok($$SELECT sessrev.cleanup_expired_sessions()$$, '42501', NULL,
                 'app role cannot call cleanup_expired_sessions');
RESET ROLE;

-- validate_session_record answers only a role that may execute
-- validate_session, however it is called; the answer follows GRANT and REVOKE
-- within one connection.
CREATE ROLE sessrev_test_nobody NOLOGIN;
GRANT USAGE ON SCHEMA sessrev TO sessrev_test_nobody;
SELECT session_id AS body_id, token AS body_tok FROM sessrev.create_session('app-user-2') \gset
SET LOCAL ROLE sessrev_test_nobody;
SELECT throws_ok($$SELECT sessrev.validate_session_record('$$ || :'body_tok' || $$')$$, '42501',
                 'permission denied for function validate_session',
                 'a role without EXECUTE on validate_session cannot call its body');
SELECT throws_ok($$SELECT * FROM sessrev.validate_session('$$ || :'body_tok' || $$')$$, '42501', NULL,
                 'nor validate_session');
RESET ROLE;
GRANT EXECUTE ON FUNCTION sessrev.validate_session(text) TO sessrev_test_nobody;
SET LOCAL ROLE sessrev_test_nobody;
SELECT is((SELECT session_id FROM sessrev.validate_session(:'body_tok')), :'body_id'::uuid,
          'granted EXECUTE on validate_session alone, the role validates');
SELECT is((SELECT (r).user_id FROM (SELECT sessrev.validate_session_record(:'body_tok') r) x), 'app-user-2',
          'and may call its body');
RESET ROLE;
REVOKE EXECUTE ON FUNCTION sessrev.validate_session(text) FROM sessrev_test_nobody;
SET LOCAL ROLE sessrev_test_nobody;
SELECT throws_ok($$SELECT sessrev.validate_session_record('$$ || :'body_tok' || $$')$$, '42501',
                 'permission denied for function validate_session',
                 'after REVOKE, the same connection is refused again');
RESET ROLE;
GRANT sessrev_test_app TO sessrev_test_nobody;
SET LOCAL ROLE sessrev_test_nobody;
SELECT is((SELECT user_id FROM sessrev.validate_session(:'body_tok')), 'app-user-2',
          'a member of a role granted validate_session validates (membership change seen at once)');
RESET ROLE;

-- A DBA can grant the admin functions explicitly.
GRANT EXECUTE ON FUNCTION sessrev.revoke_all_sessions(text, text),
                          sessrev.cleanup_expired_sessions(interval, interval) TO sessrev_test_app;
SET LOCAL ROLE sessrev_test_app;
SELECT lives_ok($$SELECT sessrev.cleanup_expired_sessions()$$, 'granted cleanup runs for the app role');
SELECT lives_ok($$SELECT sessrev.revoke_all_sessions('drill', 'app')$$, 'granted revoke_all_sessions runs');
RESET ROLE;
SELECT is((SELECT count(*)::int FROM sessrev.sessions WHERE user_id = 'app-user-1' AND NOT revoked), 0,
          'the granted emergency logout revoked everything');

SELECT * FROM finish();
ROLLBACK;
