# Paths around the triggers, and the cache under writers, fail closed
# (release 1.0 failed each of these):
#  - a data-only restore with --disable-triggers into a database whose JWT
#    filters are built: restored denylisted jtis and cut-offs are refused;
#  - that restore leaves the triggers ordinary (ENABLE TRIGGER ALL): a
#    revocation under session_replication_role = replica is still seen;
#  - disabling and re-enabling the triggers inside one transaction;
#  - the first is_jwt_revoked after cache_reset() never waits for an open
#    revoke_jwt transaction, and a builder killed mid-build is taken over;
#  - revocations of any concurrent mix never deadlock;
#  - one role revoking thousands of its own sessions does not empty the cache.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $node = PostgreSQL::Test::Cluster->new('fail_closed');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'sessrev'
sessrev.cleanup_interval = 0
max_prepared_transactions = 2
log_lock_waits = on
deadlock_timeout = '100ms'
});
$node->start;
sub sql { my ($db, $query) = @_; return $node->safe_psql($db, $query); }
# Checks a token twice (the first call fills the cache) and returns the answer.
sub check_twice {
	my ($db, $token) = @_;
	my @answers = split /\n/, sql($db, "SELECT sessrev.is_revoked('$token'); SELECT sessrev.is_revoked('$token')");
	return $answers[-1];
}

# --- Data-only restore around the triggers -----------------------------------
sql('postgres', 'CREATE DATABASE source');
sql('source', q{
	CREATE EXTENSION sessrev;
	SELECT sessrev.revoke_jwt('restored-jti', now() + interval '1 day');
	SELECT sessrev.revoke_user_tokens_before('restored-user', now());
});
my $dump = $node->basedir . '/source.dump';
$node->command_ok([ 'pg_dump', '-Fc', '--data-only', '-n', 'sessrev', '-d', $node->connstr('source'), '-f', $dump ],
	'data-only dump of the sessrev tables');

sql('postgres', 'CREATE DATABASE target');
sql('target', 'CREATE EXTENSION sessrev');
my $jwt_checks = q{SELECT sessrev.is_jwt_revoked('restored-jti', NULL, now() - interval '1 hour') || '/' ||
                          sessrev.is_jwt_revoked(NULL, 'restored-user', now() - interval '1 hour') || '/' ||
                          sessrev.is_jwt_revoked('other-jti', 'other-user', now() - interval '1 hour')};
is(sql('target', $jwt_checks), 'false/false/false', 'before the restore nothing is revoked (filters built)');
my ($ok, $stdout, $stderr) = (0, '', '');
$ok = IPC::Run::run([ 'pg_restore', '--data-only', '--disable-triggers', '-d', $node->connstr('target'), $dump ],
	'>', \$stdout, '2>', \$stderr);
ok($ok, 'pg_restore --data-only --disable-triggers succeeds');
my @warnings = (slurp_file($node->logfile) =~ /cache no longer serves database "target"/g);
is(scalar @warnings, 1, 'the restore was warned once that the cache stopped serving the database');
is(sql('target', $jwt_checks), 'true/true/false', 'restored denylisted jti and cut-off are refused at once');
is(sql('target', q{SELECT string_agg(tgenabled::text, '' ORDER BY tgname) FROM pg_trigger
                    WHERE tgrelid = 'sessrev.sessions'::regclass}), 'OOO',
	'the restore left the triggers ordinary (ENABLE TRIGGER ALL)');

my ($token) = split /\|/, sql('target', q{SELECT token FROM sessrev.create_session('alice')});
is(check_twice('target', $token), 'f', 'a live session');
sql('target', qq{SET session_replication_role = replica;
	UPDATE sessrev.sessions SET revoked = true, revoked_at = now() WHERE token_hash = sessrev.hash_token('$token')});
is(sql('target', "SELECT sessrev.is_revoked('$token')"), 't',
	'with ordinary triggers, a revocation under session_replication_role = replica is still refused');
my $hits = sql('target', 'SELECT hits FROM sessrev.cache_stats()');
my ($token2) = split /\|/, sql('target', q{SELECT token FROM sessrev.create_session('bob')});
check_twice('target', $token2);
is(sql('target', 'SELECT hits FROM sessrev.cache_stats()'), $hits, 'while disarmed the cache answers nothing');

sql('target', 'SELECT sessrev.arm_triggers()');
is(sql('target', q{SELECT string_agg(tgenabled::text, '' ORDER BY tgname) FROM pg_trigger
                    WHERE tgrelid = 'sessrev.sessions'::regclass}), 'AAO',
	'arm_triggers re-arms the cache triggers (ALWAYS) and the final-state rule (ordinary)');
check_twice('target', $token2);
cmp_ok(sql('target', 'SELECT hits FROM sessrev.cache_stats()'), '>', $hits, 'and the cache serves again');
is(sql('target', $jwt_checks), 'true/true/false', 'with the restored rows still refused');

