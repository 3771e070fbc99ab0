-- Properties of the session API over many inputs.
BEGIN;
SELECT plan(28);

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

-- validate_session is inlined into the caller's query (1.4): no function
-- scan, and its C++ body validate_session_record runs once per validation
-- whatever the caller selects; the forms the planner cannot inline still work.
CREATE FUNCTION pg_temp.calls(f regprocedure) RETURNS bigint LANGUAGE sql
    AS $$ SELECT coalesce(pg_stat_get_xact_function_calls(f), 0) $$;
SET LOCAL track_functions = 'all';
CREATE TEMP TABLE inlined AS SELECT token, session_id FROM sessrev.create_session('inline-user', metadata => '{"k": [1, 2]}');
CREATE FUNCTION pg_temp.plan_of(query text) RETURNS SETOF text LANGUAGE plpgsql
    AS $$ BEGIN RETURN QUERY EXECUTE 'EXPLAIN (COSTS OFF) ' || query; END $$;
SELECT is((SELECT count(*)::int FROM pg_temp.plan_of('SELECT user_id FROM sessrev.validate_session(''t'')') l
            WHERE l LIKE '%Function Scan%'), 0,
          'SELECT user_id FROM validate_session(token) is planned without a function scan (inlined)');
SELECT is((SELECT count(*)::int FROM inlined, LATERAL sessrev.validate_session(inlined.token) v
            WHERE v.session_id = inlined.session_id AND v.user_id = 'inline-user'
              AND v.metadata = '{"k": [1, 2]}' AND v.expires_at > now() AND v.last_active_at <= now()), 1,
          'the inlined validate_session returns every column of the session');
SELECT is(ARRAY[pg_temp.calls('sessrev.validate_session(text)'),
                pg_temp.calls('sessrev.validate_session_record(text)')],
          ARRAY[0, 1]::bigint[], 'it called validate_session_record once and validate_session itself never');
SELECT is((SELECT count(*)::int FROM sessrev.validate_session((SELECT token FROM inlined)) v
            WHERE v.session_id IS NOT NULL AND v.user_id IS NOT NULL AND v.metadata IS NOT NULL), 1,
          'SELECT * with a filter on every column');
SELECT is(pg_temp.calls('sessrev.validate_session_record(text)'), 2::bigint,
          'still one call per validation, whatever the query reads of the row');
SELECT is((SELECT count(*)::int FROM sessrev.validate_session('no such token')), 0,
          'an unknown token: no row');
SELECT is((SELECT (sessrev.validate_session(token)).user_id FROM inlined), 'inline-user',
          'called in a select list (not inlined), it answers the same');
SELECT is((SELECT string_agg(v.user_id || ' ' || v.n, ',')
             FROM inlined, LATERAL sessrev.validate_session(inlined.token) WITH ORDINALITY AS v(a, user_id, b, c, d, n)),
          'inline-user 1', 'and WITH ORDINALITY (not inlined) too');

-- validate_session_record as a scalar: one call in a select list is the whole
-- validation (the current session, touches), NULL when the token has no live
-- session; what an application that needs only the user id can write.
SELECT is((sessrev.validate_session_record('no such token')).user_id, NULL,
          'the scalar form: an unknown token gives NULL');
SELECT is(sessrev.current_session_id(), NULL, 'and leaves the transaction without a current session');
CREATE TEMP TABLE calls_before AS SELECT pg_temp.calls('sessrev.validate_session_record(text)') AS n;
SELECT is((SELECT (sessrev.validate_session_record(token)).user_id FROM inlined), 'inline-user',
          'the scalar form: a live token gives its user id');
SELECT is(pg_temp.calls('sessrev.validate_session_record(text)') - (SELECT n FROM calls_before), 1::bigint,
          'in one call');
SELECT is(sessrev.current_session_id(), (SELECT session_id FROM inlined),
          'which makes its session the current one');
SELECT is((SELECT count(*)::int FROM s WHERE sessrev.validate_session_record(s.token) IS NOT NULL), 0,
          'the scalar form: NULL for each of the 200 revoked sessions');

SELECT * FROM finish();
ROLLBACK;
