# Revocation wins everywhere: every revocation path x every check x every
# isolation level x preloaded or not. A checker opens a transaction, sees the
# session (or JWT) live, another connection revokes and commits, and the
# checker, still in its transaction (whose snapshot predates the revocation),
# must now be refused. Release 1.0 failed this for validate_session under
# REPEATABLE READ and SERIALIZABLE, and for changes made under
# session_replication_role = replica once the triggers were not ALWAYS.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my ($node, $checker, $revoker);
my $n = 0;

sub sql { return $node->safe_psql('postgres', $_[0]); }

sub new_session {
	my ($user) = @_;
	return split /\|/, sql("SELECT session_id, token FROM sessrev.create_session('$user')");
}

# What the session checks answer: is_revoked(token), is_revoked(id), rows of
# validate_session, and whether the transaction then has a current session.
sub session_answers {
	my ($id, $token) = @_;
	return $checker->query_safe(qq{
		SELECT sessrev.is_revoked('$token') || '/' || sessrev.is_revoked('$id'::uuid) || '/' ||
		       (SELECT count(*) FROM sessrev.validate_session('$token')) || '/' ||
		       (sessrev.current_session_id() IS NOT NULL)});
}

my %session_paths = (
	'revoke_session'       => sub { "SELECT sessrev.revoke_session('$_[0]')" },
	'revoke_token'         => sub { "SELECT sessrev.revoke_token('$_[1]')" },
	'revoke_user_sessions' => sub { "SELECT sessrev.revoke_user_sessions('$_[2]')" },
	'revoke_all_sessions'  => sub { 'SELECT sessrev.revoke_all_sessions()' },
	'direct UPDATE' =>
	  sub { "UPDATE sessrev.sessions SET revoked = true, revoked_at = now() WHERE id = '$_[0]'" },
	'direct DELETE' => sub { "DELETE FROM sessrev.sessions WHERE id = '$_[0]'" },
	'expiry moved to the past' =>
	  sub { "UPDATE sessrev.sessions SET expires_at = '2000-01-02', created_at = '2000-01-01' WHERE id = '$_[0]'" },
	'UPDATE under session_replication_role = replica' => sub {
		"SET session_replication_role = replica; UPDATE sessrev.sessions SET revoked = true, revoked_at = now() WHERE id = '$_[0]'; RESET session_replication_role";
	},
	'tracked user deleted'           => sub { "DELETE FROM users WHERE id = '$_[2]'" },
	'tracked user privilege changed' => sub { "UPDATE users SET role = 'admin' WHERE id = '$_[2]'" },
	'tracked user deleted under replica role' => sub {
		"SET session_replication_role = replica; DELETE FROM users WHERE id = '$_[2]'; RESET session_replication_role";
	},);

my %jwt_paths = (
	'revoke_jwt' => sub { "SELECT sessrev.revoke_jwt('$_[0]', now() + interval '1 hour')" },
	'revoke_user_tokens_before' => sub { "SELECT sessrev.revoke_user_tokens_before('$_[1]')" },
	'revoke_user_sessions'      => sub { "SELECT sessrev.revoke_user_sessions('$_[1]')" },
	'revoke_all_sessions'       => sub { 'SELECT sessrev.revoke_all_sessions()' },
	'direct INSERT' => sub {
		"INSERT INTO sessrev.jwt_denylist (jti, expires_at) VALUES ('$_[0]', now() + interval '1 hour')";
	},
	'INSERT under session_replication_role = replica' => sub {
		"SET session_replication_role = replica; INSERT INTO sessrev.jwt_denylist (jti, expires_at) VALUES ('$_[0]', now() + interval '1 hour'); RESET session_replication_role";
	},
	'tracked user deleted' => sub { "DELETE FROM users WHERE id = '$_[1]'" },);

for my $mode ('not preloaded', 'preloaded') {
	$node = PostgreSQL::Test::Cluster->new($mode eq 'preloaded' ? 'matrix_cached' : 'matrix_direct');
	$node->init;
	$node->append_conf('postgresql.conf', "shared_preload_libraries = 'sessrev'")
	  if $mode eq 'preloaded';
	$node->start;
	sql(q{CREATE EXTENSION sessrev;
		CREATE TABLE users (id text PRIMARY KEY, role text);
		SELECT sessrev.track_user_table('users', 'id', '{}', '{role}')});
	$checker = $node->background_psql('postgres');
	$revoker = $node->background_psql('postgres');

	for my $level ('READ COMMITTED', 'REPEATABLE READ', 'SERIALIZABLE') {
		for my $how (sort keys %session_paths) {
			my $user = 'u' . $n++;
			sql("INSERT INTO users VALUES ('$user', 'member')");
			my ($id, $token) = new_session($user);
			$checker->query_safe("BEGIN ISOLATION LEVEL $level");
			is(session_answers($id, $token), 'false/false/1/true', "$mode, $level, $how: live at first");
			is(session_answers($id, $token), 'false/false/1/true', "$mode, $level, $how: and again (cached)");
			$revoker->query_safe($session_paths{$how}->($id, $token, $user));
			is(session_answers($id, $token), 'true/true/0/false',
				"$mode, $level, $how: refused in the same transaction once the revocation committed");
			$checker->query_safe('COMMIT');
			is(session_answers($id, $token), 'true/true/0/false', "$mode, $level, $how: and after it");
		}
		for my $how (sort keys %jwt_paths) {
			my $user = 'u' . $n++;
			my $jti  = "jti-$user";
			sql("INSERT INTO users VALUES ('$user', 'member')");
			my $check = "SELECT sessrev.is_jwt_revoked('$jti', '$user', now())";
			$checker->query_safe("BEGIN ISOLATION LEVEL $level");
			is($checker->query_safe($check), 'f', "$mode, $level, JWT $how: live at first");
			is($checker->query_safe($check), 'f', "$mode, $level, JWT $how: and again");
			$revoker->query_safe($jwt_paths{$how}->($jti, $user));
			is($checker->query_safe($check), 't',
				"$mode, $level, JWT $how: refused in the same transaction once the revocation committed");
			$checker->query_safe('COMMIT');
		}
	}

	if ($mode eq 'preloaded') {
		cmp_ok(sql('SELECT hits FROM sessrev.cache_stats()'), '>', 0, 'the checker was answered from the cache');
	}
	$checker->quit;
	$revoker->quit;
	$node->stop;
}
done_testing();
