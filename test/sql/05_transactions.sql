-- Revocation is transactional: it commits or rolls back with the caller's work.
\pset null '(null)'
SELECT session_id AS f1, token AS ft1 FROM sessrev.create_session('frank') \gset
SELECT session_id AS f2, token AS ft2 FROM sessrev.create_session('frank') \gset
SELECT count(*) AS audit_before FROM sessrev.session_audit_log \gset

BEGIN;
SELECT sessrev.revoke_session(:'f1') AS revoked_in_tx;
-- inside the revoking transaction the answer is already "revoked"
SELECT sessrev.is_revoked(:'ft1') AS revoked_inside, count(v.*) AS validates_inside
  FROM (SELECT 1) x LEFT JOIN sessrev.validate_session(:'ft1') v ON true;
SELECT sessrev.revoke_user_sessions('frank') AS revoked_rest;
SELECT sessrev.revoke_all_sessions() AS revoked_all;
ROLLBACK;

SELECT sessrev.is_revoked(:'ft1') AS ft1_after_rollback, sessrev.is_revoked(:'ft2') AS ft2_after_rollback;
SELECT count(*) AS validates_after_rollback FROM sessrev.validate_session(:'ft1');
SELECT count(*) - :audit_before AS audit_rows_after_rollback FROM sessrev.session_audit_log;

-- a savepoint rolled back changes nothing either
BEGIN;
SAVEPOINT before_revoke;
SELECT sessrev.revoke_token(:'ft2') AS revoked_in_savepoint;
ROLLBACK TO SAVEPOINT before_revoke;
SELECT sessrev.is_revoked(:'ft2') AS after_rollback_to_savepoint;
COMMIT;
SELECT sessrev.is_revoked(:'ft2') AS after_commit;

-- a password change and the revocation of the other sessions commit together
CREATE TABLE app_users (id int PRIMARY KEY, password_hash text);
INSERT INTO app_users VALUES (1, 'old');
BEGIN;
UPDATE app_users SET password_hash = 'new' WHERE id = 1;
SELECT sessrev.revoke_user_sessions('frank', 'Password changed', 'frank', :'f1') AS revoked_others;
COMMIT;
SELECT password_hash FROM app_users;
SELECT sessrev.is_revoked(:'ft1') AS current_kept, sessrev.is_revoked(:'ft2') AS other_revoked;
DROP TABLE app_users;
