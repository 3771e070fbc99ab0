# The README's SQL runs as written: every ```sql block of README.md, in order,
# in one psql session, on a cluster set up as README's Install says
# (sessrev preloaded, sessrev.database = 'app', the database app). Nothing runs
# before or between the blocks (psql only echoes which block ended). Then the
# same blocks again in a second database of the same cluster: a reader may run
# them twice, and roles are cluster-wide. A block marked with a line
# "<!-- doctest: pg_cron -->" before it runs on a cluster that also preloads
# pg_cron (cron.database_name = 'app'); one marked "primary" runs in a database
# of its own (it stands for a primary's setup of its standbys). A block that
# fails is named by its README.md line, with psql's error and the README line
# it points at. After the blocks, the README's PostgREST grants are exercised
# the way PostgREST uses them: the pre-request functions run as the role it
# switches to, in one transaction with the RPC.
use strict;
use warnings;
use File::Basename qw(dirname);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $readme = dirname(__FILE__) . '/../../README.md';

# [README line of the opening fence, block text, its mark or ''], in order.
sub sql_blocks {
	my ($path) = @_;
	open my $fh, '<', $path or die "$path: $!";
	my (@blocks, $open_at, $text, $mark, $pending_mark);
	while (my $line = <$fh>) {
		if (defined $open_at) {
			if ($line =~ /^```\s*$/) {
				push @blocks, [ $open_at, $text, $mark ];
				undef $open_at;
			} else {
				$text .= $line;
			}
		} elsif ($line =~ /^```sql\s*$/) {
			($open_at, $text, $mark) = ($., '', $pending_mark // '');
			undef $pending_mark;
		} elsif ($line =~ /^<!-- doctest: (\w+) -->\s*$/) {
			$pending_mark = $1;
		} elsif ($line !~ /^\s*$/) {
			undef $pending_mark;
		}
	}
	die "$path: the ```sql block opened at line $open_at is never closed\n" if defined $open_at;
	return @blocks;
}

my @blocks = sql_blocks($readme);
my @unknown = grep { $_->[2] !~ /^(|pg_cron|primary)$/ } @blocks;
is(scalar @unknown, 0, 'every doctest mark is one this test knows (pg_cron, primary)');
my @main = grep { $_->[2] eq '' } @blocks;
cmp_ok(scalar @main, '>=', 5, 'README.md has its ```sql blocks (' . scalar(@blocks) . ' found, ' . scalar(@main) . ' unmarked)');

sub new_cluster {
	my ($name, $preload) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->append_conf('postgresql.conf', "shared_preload_libraries = '$preload'\nsessrev.database = 'app'\n"
		  . "cron.database_name = 'app'\n" x ($preload =~ /pg_cron/ ? 1 : 0));
	$node->start;
	$node->safe_psql('postgres', 'CREATE DATABASE app');
	return $node;
}

my $dir = PostgreSQL::Test::Utils::tempdir;
# Runs the blocks in db, each a file named by its README line, included with
# \i: psql's error messages then say which block and which of its lines failed.
sub run_blocks {
	my ($node, $db, $what, @run) = @_;
	my $script = '';
	for my $block (@run) {
		my ($at, $text) = @$block;
		my $file = "$dir/readme-line-$at.sql";
		open my $out, '>', $file or die "$file: $!";
		print $out $text;
		close $out;
		$script .= "\\i $file\n\\echo doctest: block at line $at ran\n";
	}
	my ($stdout, $stderr);
	my $rc = $node->psql($db, $script, stdout => \$stdout, stderr => \$stderr, on_error_stop => 1);
	my %ran = map { $_ => 1 } $stdout =~ /^doctest: block at line (\d+) ran$/mg;
	my $failed;
	for my $block (@run) {
		my $at = $block->[0];
		if ($ran{$at}) {
			pass("$what: README.md line $at: the ```sql block runs");
			next;
		}
		if (defined $failed) {
			fail("$what: README.md line $at: the ```sql block did not run (the block at line $failed failed first)");
			next;
		}
		$failed = $at;
		my $where = '';
		if ($stderr =~ /readme-line-$at\.sql:(\d+): (.*)/) {
			$where = "\nits line $1 (README.md line " . ($at + $1) . "): $2";
		}
		fail("$what: README.md line $at: the ```sql block runs");
		diag("the ```sql block at README.md line $at failed (psql exit code $rc)$where\npsql's stderr:\n$stderr");
	}
	is($rc, 0, "$what: psql ran the blocks to the end");
	note("psql's notices and warnings:\n$stderr") if $stderr ne '' && !defined $failed;
}

my $node = new_cluster('readme', 'sessrev');
run_blocks($node, 'app', 'database app', @main);
$node->safe_psql('postgres', 'CREATE DATABASE again');
run_blocks($node, 'again', 'again, in a second database', @main);
$node->safe_psql('postgres', 'CREATE DATABASE primary_setup');
$node->safe_psql('primary_setup', 'CREATE EXTENSION sessrev');
run_blocks($node, 'primary_setup', 'a primary of standbys', grep { $_->[2] eq 'primary' } @blocks);

my $cron = new_cluster('readme_cron', 'sessrev,pg_cron');
$cron->safe_psql('app', 'CREATE EXTENSION sessrev');
run_blocks($cron, 'app', 'with pg_cron', grep { $_->[2] eq 'pg_cron' } @blocks);
$cron->stop;

# The grants the README's PostgREST blocks give suffice, for the role PostgREST
# runs the pre-request function and the RPC as: one transaction, SET LOCAL ROLE,
# the request's headers or JWT claims as transaction-local settings, the
# pre-request function, then the RPC. Returns psql's (exit code, last line of
# stdout, stderr).
sub as_postgrest {
	my ($setting, $value, $pre_request, $rpc) = @_;
	my ($rc, $out, $err) = $node->psql('app', qq{
		BEGIN;
		SET LOCAL ROLE web_user;
		SELECT FROM set_config('$setting', $value, true);
		SELECT FROM $pre_request();
		$rpc;
		COMMIT;
	});
	return ($rc, (split /\n/, $out)[-1] // '', $err);
}

my $token = $node->safe_psql('app',
	q{SELECT token FROM sessrev.create_session('user-7', device_info => 'PostgREST client')});
my $headers = "json_build_object('x-session-token', '$token')::text";
my $my_sessions = q{SELECT string_agg(device_info || ': ' || is_current, ', ') FROM sessrev.my_sessions()};
my ($rc2, $out, $err) = as_postgrest('request.headers', $headers, 'api.pre_request', $my_sessions);
is("$rc2 $out", '0 PostgREST client: true',
	'as web_user, api.pre_request() validates the session token and /rpc/my_sessions lists that session')
  or diag($err);
($rc2, $out, $err) = as_postgrest('request.headers', q{'{"x-session-token": "forged"}'},
	'api.pre_request', $my_sessions);
like($err, qr/ERROR:  not signed in/, 'as web_user, api.pre_request() refuses an unknown token');

$node->safe_psql('app',
	q{SELECT sessrev.revoke_jwt('jti-stolen', now() + interval '1 hour', 'user-9')});
my $claims = q{json_build_object('jti', '%s', 'sub', 'user-9', 'role', 'web_user',
	'iat', extract(epoch FROM now()))::text};
($rc2, $out, $err) = as_postgrest('request.jwt.claims', sprintf($claims, 'jti-live'),
	'api.check_jwt', q{SELECT 'request served'});
is("$rc2 $out", '0 request served', 'as web_user, api.check_jwt() lets a live JWT through')
  or diag($err);
($rc2, $out, $err) = as_postgrest('request.jwt.claims', sprintf($claims, 'jti-stolen'),
	'api.check_jwt', q{SELECT 'request served'});
like($err, qr/ERROR:  token revoked/, 'as web_user, api.check_jwt() refuses a revoked JWT');

$node->stop;
done_testing();
