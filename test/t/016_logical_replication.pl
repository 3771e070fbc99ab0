# Logical replication with the cache on at both ends: a subscriber that
# receives sessrev's tables answers from its own cache and refuses a session
# revoked on the publisher as soon as the apply worker has committed, by every
# path that replicates (API, UPDATE, DELETE, TRUNCATE, JWT denylist and
# cut-offs); with a two_phase subscription, a revocation prepared on the
# publisher takes effect on the subscriber at COMMIT PREPARED, and not at all
# after ROLLBACK PREPARED.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib "$FindBin::RealBin/lib";
use Sessrev::Checks;

my %conf = (
	publisher  => "wal_level = logical\nmax_prepared_transactions = 5\n",
	subscriber => "max_prepared_transactions = 5\n",);
my %node;
for my $name ('publisher', 'subscriber') {
	$node{$name} = PostgreSQL::Test::Cluster->new($name);
	$node{$name}->init(allows_streaming => $name eq 'publisher' ? 'logical' : 0);
	$node{$name}->append_conf('postgresql.conf', "shared_preload_libraries = 'sessrev'\nsessrev.cleanup_interval = 0\n"
		  . $conf{$name});
	$node{$name}->start;
	$node{$name}->safe_psql('postgres', 'CREATE EXTENSION sessrev');
}
my ($pub, $sub) = @node{qw(publisher subscriber)};
sub on_pub { return $pub->safe_psql('postgres', $_[0]); }

my $tables = 'sessrev.sessions, sessrev.jwt_denylist, sessrev.user_token_cutoffs, sessrev.global_token_cutoff';
on_pub("CREATE PUBLICATION sessrev_pub FOR TABLE $tables");
my $connstr = $pub->connstr() . ' dbname=postgres';
$sub->safe_psql('postgres', "CREATE SUBSCRIPTION plain CONNECTION '$connstr' PUBLICATION sessrev_pub");
$sub->wait_for_subscription_sync($pub, 'plain');

my $checker = $sub->background_psql('postgres');
sub session {
	my ($user) = @_;
	my @s = split /\|/, on_pub(qq{SELECT session_id || '|' || token FROM sessrev.create_session('$user')});
	$pub->wait_for_catchup('plain');
	return @s;
}

my (undef, $warm) = session('warm-up');
ok(wait_for_cache($sub, $checker, $warm, 'warm-up'), "the subscriber's cache serves");

for my $how ('DELETE', 'TRUNCATE', 'UPDATE revoked', 'revoke_jwt', 'revoke_session', 'revoke_user_sessions',
	'revoke_user_tokens_before')
{
	my $user = "u-$how";
	my ($id, $token) = session($user);
	is(answers($checker, $token, $user), 'false/1/false', "$how: live on the subscriber");
	my $before = cache_hits($sub);
	answers($checker, $token, $user);
	cmp_ok(cache_hits($sub), '>', $before, "$how: answered from the subscriber's cache");
	on_pub(revocation_sql($how, $id, $token, $user));
	$pub->wait_for_catchup('plain');
	is(answers($checker, $token, $user), refused_answer($how), "$how: refused once the apply worker committed");
}

# two_phase: the subscriber prepares what the publisher prepares.
$sub->safe_psql('postgres', 'ALTER SUBSCRIPTION plain DISABLE');
$sub->poll_query_until('postgres', q{SELECT count(*) = 0 FROM pg_stat_subscription WHERE pid IS NOT NULL});
$sub->safe_psql('postgres', "CREATE SUBSCRIPTION twophase CONNECTION '$connstr' PUBLICATION sessrev_pub
	WITH (two_phase = true, copy_data = false)");
$sub->poll_query_until('postgres', q{SELECT subtwophasestate = 'e' FROM pg_subscription WHERE subname = 'twophase'});
my $gid = 0;
for my $end ('COMMIT PREPARED', 'ROLLBACK PREPARED') {
	my $user = lc "u-2pc-$end";
	$user =~ s/\W/_/g;
	my ($id, $token) = split /\|/, on_pub(qq{SELECT session_id || '|' || token FROM sessrev.create_session('$user')});
	$pub->wait_for_catchup('twophase');
	is(answers($checker, $token, $user), 'false/1/false', "two_phase, $end: live on the subscriber");
	$gid++;
	on_pub(qq{BEGIN; SELECT sessrev.revoke_session('$id'); PREPARE TRANSACTION 'lp$gid'});
	$pub->wait_for_catchup('twophase');
	is($sub->safe_psql('postgres', 'SELECT count(*) FROM pg_prepared_xacts'), '1',
		"two_phase, $end: the subscriber has prepared it");
	is(answers($checker, $token, $user), 'false/1/false', "two_phase, $end: live while prepared");
	on_pub("$end 'lp$gid'");
	$pub->wait_for_catchup('twophase');
	is($sub->safe_psql('postgres', 'SELECT count(*) FROM pg_prepared_xacts'), '0',
		"two_phase, $end: and has ended it");
	is(answers($checker, $token, $user), $end eq 'COMMIT PREPARED' ? 'true/0/false' : 'false/1/false',
		"two_phase, $end: " . ($end eq 'COMMIT PREPARED' ? 'refused once applied' : 'still live'));
}

# The emergency logout last: it cuts off every JWT issued before it.
{
	my ($id, $token) = split /\|/, on_pub(q{SELECT session_id || '|' || token FROM sessrev.create_session('u-global')});
	$pub->wait_for_catchup('twophase');
	answers($checker, $token, 'u-global');
	on_pub('SELECT sessrev.revoke_all_sessions()');
	$pub->wait_for_catchup('twophase');
	is(answers($checker, $token, 'u-global'), 'true/0/true', 'revoke_all_sessions: refused, JWTs too');
}

$checker->quit;
$sub->stop;
$pub->stop;
done_testing();
