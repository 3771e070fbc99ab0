-- sessrev walkthrough: sessions on several devices, per-request checks answered
-- from the shared-memory cache, a logout refused at once in another connection,
-- password change, forced and emergency logout, the audit log and the worker's
-- cleanup. Run by scripts/demo, on a cluster that preloads sessrev (the cache
-- and the worker need it); by hand:
--   psql -X -v ON_ERROR_STOP=1 -q -f scripts/demo.sql
-- in a scratch database of such a cluster, which the worker serves
-- (sessrev.database); it creates the extensions sessrev and dblink (for the
-- second connection) and a table "users".
--
-- Tokens are bearer credentials: this script keeps them in psql variables and
-- a temporary table, and only ever prints their first 8 characters.

\set ON_ERROR_STOP 1
\pset footer off
\pset null '-'
SET client_min_messages = warning;
SET timezone = 'UTC';

\echo '== 1. Install the extension (the server preloads its library: shared_preload_libraries)'
CREATE EXTENSION sessrev;
SELECT extversion AS "sessrev version", current_setting('shared_preload_libraries') AS preloaded,
       (SELECT enabled FROM sessrev.cache_stats()) AS "cache on",
       (SELECT pid IS NOT NULL FROM sessrev.worker_status()) AS "worker running"
  FROM pg_extension WHERE extname = 'sessrev';