# Disarm, revoke and re-arm in one transaction: the cache still learns of it.
my ($token3) = split /\|/, sql('target', q{SELECT token FROM sessrev.create_session('carol')});
is(check_twice('target', $token3), 'f', 'carol is cached live');
sql('target', qq{BEGIN;
	ALTER TABLE sessrev.sessions DISABLE TRIGGER ALL;
	UPDATE sessrev.sessions SET revoked = true, revoked_at = now() WHERE token_hash = sessrev.hash_token('$token3');
	SELECT sessrev.arm_triggers();
	COMMIT});
is(sql('target', "SELECT sessrev.is_revoked('$token3')"), 't',
	'a revocation made with the triggers disabled inside one transaction is refused after it');

# A prepared transaction commits out of sight: one that disarms is refused.
my ($prep_ret, $prep_out, $prep_err) = $node->psql('target', q{BEGIN;
	ALTER TABLE sessrev.sessions DISABLE TRIGGER ALL;
	PREPARE TRANSACTION 'disarm'});
like($prep_err, qr/cannot PREPARE a transaction that changed sessrev's triggers/,
	'PREPARE TRANSACTION of a transaction that disarms the triggers is refused');
is(sql('target', q{SELECT count(*) FROM pg_prepared_xacts}), '0', 'and nothing stays prepared');
is(sql('target', q{SELECT string_agg(tgenabled::text, '' ORDER BY tgname) FROM pg_trigger
                    WHERE tgrelid = 'sessrev.sessions'::regclass}), 'AAO', 'the triggers stay armed');

# --- Readers never wait for writers ------------------------------------------
my $writer = $node->background_psql('target');
$writer->query_safe('BEGIN');
$writer->query_safe(q{SELECT sessrev.revoke_jwt('held-jti', now() + interval '1 hour')});
my $start = time;
is((split /\n/, sql('target', q{SET statement_timeout = '5s'; SELECT sessrev.cache_reset();
                   SELECT sessrev.is_jwt_revoked('free-jti', NULL, now())}))[-1], 'f',
	'cache_reset and the first is_jwt_revoked answer while a revoke_jwt transaction is open');
cmp_ok(time - $start, '<', 3, 'without waiting for it');
is(sql('target', q{SET statement_timeout = '5s'; SELECT sessrev.revoke_jwt('second-jti', now() + interval '1 hour')}),
	't', 'and another revoke_jwt does not queue behind a build');
$writer->query_safe('COMMIT');
$writer->quit;
is(sql('target', q{SELECT sessrev.is_jwt_revoked('held-jti', NULL, now())}), 't', 'the held revocation counts once committed');

# validate_session never waits either: when a touch is due while another
# transaction holds the session's row or the table, it answers and skips it.
my ($held_id, $held_token) = split /\|/, sql('target', q{SELECT session_id, token FROM sessrev.create_session('dora')});
sql('target', "UPDATE sessrev.sessions SET last_active_at = now() - interval '1 hour' WHERE id = '$held_id'");
my $validate = qq{SET statement_timeout = '5s'; SELECT count(*) FROM sessrev.validate_session('$held_token')};
for my $hold (["another transaction holds the session's row",
		"UPDATE sessrev.sessions SET metadata = '{\"x\": 1}' WHERE id = '$held_id'"],
	["revoke_all_sessions holds the table",
		'LOCK TABLE sessrev.sessions IN SHARE ROW EXCLUSIVE MODE']) {
	my ($what, $query) = @$hold;
	$writer = $node->background_psql('target');
	$writer->query_safe('BEGIN');
	$writer->query_safe($query);
	$start = time;
	is((split /\n/, sql('target', $validate))[-1], '1', "validate_session answers while $what");
	cmp_ok(time - $start, '<', 3, 'without waiting');
	$writer->query_safe('ROLLBACK');
	$writer->quit;
}
is((split /\n/, sql('target', "SET default_transaction_read_only = on; SELECT count(*) FROM sessrev.validate_session('$held_token')"))[-1],
	'1', 'validate_session answers in a read-only transaction when a touch is due');
is(sql('target', "SELECT count(*) FROM sessrev.validate_session('$held_token')"), '1', 'and touches once it can');
is(sql('target', "SELECT last_active_at > now() - interval '1 minute' FROM sessrev.sessions WHERE id = '$held_id'"), 't',
	'the touch moved last_active_at');

# Filters serve (no index scan for an unknown jti) once a build could run.
my $scans = q{SELECT sessrev.is_jwt_revoked('unknown-' || i, NULL, now()) FROM generate_series(1, 100) i;
              SELECT pg_stat_get_xact_numscans('sessrev.jwt_denylist_pkey'::regclass)};
sub index_scans { my @lines = split /\n/, sql('target', "BEGIN; $scans; COMMIT"); return $lines[-1]; }
is(index_scans(), '0', 'the JWT filters answer unknown jtis without the table');

