-- Application integration through an application role with only the documented grants.
BEGIN;
SELECT plan(14);

CREATE ROLE sessrev_test_web NOLOGIN;
GRANT USAGE ON SCHEMA sessrev TO sessrev_test_web;
GRANT EXECUTE ON FUNCTION
    sessrev.create_session(text, interval, inet, text, text, jsonb),
    sessrev.validate_session(text), sessrev.revoke_token(text, text, text),
    sessrev.my_sessions(), sessrev.revoke_my_session(uuid), sessrev.revoke_my_other_sessions(),
    sessrev.current_session_id(), sessrev.current_user_id(), sessrev.rotate_token(text)
  TO sessrev_test_web;

CREATE TEMP TABLE t AS
SELECT u, c.* FROM unnest(ARRAY['web-a', 'web-a', 'web-a', 'web-b']) WITH ORDINALITY AS x(u, n),
       LATERAL sessrev.create_session(u) c;
GRANT SELECT ON t TO sessrev_test_web;

SET LOCAL ROLE sessrev_test_web;
SELECT throws_ok($$SELECT sessrev.remember_current_session(gen_random_uuid(), 'web-b')$$, '42501', NULL,
                 'the application role cannot forge a current session');
SELECT is((SELECT count(*)::int FROM sessrev.validate_session((SELECT token FROM t WHERE u = 'web-a' LIMIT 1))), 1,
          'the application role validates a session');
SELECT is(sessrev.current_user_id(), 'web-a', 'validation records the current user');
SELECT is((SELECT count(*)::int FROM sessrev.my_sessions()), 3, 'my_sessions lists the user''s three sessions');
SELECT is((SELECT count(*)::int FROM sessrev.my_sessions() WHERE is_current), 1, 'exactly one is current');
SELECT is((SELECT count(*)::int FROM t WHERE u = 'web-b' AND sessrev.revoke_my_session(session_id)), 0,
          'another user''s session ids answer false');
SELECT is(sessrev.revoke_my_other_sessions(), 2, 'revoke_my_other_sessions revokes the two others');
SELECT is((SELECT count(*)::int FROM sessrev.my_sessions()), 1, 'only the current one is left');
SELECT throws_ok($$SELECT sessrev.revoke_my_session(sessrev.current_session_id())$$, '22023', NULL,
                 'revoking the current session through self-service is refused');
SELECT throws_ok($$SELECT sessrev.set_current_session(gen_random_uuid())$$, '42501', NULL,
                 'set_current_session is not granted to the application role');
RESET ROLE;
SELECT is((SELECT count(*)::int FROM t WHERE u = 'web-b' AND NOT sessrev.is_revoked(token)), 1,
          'the other user''s session is untouched');
SELECT is((SELECT count(*)::int FROM sessrev.session_audit_log
            WHERE action = 'SESSION_REVOKED' AND details->>'reason' = 'Signed out from other devices'), 2,
          'each revocation wrote its audit row');
SELECT is((SELECT count(*)::int FROM pg_proc p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
            WHERE p.oid = 'sessrev.remember_current_session(uuid, text)'::regprocedure
              AND a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner), 0,
          'remember_current_session is executable by its owner only');
SELECT ok(NOT has_function_privilege('sessrev_test_web', 'sessrev.track_user_table(regclass, name, name[], name[])', 'EXECUTE'),
          'track_user_table is not granted to the application role');

SELECT * FROM finish();
ROLLBACK;
