# The background cleanup worker: waits quietly without the extension, deletes
# expired rows within two intervals, follows a reloaded interval, wakes on
# run_cleanup_now, is restarted after pg_terminate_backend, shares the cleanup
# advisory lock, does nothing on a standby, and does not delay shutdown.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $node = PostgreSQL::Test::Cluster->new('worker');
$node->init(allows_streaming => 1);
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'sessrev'
sessrev.cleanup_interval = '2s'
});
$node->start;
sub sql { return $node->safe_psql('postgres', $_[0]); }

my $expired_rows = q{
	INSERT INTO sessrev.sessions (user_id, token_hash, created_at, expires_at)
	SELECT 'old', sessrev.hash_token(gen_random_uuid()::text), now() - interval '30 days',
	       now() - interval '10 days' FROM generate_series(1, %d)};

# Without the extension the worker runs, says so once, and keeps waiting.
$node->poll_query_until('postgres',
	q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'sessrev cleanup'})
  or die 'worker did not start';
sleep 5;
my $log = slurp_file($node->logfile);
my @missing = ($log =~ /extension "sessrev" is not installed in database "postgres"/g);
is(scalar @missing, 1, 'a missing extension is logged once, not at every interval');
unlike($log, qr/sessrev cleanup.*exited with exit code/, 'the worker did not crash-loop');

sql('CREATE EXTENSION sessrev');
like(sql('SELECT pid FROM sessrev.worker_status()'), qr/^\d+$/, 'worker_status shows the worker pid');
is(sql(q{SELECT application_name FROM pg_stat_activity WHERE backend_type = 'sessrev cleanup'}),
	'sessrev cleanup', 'the worker is named in pg_stat_activity');

# Expired rows go within two intervals.
sql(sprintf($expired_rows, 500));
my $start = time;
$node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM sessrev.sessions}) or die;
my $took = time - $start;
cmp_ok($took, '<=', 4.5, sprintf('expired rows deleted within two intervals (%.1f s)', $took));
$node->poll_query_until('postgres', q{SELECT total_deleted >= 500 FROM sessrev.worker_status()}) or die;
is(sql(q{SELECT actor FROM sessrev.session_audit_log WHERE action = 'CLEANUP' AND (details->>'expired_deleted')::int = 500}),
	'sessrev cleanup', 'the worker wrote the CLEANUP audit row');
is(sql('SELECT last_error IS NULL AND runs > 0 FROM sessrev.worker_status()'), 't', 'runs counted, no error');

# A reloaded interval is obeyed: 0 turns it off, a short one turns it back on.
sql(q{ALTER SYSTEM SET sessrev.cleanup_interval = 0; SELECT pg_reload_conf()});
sleep 1;
my $runs = sql('SELECT runs FROM sessrev.worker_status()');
sql(sprintf($expired_rows, 50));
sleep 5;
is(sql('SELECT count(*) FROM sessrev.sessions'), '50', 'with the interval at 0 nothing is deleted');
is(sql('SELECT runs FROM sessrev.worker_status()'), $runs, 'and the worker does not run');

# run_cleanup_now wakes it even then.
is(sql('SELECT sessrev.run_cleanup_now()'), 't', 'run_cleanup_now wakes the worker');
$node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM sessrev.sessions}) or die;
pass('the woken worker cleaned up');

sql(q{ALTER SYSTEM SET sessrev.cleanup_interval = '1s'; SELECT pg_reload_conf()});
sql(sprintf($expired_rows, 50));
$start = time;
$node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM sessrev.sessions}) or die;
cmp_ok(time - $start, '<=', 3, 'after reload to 1s rows go within two seconds');

