# A hot standby's cache (sessrev.standby_cache on both servers): the standby
# answers repeated checks from its cache (is_jwt_revoked from its filters),
# and refuses a session revoked on the primary, by every path, as soon as the
# revocation has been replayed; a prepared revocation takes effect at COMMIT
# PREPARED and not at all after ROLLBACK PREPARED; 0 stale answers among
# 100,000 standby checks of a session and a jti each while the primary
# revokes; a primary restarted without the setting leaves the standby reading
# its tables; a promoted standby keeps answering right.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use FindBin;
use lib "$FindBin::RealBin/lib";
use Sessrev::Checks;

my $conf = "shared_preload_libraries = 'sessrev'\nsessrev.cleanup_interval = 0\n"
  . "sessrev.standby_cache = on\nmax_prepared_transactions = 5\nmax_connections = 30\n";
my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf', $conf);
$primary->start;
$primary->safe_psql('postgres', 'CREATE EXTENSION sessrev');
$primary->backup('backup');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'backup', has_streaming => 1);
$standby->start;

sub on_primary { return $primary->safe_psql('postgres', $_[0]); }
sub replayed { $primary->wait_for_catchup($standby, 'replay'); }
sub session {
	my ($user) = @_;
	my @s = split /\|/, on_primary(qq{SELECT session_id || '|' || token FROM sessrev.create_session('$user')});
	replayed();
	return @s;
}
my $checker = $standby->background_psql('postgres');

my (undef, $warm) = session('warm-up');
ok(wait_for_cache($standby, $checker, $warm, 'warm-up'), "the standby's cache serves");

is(jwt_tables_read($standby, 'postgres'), "0\n0", "the standby's JWT checks read no table");

for my $how ('DELETE', 'TRUNCATE', 'UPDATE expires_at', 'UPDATE revoked', 'revoke_all_sessions', 'revoke_jwt',
	'revoke_session', 'revoke_token', 'revoke_user_sessions', 'revoke_user_tokens_before')
{
	my $user = "u-$how";
	$user =~ s/ /-/g;
	my ($id, $token) = session($user);
	ok(wait_for_cache($standby, $checker, $token, $user), "$how: answered from the standby's cache");
	is(answers($checker, $token, $user), 'false/1/false', "$how: live on the standby");
	on_primary(revocation_sql($how, $id, $token, $user));
	replayed();
	is(answers($checker, $token, $user), refused_answer($how), "$how: refused once replayed");
	# Its global cut-off would refuse every later JWT check.
	on_primary('DELETE FROM sessrev.global_token_cutoff') if $how eq 'revoke_all_sessions';
}

# A direct change of metadata is what the standby's validate_session returns next.
{
	my ($id, $token) = session('u-metadata');
	my $metadata = qq{SELECT metadata->>'plan' FROM sessrev.validate_session('$token')};
	$checker->query_safe($metadata) for 1 .. 3;
	on_primary(qq{UPDATE sessrev.sessions SET metadata = '{"plan": "pro"}' WHERE id = '$id'});
	replayed();
	is($checker->query_safe($metadata), 'pro', 'a metadata UPDATE on the primary is what the standby returns');
}

# More keys than one record lists: the standby flushes.
{
	on_primary(q{SELECT sessrev.create_session('u-many') FROM generate_series(1, 300)});
	my ($id, $token) = session('u-many');
	ok(wait_for_cache($standby, $checker, $token, 'u-many'), 'one of 301 sessions answered from the cache');
	on_primary(q{SELECT sessrev.revoke_user_sessions('u-many')});
	replayed();
	is(answers($checker, $token, 'u-many'), 'true/0/true', 'revoking 301 sessions at once is refused on the standby');
}

# Prepared revocations: in doubt on the standby until they end.
for my $end ('COMMIT PREPARED', 'ROLLBACK PREPARED') {
	my $user = $end eq 'COMMIT PREPARED' ? 'u-2pc-commit' : 'u-2pc-rollback';
	my ($id, $token) = session($user);
	ok(wait_for_cache($standby, $checker, $token, $user), "$end: answered from the cache first");
	on_primary(qq{BEGIN; SELECT sessrev.revoke_session('$id'); PREPARE TRANSACTION 'p-$user'});
	replayed();
	is(answers($checker, $token, $user), 'false/1/false', "$end: live while prepared");
	on_primary("$end 'p-$user'");
	replayed();
	is(answers($checker, $token, $user), $end eq 'COMMIT PREPARED' ? 'true/0/false' : 'false/1/false',
		"$end: the standby answers what the primary decided");
}
{
	my ($id, $token) = session('u-2pc-after');
	ok(wait_for_cache($standby, $checker, $token, 'u-2pc-after'), 'the cache serves again after prepared transactions');
}

# Stress: the primary revokes while the standby checks. A check is stale when
# the statement's snapshot already shows the row revoked and is_revoked says
# live; such a check divides by zero, which fails pgbench.
my $sessions = 20000;
my $hot = 5000;
on_primary(qq{
	CREATE TABLE stress_tokens AS
	  SELECT i AS n, c.* FROM generate_series(1, $sessions) i,
	         LATERAL sessrev.create_session('stress-' || (i % 2000)) c;
	CREATE UNIQUE INDEX ON stress_tokens (n);
	ANALYZE stress_tokens;});
