-- Stateless tokens: the JWT denylist and not-before cut-offs.
\pset null '(null)'
\i test/sql/include/error_of.sql
TRUNCATE sessrev.jwt_denylist, sessrev.user_token_cutoffs, sessrev.global_token_cutoff;

-- Nothing revoked yet.
SELECT sessrev.is_jwt_revoked('jti-1', 'jwt-alice', now() - interval '1 minute') AS fresh_token,
       sessrev.is_jwt_revoked(NULL, 'jwt-alice', now() - interval '1 minute') AS cutoffs_only,
       sessrev.is_jwt_revoked('jti-1', NULL, now() - interval '1 minute') AS jti_only;

-- The denylist: one token id until its own expiry.
SELECT sessrev.revoke_jwt('jti-1', now() + interval '1 hour', 'jwt-alice', 'Stolen laptop', 'admin') AS denylisted;
SELECT sessrev.revoke_jwt('jti-1', now() + interval '1 hour') AS again;
SELECT sessrev.is_jwt_revoked('jti-1', 'jwt-alice', now() - interval '1 minute') AS jti_1,
       sessrev.is_jwt_revoked('jti-1', NULL, now() - interval '1 minute') AS jti_1_without_user,
       sessrev.is_jwt_revoked('jti-2', 'jwt-alice', now() - interval '1 minute') AS jti_2;
SELECT jti, user_id, reason, revoked_by FROM sessrev.jwt_denylist;

-- A per-user cut-off revokes tokens issued before it, not after.
BEGIN;
SELECT sessrev.revoke_user_tokens_before('jwt-bob', now() - interval '10 minutes');
SELECT sessrev.is_jwt_revoked('jti-b1', 'jwt-bob', now() - interval '20 minutes') AS issued_before,
       sessrev.is_jwt_revoked('jti-b2', 'jwt-bob', now() - interval '5 minutes') AS issued_after,
       sessrev.is_jwt_revoked(NULL, 'jwt-bob', now() - interval '20 minutes') AS before_no_jti,
       sessrev.is_jwt_revoked('jti-b1', 'jwt-carol', now() - interval '20 minutes') AS other_user;
-- it only moves forward
SELECT sessrev.revoke_user_tokens_before('jwt-bob', now() - interval '1 hour');
SELECT now() - not_before AS bob_cutoff_age FROM sessrev.user_token_cutoffs WHERE user_id = 'jwt-bob';
COMMIT;

-- Force logout of a user covers JWTs: revoke_user_sessions sets the cut-off.
BEGIN;
SELECT sessrev.revoke_user_sessions('jwt-carol', 'Forced logout', 'admin') AS carol_sessions;
SELECT not_before = now() AS carol_cutoff_now FROM sessrev.user_token_cutoffs WHERE user_id = 'jwt-carol';
COMMIT;

-- Emergency logout covers JWTs: revoke_all_sessions sets the global cut-off.
BEGIN;
SELECT sessrev.revoke_all_sessions('Key rotation', 'security') IS NULL AS revoked_all_by_cutoff;
SELECT sessrev.is_jwt_revoked('jti-x', 'jwt-dave', now() - interval '1 second') AS issued_before_global,
       sessrev.is_jwt_revoked(NULL, 'jwt-dave', now()) AS issued_at_transaction_start,
       sessrev.is_jwt_revoked(NULL, 'jwt-dave', (SELECT not_before FROM sessrev.global_token_cutoff))
           AS issued_at_cutoff,
       sessrev.is_jwt_revoked(NULL, 'jwt-dave', to_timestamp(sessrev.jwt_issued_at('jwt-dave')))
           AS issued_with_jwt_issued_at;
ROLLBACK;
SELECT count(*) AS global_cutoff_after_rollback FROM sessrev.global_token_cutoff;

