-- The database the examples run against, set up by a superuser: sessrev, the
-- application's users table (tracked, so a password change revokes the
-- user's other sessions), the application server's role with the backend
-- profile, an operator's role for the emergency logout, and for the console
-- (examples/node/console) an end-user role and an auditor. Re-runnable.
CREATE EXTENSION IF NOT EXISTS sessrev;
CREATE SCHEMA IF NOT EXISTS app;
CREATE TABLE IF NOT EXISTS app.users (id text PRIMARY KEY, password_hash text NOT NULL,
                                      is_admin boolean NOT NULL DEFAULT false);
SELECT sessrev.track_user_table('app.users', 'id', credential_columns => '{password_hash}');

SELECT 'CREATE ROLE app_backend LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app_backend') \gexec
SELECT sessrev.grant_backend('app_backend');
GRANT USAGE ON SCHEMA app TO app_backend;
GRANT SELECT, INSERT, UPDATE ON app.users TO app_backend;

SELECT 'CREATE ROLE app_ops LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app_ops') \gexec
GRANT USAGE ON SCHEMA sessrev TO app_ops;
GRANT EXECUTE ON FUNCTION sessrev.revoke_all_sessions(text, text) TO app_ops;

SELECT 'CREATE ROLE app_web LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app_web') \gexec
SELECT sessrev.grant_end_user('app_web');

SELECT 'CREATE ROLE app_audit LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app_audit') \gexec
SELECT sessrev.grant_auditor('app_audit');
