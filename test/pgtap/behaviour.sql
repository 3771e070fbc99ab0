-- Properties of the session API over many inputs.
BEGIN;
SELECT plan(14);

SELECT is((SELECT count(*)::int FROM generate_series(1, 500) i
            WHERE sessrev.hash_token(md5(i::text) || repeat('é', i % 7))
                  IS DISTINCT FROM sha256(convert_to(md5(i::text) || repeat('é', i % 7), 'UTF8'))),
          0, 'hash_token equals sha256(convert_to(token, UTF8)) for 500 tokens');

CREATE TEMP TABLE s AS
SELECT i, c.* FROM generate_series(1, 200) i,
       LATERAL sessrev.create_session('prop-user-' || (i % 10)) c;
SELECT is((SELECT count(DISTINCT token)::int FROM s), 200, '200 sessions get 200 distinct tokens');
SELECT is((SELECT count(DISTINCT session_id)::int FROM s), 200, 'and 200 distinct ids');
SELECT is((SELECT count(*)::int FROM sessrev.sessions x JOIN s ON x.token_hash::text LIKE '%' || s.token || '%'), 0,
          'no stored hash contains its token');
SELECT is((SELECT count(*)::int FROM s WHERE sessrev.is_revoked(token)), 0, 'every new session is live');
SELECT is((SELECT count(*)::int FROM s, LATERAL sessrev.validate_session(s.token) v WHERE v.session_id = s.session_id),
          200, 'every new session validates to itself');
SELECT is((SELECT count(*)::int FROM sessrev.session_audit_log a JOIN s ON a.session_id = s.session_id
            WHERE a.action = 'SESSION_CREATED'), 200, 'every creation wrote one audit row');

-- revoke every third session, then every function agrees on every session
SELECT is((SELECT count(*)::int FROM s WHERE i % 3 = 0 AND sessrev.revoke_session(session_id, 'prop', 'tap')),
          66, 'revoke_session revokes 66 sessions');
SELECT is((SELECT count(*)::int FROM s WHERE sessrev.is_revoked(token) <> (i % 3 = 0)), 0,
          'is_revoked(token) is true exactly for the revoked ones');
SELECT is((SELECT count(*)::int FROM s WHERE sessrev.is_revoked(session_id) <> sessrev.is_revoked(token)), 0,
          'is_revoked(uuid) agrees with is_revoked(text)');
SELECT is((SELECT count(*)::int FROM s WHERE EXISTS (SELECT 1 FROM sessrev.validate_session(s.token)) = (i % 3 = 0)),
          0, 'validate_session answers exactly for the live ones');
SELECT is((SELECT count(*)::int FROM s WHERE EXISTS (SELECT 1 FROM sessrev.active_sessions a WHERE a.id = s.session_id)
            = (i % 3 = 0)), 0, 'active_sessions lists exactly the live ones');
SELECT is((SELECT count(*)::int FROM sessrev.session_audit_log a JOIN s ON a.session_id = s.session_id
            WHERE a.action = 'SESSION_REVOKED' AND a.details ->> 'reason' = 'prop' AND a.actor = 'tap'),
          66, 'every revocation wrote one audit row with reason and actor');
SELECT is((SELECT sum(sessrev.revoke_user_sessions('prop-user-' || u))::int FROM generate_series(0, 9) u),
          134, 'revoke_user_sessions revokes the remaining 134');

SELECT * FROM finish();
ROLLBACK;