-- Bad input: clear errors, nothing changed.
SELECT count(*) AS denylist_before FROM sessrev.jwt_denylist \gset
SELECT q, pg_temp.error_of(q) FROM (VALUES
  ($$SELECT sessrev.is_jwt_revoked(NULL, NULL, now())$$),
  ($$SELECT sessrev.is_jwt_revoked('j', 'u', NULL)$$),
  ($$SELECT sessrev.is_jwt_revoked('j', 'u', now() + interval '1 hour')$$),
  ($$SELECT sessrev.revoke_jwt('j', now() - interval '1 second')$$),
  ($$SELECT sessrev.revoke_jwt(NULL, now() + interval '1 hour')$$),
  ($$SELECT sessrev.revoke_jwt('j', NULL)$$),
  ($$SELECT sessrev.revoke_jwt('', now() + interval '1 hour')$$),
  ($$SELECT sessrev.revoke_jwt(repeat('j', 257), now() + interval '1 hour')$$),
  ($$SELECT sessrev.revoke_user_tokens_before(NULL)$$),
  ($$SELECT sessrev.revoke_user_tokens_before('')$$),
  ($$SELECT sessrev.revoke_user_tokens_before('u', now() + interval '1 hour')$$)
) AS t(q);
SELECT count(*) - :denylist_before AS denylist_growth FROM sessrev.jwt_denylist;
-- a token issued within a minute of clock skew is accepted
SELECT sessrev.is_jwt_revoked('jti-skew', 'jwt-erin', now() + interval '30 seconds') AS skewed;

-- Cleanup removes denylist entries once the token has expired by itself.
INSERT INTO sessrev.jwt_denylist (jti, expires_at) VALUES ('jti-old', now() - interval '1 minute');
SELECT sessrev.cleanup_expired_sessions() >= 0 AS cleaned;
SELECT jti FROM sessrev.jwt_denylist ORDER BY jti;
SELECT details->>'jwt_deleted' AS jwt_deleted FROM sessrev.session_audit_log
 WHERE action = 'CLEANUP' ORDER BY id DESC LIMIT 1;

-- Audit rows.
SELECT action, user_id, actor IS NOT NULL AS has_actor, details - 'expires_at' - 'not_before' AS details
  FROM sessrev.session_audit_log WHERE action IN ('JWT_REVOKED', 'USER_TOKENS_CUTOFF') ORDER BY id;

-- The PostgREST pattern: a db-pre-request function reading request.jwt.claims.
CREATE FUNCTION pg_temp.check_jwt() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    claims jsonb := nullif(current_setting('request.jwt.claims', true), '')::jsonb;
BEGIN
    IF claims IS NOT NULL AND sessrev.is_jwt_revoked(claims ->> 'jti', claims ->> 'sub',
                                                      to_timestamp((claims ->> 'iat')::double precision)) THEN
        RAISE EXCEPTION 'token revoked' USING ERRCODE = 'insufficient_privilege',
              HINT = 'Sign in again.';
    END IF;
END
$$;
-- PostgREST sets the claims per transaction with set_config(..., true).
BEGIN;
SELECT set_config('request.jwt.claims',
       json_build_object('sub', 'jwt-alice', 'jti', 'jti-1', 'iat', extract(epoch FROM now())::int - 60)::text, true) IS NOT NULL AS claims_set;
SELECT pg_temp.error_of('SELECT pg_temp.check_jwt()') AS denylisted_request;
ROLLBACK;
BEGIN;
SELECT set_config('request.jwt.claims',
       json_build_object('sub', 'jwt-alice', 'jti', 'jti-9', 'iat', extract(epoch FROM now())::int - 60)::text, true) IS NOT NULL AS claims_set;
SELECT pg_temp.error_of('SELECT pg_temp.check_jwt()') AS valid_request;
ROLLBACK;
BEGIN;
SELECT set_config('request.jwt.claims',
       json_build_object('sub', 'jwt-bob', 'jti', 'jti-b9', 'iat', extract(epoch FROM now())::int - 3600)::text, true) IS NOT NULL AS claims_set;
SELECT pg_temp.error_of('SELECT pg_temp.check_jwt()') AS before_cutoff_request;
ROLLBACK;
