# Two-phase commit with the cache on: PREPARE TRANSACTION after a revocation
# works; every checker in another connection sees the session live until
# COMMIT PREPARED and refused from the moment it returns (and live for good
# after ROLLBACK PREPARED), by every revocation path; the cache serves again
# once the prepared transaction has ended; and a transaction prepared before a
# restart is honoured after it; a table of sessrev swapped in by hand cannot
# be prepared, and its commit empties the caches.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib "$FindBin::RealBin/lib";
use Sessrev::Checks;

my $node = PostgreSQL::Test::Cluster->new('prepared');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'sessrev'
sessrev.cleanup_interval = 0
max_prepared_transactions = 5
});
$node->start;
sub sql { return $node->safe_psql('postgres', $_[0]); }
sql('CREATE EXTENSION sessrev');

my $checker = $node->background_psql('postgres');
my $iat = q{now() - interval '10 minutes'};
sub session {
	my ($user) = @_;
	return split /\|/, sql(qq{SELECT session_id || '|' || token FROM sessrev.create_session('$user')});
}

my (undef, $warm) = session('warm-up');
ok(wait_for_cache($node, $checker, $warm, 'warm-up'), 'the cache serves');

my $gid = 0;
for my $how ('DELETE', 'TRUNCATE', 'UPDATE expires_at', 'UPDATE revoked', 'revoke_session', 'revoke_token',
	'revoke_user_sessions')
{
	for my $end ('COMMIT PREPARED', 'ROLLBACK PREPARED') {
		my $user = lc "u-$how-$end";
		$user =~ s/\W/_/g;
		my ($id, $token) = session($user);
		is(answers($checker, $token, $user), 'false/1/false', "$how, $end: live before");
		my $before = cache_hits($node);
		answers($checker, $token, $user);
		cmp_ok(cache_hits($node), '>', $before, "$how, $end: answered from the cache");

		$gid++;
		sql('BEGIN; ' . revocation_sql($how, $id, $token, $user) . "; PREPARE TRANSACTION 'p$gid'");
		pass("$how, $end: PREPARE TRANSACTION after the change works");
		# TRUNCATE's lock is held while prepared: readers wait for it rather than answer.
		is(answers($checker, $token, $user), 'false/1/false', "$how, $end: live while prepared")
		  unless $how eq 'TRUNCATE';
		sql("$end 'p$gid'");
		is(answers($checker, $token, $user), $end eq 'COMMIT PREPARED' ? refused_answer($how) : 'false/1/false',
			"$how, $end: " . ($end eq 'COMMIT PREPARED' ? 'refused right after it returns' : 'still live after it'));
	}
}

# Once no prepared transaction is left, the cache serves again.
my ($id, $token) = session('after');
answers($checker, $token, 'after');
my $before = cache_hits($node);
answers($checker, $token, 'after');
cmp_ok(cache_hits($node), '>', $before, 'with no transaction prepared, checks are answered from the cache again');

# Prepared before a restart, committed after it.
($id, $token) = session('restart');
answers($checker, $token, 'restart');
sql(qq{BEGIN; SELECT sessrev.revoke_session('$id'); PREPARE TRANSACTION 'p-restart'});
$checker->quit;
$node->restart;
$checker = $node->background_psql('postgres');
is(answers($checker, $token, 'restart'), 'false/1/false', 'after a restart, a session revoked by a prepared transaction is live');
$before = cache_hits($node);
answers($checker, $token, 'restart');
is(cache_hits($node), $before, 'and not answered from the cache while that transaction is prepared');
sql(q{COMMIT PREPARED 'p-restart'});
is(answers($checker, $token, 'restart'), 'true/0/false', 'refused right after COMMIT PREPARED');
(undef, $warm) = session('warm-up-after-restart');
ok(wait_for_cache($node, $checker, $warm, 'warm-up-after-restart'), 'and the cache serves again');

# JWT revocations, prepared.
for my $how ('revoke_jwt', 'revoke_user_tokens_before', 'revoke_all_sessions') {
	my $user = "jwt-$how";
	my %sql = (
		revoke_jwt                => "SELECT sessrev.revoke_jwt('jti-$user', now() + interval '1 hour')",
		revoke_user_tokens_before => "SELECT sessrev.revoke_user_tokens_before('$user')",
		revoke_all_sessions       => 'SELECT sessrev.revoke_all_sessions()',);
	my $check = qq{SELECT sessrev.is_jwt_revoked('jti-$user', '$user', $iat)};
	is($checker->query_safe($check), 'f', "$how: JWT live before");
	$gid++;
	sql("BEGIN; $sql{$how}; PREPARE TRANSACTION 'p$gid'");
	is($checker->query_safe($check), 'f', "$how: JWT live while prepared");
	sql("COMMIT PREPARED 'p$gid'");
	is($checker->query_safe($check), 't', "$how: JWT refused right after COMMIT PREPARED");
}

# A denylist swapped in by hand: a table made in the transaction, filled
# before its triggers exist (so its rows never reached the JWT filters), then
# given sessrev's triggers. Only sessrev's own script may create tables whose
# triggers count as unchanged: this transaction cannot be prepared, and its
# commit empties the caches (a hole of 1.6's first draft).
my $swap = q{
	ALTER TABLE sessrev.jwt_denylist RENAME TO jwt_denylist_old;
	ALTER INDEX sessrev.jwt_denylist_pkey RENAME TO jwt_denylist_old_pkey;
	CREATE TABLE sessrev.jwt_denylist (LIKE sessrev.jwt_denylist_old INCLUDING DEFAULTS);
	ALTER TABLE sessrev.jwt_denylist ADD CONSTRAINT jwt_denylist_pkey PRIMARY KEY (jti);
	INSERT INTO sessrev.jwt_denylist SELECT * FROM sessrev.jwt_denylist_old;
	INSERT INTO sessrev.jwt_denylist (jti, expires_at) VALUES ('jti-swapped', now() + interval '1 day');
	CREATE TRIGGER jwt_denylist_cache AFTER INSERT OR UPDATE OR DELETE ON sessrev.jwt_denylist
	    FOR EACH ROW EXECUTE FUNCTION sessrev.jwt_tables_changed();
	CREATE TRIGGER jwt_denylist_cache_truncate AFTER TRUNCATE ON sessrev.jwt_denylist
	    FOR EACH STATEMENT EXECUTE FUNCTION sessrev.jwt_tables_changed();
	ALTER TABLE sessrev.jwt_denylist ENABLE ALWAYS TRIGGER jwt_denylist_cache;
	ALTER TABLE sessrev.jwt_denylist ENABLE ALWAYS TRIGGER jwt_denylist_cache_truncate;
};
my $swapped = q{SELECT sessrev.is_jwt_revoked('jti-swapped', NULL, now())};
is($checker->query_safe($swapped), 'f', 'swap: the jti is not denylisted before');
my ($rc, $out, $err) = $node->psql('postgres', "BEGIN; $swap PREPARE TRANSACTION 'p-swap'");
like($err, qr/cannot PREPARE a transaction that changed sessrev's triggers/,
	'swap: a transaction that swapped a table of sessrev in cannot be prepared');
sql("BEGIN; $swap COMMIT");
is($checker->query_safe($swapped), 't', 'swap: committed, the jti loaded before the triggers existed is refused');

$checker->quit;
$node->stop;
done_testing();
