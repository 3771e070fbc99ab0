# is_jwt_revoked with the cache: the same guarantees as is_revoked. A revocation
# that commits is seen at once in every other connection (revoke_jwt, per-user
# and global cut-offs, direct writes), a rollback changes nothing, the revoking
# transaction sees its own change, concurrent checkers never see a stale answer,
# a flood of random jtis adds nothing to the cache, and every database gets
# filters of its own (sessrev.jwt_cache_databases of them; a dropped
# database's are taken over).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib "$FindBin::RealBin/lib";
use Sessrev::Checks;

my $node = PostgreSQL::Test::Cluster->new('jwt');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'sessrev'
max_connections = 30
sessrev.jwt_cache_databases = 2
});
$node->start;
sub sql { return $node->safe_psql('postgres', $_[0]); }
sql('CREATE EXTENSION sessrev');

my $checker = $node->background_psql('postgres');
my $revoker = $node->background_psql('postgres');
my $iat = q{now() - interval '10 minutes'};
sub check {
	my ($jti, $user) = @_;
	my $j = defined $jti ? "'$jti'" : 'NULL';
	return $checker->query_safe("SELECT sessrev.is_jwt_revoked($j, '$user', $iat)");
}

my $n = 0;
my %revocations = (
	'revoke_jwt'                => sub { "SELECT sessrev.revoke_jwt('$_[0]', now() + interval '1 hour')" },
	'revoke_user_tokens_before' => sub { "SELECT sessrev.revoke_user_tokens_before('$_[1]')" },
	'revoke_user_sessions'      => sub { "SELECT sessrev.revoke_user_sessions('$_[1]')" },
	'direct UPDATE of user_token_cutoffs' =>
	  sub { "UPDATE sessrev.user_token_cutoffs SET not_before = now() WHERE user_id = '$_[1]'" },
	'direct INSERT into jwt_denylist' =>
	  sub { "INSERT INTO sessrev.jwt_denylist (jti, expires_at) VALUES ('$_[0]', now() + interval '1 hour')" },
	'revoke_all_sessions' => sub { "SELECT sessrev.revoke_all_sessions()" },);

# revoke_all_sessions goes last: its global cut-off revokes everything after it.
for my $how ((grep { $_ ne 'revoke_all_sessions' } sort keys %revocations), 'revoke_all_sessions') {
	$n++;
	my ($jti, $user) = ("jti-$n", "user-$n");
	# Warm the cache with a cut-off entry for a user that already has an old cut-off.
	sql("INSERT INTO sessrev.user_token_cutoffs (user_id, not_before) VALUES ('$user', now() - interval '1 day')");
	is(check($jti, $user), 'f', "$how: valid before") for 1 .. 2;
	is(check(undef, $user), 'f', "$how: cut-offs only, valid before");

	$revoker->query_safe('BEGIN');
	$revoker->query_safe($revocations{$how}->($jti, $user));
	is($revoker->query_safe("SELECT sessrev.is_jwt_revoked('$jti', '$user', $iat)"), 't',
		"$how: revoked inside the revoking transaction");
	is(check($jti, $user), 'f', "$how: still valid elsewhere while uncommitted");
	$revoker->query_safe('ROLLBACK');
	is(check($jti, $user), 'f', "$how: valid after ROLLBACK");

	$revoker->query_safe('BEGIN');
	$revoker->query_safe($revocations{$how}->($jti, $user));
	$revoker->query_safe('COMMIT');
	is(check($jti, $user), 't', "$how: revoked in another connection right after COMMIT");
}
$checker->quit;
$revoker->quit;
cmp_ok(sql('SELECT hits FROM sessrev.cache_stats()'), '>', 0, 'cut-offs were answered from the cache');

# A flood of a million random jtis adds nothing to the cache and costs no lookups.
sql('TRUNCATE sessrev.global_token_cutoff');
sql('SELECT sessrev.cache_reset()');
is(sql(q{SELECT count(*) FROM generate_series(1, 1000000) i
	WHERE sessrev.is_jwt_revoked(md5(random()::text), 'flood-user', now() - interval '1 minute')}),
	'0', 'a million random jtis are all valid');
is(sql('SELECT entries || \'/\' || evictions FROM sessrev.cache_stats()'), '0/0',
	'the flood added no entries and evicted nothing');

