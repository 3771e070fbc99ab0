-- cleanup_expired_sessions deletes what is due, in batches, and reports it.
\pset null '(null)'
SET sessrev.cleanup_batch_size = 7;
TRUNCATE sessrev.sessions;
TRUNCATE sessrev.session_audit_log;
-- 50 sessions expired 10 days ago, 20 expired yesterday, 30 revoked 40 days ago,
-- 5 revoked yesterday, 10 live
INSERT INTO sessrev.sessions (user_id, token_hash, created_at, last_active_at, expires_at)
SELECT 'old', sessrev.hash_token('e10-' || i), now() - interval '20 days', now() - interval '20 days',
       now() - interval '10 days' FROM generate_series(1, 50) i;
INSERT INTO sessrev.sessions (user_id, token_hash, created_at, last_active_at, expires_at)
SELECT 'old', sessrev.hash_token('e1-' || i), now() - interval '2 days', now() - interval '2 days',
       now() - interval '1 day' FROM generate_series(1, 20) i;
INSERT INTO sessrev.sessions (user_id, token_hash, created_at, expires_at, revoked, revoked_at)
SELECT 'rev', sessrev.hash_token('r40-' || i), now() - interval '41 days', now() + interval '300 days',
       true, now() - interval '40 days' FROM generate_series(1, 30) i;
INSERT INTO sessrev.sessions (user_id, token_hash, created_at, expires_at, revoked, revoked_at)
SELECT 'rev', sessrev.hash_token('r1-' || i), now() - interval '2 days', now() + interval '300 days',
       true, now() - interval '1 day' FROM generate_series(1, 5) i;
INSERT INTO sessrev.sessions (user_id, token_hash, expires_at)
SELECT 'live', sessrev.hash_token('live-' || i), now() + interval '1 day' FROM generate_series(1, 10) i;
-- audit rows: 12 older than the 90-day retention, 3 recent
INSERT INTO sessrev.session_audit_log (action, created_at)
SELECT 'SESSION_CREATED', now() - interval '100 days' FROM generate_series(1, 12);
INSERT INTO sessrev.session_audit_log (action, created_at)
SELECT 'SESSION_CREATED', now() - interval '1 day' FROM generate_series(1, 3);

SELECT sessrev.cleanup_expired_sessions() AS deleted_default;
SELECT user_id, count(*) FROM sessrev.sessions GROUP BY user_id ORDER BY user_id;
SELECT count(*) AS audit_rows_left FROM sessrev.session_audit_log;
SELECT action, actor = session_user AS actor_is_caller, details FROM sessrev.session_audit_log
 WHERE action = 'CLEANUP';

-- shorter retentions reach the rest; live sessions are never deleted
SELECT sessrev.cleanup_expired_sessions('0 seconds', '0 seconds') AS deleted_all_due;
SELECT user_id, count(*) FROM sessrev.sessions GROUP BY user_id ORDER BY user_id;
SELECT sessrev.cleanup_expired_sessions('0 seconds', '0 seconds') AS nothing_left;
SELECT details FROM sessrev.session_audit_log WHERE action = 'CLEANUP' ORDER BY id;

-- audit_retention = 0 keeps every audit row
SET sessrev.audit_retention = 0;
UPDATE sessrev.session_audit_log SET created_at = now() - interval '1000 days';
SELECT sessrev.cleanup_expired_sessions() AS deleted;
SELECT count(*) AS audit_rows_kept FROM sessrev.session_audit_log;
RESET sessrev.audit_retention;
RESET sessrev.cleanup_batch_size;
