# The other way DBAs schedule cleanup: pg_cron calling cleanup_expired_sessions().
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('cron');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_cron,sessrev'
cron.database_name = 'postgres'
cron.use_background_workers = on
max_worker_processes = 16
sessrev.cleanup_interval = 0
});
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION sessrev;
	CREATE EXTENSION pg_cron;
	INSERT INTO sessrev.sessions (user_id, token_hash, created_at, expires_at)
	SELECT 'old', sessrev.hash_token('old-' || i), now() - interval '30 days', now() - interval '10 days'
	  FROM generate_series(1, 100) i;
	INSERT INTO sessrev.sessions (user_id, token_hash, expires_at)
	VALUES ('live', sessrev.hash_token('live'), now() + interval '1 day');
});
# pg_cron 1.4 schedules by the minute.
like($node->safe_psql('postgres',
		q{SELECT cron.schedule('sessrev-cleanup', '* * * * *', 'SELECT sessrev.cleanup_expired_sessions()')}),
	qr/^\d+$/, 'cleanup scheduled with pg_cron');
$node->poll_query_until('postgres', q{SELECT count(*) = 1 FROM sessrev.sessions}, 't')
  or die 'pg_cron did not clean up';
pass('pg_cron ran the cleanup');
is($node->safe_psql('postgres',
		q{SELECT status FROM cron.job_run_details ORDER BY runid DESC LIMIT 1}),
	'succeeded', 'the pg_cron job succeeded');
is($node->safe_psql('postgres',
		q{SELECT details->>'expired_deleted' FROM sessrev.session_audit_log WHERE action = 'CLEANUP'}),
	'100', 'the CLEANUP audit row counts the expired sessions');
is($node->safe_psql('postgres', q{SELECT user_id FROM sessrev.sessions}), 'live', 'the live session stays');
$node->stop;
done_testing();