\echo
\echo '== 2. The application: a users table, alice and bob'
CREATE TABLE users (
    id                  text PRIMARY KEY,
    name                text NOT NULL,
    password_hash       text NOT NULL,
    password_changed_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO users (id, name, password_hash) VALUES
    ('alice', 'Alice Martin', '$argon2id$v=19$demo-alice-1'),
    ('bob',   'Bob Chen',     '$argon2id$v=19$demo-bob-1');
SELECT id, name FROM users ORDER BY id;

-- Every session the demo creates, with a label, so that is_revoked can be asked
-- about each token at every step (demo bookkeeping, not part of sessrev).
CREATE TEMP TABLE demo_sessions (
    ord        int GENERATED ALWAYS AS IDENTITY,
    label      text NOT NULL,
    session_id uuid NOT NULL,
    token      text NOT NULL
);
CREATE TEMP VIEW token_status AS
SELECT label                                AS session,
       left(token, 8) || '…'                AS token,
       sessrev.is_revoked(token)            AS "is_revoked(token)",
       sessrev.is_revoked(session_id)       AS "is_revoked(id)"
  FROM demo_sessions ORDER BY ord;

\echo
\echo '== 3. Logins: create_session(user_id, ip_address => ..., user_agent => ...)'
\echo '   The token is returned once; only its SHA-256 is stored.'
INSERT INTO demo_sessions (label, session_id, token)
SELECT 'alice: Chrome on macOS', session_id, token
  FROM sessrev.create_session('alice', ip_address => '203.0.113.10',
       user_agent => 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36')
RETURNING session_id AS alice_mac_id, token AS alice_mac_token \gset
INSERT INTO demo_sessions (label, session_id, token)
SELECT 'alice: Safari on iPhone', session_id, token
  FROM sessrev.create_session('alice', ip_address => '198.51.100.23',
       user_agent => 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1')
RETURNING session_id AS alice_iphone_id, token AS alice_iphone_token \gset
INSERT INTO demo_sessions (label, session_id, token)
SELECT 'alice: Firefox on Linux', session_id, token
  FROM sessrev.create_session('alice', ip_address => '2001:db8:85a3::8a2e:370:7334',
       user_agent => 'Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0')
RETURNING session_id AS alice_linux_id, token AS alice_linux_token \gset
INSERT INTO demo_sessions (label, session_id, token)
SELECT 'bob: Edge on Windows', session_id, token
  FROM sessrev.create_session('bob', ip_address => '192.0.2.77',
       user_agent => 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0')
RETURNING session_id AS bob_windows_id, token AS bob_windows_token \gset
SELECT label AS session, left(token, 8) || '…' AS token, left(session_id::text, 8) || '…' AS session_id
  FROM demo_sessions ORDER BY ord;

\echo
\echo '== 4. alice''s "where you are signed in" page: sessrev.user_sessions(''alice'')'
SELECT device_info, ip_address, created_at::timestamp(0) AS created_at, expires_at::timestamp(0) AS expires_at
  FROM sessrev.user_sessions('alice');

\echo
\echo '== 5. Each request: validate_session(token) returns the session (and touches last_active_at);'
\echo '   is_revoked(token) is the cheaper read-only check. An unknown token is simply not valid.'
SELECT d.label AS request_from, v.user_id AS "validate_session: user",
       v.expires_at::timestamp(0) AS expires_at, sessrev.is_revoked(d.token) AS is_revoked
  FROM (SELECT ord, label, token FROM demo_sessions
        UNION ALL SELECT 99, 'attacker: forged token', 'not-a-real-token') d
  LEFT JOIN LATERAL sessrev.validate_session(d.token) v ON true
 ORDER BY d.ord;

\echo
\echo '== 6. is_revoked for every token, before any revocation'
TABLE token_status;

\echo
\echo '   Checks are answered from shared memory: 1,000 more checks of each token, then the'
\echo '   cache''s counters (misses are the first check of each token, and unknown ones):'
SELECT hits AS hits_before FROM sessrev.cache_stats() \gset
SELECT count(*) FILTER (WHERE NOT sessrev.is_revoked(token)) AS "live answers"
  FROM demo_sessions, generate_series(1, 1000);
SELECT hits - :hits_before AS "answered from the cache", misses, entries FROM sessrev.cache_stats();

\echo
\echo '== 7. alice signs out her Linux laptop from the device list: revoke_session(id, reason, by)'
\echo '   Another connection (an application server; dblink here) checks her token before and'
\echo '   right after the revocation commits:'
CREATE EXTENSION dblink;
SELECT dblink_connect('app_server', 'dbname=' || current_database()) AS "second connection";
SELECT * FROM dblink('app_server', format('SELECT sessrev.is_revoked(%L)', :'alice_linux_token'))
         AS t("is_revoked, other connection, before" boolean);
SELECT sessrev.revoke_session(:'alice_linux_id', 'Signed out from device list', 'alice') AS revoked;
SELECT * FROM dblink('app_server', format('SELECT sessrev.is_revoked(%L)', :'alice_linux_token'))
         AS t("is_revoked, other connection, right after" boolean);
\echo '   Revoking it again is a no-op:'
SELECT sessrev.revoke_session(:'alice_linux_id', 'Signed out from device list', 'alice') AS revoked_again;

\echo
\echo '== 8. alice changes her password on her Mac: one transaction updates users and'
\echo '   revokes all her other sessions, keeping the current one'
BEGIN;
UPDATE users SET password_hash = '$argon2id$v=19$demo-alice-2', password_changed_at = now()
 WHERE id = 'alice';
SELECT sessrev.revoke_user_sessions('alice', 'Password changed', 'alice', :'alice_mac_id')
       AS "other sessions revoked";
COMMIT;
SELECT device_info, ip_address, created_at::timestamp(0) AS created_at
  FROM sessrev.user_sessions('alice');

\echo
\echo '== 9. An admin forces bob out: revoke_user_sessions(''bob'', ''Forced logout'', ''admin'')'
SELECT sessrev.revoke_user_sessions('bob', 'Forced logout', 'admin') AS "sessions revoked";
\echo '   bob signs in again on his phone:'
INSERT INTO demo_sessions (label, session_id, token)
SELECT 'bob: Chrome on Android', session_id, token
  FROM sessrev.create_session('bob', ip_address => '192.0.2.80',
       user_agent => 'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.144 Mobile Safari/537.36')
RETURNING session_id AS bob_android_id, token AS bob_android_token \gset
SELECT user_id, device_info, ip_address FROM sessrev.active_sessions ORDER BY user_id, created_at;

\echo
\echo '== 10. is_revoked for every token, after the per-user revocations'
TABLE token_status;

\echo
\echo '== 11. Emergency: every session everywhere, revoke_all_sessions(''Emergency'', ''security'')'
SELECT sessrev.revoke_all_sessions('Emergency', 'security') AS "sessions revoked";
SELECT count(*) AS "active sessions left" FROM sessrev.active_sessions;
TABLE token_status;
\echo '   A request with alice''s Mac token now finds no session:'
SELECT count(*) AS "validate_session rows" FROM sessrev.validate_session(:'alice_mac_token');

\echo
\echo '== 12. alice signs in again after the emergency; the new session is valid'
INSERT INTO demo_sessions (label, session_id, token)
SELECT 'alice: Chrome on macOS (new)', session_id, token
  FROM sessrev.create_session('alice', ip_address => '203.0.113.10',
       user_agent => 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36')
RETURNING session_id AS alice_mac2_id, token AS alice_mac2_token \gset
SELECT user_id, sessrev.is_revoked(:'alice_mac2_token') AS is_revoked
  FROM sessrev.validate_session(:'alice_mac2_token');

\echo
\echo '== 13. The audit log, sessrev.session_audit_log (written in the same transaction as each change)'
SELECT id, action, user_id, actor, details - 'expires_at' AS details
  FROM sessrev.session_audit_log ORDER BY id;
\echo '   (SESSION_CREATED details also carry expires_at; left out above for width.)'

\echo
\echo '== 14. Cleanup. Pretend time has passed (demo only: direct UPDATEs of sessrev.sessions):'
\echo '   the Linux laptop was revoked 40 days ago, the iPhone session expired 10 days ago,'
\echo '   bob''s Windows session expired 53 days ago.'
UPDATE sessrev.sessions
   SET created_at = now() - interval '45 days', last_active_at = now() - interval '40 days',
       revoked_at = now() - interval '40 days'
 WHERE id = :'alice_linux_id';
UPDATE sessrev.sessions
   SET created_at = now() - interval '17 days', last_active_at = now() - interval '12 days',
       expires_at = now() - interval '10 days', revoked_at = now() - interval '12 days'
 WHERE id = :'alice_iphone_id';
UPDATE sessrev.sessions
   SET created_at = now() - interval '60 days', last_active_at = now() - interval '55 days',
       expires_at = now() - interval '53 days', revoked_at = now() - interval '55 days'
 WHERE id = :'bob_windows_id';
SELECT d.label AS session, s.expires_at::date AS expires, s.revoked_at::date AS revoked,
       s.revoked_reason
  FROM demo_sessions d JOIN sessrev.sessions s ON s.id = d.session_id ORDER BY d.ord;

\echo
\echo '   The background worker deletes sessions expired over 7 days ago and revoked over'
\echo '   30 days ago, and audit rows older than sessrev.audit_retention, every'
\echo '   sessrev.cleanup_interval; run_cleanup_now() wakes it:'
SELECT sessrev.run_cleanup_now() AS "worker woken";
DO $$
BEGIN
    FOR i IN 1 .. 200 LOOP
        EXIT WHEN (SELECT runs > 0 FROM sessrev.worker_status());
        PERFORM pg_sleep(0.05);
    END LOOP;
END
$$;
SELECT runs, last_deleted AS "sessions deleted", last_error FROM sessrev.worker_status();
SELECT d.label AS "sessions left", s.revoked
  FROM demo_sessions d JOIN sessrev.sessions s ON s.id = d.session_id ORDER BY d.ord;
SELECT action, actor, details FROM sessrev.session_audit_log WHERE action = 'CLEANUP';

\echo
\echo '== 15. Self-service in a request: validate_session makes the session current for the'
\echo '   transaction; my_sessions() and revoke_my_other_sessions() act on that user only.'
SELECT token AS alice_tablet_token FROM sessrev.create_session('alice', device_info => 'iPad') \gset
BEGIN;
SELECT user_id AS "validated as" FROM sessrev.validate_session(:'alice_mac2_token');
SELECT device_info, is_current FROM sessrev.my_sessions();
SELECT sessrev.revoke_my_other_sessions() AS "other devices signed out";
COMMIT;
SELECT sessrev.current_user_id() IS NULL AS "forgotten after COMMIT (safe with pools)";

\echo
\echo '== 16. Token rotation: the old token stops passing is_revoked at once, still validates'
\echo '   for sessrev.reuse_interval (requests in flight), and after that counts as stolen.'
SELECT token AS rotated_token FROM sessrev.rotate_token(:'alice_mac2_token') \gset
SELECT sessrev.is_revoked(:'alice_mac2_token') AS "old token revoked",
       sessrev.is_revoked(:'rotated_token') AS "new token revoked";
UPDATE sessrev.retired_tokens SET retired_at = now() - interval '1 minute';  -- demo only: time passes
SELECT count(*) AS "old token replayed later: sessions returned" FROM sessrev.validate_session(:'alice_mac2_token');
SELECT action, details FROM sessrev.session_audit_log WHERE action = 'TOKEN_REUSE';
SELECT sessrev.is_revoked(:'rotated_token') AS "whole session revoked";

\echo
\echo '== 17. Stateless tokens (JWT): a denylist with bounded growth and not-before cut-offs'
SELECT sessrev.revoke_jwt('jti-123', now() + interval '15 minutes', 'carol', 'Stolen phone', 'admin') AS denylisted;
SELECT sessrev.revoke_user_tokens_before('dave', now());
\echo '   (the emergency logout of step 11 also revoked every JWT issued before it)'
SELECT t.jti, t.sub, t.why, sessrev.is_jwt_revoked(t.jti, t.sub, now() - t.issued_ago) AS revoked
  FROM (VALUES ('jti-123', 'carol', interval '0', 'denylisted'),
               ('jti-456', 'carol', interval '0', 'another of carol''s tokens'),
               ('jti-789', 'dave', interval '0', 'issued after dave''s cut-off'),
               ('jti-000', 'erin', interval '1 hour', 'issued before the emergency'))
       AS t(jti, sub, issued_ago, why);

\echo
\echo 'Done.'
