-- Expiry and idle timeout: every state answers the same in every function.
\pset null '(null)'
SELECT session_id AS live_id, token AS live FROM sessrev.create_session('erin') \gset
SELECT session_id AS expired_id, token AS expired FROM sessrev.create_session('erin') \gset
SELECT session_id AS idle_id, token AS idle FROM sessrev.create_session('erin') \gset
-- move the expired one into the past (created_at too, to keep the row consistent)
UPDATE sessrev.sessions SET created_at = now() - interval '2 days', expires_at = now() - interval '1 second'
 WHERE id = :'expired_id';
UPDATE sessrev.sessions SET last_active_at = now() - interval '2 hours' WHERE id = :'idle_id';

-- without idle_timeout only expiry counts
SELECT sessrev.is_revoked(:'live') AS live, sessrev.is_revoked(:'expired') AS expired,
       sessrev.is_revoked(:'idle') AS idle;
SELECT sessrev.is_revoked(:'expired_id'::uuid) AS expired_by_id;
SELECT count(*) AS validates_expired FROM sessrev.validate_session(:'expired');
SELECT sessrev.revoke_session(:'expired_id') AS revoke_expired;
SELECT count(*) AS erin_listed FROM sessrev.user_sessions('erin');

-- with idle_timeout of one hour the idle session is no longer valid
SET sessrev.idle_timeout = '1h';
SELECT sessrev.is_revoked(:'live') AS live, sessrev.is_revoked(:'idle') AS idle,
       sessrev.is_revoked(:'idle_id'::uuid) AS idle_by_id;
SELECT count(*) AS validates_idle FROM sessrev.validate_session(:'idle');
SELECT count(*) AS validates_live FROM sessrev.validate_session(:'live');
-- a session kept busy is touched often enough never to look idle (touch <= idle/2)
SET sessrev.touch_interval = '1h';
UPDATE sessrev.sessions SET last_active_at = now() - interval '31 minutes' WHERE id = :'live_id';
SELECT last_active_at = now() AS touched FROM sessrev.validate_session(:'live');
RESET sessrev.touch_interval;
RESET sessrev.idle_timeout;
SELECT sessrev.is_revoked(:'idle') AS idle_without_timeout;
