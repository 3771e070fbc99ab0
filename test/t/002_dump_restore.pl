# pg_dump and pg_restore of a database keep every session and audit row, and
# the restored sessions answer as before.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('dump');
$node->init;
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE source');
$node->safe_psql('source', q{
	CREATE EXTENSION sessrev;
	CREATE TABLE tokens AS
	  SELECT i, c.* FROM generate_series(1, 50) i,
	         LATERAL sessrev.create_session('dump-user-' || (i % 5), ip_address => '192.0.2.1',
	                 user_agent => 'Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0', metadata => '{"n": 1}') c;
	SELECT sessrev.revoke_session(session_id, 'dump test', 'tap') FROM tokens WHERE i % 4 = 0;
	SELECT sessrev.revoke_user_sessions('dump-user-1');
	SELECT sessrev.cleanup_expired_sessions();
});

my $digest = q{
	SELECT (SELECT count(*) || ':' || md5(string_agg(s::text, ',' ORDER BY id)) FROM sessrev.sessions s)
	    || ' ' ||
	       (SELECT count(*) || ':' || md5(string_agg(a::text, ',' ORDER BY id)) FROM sessrev.session_audit_log a)
};
my $answers = q{SELECT string_agg(sessrev.is_revoked(token)::text, ',' ORDER BY i) FROM tokens};

my $before = $node->safe_psql('source', $digest);
my $answers_before = $node->safe_psql('source', $answers);
like($before, qr/^50:\w+ \d+:\w+$/, 'source holds 50 sessions and the audit trail');

my $dump = $node->basedir . '/source.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-d', $node->connstr('source'), '-f', $dump ], 'pg_dump succeeds');
$node->safe_psql('postgres', 'CREATE DATABASE restored');
$node->command_ok([ 'pg_restore', '--exit-on-error', '-d', $node->connstr('restored'), $dump ],
	'pg_restore succeeds');

is($node->safe_psql('restored', $digest), $before, 'every session and audit row survives the round trip');
is($node->safe_psql('restored', $answers), $answers_before, 'restored sessions answer is_revoked as before');
like($answers_before, qr/false/, 'some sessions were live');
like($answers_before, qr/true/,  'some sessions were revoked');

# The audit identity continues after the restored rows instead of colliding.
$node->safe_psql('restored', "SELECT sessrev.create_session('after-restore')");
is($node->safe_psql('restored', q{
	SELECT count(*) FROM sessrev.session_audit_log
	 WHERE action = 'SESSION_CREATED' AND user_id = 'after-restore'}), '1',
	'new audit rows are written after a restore');

$node->stop;
done_testing();
