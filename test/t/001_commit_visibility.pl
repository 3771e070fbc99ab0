# A revocation committed in one connection is refused in another connection
# right after COMMIT returns; one still in progress or rolled back is not.
# Runs twice: without the library preloaded (direct lookups) and with it (the
# shared-memory cache, where the checker has just cached the session as live).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib "$FindBin::RealBin/lib";
use Sessrev::Checks qw(revocation_sql);

my ($node, $checker, $revoker);

sub new_session {
	my ($user) = @_;
	my ($id, $token) = split /\|/,
	  $node->safe_psql('postgres', "SELECT session_id, token FROM sessrev.create_session('$user')");
	return ($id, $token);
}

sub answers {
	my ($token) = @_;
	return $checker->query_safe(
		"SELECT sessrev.is_revoked('$token') || '/' || (SELECT count(*) FROM sessrev.validate_session('$token'))");
}

# The paths of Sessrev::Checks that revoke the session itself.
my @paths = sort('revoke_session', 'revoke_token', 'revoke_user_sessions', 'revoke_all_sessions',
                 'UPDATE revoked', 'DELETE', 'TRUNCATE');

for my $mode ('not preloaded', 'preloaded') {
$node = PostgreSQL::Test::Cluster->new($mode eq 'preloaded' ? 'cached' : 'direct');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'sessrev'") if $mode eq 'preloaded';
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION sessrev');
is($node->safe_psql('postgres', 'SELECT enabled FROM sessrev.cache_stats()'),
	$mode eq 'preloaded' ? 't' : 'f', "$mode: cache enabled only when preloaded");
$checker = $node->background_psql('postgres');
$revoker = $node->background_psql('postgres');

for my $how (@paths) {
	my $user = "user-$how";
	$user =~ s/\W/_/g;
	my ($id, $token) = new_session($user);
	is(answers($token), 'false/1', "$mode, $how: live before");

	$revoker->query_safe('BEGIN');
	$revoker->query_safe(revocation_sql($how, $id, $token, $user));
	# TRUNCATE holds an exclusive lock: readers wait for it rather than answer.
	is(answers($token), 'false/1', "$mode, $how: still live while the revoking transaction is open")
	  unless $how eq 'TRUNCATE';
	$revoker->query_safe('ROLLBACK');
	is(answers($token), 'false/1', "$mode, $how: live after ROLLBACK");

	$revoker->query_safe('BEGIN');
	$revoker->query_safe(revocation_sql($how, $id, $token, $user));
	$revoker->query_safe('COMMIT');
	is(answers($token), 'true/0', "$mode, $how: refused in another connection right after COMMIT");
}

if ($mode eq 'preloaded') {
	my ($hits, $invalidations) = split /\|/,
	  $node->safe_psql('postgres', 'SELECT hits, invalidations FROM sessrev.cache_stats()');
	cmp_ok($hits, '>', 0, 'the checker was answered from the cache');
	cmp_ok($invalidations, '>', 0, 'commits removed cached sessions');
}
$checker->quit;
$revoker->quit;
$node->stop;
}
done_testing();
