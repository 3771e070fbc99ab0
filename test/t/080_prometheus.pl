# monitoring/prometheus-queries.yaml through a real Prometheus PostgreSQL
# exporter (Debian's prometheus-postgres-exporter), as a role granted only the
# auditor profile: every metric of the file is exported, and its value is what
# sessrev's functions say (cache and session cache counters, the worker's runs
# and failures, this database's sessions, cleanup backlog, pending
# revocations, denylist and touch queue).
# test/run sets SESSREV_EXPORTER=required where install-deps installs the
# exporter (the host), so that its absence fails instead of skipping.
use strict;
use warnings;
use HTTP::Tiny;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($exporter) = grep { -x } map { "$_/prometheus-postgres-exporter" } split /:/, "$ENV{PATH}:/usr/bin";
if (!$exporter) {
	BAIL_OUT('prometheus-postgres-exporter is not installed (scripts/install-deps)')
	  if ($ENV{SESSREV_EXPORTER} // '') eq 'required';
	plan skip_all => 'prometheus-postgres-exporter is not installed';
}

my $node = PostgreSQL::Test::Cluster->new('monitored');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'sessrev'\nsessrev.cleanup_interval = 0\n");
$node->start;
sub sql { return $node->safe_psql('postgres', $_[0]); }
sql(q{CREATE EXTENSION sessrev; CREATE ROLE sessrev_metrics LOGIN; SELECT sessrev.grant_auditor('sessrev_metrics')});

# 10 sessions: 3 revoked, 2 expired long ago (due for cleanup), 5 live; a
# denylisted JWT; checks and validations for the caches' counters.
sql(q{CREATE TABLE tokens AS SELECT i, c.session_id, c.token FROM generate_series(1, 10) i,
        LATERAL sessrev.create_session('user-' || i) c});
sql(q{SELECT sessrev.revoke_session(session_id) FROM tokens WHERE i <= 3});
sql(q{UPDATE sessrev.sessions SET created_at = now() - interval '30 days', expires_at = now() - interval '20 days'
       WHERE id IN (SELECT session_id FROM tokens WHERE i IN (4, 5))});
sql(q{SELECT sessrev.revoke_jwt('jti-1', now() + interval '1 day')});
sql(q{SELECT count(*) FROM tokens, generate_series(1, 3) WHERE sessrev.is_revoked(token)});
sql(q{SELECT count(*) FROM tokens, generate_series(1, 3) WHERE (sessrev.validate_session_record(token)).user_id IS NULL});
my $port = PostgreSQL::Test::Cluster::get_free_port();
my $queries = dirname_of(__FILE__) . '/../../monitoring/prometheus-queries.yaml';
sub dirname_of { my ($f) = @_; $f =~ s{/[^/]*$}{}; return $f; }
my ($out, $err) = ('', '');
local $ENV{DATA_SOURCE_NAME} = sprintf('host=%s port=%d user=sessrev_metrics dbname=postgres sslmode=disable',
	$node->host, $node->port);
my $h = IPC::Run::start([ $exporter, "--web.listen-address=127.0.0.1:$port", "--extend.query-path=$queries",
	'--disable-default-metrics', '--disable-settings-metrics' ], '>', \$out, '2>', \$err);

my $metrics = '';
sub scrape {
	for (1 .. 100) {
		my $r = HTTP::Tiny->new(timeout => 5)->get("http://127.0.0.1:$port/metrics");
		$metrics = $r->{content} if $r->{success};
		return if $metrics =~ /^sessrev_state_touch_queue_waiting/m;
		select(undef, undef, undef, 0.2);
	}
}
scrape();
sub metric {
	my ($name) = @_;
	return $metrics =~ /^\Q$name\E(?:\{[^}]*\})? (\S+)$/m ? $1 + 0 : undef;
}

# Every metric of the file is exported.
open my $f, '<', $queries or die "$queries: $!";
my ($section, @names);
while (<$f>) {
	$section = $1 if /^(sessrev_\w+):/;
	push @names, "${section}_$1" if /^    - (\w+):/;
}
close $f;
cmp_ok(scalar @names, '>=', 20, scalar(@names) . ' metrics in the file');
my @missing = grep { !defined metric($_) } @names;
is("@missing", '', 'the exporter exports every one of them') or diag("exporter stderr: $err\n$metrics");

# Their values are sessrev's.
my @cache = split /\|/, sql('SELECT hits, misses, entries FROM sessrev.cache_stats()');
is(metric('sessrev_cache_enabled'), 1, 'the cache is on');
is(metric('sessrev_cache_hits'), $cache[0], "cache hits: $cache[0]");
is(metric('sessrev_cache_misses'), $cache[1], "cache misses: $cache[1]");
my @scache = split /\|/, sql('SELECT hits, misses FROM sessrev.session_cache_stats()');
is(metric('sessrev_session_cache_hits'), $scache[0], "session cache hits: $scache[0]");
is(metric('sessrev_session_cache_misses'), $scache[1], "session cache misses: $scache[1]");
is(metric('sessrev_worker_runs'), 0, 'the worker has not run yet');
is(metric('sessrev_worker_last_run_timestamp_seconds'), 0, 'so it has no last run');
is(metric('sessrev_state_sessions_unexpired'), 5, '5 sessions neither revoked nor expired');
is(metric('sessrev_state_sessions_due_for_cleanup'), 2, '2 sessions due for cleanup');
is(metric('sessrev_state_jwt_denylist_entries'), 1, '1 denylisted JWT');
is(metric('sessrev_state_pending_revocations'), 0, 'no pending revocation');
is(metric('sessrev_state_touch_queue_waiting'), 0, 'no touch waiting');

# After a cleanup: the backlog is gone, the run counted.
sql(q{SELECT sessrev.run_cleanup_now()});
$node->poll_query_until('postgres', q{SELECT runs > 0 FROM sessrev.worker_status()}) or die 'the worker did not run';
scrape();
is(metric('sessrev_worker_runs'), 1, 'the worker ran once');
is(metric('sessrev_worker_deleted'), 2, 'and deleted the 2 sessions');
is(metric('sessrev_worker_failing'), 0, 'without failing');
cmp_ok(metric('sessrev_worker_last_run_timestamp_seconds'), '>', time - 600, 'its last run was just now');
is(metric('sessrev_state_sessions_due_for_cleanup'), 0, 'nothing is due for cleanup any more');

# A cleanup that fails shows: a trigger refuses the deletion of an expired session.
sql(q{UPDATE sessrev.sessions SET created_at = now() - interval '30 days', expires_at = now() - interval '20 days'
       WHERE id IN (SELECT session_id FROM tokens WHERE i = 6)});
sql(q{CREATE FUNCTION public.refuse() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RAISE EXCEPTION 'refused'; END$$;
      CREATE TRIGGER refuse BEFORE DELETE ON sessrev.sessions FOR EACH ROW EXECUTE FUNCTION public.refuse();
      ALTER TABLE sessrev.sessions ENABLE ALWAYS TRIGGER refuse});
sql(q{SELECT sessrev.run_cleanup_now()});
$node->poll_query_until('postgres', q{SELECT last_error IS NOT NULL FROM sessrev.worker_status()})
  or die 'the worker did not fail: ' . sql('SELECT * FROM sessrev.worker_status()');
scrape();
is(metric('sessrev_worker_failing'), 1, 'a cleanup that failed shows as failing');
is(metric('sessrev_state_sessions_due_for_cleanup'), 1, 'and its backlog stays');

$h->kill_kill;
$node->stop;
done_testing();
