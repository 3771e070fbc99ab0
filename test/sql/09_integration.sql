-- Application integration: the current session, automatic revocation on account
-- changes, self-service, session limits, extension, token rotation.
\pset null '(null)'
\i test/sql/include/error_of.sql
-- Live sessions of a user, as a short summary.
CREATE FUNCTION pg_temp.live(u text) RETURNS bigint LANGUAGE sql AS
$$ SELECT count(*) FROM sessrev.active_sessions WHERE user_id = u $$;

-- 1. The current session of a transaction.
SELECT session_id AS cur, token AS cur_token FROM sessrev.create_session('42') \gset
SELECT session_id AS other, token AS other_token FROM sessrev.create_session('42') \gset
SELECT sessrev.current_session_id() IS NULL AS none_yet, sessrev.current_user_id() AS no_user;
BEGIN;
SELECT count(*) AS validated FROM sessrev.validate_session(:'cur_token');
SELECT sessrev.current_session_id() = :'cur' AS current_is_validated, sessrev.current_user_id() AS current_user;
COMMIT;
-- a pooled connection's next transaction starts clean
SELECT sessrev.current_session_id() IS NULL AS forgotten_after_commit, sessrev.current_user_id() AS no_user;
BEGIN;
SELECT count(*) FROM sessrev.validate_session(:'cur_token');
ROLLBACK;
SELECT sessrev.current_session_id() IS NULL AS forgotten_after_rollback;
BEGIN;
SELECT sessrev.set_current_session(:'other');
SELECT sessrev.current_session_id() = :'other' AS set_explicitly;
COMMIT;
SELECT pg_temp.error_of(format('SELECT sessrev.set_current_session(%L)', gen_random_uuid())) AS unknown_session;
SELECT count(*) AS invalid_token_sets_nothing FROM sessrev.validate_session('nope');
SELECT sessrev.current_session_id() IS NULL AS still_none;

-- 2. Self-service.
SELECT session_id AS bobs FROM sessrev.create_session('bob') \gset
SELECT pg_temp.error_of('SELECT * FROM sessrev.my_sessions()') AS my_sessions_without_session,
       pg_temp.error_of('SELECT sessrev.revoke_my_other_sessions()') AS revoke_others_without_session,
       pg_temp.error_of(format('SELECT sessrev.revoke_my_session(%L)', :'other')) AS revoke_mine_without_session;
BEGIN;
SELECT count(*) FROM sessrev.validate_session(:'cur_token');
SELECT id = :'cur' AS is_cur, is_current FROM sessrev.my_sessions() ORDER BY is_current DESC;
SELECT sessrev.revoke_my_session(:'bobs') AS another_users_session;
SELECT sessrev.is_revoked(:'bobs'::uuid) AS bobs_untouched;
SELECT pg_temp.error_of(format('SELECT sessrev.revoke_my_session(%L)', :'cur')) AS revoke_current;
SELECT sessrev.revoke_my_session(:'other') AS revoke_other_device;
SELECT sessrev.revoke_my_session(:'other') AS again;
COMMIT;
SELECT session_id AS d2 FROM sessrev.create_session('42') \gset
SELECT session_id AS d3 FROM sessrev.create_session('42') \gset
BEGIN;
SELECT count(*) FROM sessrev.validate_session(:'cur_token');
SELECT sessrev.revoke_my_other_sessions() AS revoked_others;
COMMIT;
SELECT pg_temp.live('42') AS live_42, sessrev.is_revoked(:'cur'::uuid) AS current_kept;

-- 3. Automatic revocation on account changes, integer ids.
CREATE TABLE app_users (id int PRIMARY KEY, email text, password_hash text, mfa_secret text,
                        role text, groups text[], is_admin boolean);
INSERT INTO app_users VALUES (7, 'a@example.com', 'h1', 's1', 'user', '{staff}', false),
                             (8, 'b@example.com', 'h2', 's2', 'user', '{}', false);
SELECT sessrev.track_user_table('app_users', 'id', '{password_hash,mfa_secret}', '{role,groups,is_admin}');
SELECT session_id AS s7a, token AS t7a FROM sessrev.create_session('7') \gset
SELECT session_id AS s7b FROM sessrev.create_session('7') \gset
SELECT session_id AS s7c FROM sessrev.create_session('7') \gset
SELECT session_id AS s8 FROM sessrev.create_session('8') \gset

