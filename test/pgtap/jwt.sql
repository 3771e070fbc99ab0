-- JWT revocation: properties over many tokens and users, and the application role's grants.
BEGIN;
SELECT plan(12);

SELECT has_table('sessrev', 'jwt_denylist', 'the JWT denylist exists');
SELECT has_table('sessrev', 'user_token_cutoffs', 'per-user cut-offs exist');
SELECT has_table('sessrev', 'global_token_cutoff', 'the global cut-off exists');
SELECT has_function('sessrev', 'is_jwt_revoked', ARRAY['text', 'text', 'timestamp with time zone'],
                    'is_jwt_revoked(jti, user_id, issued_at)');

TRUNCATE sessrev.jwt_denylist, sessrev.user_token_cutoffs, sessrev.global_token_cutoff;
-- 300 tokens of 30 users; every seventh jti denylisted; users divisible by 5 cut off an hour ago.
CREATE TEMP TABLE tok AS
SELECT i, 'jti-' || i AS jti, 'user-' || (i % 30) AS sub,
       now() - ((i % 120) || ' minutes')::interval AS iat
  FROM generate_series(1, 300) i;
SELECT is((SELECT count(*)::int FROM tok WHERE i % 7 = 0 AND sessrev.revoke_jwt(jti, now() + interval '1 hour', sub)),
          42, 'revoke_jwt denylists 42 tokens');
SELECT lives_ok($$SELECT sessrev.revoke_user_tokens_before('user-' || u, now() - interval '1 hour')
                    FROM generate_series(0, 29, 5) u$$, 'cut-offs set for six users');
SELECT is((SELECT count(*)::int FROM tok
            WHERE sessrev.is_jwt_revoked(jti, sub, iat)
                  <> (i % 7 = 0 OR ((i % 30) % 5 = 0 AND iat < now() - interval '1 hour'))),
          0, 'is_jwt_revoked is true exactly for denylisted tokens and tokens issued before their cut-off');
SELECT is((SELECT count(*)::int FROM tok
            WHERE sessrev.is_jwt_revoked(NULL, sub, iat)
                  <> ((i % 30) % 5 = 0 AND iat < now() - interval '1 hour')),
          0, 'without a jti only the cut-offs count');
SELECT is((SELECT count(*)::int FROM sessrev.session_audit_log WHERE action = 'JWT_REVOKED'), 42,
          'one JWT_REVOKED audit row per denylisted token');
SELECT throws_ok($$SELECT sessrev.is_jwt_revoked(NULL, NULL, now())$$, '22004', NULL,
                 'NULL jti with NULL user_id is refused');
SELECT throws_ok($$SELECT sessrev.revoke_jwt('late', now() - interval '1 minute')$$, '22023', NULL,
                 'an expires_at in the past is refused');
SELECT is((SELECT count(*)::int FROM pg_proc p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
            WHERE p.proname IN ('revoke_jwt', 'is_jwt_revoked', 'revoke_user_tokens_before')
              AND p.pronamespace = 'sessrev'::regnamespace AND a.grantee = 0), 0,
          'no JWT function is executable by PUBLIC');

SELECT * FROM finish();
ROLLBACK;