replayed();
my $check = qq{\\set n random(1, $hot)
SELECT 1 / (NOT (NOT sessrev.is_revoked(t.token) AND s.revoked))::int
  FROM stress_tokens t JOIN sessrev.sessions s ON s.id = t.session_id WHERE t.n = :n;
SELECT 1 / (NOT (NOT sessrev.is_jwt_revoked('stress-jti-' || :n, 'stress-user', now() - interval '1 minute')
                 AND EXISTS (SELECT FROM sessrev.jwt_denylist WHERE jti = 'stress-jti-' || :n)))::int;
};
my $revoke = qq{\\set n random(1, $hot)
SELECT sessrev.revoke_session(session_id) FROM stress_tokens WHERE n = :n;
SELECT sessrev.revoke_jwt('stress-jti-' || :n, now() + interval '1 hour');
\\set m random(1, $hot)
UPDATE sessrev.sessions SET revoked = true, revoked_at = now() WHERE id =
  (SELECT session_id FROM stress_tokens WHERE n = :m) AND NOT revoked;
};
my $dir = PostgreSQL::Test::Utils::tempdir();
PostgreSQL::Test::Utils::append_to_file("$dir/check.sql", $check);
PostgreSQL::Test::Utils::append_to_file("$dir/revoke.sql", $revoke);
my $hits_before = cache_hits($standby);
my ($rout, $rerr) = ('', '');
my $revoker = IPC::Run::start(
	[ 'pgbench', '--no-vacuum', '--client=1', '--rate=20', '--time=600', '-f', "$dir/revoke.sql",
	  '-h', $primary->host, '-p', $primary->port, 'postgres' ],
	'>', \$rout, '2>', \$rerr);
my ($cout, $cerr) = run_command(
	[ 'pgbench', '--no-vacuum', '--client=2', '--jobs=2', '--transactions=50000', '-f', "$dir/check.sql",
	  '-h', $standby->host, '-p', $standby->port, 'postgres' ]);
# TERM, not INT: a shell that starts the tests in the background has them ignore SIGINT.
$revoker->signal('TERM');
$revoker->finish;
my ($processed) = $cout =~ /number of transactions actually processed: (\d+)/;
my $revoked = on_primary(q{SELECT count(*) FROM stress_tokens t JOIN sessrev.sessions s ON s.id = t.session_id
	WHERE s.revoked});
my $denylisted = on_primary(q{SELECT count(*) FROM sessrev.jwt_denylist WHERE jti LIKE 'stress-jti-%'});
my $hits = cache_hits($standby) - $hits_before;
diag("standby stress: $processed checks of a session and a jti each, $hits cache hits; "
	  . "$revoked sessions revoked and $denylisted jtis denylisted on the primary");
is($processed, 100000, '100,000 standby checks ran');
unlike($cerr, qr/division by zero/, 'no standby check answered a revoked session as live');
is($cerr, '', 'the checks ran without errors');
cmp_ok($revoked, '>', 100, 'the primary revoked hundreds of sessions meanwhile');
cmp_ok($denylisted, '>', 100, 'and denylisted hundreds of jtis');
cmp_ok($hits, '>', 50000, 'most standby checks were answered from its cache');

# A primary that restarts without the setting writes no records: the standby
# stops serving from its cache (the restart's checkpoint tells it), and
# serves again once a primary with the setting has announced itself.
{
	my ($id, $token) = session('u-restart');
	ok(wait_for_cache($standby, $checker, $token, 'u-restart'), 'served before the restart');
	$primary->append_conf('postgresql.conf', 'sessrev.standby_cache = off');
	$primary->restart;
	my (undef, $other) = session('u-restart-other');
	my $before = cache_hits($standby);
	answers($checker, $token, 'u-restart') for 1 .. 5;
	is(cache_hits($standby), $before, 'after a restart without the setting, the standby reads its tables');
	on_primary(qq{UPDATE sessrev.sessions SET revoked = true, revoked_at = now() WHERE id = '$id'});
	on_primary(q{SELECT sessrev.revoke_jwt('jti-u-restart', now() + interval '1 hour')});
	replayed();
	is(answers($checker, $token, 'u-restart'), 'true/0/true', 'and refuses what that primary revoked');
	$primary->append_conf('postgresql.conf', 'sessrev.standby_cache = on');
	$primary->restart;
	my ($id2, $token2) = session('u-restart-again');
	ok(wait_for_cache($standby, $checker, $token2, 'u-restart-again'), 'served again once the primary writes records');
	is(jwt_tables_read($standby, 'postgres'), "0\n0", 'and the JWT filters too, rebuilt');
	is(answers($checker, $token, 'u-restart'), 'true/0/true', 'still refusing what was revoked meanwhile');
}

# Promotion: the standby becomes a primary and keeps answering right.
{
	my ($id, $token) = session('u-promote');
	ok(wait_for_cache($standby, $checker, $token, 'u-promote'), 'served before the promotion');
	$primary->stop;
	$standby->promote;
	$standby->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()');
	is(answers($checker, $token, 'u-promote'), 'false/1/false', 'live after the promotion');
	$standby->safe_psql('postgres', qq{SELECT sessrev.revoke_session('$id')});
	is(answers($checker, $token, 'u-promote'), 'true/0/false', 'a revocation on the promoted server is refused');
}

$checker->quit;
$standby->stop;
done_testing();
