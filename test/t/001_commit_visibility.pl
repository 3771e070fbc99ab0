# A revocation committed in one connection is refused in another connection
# right after COMMIT returns; one still in progress or rolled back is not.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('visibility');
$node->init;
$node->append_conf('postgresql.conf', $ENV{SESSREV_TAP_CONF} // '');
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION sessrev');

sub new_session {
	my ($user) = @_;
	my ($id, $token) = split /\|/,
	  $node->safe_psql('postgres', "SELECT session_id, token FROM sessrev.create_session('$user')");
	return ($id, $token);
}

my $checker = $node->background_psql('postgres');
my $revoker = $node->background_psql('postgres');

sub answers {
	my ($token) = @_;
	return $checker->query_safe(
		"SELECT sessrev.is_revoked('$token') || '/' || (SELECT count(*) FROM sessrev.validate_session('$token'))");
}

my %revocations = (
	'revoke_session'       => sub { "SELECT sessrev.revoke_session('$_[0]')" },
	'revoke_token'         => sub { "SELECT sessrev.revoke_token('$_[1]')" },
	'revoke_user_sessions' => sub { "SELECT sessrev.revoke_user_sessions('$_[2]')" },
	'revoke_all_sessions'  => sub { "SELECT sessrev.revoke_all_sessions()" },
	'direct UPDATE'        => sub { "UPDATE sessrev.sessions SET revoked = true, revoked_at = now() WHERE id = '$_[0]'" },
	'direct DELETE'        => sub { "DELETE FROM sessrev.sessions WHERE id = '$_[0]'" },
	'TRUNCATE'             => sub { "TRUNCATE sessrev.sessions" },);

for my $how (sort keys %revocations) {
	my $user = "user-$how";
	$user =~ s/\W/_/g;
	my ($id, $token) = new_session($user);
	is(answers($token), 'false/1', "$how: live before");

	$revoker->query_safe('BEGIN');
	$revoker->query_safe($revocations{$how}->($id, $token, $user));
	# TRUNCATE holds an exclusive lock: readers wait for it rather than answer.
	is(answers($token), 'false/1', "$how: still live while the revoking transaction is open")
	  unless $how eq 'TRUNCATE';
	$revoker->query_safe('ROLLBACK');
	is(answers($token), 'false/1', "$how: live after ROLLBACK");

	$revoker->query_safe('BEGIN');
	$revoker->query_safe($revocations{$how}->($id, $token, $user));
	$revoker->query_safe('COMMIT');
	is(answers($token), 'true/0', "$how: refused in another connection right after COMMIT");
}

$checker->quit;
$revoker->quit;
$node->stop;
done_testing();
