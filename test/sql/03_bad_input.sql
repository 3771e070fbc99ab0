-- Bad input: a clear error with the right SQLSTATE, and nothing changed.
\pset null '(null)'
\i test/sql/include/error_of.sql
SELECT count(*) AS sessions_before FROM sessrev.sessions \gset
SELECT count(*) AS audit_before FROM sessrev.session_audit_log \gset

SELECT q, pg_temp.error_of(q) FROM (VALUES
  ($$SELECT sessrev.create_session(NULL)$$),
  ($$SELECT sessrev.create_session('')$$),
  ($$SELECT sessrev.create_session(repeat('u', 257))$$),
  ($$SELECT sessrev.create_session('dave', ttl => '0 seconds')$$),
  ($$SELECT sessrev.create_session('dave', ttl => '-1 hour')$$),
  ($$SELECT sessrev.create_session('dave', ttl => '366 days')$$),
  ($$SELECT sessrev.create_session('dave', user_agent => repeat('x', 1025))$$),
  ($$SELECT sessrev.create_session('dave', device_info => repeat('x', 257))$$),
  ($$SELECT sessrev.create_session('dave', metadata => '[1, 2]')$$),
  ($$SELECT sessrev.create_session('dave', metadata => jsonb_build_object('blob', repeat('x', 9000)))$$),
  ($$SELECT sessrev.generate_token(15)$$),
  ($$SELECT sessrev.generate_token(257)$$),
  ($$SELECT sessrev.generate_token(-1)$$),
  ($$SELECT sessrev.revoke_user_sessions(NULL)$$),
  ($$SELECT sessrev.revoke_user_sessions('')$$),
  ($$SELECT sessrev.revoke_user_sessions(repeat('u', 257))$$),
  ($$SELECT sessrev.cleanup_expired_sessions('-1 day')$$),
  ($$SELECT sessrev.cleanup_expired_sessions('1 day', '-1 second')$$),
  ($$SELECT sessrev.cleanup_expired_sessions(NULL)$$),
  ($$SET sessrev.session_ttl = 0$$),
  ($$SET sessrev.cleanup_batch_size = 0$$),
  ($$SET sessrev.no_such_setting = 1$$)
) AS t(q);

-- limits at the boundary are accepted
SELECT count(*) AS created FROM sessrev.create_session(repeat('u', 256), ttl => '365 days',
       user_agent => repeat('x', 1024), device_info => repeat('d', 256));
-- a lower max_ttl applies
SET sessrev.max_ttl = '1h';
SELECT pg_temp.error_of($$SELECT sessrev.create_session('dave', ttl => '2 hours')$$);
SELECT pg_temp.error_of($$SELECT sessrev.create_session('dave')$$) AS default_over_max;
RESET sessrev.max_ttl;

-- only the one good call changed anything
SELECT count(*) - :sessions_before AS new_sessions FROM sessrev.sessions;
SELECT count(*) - :audit_before AS new_audit_rows FROM sessrev.session_audit_log;

-- the table refuses inconsistent rows written directly
SELECT pg_temp.error_of($$INSERT INTO sessrev.sessions (user_id, token_hash, expires_at, revoked)
                          VALUES ('x', sessrev.hash_token('a'), now() + interval '1 day', true)$$);
SELECT pg_temp.error_of($$INSERT INTO sessrev.sessions (user_id, token_hash, expires_at)
                          VALUES ('x', sessrev.hash_token('a'), now() - interval '1 day')$$);
SELECT pg_temp.error_of($$INSERT INTO sessrev.sessions (user_id, token_hash, expires_at)
                          VALUES ('x', 'short', now() + interval '1 day')$$);