# A builder killed mid-build (FATAL skips its cleanup) is taken over.
sql('target', q{INSERT INTO sessrev.jwt_denylist (jti, expires_at)
                SELECT 'bulk-' || i, now() + interval '1 day' FROM generate_series(1, 1500000) i});
my $builder = $node->background_psql('target');
my $builder_pid = $builder->query_safe('SELECT pg_backend_pid()');
$builder->query_until(qr/start/, q{\echo start
SELECT sessrev.cache_reset();
});
$node->poll_query_until('target',
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE pid = $builder_pid AND query LIKE '%cache_reset%' AND state = 'active'")
  or die 'builder did not start';
sql('target', "SELECT pg_terminate_backend($builder_pid)");
eval { $builder->quit };
$node->poll_query_until('target', "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $builder_pid") or die;
sql('target', 'SELECT sessrev.cache_reset()');
# 1.5M jtis fill half the filter bits: about 7% of unknown jtis are "maybe".
cmp_ok(index_scans(), '<', 50, 'after the builder was killed, cache_reset builds the filters again');
sql('target', q{DELETE FROM sessrev.jwt_denylist WHERE jti LIKE 'bulk-%'});

# --- No deadlock in any mix of revocations ------------------------------------
sql('postgres', 'CREATE EXTENSION sessrev');
my $dir = $node->basedir;
open my $f, '>', "$dir/user.sql" or die;
print $f q{\set u random(1, 20)
\set v random(1, 20)
SELECT sessrev.create_session('load-' || :u) FROM generate_series(1, 3);
SELECT sessrev.revoke_user_sessions('load-' || :v);
};
close $f;
open $f, '>', "$dir/all.sql" or die;
print $f q{SELECT sessrev.create_session('load-all') FROM generate_series(1, 3);
SELECT sessrev.revoke_all_sessions();
};
close $f;
open $f, '>', "$dir/limit.sql" or die;
print $f q{\set u random(1, 20)
SET sessrev.max_sessions_per_user = 2;
SELECT sessrev.create_session('load-' || :u);
};
close $f;
my $log_offset = -s $node->logfile;
my ($out, $err) = ('', '');
IPC::Run::run([ 'pgbench', '-n', '-c', '4', '-j', '2', '-T', '8', '-f', "$dir/user.sql\@3",
		'-f', "$dir/all.sql\@1", '-f', "$dir/limit.sql\@1", '-d', $node->connstr('postgres') ],
	'>', \$out, '2>', \$err);
my ($done) = $out =~ /number of transactions actually processed: (\d+)/;
my ($failed) = $out =~ /number of failed transactions: (\d+)/;
$failed //= ($err =~ /deadlock detected/ ? 'deadlocks' : 0);
cmp_ok($done // 0, '>', 50, "a concurrent mix of revocations ran (" . ($done // 0) . " transactions)");
is($failed, 0, 'no revocation failed');
my $log = slurp_file($node->logfile, $log_offset);
unlike($log, qr/deadlock detected/, 'no deadlock was detected');
unlike($err, qr/ERROR/, 'no client saw an error');

# --- A bulk revocation does not empty the cache -------------------------------
sql('postgres', q{CREATE TABLE bystanders AS SELECT token FROM generate_series(1, 2000) i,
                  LATERAL sessrev.create_session('bystander-' || i);
                  SELECT count(*) FROM (SELECT sessrev.create_session('bulk') FROM generate_series(1, 3000)) x});
sql('postgres', q{SELECT count(*) FROM bystanders WHERE sessrev.is_revoked(token)});
my $before = sql('postgres', 'SELECT hits FROM sessrev.cache_stats()');
sql('postgres', q{SELECT count(*) FROM bystanders WHERE sessrev.is_revoked(token)});
my $all_hit = sql('postgres', 'SELECT hits FROM sessrev.cache_stats()') - $before;
is($all_hit, 2000, 'the bystanders are cached');
sql('postgres', 'CREATE DATABASE another');
sql('another', 'CREATE EXTENSION sessrev');
$before = sql('postgres', 'SELECT hits FROM sessrev.cache_stats()');
sql('postgres', q{SELECT count(*) FROM bystanders WHERE sessrev.is_revoked(token)});
is(sql('postgres', 'SELECT hits FROM sessrev.cache_stats()') - $before, 2000,
	'CREATE EXTENSION in another database leaves the cache as it was');
is(sql('postgres', q{SELECT sessrev.revoke_user_sessions('bulk')}), '3000', 'one user revokes 3,000 sessions');
$before = sql('postgres', 'SELECT hits FROM sessrev.cache_stats()');
is(sql('postgres', q{SELECT count(*) FROM bystanders WHERE sessrev.is_revoked(token)}), '0', 'bystanders stay live');
my $still = sql('postgres', 'SELECT hits FROM sessrev.cache_stats()') - $before;
cmp_ok($still, '>', 1000, "most bystanders are still answered from the cache ($still of 2000)");

$node->stop;
done_testing();
