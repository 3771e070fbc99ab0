# The README's SQL runs as written: every ```sql block of README.md, in order, in
# one psql session on a fresh database, as the README says a reader may run them.
# Nothing runs before or between the blocks (psql only echoes which block
# ended); the cluster preloads sessrev and pg_cron (the pg_cron block needs it)
# with pg_cron's database set to ours and sessrev's worker off, as the README's
# pg_cron section asks. A block that fails is named by its README.md line, with
# psql's error and the README line it points at. After the blocks, the README's
# PostgREST grants are exercised the way PostgREST uses them: the pre-request
# functions run as the role it switches to, in one transaction with the RPC.
use strict;
use warnings;
use File::Basename qw(dirname);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $readme = dirname(__FILE__) . '/../../README.md';

# [README line of the opening fence, block text], in order.
sub sql_blocks {
	my ($path) = @_;
	open my $fh, '<', $path or die "$path: $!";
	my (@blocks, $open_at, $text);
	while (my $line = <$fh>) {
		if (defined $open_at) {
			if ($line =~ /^```\s*$/) {
				push @blocks, [ $open_at, $text ];
				undef $open_at;
			} else {
				$text .= $line;
			}
		} elsif ($line =~ /^```sql\s*$/) {
			($open_at, $text) = ($., '');
		}
	}
	die "$path: the ```sql block opened at line $open_at is never closed\n" if defined $open_at;
	return @blocks;
}

my @blocks = sql_blocks($readme);
cmp_ok(scalar @blocks, '>=', 10, 'README.md has its ```sql blocks (' . scalar(@blocks) . ' found)');

my $node = PostgreSQL::Test::Cluster->new('readme');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'sessrev,pg_cron'
cron.database_name = 'readme'
sessrev.database = 'readme'
sessrev.cleanup_interval = 0
});
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE readme');

# Each block is a file named by its README line, included with \i: psql's error
# messages then say which block and which of its lines failed.
my $dir = PostgreSQL::Test::Utils::tempdir;
my $script = '';
for my $block (@blocks) {
	my ($at, $text) = @$block;
	my $file = "$dir/readme-line-$at.sql";
	open my $out, '>', $file or die "$file: $!";
	print $out $text;
	close $out;
	$script .= "\\i $file\n\\echo doctest: block at line $at ran\n";
}
my ($stdout, $stderr);
my $rc = $node->psql('readme', $script, stdout => \$stdout, stderr => \$stderr,
	on_error_stop => 1);
my %ran = map { $_ => 1 } $stdout =~ /^doctest: block at line (\d+) ran$/mg;
my $failed;
for my $block (@blocks) {
	my $at = $block->[0];
	if ($ran{$at}) {
		pass("README.md line $at: the ```sql block runs");
		next;
	}
	if (defined $failed) {
		fail("README.md line $at: the ```sql block did not run (the block at line $failed failed first)");
		next;
	}
	$failed = $at;
	my $where = '';
	if ($stderr =~ /readme-line-$at\.sql:(\d+): (.*)/) {
		$where = "\nits line $1 (README.md line " . ($at + $1) . "): $2";
	}
	fail("README.md line $at: the ```sql block runs");
	diag("the ```sql block at README.md line $at failed (psql exit code $rc)$where\npsql's stderr:\n$stderr");
}
is($rc, 0, 'psql ran the README blocks to the end');
note("psql's notices and warnings:\n$stderr") if $stderr ne '' && !defined $failed;

# The grants the README's PostgREST blocks give suffice, for the role PostgREST
# runs the pre-request function and the RPC as: one transaction, SET LOCAL ROLE,
# the request's headers or JWT claims as transaction-local settings, the
# pre-request function, then the RPC. Returns psql's (exit code, last line of
# stdout, stderr).
sub as_postgrest {
	my ($setting, $value, $pre_request, $rpc) = @_;
	my ($rc, $out, $err) = $node->psql('readme', qq{
		BEGIN;
		SET LOCAL ROLE web_user;
		SELECT FROM set_config('$setting', $value, true);
		SELECT FROM $pre_request();
		$rpc;
		COMMIT;
	});
	return ($rc, (split /\n/, $out)[-1] // '', $err);
}

my $token = $node->safe_psql('readme',
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

$node->safe_psql('readme',
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