# Stress: concurrent checkers and revokers; no check started after a revocation
# committed may answer valid.
my $users = 2000;
sql(qq{
	CREATE UNLOGGED TABLE check_log (n int, started bigint, revoked int);
	CREATE UNLOGGED TABLE revoke_log (n int, committed bigint);
	INSERT INTO sessrev.user_token_cutoffs (user_id, not_before)
	SELECT 'stress-' || i, now() - interval '1 day' FROM generate_series(1, $users) i;
});
my $now_us = q{(extract(epoch FROM clock_timestamp()) * 1000000)::bigint};
$node->pgbench('--no-vacuum --client=6 --jobs=2 --time=' . ($ENV{SESSREV_STRESS_SECONDS} // 15), 0,
	[qr/number of failed transactions: 0/], [qr/^$/], 'JWT checkers and revokers run without errors', {
	'check@20' => qq{
\\set n random(1, $users)
SELECT $now_us AS started \\gset
SELECT sessrev.is_jwt_revoked('jti-s-' || :n, 'stress-' || :n, now() - interval '10 minutes')::int AS answer \\gset
INSERT INTO check_log VALUES (:n, :started, :answer);
},
	'revoke_jwt@1' => qq{
\\set n random(1, $users)
SELECT sessrev.revoke_jwt('jti-s-' || :n, now() + interval '1 hour');
INSERT INTO revoke_log VALUES (:n, $now_us);
},
	'cutoff@1' => qq{
\\set n random(1, $users)
SELECT sessrev.revoke_user_tokens_before('stress-' || :n);
INSERT INTO revoke_log VALUES (:n, $now_us);
},});
my ($checks, $revoked) = split /\|/, sql(q{SELECT (SELECT count(*) FROM check_log), (SELECT count(DISTINCT n) FROM revoke_log)});
my $stale = sql(q{
	SELECT count(*) FROM check_log c
	  JOIN (SELECT n, min(committed) AS first_commit FROM revoke_log GROUP BY n) r USING (n)
	 WHERE c.started > r.first_commit AND c.revoked = 0});
diag("JWT stress: $checks checks, $revoked tokens/users revoked");
cmp_ok($checks, '>', 1000, 'thousands of JWT checks ran');
cmp_ok($revoked, '>', 100, 'hundreds of JWT revocations ran');
is($stale, '0', 'no JWT check that started after a revocation committed answered valid');

# After a restart the filters are rebuilt from the tables before they are trusted.
sql(q{SELECT sessrev.revoke_jwt('survives-restart', now() + interval '1 hour')});
sql(q{SELECT sessrev.revoke_user_tokens_before('cut-before-restart')});
$node->restart;
is(sql(q{SELECT sessrev.is_jwt_revoked('survives-restart', 'someone', now() - interval '1 minute')}), 't',
	'a jti denylisted before a restart is still revoked');
is(sql(q{SELECT sessrev.is_jwt_revoked(NULL, 'cut-before-restart', now() - interval '1 hour')}), 't',
	'a cut-off set before a restart still applies');

# A second database: its own denylist and cut-offs are honoured too.
sql('CREATE DATABASE other');
$node->safe_psql('other', q{
	CREATE EXTENSION sessrev;
	SELECT sessrev.revoke_jwt('other-jti', now() + interval '1 hour');
	SELECT sessrev.revoke_all_sessions();
});
is($node->safe_psql('other', q{SELECT sessrev.is_jwt_revoked('other-jti', 'u', now() - interval '1 second')}), 't',
	'the second database sees its own denylist');
is($node->safe_psql('other', q{SELECT sessrev.is_jwt_revoked('x', 'u', now() - interval '1 second')}), 't',
	'the second database sees its own global cut-off');
is(sql(q{SELECT sessrev.is_jwt_revoked('other-jti', 'u', now() - interval '1 second')}), 'f',
	'the first database is not affected by the second');
sql('SELECT sessrev.cache_reset()');
$node->safe_psql('other', 'SELECT sessrev.cache_reset()');
is($node->safe_psql('other', q{SELECT sessrev.is_jwt_revoked('other-jti', 'u', now() - interval '1 day')}), 't',
	"cache_reset in either database keeps the other's answers");
is(sql(q{SELECT sessrev.is_jwt_revoked('survives-restart', 'someone', now() - interval '1 minute')}), 't',
	"and the first database's");

# Which databases are answered from shared memory.
is(jwt_tables_read($node, 'postgres'), "0\n0", 'the first database is answered from shared memory');
is(jwt_tables_read($node, 'other'), "0\n0", 'so is the second: it has filters of its own');
sql('CREATE DATABASE third');
$node->safe_psql('third', q{
	CREATE EXTENSION sessrev;
	SELECT sessrev.revoke_jwt('third-jti', now() + interval '1 hour');
});
my ($count, $reads) = split /\n/, jwt_tables_read($node, 'third');
is($count, '0', 'a third database, with both slots taken, answers right');
cmp_ok($reads, '>=', 100, 'from its tables');
is($node->safe_psql('third', q{SELECT sessrev.is_jwt_revoked('third-jti', 'u', now() - interval '1 second')}), 't',
	'and sees its own denylist');
sql('DROP DATABASE other');
is(jwt_tables_read($node, 'third'), "0\n0", "once the second database is dropped, the third takes over its slot");
is($node->safe_psql('third', q{SELECT sessrev.is_jwt_revoked('third-jti', 'u', now() - interval '1 second')}), 't',
	'with filters built from its own tables');
is(sql(q{SELECT sessrev.is_jwt_revoked('other-jti', 'u', now() - interval '1 second')}), 'f',
	'the first database is not affected');
is(jwt_tables_read($node, 'postgres'), "0\n0", 'and still answered from shared memory');

$node->stop;
done_testing();