-- an unrelated change revokes nothing
UPDATE app_users SET email = 'new@example.com' WHERE id = 7;
SELECT pg_temp.live('7') AS after_email_change;
-- a password change by the user keeps the session they did it from, in the same transaction
BEGIN;
SELECT count(*) FROM sessrev.validate_session(:'t7a');
UPDATE app_users SET password_hash = 'h1-new' WHERE id = 7;
SELECT pg_temp.live('7') AS inside_tx, sessrev.is_revoked(:'s7a'::uuid) AS current_revoked;
ROLLBACK;
SELECT pg_temp.live('7') AS after_rollback, password_hash FROM app_users WHERE id = 7;
BEGIN;
SELECT count(*) FROM sessrev.validate_session(:'t7a');
UPDATE app_users SET password_hash = 'h1-new' WHERE id = 7;
COMMIT;
SELECT pg_temp.live('7') AS after_own_password_change, sessrev.is_revoked(:'s7a'::uuid) AS current_revoked,
       pg_temp.live('8') AS other_user_untouched;
-- an admin's reset (no current session of that user) revokes them all
SELECT session_id AS s7d FROM sessrev.create_session('7') \gset
BEGIN;
UPDATE app_users SET mfa_secret = 's1-reset' WHERE id = 7;
ROLLBACK;
SELECT pg_temp.live('7') AS after_reset_rollback;
UPDATE app_users SET mfa_secret = 's1-reset' WHERE id = 7;
SELECT pg_temp.live('7') AS after_admin_reset;
-- an admin validated as another user resetting user 7 still revokes all of user 7's sessions
SELECT session_id AS s7e FROM sessrev.create_session('7') \gset
SELECT token AS admin_token FROM sessrev.create_session('admin-1') \gset
BEGIN;
SELECT count(*) AS admin_validated FROM sessrev.validate_session(:'admin_token');
UPDATE app_users SET password_hash = 'h1-reset' WHERE id = 7;
COMMIT;
SELECT pg_temp.live('7') AS after_reset_by_other_user;
-- a privilege change revokes every session, the current one too
SELECT session_id AS s7f, token AS t7f FROM sessrev.create_session('7') \gset
SELECT session_id AS s7g FROM sessrev.create_session('7') \gset
BEGIN;
UPDATE app_users SET role = 'admin' WHERE id = 7;
ROLLBACK;
SELECT pg_temp.live('7') AS after_role_rollback;
BEGIN;
SELECT count(*) FROM sessrev.validate_session(:'t7f');
UPDATE app_users SET role = 'admin' WHERE id = 7;
COMMIT;
SELECT pg_temp.live('7') AS after_role_change;
SELECT session_id AS s7h FROM sessrev.create_session('7') \gset
UPDATE app_users SET groups = '{staff,finance}' WHERE id = 7;
SELECT pg_temp.live('7') AS after_group_change;
SELECT session_id AS s7i FROM sessrev.create_session('7') \gset
UPDATE app_users SET is_admin = true WHERE id = 7;
SELECT pg_temp.live('7') AS after_flag_change;
-- deleting the user revokes everything, and sets the JWT cut-off
SELECT session_id AS s7j FROM sessrev.create_session('7') \gset
BEGIN;
DELETE FROM app_users WHERE id = 7;
ROLLBACK;
SELECT pg_temp.live('7') AS after_delete_rollback;
DELETE FROM app_users WHERE id = 7;
SELECT pg_temp.live('7') AS after_delete,
       sessrev.is_jwt_revoked('any-jti', '7', now() - interval '1 second') AS jwt_issued_before_delete;
SELECT revoked_reason, count(*) FROM sessrev.sessions WHERE user_id = '7' GROUP BY 1 ORDER BY 1;

-- uuid ids, and untracking
CREATE TABLE app_accounts (account_id uuid PRIMARY KEY DEFAULT gen_random_uuid(), pw text);
INSERT INTO app_accounts (pw) VALUES ('x') RETURNING account_id AS acct \gset
SELECT sessrev.track_user_table('app_accounts', 'account_id', credential_columns => '{pw}');
SELECT session_id AS sa FROM sessrev.create_session(:'acct') \gset
UPDATE app_accounts SET pw = 'y';
SELECT pg_temp.live(:'acct') AS uuid_user_after_password_reset;
SELECT sessrev.untrack_user_table('app_accounts');
SELECT session_id AS sb FROM sessrev.create_session(:'acct') \gset
UPDATE app_accounts SET pw = 'z';
SELECT pg_temp.live(:'acct') AS untracked_keeps_sessions;
-- wrong names
SELECT pg_temp.error_of(q) FROM (VALUES
  ($$SELECT sessrev.track_user_table('no_such_table', 'id')$$),
  ($$SELECT sessrev.track_user_table('app_users', 'no_such_column')$$),
  ($$SELECT sessrev.track_user_table('app_users', 'id', '{password}')$$),
  ($$SELECT sessrev.track_user_table('app_users', 'id', privilege_columns => '{rank}')$$),
  ($$SELECT sessrev.track_user_table('sessrev.active_sessions', 'id')$$)
) AS t(q);

