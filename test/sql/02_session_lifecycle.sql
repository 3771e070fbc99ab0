-- Create, validate, check, list and revoke sessions.
\pset null '(null)'
SET sessrev.touch_interval = '60s';

SELECT session_id AS s1, token AS t1, expires_at AS e1
  FROM sessrev.create_session('alice', ip_address => '10.0.0.1',
       user_agent => 'Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0') \gset
SELECT session_id AS s2, token AS t2
  FROM sessrev.create_session('alice', ttl => '1 hour', device_info => 'Work laptop',
                              metadata => '{"app": "web"}') \gset
SELECT session_id AS s3, token AS t3 FROM sessrev.create_session('bob') \gset

-- the token is never stored, only its hash
SELECT count(*) AS rows_holding_raw_token FROM sessrev.sessions s
 WHERE s.token_hash = convert_to(:'t1', 'UTF8') OR s::text LIKE '%' || :'t1' || '%';
SELECT token_hash = sessrev.hash_token(:'t1') AS stored_hash FROM sessrev.sessions WHERE id = :'s1';
-- defaults: session_ttl of 7 days, device derived from the user agent
SELECT expires_at - created_at AS default_ttl, :'e1'::timestamptz = expires_at AS returned_expiry,
       device_info, ip_address, metadata FROM sessrev.sessions WHERE id = :'s1';
SELECT expires_at - created_at AS ttl, device_info, metadata
  FROM sessrev.sessions WHERE id = :'s2';
-- a fresh token every time
SELECT :'t1' <> :'t2' AND :'t2' <> :'t3' AS tokens_differ;

-- validate_session: one row for a live session, none otherwise
SELECT session_id = :'s2' AS same_session, user_id, metadata FROM sessrev.validate_session(:'t2');
SELECT count(*) AS rows_for_unknown FROM sessrev.validate_session('not-a-token');
SELECT count(*) AS rows_for_empty FROM sessrev.validate_session('');
SELECT count(*) AS rows_for_null FROM sessrev.validate_session(NULL);

-- is_revoked: false only for a live session
SELECT sessrev.is_revoked(:'t1') AS t1_revoked, sessrev.is_revoked(:'s1'::uuid) AS s1_revoked;
SELECT sessrev.is_revoked('not-a-token') AS unknown_token, sessrev.is_revoked('') AS empty_token,
       sessrev.is_revoked(NULL::text) AS null_token, sessrev.is_revoked(NULL::uuid) AS null_id,
       sessrev.is_revoked(gen_random_uuid()) AS unknown_id;

-- listing: live sessions without token_hash, most recently active first
UPDATE sessrev.sessions SET last_active_at = now() - interval '5 minutes' WHERE id = :'s1';
SELECT id = :'s2' AS first_is_s2, device_info FROM sessrev.user_sessions('alice');
SELECT count(*) AS bob_sessions FROM sessrev.user_sessions('bob');
SELECT count(*) AS nobody_sessions FROM sessrev.user_sessions('nobody');
SELECT count(*) AS active FROM sessrev.active_sessions;
SELECT count(*) AS token_hash_in_view FROM information_schema.columns
 WHERE table_schema = 'sessrev' AND table_name = 'active_sessions' AND column_name = 'token_hash';

-- touch: validate moves last_active_at only when older than touch_interval
BEGIN;
SELECT last_active_at = now() AS touched_now FROM sessrev.validate_session(:'t1');
SELECT last_active_at = now() AS stored_touched FROM sessrev.sessions WHERE id = :'s1';
UPDATE sessrev.sessions SET last_active_at = now() - interval '30 seconds' WHERE id = :'s1';
SELECT now() - last_active_at AS untouched_within_interval FROM sessrev.validate_session(:'t1');
SELECT now() - last_active_at AS stored_untouched FROM sessrev.sessions WHERE id = :'s1';
COMMIT;

-- revoke one device
SELECT sessrev.revoke_session(:'s1', 'Logged out on laptop', 'alice') AS revoked_s1;
SELECT sessrev.revoke_session(:'s1') AS revoked_again;
SELECT sessrev.revoke_session(gen_random_uuid()) AS revoked_unknown;
SELECT sessrev.is_revoked(:'t1') AS t1_revoked, sessrev.is_revoked(:'s1'::uuid) AS s1_revoked;
SELECT count(*) AS rows_after_revoke FROM sessrev.validate_session(:'t1');
SELECT revoked, revoked_at >= created_at AS has_revoked_at, revoked_reason, revoked_by
  FROM sessrev.sessions WHERE id = :'s1';

-- logout by token
SELECT sessrev.revoke_token(:'t2') AS logout_t2, sessrev.revoke_token(:'t2') AS logout_again,
       sessrev.revoke_token('unknown') AS logout_unknown;
SELECT revoked_reason FROM sessrev.sessions WHERE id = :'s2';

-- a user's sessions but the current one (password change), then all (force logout)
SELECT session_id AS a1, token AS at1 FROM sessrev.create_session('alice') \gset
SELECT session_id AS a2, token AS at2 FROM sessrev.create_session('alice') \gset
SELECT session_id AS a3, token AS at3 FROM sessrev.create_session('alice') \gset
SELECT sessrev.revoke_user_sessions('alice', 'Password changed', 'alice', :'a1') AS revoked_others;
SELECT sessrev.is_revoked(:'at1') AS current_kept, sessrev.is_revoked(:'at2') AS other_2,
       sessrev.is_revoked(:'at3') AS other_3, sessrev.is_revoked(:'t3') AS bob_untouched;
SELECT sessrev.revoke_user_sessions('alice') AS force_logout;
SELECT sessrev.revoke_user_sessions('alice') AS nothing_left;
SELECT sessrev.is_revoked(:'at1') AS current_now_revoked;

-- emergency logout of everyone
SELECT session_id AS c1 FROM sessrev.create_session('carol') \gset
SELECT sessrev.revoke_all_sessions('Key compromise', 'security-team') AS revoked_everyone;
SELECT sessrev.revoke_all_sessions() AS nothing_left;
SELECT count(*) AS active_after_emergency FROM sessrev.active_sessions;
SELECT sessrev.is_revoked(:'t3') AS bob_revoked;

-- the audit trail, in order
SELECT action, session_id IS NOT NULL AS has_session, user_id, actor,
       details ->> 'excluded_session_id' = :'a1' AS excluded_current,
       details - 'expires_at' - 'excluded_session_id' - 'not_before' AS details
  FROM sessrev.session_audit_log ORDER BY id;
