# pg_upgrade of a cluster that preloads sessrev: the new cluster's server,
# started in binary-upgrade mode, runs no cleanup worker (release 1.0 started
# one, which connected and wrote while pg_upgrade restored the schema), and
# the upgraded cluster keeps every session and answers as before.
use strict;
use warnings;
use Cwd qw(getcwd);
use File::Find;
use File::Spec;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $preload = qq{
shared_preload_libraries = 'sessrev'
sessrev.cleanup_interval = '1s'
log_min_messages = debug1
};

my $old = PostgreSQL::Test::Cluster->new('old');
$old->init;
$old->append_conf('postgresql.conf', $preload);
$old->start;
$old->safe_psql('postgres', q{
	CREATE EXTENSION sessrev;
	CREATE TABLE tokens AS SELECT i, c.token FROM generate_series(1, 20) i,
	       LATERAL sessrev.create_session('user-' || i) c;
	SELECT sessrev.revoke_session(s.id) FROM sessrev.sessions s WHERE s.user_id IN ('user-1', 'user-2');
});
my $answers = q{SELECT string_agg(sessrev.is_revoked(token)::text, ',' ORDER BY i) FROM tokens};
my $before = $old->safe_psql('postgres', $answers);
$old->stop;

my $new = PostgreSQL::Test::Cluster->new('new');
$new->init;
$new->append_conf('postgresql.conf', $preload);

my $bindir = $new->config_data('--bindir');
# From 17 on, the clusters' paths are relative to the test's directory.
my $old_dir = File::Spec->rel2abs($old->data_dir);
my $new_dir = File::Spec->rel2abs($new->data_dir);
my $workdir = File::Spec->rel2abs($new->basedir . '/upgrade');
mkdir $workdir;
my $test_dir = getcwd();
chdir $workdir;  # pg_upgrade writes files into the current directory
my ($stdout, $stderr) = ('', '');
my $ok = IPC::Run::run(
	[
		'pg_upgrade', '--no-sync', '--retain',
		'-b', $bindir, '-B', $bindir,
		'-d', $old_dir, '-D', $new_dir,
		'-p', $old->port, '-P', $new->port,
		'-s', $new->host
	],
	'>', \$stdout, '2>', \$stderr);
chdir $test_dir;
ok($ok, 'pg_upgrade of a cluster that preloads sessrev succeeds') or diag("$stdout\n$stderr");

# The servers pg_upgrade started log into its output directory.
my $server_logs = '';
find(sub { $server_logs .= slurp_file($File::Find::name) if $_ eq 'pg_upgrade_server.log' },
	$new_dir);
like($server_logs, qr/binary.upgrade|pg_upgrade|database system is ready/i,
	'the binary-upgrade server logs were found');
unlike($server_logs, qr/starting background worker process "sessrev cleanup"/,
	'no cleanup worker started while pg_upgrade ran');

$new->start;
is($new->safe_psql('postgres', $answers), $before, 'the upgraded cluster answers every session as before');
$new->poll_query_until('postgres', q{SELECT pid IS NOT NULL FROM sessrev.worker_status()})
  or die 'worker did not start';
pass('the cleanup worker runs again once the upgraded cluster starts normally');
$new->stop;
done_testing();
