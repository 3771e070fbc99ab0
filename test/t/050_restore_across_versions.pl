# A database dumped from PostgreSQL 15 (test/cross_version_dump, made by
# test/matrix) restores into this release with sessrev installed: every row
# kept, every revoked session still revoked, JWT revocations and user tracking
# still in force, and the cache right from the first check. Skipped when no
# dump was made (test/run without --matrix).
use strict;
use warnings;
use File::Basename qw(dirname);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $dump = dirname(__FILE__) . '/../dumps/pg15.dump';
plan skip_all => 'no PostgreSQL 15 dump (made by test/run --matrix)' unless -f $dump;

my $node = PostgreSQL::Test::Cluster->new('restore');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'sessrev'");
$node->start;
my $version = $node->safe_psql('postgres', 'SHOW server_version_num');
$node->safe_psql('postgres', 'CREATE DATABASE moving');
my ($ok, $out, $err) = (0, '', '');
$ok = IPC::Run::run([ 'pg_restore', '--exit-on-error', '-d', $node->connstr('moving'), $dump ],
	'>', \$out, '2>', \$err);
ok($ok, "a dump from PostgreSQL 15 restores into $version") or diag($err);
sub sql { return $node->safe_psql('moving', $_[0]); }

is(sql(q{SELECT extversion = (SELECT default_version FROM pg_available_extensions WHERE name = 'sessrev')
           FROM pg_extension WHERE extname = 'sessrev'}), 't', 'sessrev is installed at the default version');
is(sql(q{SELECT count(*) FROM row_counts r WHERE r.n <> CASE r.t
           WHEN 'sessions' THEN (SELECT count(*) FROM sessrev.sessions)
           WHEN 'session_audit_log' THEN (SELECT count(*) FROM sessrev.session_audit_log)
           WHEN 'jwt_denylist' THEN (SELECT count(*) FROM sessrev.jwt_denylist)
           WHEN 'user_token_cutoffs' THEN (SELECT count(*) FROM sessrev.user_token_cutoffs)
           WHEN 'users' THEN (SELECT count(*) FROM users) END}), '0',
	'every row of every table is kept');
my $mismatches = q{SELECT count(*) FROM tokens WHERE sessrev.is_revoked(token) <> revoked_at_dump};
is(sql($mismatches), '0', 'every session answers as at dump time, from the first check');
is(sql($mismatches), '0', 'and again, from the cache');
cmp_ok(sql('SELECT hits FROM sessrev.cache_stats()'), '>', 0, 'the cache serves the restored database');
cmp_ok(sql('SELECT count(*) FROM tokens WHERE revoked_at_dump'), '>', 10, 'some restored sessions are revoked');
is(sql(q{SELECT bool_and(sessrev.is_jwt_revoked('jti-' || i, 'user-1', now())) FROM generate_series(1, 20) i}),
	't', 'restored denylisted JWTs are refused');
is(sql(q{SELECT sessrev.is_jwt_revoked(NULL, 'user-5', now() - interval '1 hour')}), 't',
	'a restored user cut-off is honoured');
is(sql(q{SELECT sessrev.is_jwt_revoked('jti-other', 'user-2', now())}), 'f', 'other JWTs pass');
sql(q{DELETE FROM users WHERE id = 'user-2'});
is(sql(q{SELECT count(*) FROM tokens WHERE user_id = 'user-2' AND NOT sessrev.is_revoked(token)}), '0',
	'the restored user tracking still revokes a deleted user');
$node->stop;
done_testing();
