# Concurrent checkers and revokers against the cache, bounded in time: no check
# that started after a revocation's COMMIT returned may answer "live".
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $seconds = $ENV{SESSREV_STRESS_SECONDS} // 20;
my $sessions = 50000;
my $hot = 2000;    # most checks go to these, so they are answered from the cache

my $node = PostgreSQL::Test::Cluster->new('stress');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'sessrev'
max_connections = 30
});
$node->start;
$node->safe_psql('postgres', qq{
	CREATE EXTENSION sessrev;
	CREATE TABLE stress_tokens AS
	  SELECT i AS n, c.* FROM generate_series(1, $sessions) i,
	         LATERAL sessrev.create_session('stress-' || (i % 5000)) c;
	CREATE UNIQUE INDEX ON stress_tokens (n);
	-- Times are microseconds since the epoch, taken by clock_timestamp().
	CREATE UNLOGGED TABLE check_log (n int, started bigint, revoked int);
	CREATE UNLOGGED TABLE revoke_log (n int, committed bigint);
	SELECT sessrev.cache_reset();
});

my $now_us = q{(extract(epoch FROM clock_timestamp()) * 1000000)::bigint};
# Each check records its start before it runs; each revocation records a time
# after its COMMIT has returned (autocommit), so the comparison is conservative.
my %scripts = (
	'check_hot_token@10' => qq{
\\set n random(1, $hot)
SELECT $now_us AS started \\gset
SELECT sessrev.is_revoked(token)::int AS answer FROM stress_tokens WHERE n = :n \\gset
INSERT INTO check_log VALUES (:n, :started, :answer);
},
	'check_hot_id@5' => qq{
\\set n random(1, $hot)
SELECT $now_us AS started \\gset
SELECT sessrev.is_revoked(session_id)::int AS answer FROM stress_tokens WHERE n = :n \\gset
INSERT INTO check_log VALUES (:n, :started, :answer);
},
	'check_any_token@2' => qq{
\\set n random(1, $sessions)
SELECT $now_us AS started \\gset
SELECT sessrev.is_revoked(token)::int AS answer FROM stress_tokens WHERE n = :n \\gset
INSERT INTO check_log VALUES (:n, :started, :answer);
},
	'revoke_session@1' => qq{
\\set n random(1, $sessions)
SELECT sessrev.revoke_session(session_id) FROM stress_tokens WHERE n = :n;
INSERT INTO revoke_log VALUES (:n, $now_us);
},
	'revoke_token@1' => qq{
\\set n random(1, $sessions)
SELECT sessrev.revoke_token(token) FROM stress_tokens WHERE n = :n;
INSERT INTO revoke_log VALUES (:n, $now_us);
},
	'direct_update@1' => qq{
\\set n random(1, $sessions)
BEGIN;
UPDATE sessrev.sessions SET revoked = true, revoked_at = now()
 WHERE id = (SELECT session_id FROM stress_tokens WHERE n = :n) AND NOT revoked;
COMMIT;
INSERT INTO revoke_log VALUES (:n, $now_us);
},
	'revoke_user@1' => qq{
\\set u random(0, 4999)
SELECT sessrev.revoke_user_sessions('stress-' || :u);
INSERT INTO revoke_log SELECT n, $now_us FROM stress_tokens WHERE n % 5000 = :u;
},);

$node->pgbench("--no-vacuum --client=6 --jobs=2 --time=$seconds", 0,
	[qr/number of failed transactions: 0/], [qr/^$/], 'checkers and revokers run without errors', \%scripts);

my ($checks, $live_answers, $revocations, $revoked_sessions) = split /\|/, $node->safe_psql('postgres', q{
	SELECT (SELECT count(*) FROM check_log), (SELECT count(*) FROM check_log WHERE revoked = 0),
	       (SELECT count(*) FROM revoke_log), (SELECT count(DISTINCT n) FROM revoke_log)});
my $stale = $node->safe_psql('postgres', q{
	SELECT count(*) FROM check_log c
	  JOIN (SELECT n, min(committed) AS first_commit FROM revoke_log GROUP BY n) r USING (n)
	 WHERE c.started > r.first_commit AND c.revoked = 0});
my ($hits, $misses, $invalidations) = split /\|/,
  $node->safe_psql('postgres', 'SELECT hits, misses, invalidations FROM sessrev.cache_stats()');

diag("stress: $checks checks ($live_answers answered live), $revocations revocations "
	  . "of $revoked_sessions sessions in $seconds s; cache hits $hits, misses $misses, "
	  . "invalidations $invalidations");
cmp_ok($checks, '>', 1000, 'thousands of checks ran');
cmp_ok($revoked_sessions, '>', 100, 'hundreds of sessions were revoked');
cmp_ok($hits, '>', 0, 'checks were answered from the cache');
cmp_ok($invalidations, '>', 0, 'revocations removed cached sessions');
is($stale, '0', 'no check that started after a revocation committed answered live');

# The table agrees: every session in revoke_log is revoked.
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM revoke_log r JOIN stress_tokens t USING (n)
	 WHERE NOT sessrev.is_revoked(t.token)}), '0', 'every revoked session stays revoked');

$node->stop;
done_testing();
