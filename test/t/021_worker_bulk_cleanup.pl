# The worker deletes 1,000,000 expired sessions while a pgbench of is_revoked
# keeps going; reports the cleanup rate and the check TPS during the cleanup
# against before it.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use IPC::Run;

my $expired = $ENV{SESSREV_BULK_ROWS} // 1000000;
my $node = PostgreSQL::Test::Cluster->new('bulk');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'sessrev'
sessrev.cleanup_interval = 0
shared_buffers = 512MB
max_wal_size = 4GB
});
$node->start;
$node->safe_psql('postgres', qq{
	CREATE EXTENSION sessrev;
	INSERT INTO sessrev.sessions (user_id, token_hash, created_at, last_active_at, expires_at)
	SELECT 'old-' || (i % 1000), sessrev.hash_token('old-' || i), now() - interval '30 days',
	       now() - interval '30 days', now() - interval '10 days'
	  FROM generate_series(1, $expired) i;
	INSERT INTO sessrev.sessions (user_id, token_hash, expires_at)
	SELECT 'live-' || i, sessrev.hash_token('live-' || i), now() + interval '1 day'
	  FROM generate_series(1, 10000) i;
	VACUUM ANALYZE sessrev.sessions;
});
my $script = $node->basedir . '/check.sql';
append_to_file($script, "\\set n random(1, 10000)\nSELECT sessrev.is_revoked('live-' || :n);\n");

sub pgbench_tps {
	my ($seconds) = @_;
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[ 'pgbench', '-n', '-M', 'prepared', '-c', '2', '-j', '2', '-T', $seconds, '-f', $script,
		  '-h', $node->host, '-p', $node->port, 'postgres' ],
		'>', \$out, '2>', \$err);
	return ($h, \$out);
}
sub tps_of { my ($out) = @_; return $$out =~ /tps = ([\d.]+)/ ? $1 : 0; }

my ($h, $out) = pgbench_tps(8);
$h->finish;
my $before = tps_of($out);
cmp_ok($before, '>', 0, "is_revoked TPS before cleanup: $before");

# Polled through worker_status(): counting the rows would scan the table the
# cleanup works on, taking the CPU that the checks' rate measures.
my $runs = $node->safe_psql('postgres', 'SELECT runs FROM sessrev.worker_status()');
($h, $out) = pgbench_tps(10);
my $start = time;
is($node->safe_psql('postgres', 'SELECT sessrev.run_cleanup_now()'), 't', 'worker woken for the bulk cleanup');
$node->poll_query_until('postgres', qq{SELECT runs > $runs FROM sessrev.worker_status()}, 't')
  or die 'cleanup did not finish';
my $took = time - $start;
$h->finish;
my $during = tps_of($out);
my $rate = $expired / $took;
diag(sprintf("bulk cleanup: %d expired sessions in %.1f s (%.0f rows/s); is_revoked TPS %.0f before, %.0f during (%.2fx)",
	$expired, $took, $rate, $before, $during, $during / $before));
cmp_ok($during, '>', 0, 'checks kept going during the cleanup');
is($node->safe_psql('postgres', q{SELECT count(*) FROM sessrev.sessions WHERE expires_at < now()}), '0',
	'every expired session is gone');
is($node->safe_psql('postgres', q{SELECT count(*) FROM sessrev.sessions WHERE user_id LIKE 'live-%'}), '10000',
	'no live session was touched');
is($node->safe_psql('postgres', q{SELECT last_deleted FROM sessrev.worker_status()}), $expired,
	'worker_status reports the rows deleted');
$node->stop;
done_testing();
