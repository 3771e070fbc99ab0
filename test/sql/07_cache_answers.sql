-- The same answers with and without the shared-memory cache: this file runs in
-- both modes and has one expected output.
\pset null '(null)'
SELECT enabled = (current_setting('shared_preload_libraries') ~ 'sessrev') AS enabled_iff_preloaded,
       (capacity > 0) = enabled AS capacity_iff_enabled
  FROM sessrev.cache_stats();
SELECT sessrev.cache_reset();

CREATE TEMP TABLE states (state text, session_id uuid, token text);
INSERT INTO states SELECT 'active', session_id, token FROM sessrev.create_session('cache-user');
INSERT INTO states SELECT 'revoked', session_id, token FROM sessrev.create_session('cache-user');
INSERT INTO states SELECT 'expired', session_id, token FROM sessrev.create_session('cache-user');
INSERT INTO states SELECT 'idle', session_id, token FROM sessrev.create_session('cache-user');
-- Extreme last activity times, which the cache keeps in whole seconds.
INSERT INTO states SELECT 'last active -infinity', session_id, token FROM sessrev.create_session('cache-user');
INSERT INTO states SELECT 'last active 1900', session_id, token FROM sessrev.create_session('cache-user');
INSERT INTO states SELECT 'last active infinity', session_id, token FROM sessrev.create_session('cache-user');
INSERT INTO states VALUES ('unknown', gen_random_uuid(), 'no-such-token'),
                          ('empty', NULL, ''), ('null', NULL, NULL);
SELECT sessrev.revoke_session(session_id) AS revoked FROM states WHERE state = 'revoked';
UPDATE sessrev.sessions SET created_at = now() - interval '2 days', expires_at = now() - interval '1 day'
 WHERE id = (SELECT session_id FROM states WHERE state = 'expired');
UPDATE sessrev.sessions SET last_active_at = now() - interval '2 hours'
 WHERE id = (SELECT session_id FROM states WHERE state = 'idle');
UPDATE sessrev.sessions s SET last_active_at = v.at
  FROM states, (VALUES ('last active -infinity', '-infinity'::timestamptz),
                       ('last active 1900', '1900-01-01 00:00:00+00'),
                       ('last active infinity', 'infinity')) v(state, at)
 WHERE s.id = states.session_id AND states.state = v.state;

-- Each check three times: a miss, then (when cached) hits. Idle checks then run
-- against the entries filled while idle_timeout was off.
SELECT state, sessrev.is_revoked(token) AS by_token, sessrev.is_revoked(session_id) AS by_id
  FROM states, generate_series(1, 3) ORDER BY state;
SET sessrev.idle_timeout = '1h';
SELECT state, sessrev.is_revoked(token) AS by_token, sessrev.is_revoked(session_id) AS by_id
  FROM states, generate_series(1, 2) ORDER BY state;
-- validate_session agrees on the extreme times.
SELECT state, (SELECT count(*) FROM sessrev.validate_session(token)) AS validates
  FROM states WHERE state LIKE 'last active%' ORDER BY state;
RESET sessrev.idle_timeout;

-- A DBA's direct changes are seen at once, cached or not.
UPDATE sessrev.sessions SET revoked = true, revoked_at = now()
 WHERE id = (SELECT session_id FROM states WHERE state = 'active');
SELECT sessrev.is_revoked(token) AS active_after_direct_update FROM states WHERE state = 'active';
-- Revoked is final (1.5): not even the tables' owner can make it live again.
UPDATE sessrev.sessions SET revoked = false, revoked_at = NULL
 WHERE id = (SELECT session_id FROM states WHERE state = 'active');
SELECT sessrev.is_revoked(token) AS active_after_refused_unrevoke FROM states WHERE state = 'active';
-- A live session deleted (last active 1900 is live without an idle timeout).
SELECT sessrev.is_revoked(token) AS live_before_delete FROM states WHERE state = 'last active 1900';
DELETE FROM sessrev.sessions WHERE id = (SELECT session_id FROM states WHERE state = 'last active 1900');
SELECT sessrev.is_revoked(token) AS live_after_delete, sessrev.is_revoked(session_id) AS by_id
  FROM states WHERE state = 'last active 1900';
