# The cleanup worker is a superuser in a database that another role may own:
# nothing that role chose runs with the worker's rights; a missing
# sessrev.database is reported and retried at a bounded rate, not every 5 s;
# run_cleanup_now wakes the worker only for the database the worker cleans;
# an out-of-range sessrev.cache_size stops the server with a reason.
# Each check below fails on release 1.0, whose behaviour the comments recall.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep sleep);

my $expired_rows = q{
	INSERT INTO sessrev.sessions (user_id, token_hash, created_at, expires_at)
	SELECT 'old', sessrev.hash_token(pg_catalog.gen_random_uuid()::text),
	       pg_catalog.now() - interval '30 days', pg_catalog.now() - interval '10 days'
	  FROM pg_catalog.generate_series(1, %d)};

# Polls $cond (a sub) every 0.2 s until it is true or $timeout seconds pass.
sub wait_for {
	my ($timeout, $cond) = @_;
	my $end = time + $timeout;
	while (time < $end) {
		return 1 if $cond->();
		usleep(200_000);
	}
	return $cond->();
}

sub new_node {
	my ($name, $conf) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->append_conf('postgresql.conf', $conf) if defined $conf;
	return $node;
}

# (2) Started first: its backoff runs while the other checks do.
# 1.0 let the postmaster restart the worker every 5 s, each start logging
# 'database "nonexistent" does not exist', and worker_status() said nothing.
my $nodb = new_node('nodb', qq{
shared_preload_libraries = 'sessrev'
sessrev.database = 'nonexistent'
sessrev.cleanup_interval = '1s'
sessrev.cache_size = 1000
});
$nodb->start;
my $nodb_started = time;
$nodb->safe_psql('postgres', 'CREATE EXTENSION sessrev');
ok(wait_for(10, sub {
	$nodb->safe_psql('postgres',
		q{SELECT coalesce(last_error LIKE '%"nonexistent"%', false) FROM sessrev.worker_status()}) eq 't';
}), 'missing database: worker_status() names it in last_error within 10 s');
like($nodb->safe_psql('postgres', 'SELECT last_error FROM sessrev.worker_status()'),
	qr/sessrev\.database/, 'and says which setting names it');
is($nodb->safe_psql('postgres', 'SELECT pid IS NULL FROM sessrev.worker_status()'), 't',
	'missing database: worker_status() shows no pid');

# (4) An out-of-range cache size stops the server with a reason; 1.0 only
# warned and fell back to the default (or reserved what it was given).
for my $size (-5, 100000000) {
	my $bad = new_node("cache_size_$size" =~ s/-/minus/r, qq{
shared_preload_libraries = 'sessrev'
sessrev.cache_size = $size
});
	ok(!$bad->start(fail_ok => 1), "sessrev.cache_size = $size: the server does not start");
	like(slurp_file($bad->logfile), qr/sessrev\.cache_size must be between 0 and \d+, got \Q$size\E/,
		"sessrev.cache_size = $size: the log says why");
}

# (1) A database owner cannot make the worker run their code. 1.0 ran the
# cleanup under the database's search_path with unqualified operators, so
# mallory's public.< on timestamptz ran as superuser.
my $node = new_node('victim');
$node->start;
$node->safe_psql('postgres', q{
	CREATE ROLE mallory LOGIN;
	CREATE DATABASE victim OWNER mallory;
});
$node->safe_psql('victim', 'CREATE EXTENSION sessrev');
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'sessrev'
sessrev.database = 'victim'
sessrev.cleanup_interval = '1s'
sessrev.cache_size = 1000
});
$node->restart;

# Superuser queries in victim pin their own search_path: the test itself must
# not trip mallory's operators.
sub victim { return $node->safe_psql('victim', "SET search_path = pg_catalog; $_[0]"); }
sub as_mallory { return $node->safe_psql('victim', $_[0], extra_params => ['-U', 'mallory']); }

ok(wait_for(30, sub { victim('SELECT pid IS NOT NULL FROM sessrev.worker_status()') eq 't' }),
	'the worker connects to victim');

my $evil = q{
	CREATE TABLE public.evil_calls (who name, op text);
	GRANT ALL ON public.evil_calls TO PUBLIC;
};
for my $op (['evil_lt', '<', 'timestamptz'], ['evil_ge', '>=', 'timestamptz'],
	['evil_eq_uuid', '=', 'uuid'], ['evil_eq_text', '=', 'text'], ['evil_eq_bytea', '=', 'bytea']) {
	my ($fn, $sym, $type) = @$op;
	$evil .= qq{
	CREATE FUNCTION public.$fn($type, $type) RETURNS boolean LANGUAGE plpgsql AS \$f\$
	BEGIN
		BEGIN
			INSERT INTO public.evil_calls VALUES (current_user, '$sym $type');
		EXCEPTION WHEN OTHERS THEN NULL;
		END;
		BEGIN
			EXECUTE 'ALTER ROLE mallory SUPERUSER';
		EXCEPTION WHEN OTHERS THEN NULL;
		END;
		RETURN \$1 OPERATOR(pg_catalog.$sym) \$2;
	END
	\$f\$;
	CREATE OPERATOR public.$sym (LEFTARG = $type, RIGHTARG = $type, FUNCTION = public.$fn);
};
}
as_mallory($evil);
as_mallory('ALTER DATABASE victim SET search_path = public, pg_catalog');