-- 4. Limits and lifetimes.
SET sessrev.max_sessions_per_user = 1;
SELECT session_id AS one1 FROM sessrev.create_session('single') \gset
SELECT session_id AS one2 FROM sessrev.create_session('single') \gset
SELECT pg_temp.live('single') AS single_live, sessrev.is_revoked(:'one1'::uuid) AS first_revoked,
       sessrev.is_revoked(:'one2'::uuid) AS newest_kept;
SELECT revoked_reason FROM sessrev.sessions WHERE id = :'one1';
SET sessrev.max_sessions_per_user = 3;
SELECT session_id AS l1 FROM sessrev.create_session('three') \gset
SELECT session_id AS l2 FROM sessrev.create_session('three') \gset
SELECT session_id AS l3 FROM sessrev.create_session('three') \gset
-- l1 is the most recently active, l2 the least
UPDATE sessrev.sessions SET last_active_at = now() - interval '1 hour' WHERE id = :'l2';
UPDATE sessrev.sessions SET last_active_at = now() - interval '30 minutes' WHERE id = :'l3';
SELECT session_id AS l4 FROM sessrev.create_session('three') \gset
SELECT pg_temp.live('three') AS three_live, sessrev.is_revoked(:'l2'::uuid) AS least_recent_revoked,
       sessrev.is_revoked(:'l1'::uuid) AS l1, sessrev.is_revoked(:'l3'::uuid) AS l3, sessrev.is_revoked(:'l4'::uuid) AS l4;
RESET sessrev.max_sessions_per_user;

SELECT session_id AS ext FROM sessrev.create_session('ext', ttl => '1 day') \gset
SELECT sessrev.extend_session(:'ext', '2 days') - created_at AS extended_to FROM sessrev.sessions WHERE id = :'ext';
SET sessrev.max_ttl = '5d';
SELECT sessrev.extend_session(:'ext', '30 days') - created_at AS capped_at_max_ttl FROM sessrev.sessions WHERE id = :'ext';
RESET sessrev.max_ttl;
SELECT sessrev.extend_session(gen_random_uuid(), '1 day') AS unknown_session;
SELECT pg_temp.error_of(format('SELECT sessrev.extend_session(%L, %L)', :'ext', '-1 day')) AS negative,
       pg_temp.error_of(format('SELECT sessrev.extend_session(%L, NULL)', :'ext')) AS null_by;

-- 5. Token rotation with reuse detection.
SELECT session_id AS rot, token AS rot_old FROM sessrev.create_session('rotator') \gset
SELECT token AS rot_new FROM sessrev.rotate_token(:'rot_old') \gset
SELECT :'rot_new' <> :'rot_old' AS new_token;
SELECT sessrev.is_revoked(:'rot_old') AS old_is_revoked, sessrev.is_revoked(:'rot_new') AS new_is_live;
SELECT session_id = :'rot' AS new_validates FROM sessrev.validate_session(:'rot_new');
-- within the reuse interval the old token still validates (requests in flight)
SELECT session_id = :'rot' AS old_in_flight FROM sessrev.validate_session(:'rot_old');
SELECT count(*) AS rotate_retired_token FROM sessrev.rotate_token(:'rot_old');
-- after it, presenting the old token is theft: the whole session is revoked
UPDATE sessrev.retired_tokens SET retired_at = now() - interval '1 minute' WHERE session_id = :'rot';
SELECT count(*) AS old_after_interval FROM sessrev.validate_session(:'rot_old');
SELECT count(*) AS new_after_theft FROM sessrev.validate_session(:'rot_new');
SELECT revoked_reason FROM sessrev.sessions WHERE id = :'rot';
SELECT count(*) AS rotate_unknown FROM sessrev.rotate_token('nope');
-- retired hashes go with their session's expiry
UPDATE sessrev.retired_tokens SET expires_at = now() - interval '1 second' WHERE session_id = :'rot';
SELECT sessrev.cleanup_expired_sessions() >= 0 AS cleaned;
SELECT count(*) AS retired_left FROM sessrev.retired_tokens WHERE session_id = :'rot';

-- Every action wrote its audit row.
SELECT action, count(*) FROM sessrev.session_audit_log
 WHERE action IN ('SESSION_EXTENDED', 'TOKEN_ROTATED', 'TOKEN_REUSE') GROUP BY 1 ORDER BY 1;
SELECT details->>'reason' AS reason, count(*) FROM sessrev.session_audit_log
 WHERE action = 'SESSION_REVOKED' AND details->>'reason' IN
       ('User deleted', 'Credentials changed', 'Credentials reset', 'Privileges changed', 'Session limit',
        'Token reuse detected', 'Signed out by user', 'Signed out from other devices')
 GROUP BY 1 ORDER BY 1;
DROP TABLE app_users, app_accounts;