# The worker and a manual cleanup never run at once: a manual cleanup holds the
# cleanup lock until its transaction ends.
my $holder = $node->background_psql('postgres');
$holder->query_safe('BEGIN');
$holder->query_safe('SELECT sessrev.cleanup_expired_sessions()');
sql(sprintf($expired_rows, 20));
my ($ret, $out, $err) = $node->psql('postgres', 'SELECT sessrev.cleanup_expired_sessions()');
is($out, '0', 'a manual cleanup while another holds the lock deletes nothing');
like($err, qr/another cleanup is running/, 'and says why');
sleep 3;
is(sql('SELECT count(*) FROM sessrev.sessions'), '20', 'the worker skips its run while the lock is held');
like(sql('SELECT last_error FROM sessrev.worker_status()'), qr/another cleanup .* held the cleanup lock/,
	'worker_status says why the worker skipped');
$holder->query_safe('COMMIT');
$holder->quit;
$node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM sessrev.sessions}) or die;
pass('the worker resumes once the lock is free');

# No role can stop cleanup by holding the advisory lock 1.0 used.
sql('CREATE ROLE squatter LOGIN');
my $squatter = $node->background_psql('postgres', extra_params => ['-U', 'squatter']);
$squatter->query_safe(q{SELECT pg_advisory_lock(x'73657373726576'::bigint)});
sql(sprintf($expired_rows, 20));
$node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM sessrev.sessions}) or die;
pass('an ordinary role holding the 1.0 advisory lock does not stop the worker');
sql(sprintf($expired_rows, 5));
is(sql('SELECT sessrev.cleanup_expired_sessions()'), '5', 'nor a manual cleanup');
$squatter->quit;

# pg_terminate_backend: the postmaster starts a new worker.
my $old_pid = sql('SELECT pid FROM sessrev.worker_status()');
sql("SELECT pg_terminate_backend($old_pid)");
$node->poll_query_until('postgres',
	"SELECT pid IS NOT NULL AND pid <> $old_pid FROM sessrev.worker_status()") or die;
pass('the worker is restarted after pg_terminate_backend');
sql(sprintf($expired_rows, 10));
$node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM sessrev.sessions}) or die;
pass('the restarted worker cleans up');

# On a hot standby the worker only waits.
$node->backup('backup');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($node, 'backup', has_streaming => 1);
$standby->start;
# The primary's worker stops cleaning first, so the rows reach the standby.
sql(q{ALTER SYSTEM SET sessrev.cleanup_interval = 0; SELECT pg_reload_conf()});
sleep 2;
sql(sprintf($expired_rows, 30));
$node->wait_for_catchup($standby);
$standby->poll_query_until('postgres',
	q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'sessrev cleanup'}) or die;
sleep 3;
is($standby->safe_psql('postgres', 'SELECT coalesce(runs, 0) FROM sessrev.worker_status()'), '0',
	'on a standby the worker never runs a cleanup');
is($standby->safe_psql('postgres', 'SELECT count(*) FROM sessrev.sessions'), '30', 'standby rows untouched');
# validate_session on a standby answers a session whose touch is due: the
# standby cannot write the touch, and does not fail the request for it.
my $due_token = sql(q{SELECT token FROM sessrev.create_session('standby-user')});
sql(q{UPDATE sessrev.sessions SET created_at = now() - interval '3 hours', last_active_at = now() - interval '2 hours'
       WHERE user_id = 'standby-user'});
$node->wait_for_catchup($standby);
is($standby->safe_psql('postgres', qq{SELECT user_id FROM sessrev.validate_session('$due_token')}), 'standby-user',
	'on a standby, validate_session returns the row of a session whose touch is due');
is($standby->safe_psql('postgres', qq{SELECT sessrev.current_user_id() FROM sessrev.validate_session('$due_token')}),
	'standby-user', 'and sets current_user_id()');
unlike(slurp_file($standby->logfile), qr/ERROR/, 'the standby logged no error');
$standby->stop;

# Shutdown is not delayed by the worker.
$start = time;
$node->stop('fast');
cmp_ok(time - $start, '<', 5, sprintf('fast shutdown took %.1f s', time - $start));
done_testing();
