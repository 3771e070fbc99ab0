# What the TAP tests that compare answers across connections share.
package Sessrev::Checks;
use strict;
use warnings;
use Exporter 'import';
our @EXPORT = qw(answers cache_hits wait_for_cache jwt_tables_read revocation_sql refused_answer);

my $iat = q{now() - interval '10 minutes'};

# The three checks of a session in checker's connection (a background_psql),
# as one line: is_revoked(token), whether validate_session(token) returns a
# row, and is_jwt_revoked of user with jti "jti-<user>".
sub answers {
	my ($checker, $token, $user) = @_;
	return $checker->query_safe(qq{
		SELECT sessrev.is_revoked('$token') || '/' ||
		       (SELECT count(*) FROM sessrev.validate_session('$token')) || '/' ||
		       sessrev.is_jwt_revoked('jti-$user', '$user', $iat)});
}

sub cache_hits {
	my ($node) = @_;
	return $node->safe_psql('postgres', 'SELECT hits FROM sessrev.cache_stats()');
}

# With max_prepared_transactions > 0, the cache serves after a start once the
# transactions older than its first check have ended: true once a check of
# token in checker's connection is answered from node's cache (10 s at most).
sub wait_for_cache {
	my ($node, $checker, $token, $user) = @_;
	for (1 .. 200) {
		my $before = cache_hits($node);
		answers($checker, $token, $user);
		return 1 if cache_hits($node) > $before;
		select(undef, undef, undef, 0.05);
	}
	return 0;
}

# Whether db on node answers is_jwt_revoked from shared memory: 100 checks of
# tokens that are not revoked, after a first one has built the filters, as
# "<how many answered revoked>\n<reads of the JWT tables>" (the transaction's
# own table statistics); "0\n0" when served from shared memory.
sub jwt_tables_read {
	my ($node, $db) = @_;
	$node->safe_psql($db, q{SELECT sessrev.is_jwt_revoked('warm', 'warm', now() - interval '1 second')});
	return $node->safe_psql($db, q{
		BEGIN;
		SELECT count(*) FROM generate_series(1, 100) i
		 WHERE sessrev.is_jwt_revoked('probe-' || i, 'nobody-' || i, now());
		SELECT coalesce(sum(seq_scan + coalesce(idx_scan, 0)), 0) FROM pg_stat_xact_user_tables
		 WHERE schemaname = 'sessrev' AND relname IN ('jwt_denylist', 'user_token_cutoffs', 'global_token_cutoff');
		COMMIT;});
}

# Every way to revoke a session, as SQL given its id, token and user (whose
# jti is "jti-<user>"), and the line answers() gives once it has taken effect.
my %revocation = (
	'revoke_session'       => sub { "SELECT sessrev.revoke_session('$_[0]')" },
	'revoke_token'         => sub { "SELECT sessrev.revoke_token('$_[1]')" },
	'revoke_user_sessions' => sub { "SELECT sessrev.revoke_user_sessions('$_[2]')" },
	'revoke_all_sessions'  => sub { 'SELECT sessrev.revoke_all_sessions()' },
	'UPDATE revoked'       => sub { "UPDATE sessrev.sessions SET revoked = true, revoked_at = now() WHERE id = '$_[0]'" },
	'UPDATE expires_at'    => sub { "UPDATE sessrev.sessions SET expires_at = '2000-01-02', created_at = '2000-01-01' WHERE id = '$_[0]'" },
	'DELETE'               => sub { "DELETE FROM sessrev.sessions WHERE id = '$_[0]'" },
	'TRUNCATE'             => sub { 'TRUNCATE sessrev.sessions' },
	'revoke_jwt'           => sub { "SELECT sessrev.revoke_jwt('jti-$_[2]', now() + interval '1 hour')" },
	'revoke_user_tokens_before' => sub { "SELECT sessrev.revoke_user_tokens_before('$_[2]')" },);
# The user's (or everyone's) JWTs go too; the JWT paths leave the session live.
my %refused = (
	revoke_user_sessions      => 'true/0/true',
	revoke_all_sessions       => 'true/0/true',
	revoke_jwt                => 'false/1/true',
	revoke_user_tokens_before => 'false/1/true',);

sub revocation_sql {
	my ($how, $id, $token, $user) = @_;
	die "no revocation path $how" unless $revocation{$how};
	return $revocation{$how}->($id, $token, $user);
}

sub refused_answer {
	my ($how) = @_;
	return $refused{$how} // 'true/0/false';
}

1;