# The trap is armed: in a new session of victim, unqualified operators resolve
# to mallory's (here called by mallory, who gains nothing).
is(as_mallory(q{SELECT pg_catalog.now() < pg_catalog.now() + interval '1 hour';
	SELECT pg_catalog.string_agg(DISTINCT who::text, ',') FROM public.evil_calls}), "t\nmallory",
	'unqualified < on timestamptz in victim now calls mallory\'s function');

# The worker picks up the database's settings when it connects: restart it.
my $old_pid = victim('SELECT pid FROM sessrev.worker_status()');
victim("SELECT pg_terminate_backend($old_pid)");
ok(wait_for(60, sub {
	victim("SELECT coalesce(pid <> $old_pid, false) FROM sessrev.worker_status()") eq 't';
}), 'the worker is restarted');
my $runs_before = victim('SELECT coalesce(runs, 0) FROM sessrev.worker_status()');

# Work for every cleanup target: expired and long-revoked sessions (uuid keys),
# retired tokens (bytea keys), expired denylisted JWTs (text keys).
victim(sprintf($expired_rows, 20) . q{;
	INSERT INTO sessrev.sessions (user_id, token_hash, created_at, expires_at, revoked, revoked_at)
	SELECT 'gone', sessrev.hash_token('revoked-' || i), now() - interval '60 days',
	       now() + interval '300 days', true, now() - interval '40 days'
	  FROM generate_series(1, 10) i;
	INSERT INTO sessrev.retired_tokens (token_hash, session_id, retired_at, expires_at)
	SELECT sessrev.hash_token('retired-' || i), gen_random_uuid(), now() - interval '2 days',
	       now() - interval '1 day'
	  FROM generate_series(1, 10) i;
	INSERT INTO sessrev.jwt_denylist (jti, expires_at, revoked_at)
	SELECT 'old-jti-' || i, now() - interval '1 day', now() - interval '2 days'
	  FROM generate_series(1, 10) i;
});
my $leftovers = q{SELECT (SELECT count(*) FROM sessrev.sessions) + (SELECT count(*) FROM sessrev.retired_tokens)
	+ (SELECT count(*) FROM sessrev.jwt_denylist)};
ok(wait_for(30, sub { victim($leftovers) eq '0' }), 'the worker deleted every expired row in victim');
cmp_ok(victim('SELECT runs FROM sessrev.worker_status()'), '>', $runs_before,
	'the restarted worker completed cleanup runs');
is(victim('SELECT last_error IS NULL FROM sessrev.worker_status()'), 't', 'without an error');
is($node->safe_psql('postgres', q{SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'}), 'f',
	'mallory is still not a superuser');
is(victim(q{SELECT count(*) FROM public.evil_calls WHERE who OPERATOR(pg_catalog.<>) 'mallory'}), '0',
	'no operator of mallory\'s ran as another role');
$node->stop;

# (3) run_cleanup_now wakes the worker only in the worker's own database;
# elsewhere it cleans up itself. 1.0 woke the worker from any database and
# returned true, and the caller's expired rows stayed.
my $local = new_node('local', qq{
shared_preload_libraries = 'sessrev'
sessrev.cleanup_interval = 0
sessrev.cache_size = 1000
});
$local->start;
$local->safe_psql('postgres', 'CREATE EXTENSION sessrev; CREATE DATABASE other');
$local->safe_psql('other', 'CREATE EXTENSION sessrev');
ok(wait_for(30, sub { $local->safe_psql('postgres', 'SELECT pid IS NOT NULL FROM sessrev.worker_status()') eq 't' }),
	'the worker runs in postgres');
$local->safe_psql('other', sprintf($expired_rows, 30));
is($local->safe_psql('other', 'SELECT sessrev.run_cleanup_now(); SELECT count(*) FROM sessrev.sessions'),
	"f\n0", 'run_cleanup_now in another database returns false, its expired rows gone when it returns');
$local->safe_psql('postgres', sprintf($expired_rows, 30));
is($local->safe_psql('postgres', 'SELECT sessrev.run_cleanup_now()'), 't',
	'run_cleanup_now in the worker\'s database wakes it');
ok(wait_for(30, sub { $local->safe_psql('postgres', 'SELECT count(*) FROM sessrev.sessions') eq '0' }),
	'the woken worker cleaned its database (the interval is off)');
$local->stop;

# (2) continued: the log over at least 20 s, then the database appears.
my $rest = 20 - (time - $nodb_started);
sleep($rest) if $rest > 0;
my @lines = (slurp_file($nodb->logfile) =~ /database "nonexistent" does not exist/g);
cmp_ok(scalar @lines, '>=', 1, 'missing database: the failed connection is logged');
cmp_ok(scalar @lines, '<=', 2,
	sprintf('missing database: at most 2 log lines in %.0f s (%d)', time - $nodb_started, scalar @lines));
$nodb->safe_psql('postgres', 'CREATE DATABASE nonexistent');
$nodb->safe_psql('nonexistent', 'CREATE EXTENSION sessrev');
# The backoff may hold the next attempt for a minute or two.
ok($nodb->poll_query_until('postgres', 'SELECT pid IS NOT NULL FROM sessrev.worker_status()'),
	sprintf('once the database exists the worker connects (after %.0f s)', time - $nodb_started));
is($nodb->safe_psql('postgres', 'SELECT last_error IS NULL FROM sessrev.worker_status()'), 't',
	'and worker_status() no longer reports the error');
$nodb->safe_psql('nonexistent', sprintf($expired_rows, 10));
ok(wait_for(30, sub { $nodb->safe_psql('nonexistent', 'SELECT count(*) FROM sessrev.sessions') eq '0' }),
	'and cleans up there');
$nodb->stop;
done_testing();
