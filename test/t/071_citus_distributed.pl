# sessrev's tables distributed over a Citus cluster (sessrev.distribute(): a
# coordinator and two workers, then a third, sessrev preloaded after citus):
#  - distribute() makes the sessions, pending revocations, retired tokens and
#    JWT cut-offs co-located distributed tables and the JWT denylist and the
#    global cut-off reference tables; it runs once, on the coordinator;
#  - sessions made before it keep answering on every node (their tokens carry
#    no shard: every node holding shards is asked); new tokens carry their
#    shard, and the node holding it answers from its own cache;
#  - every function works through the coordinator; every revocation path is
#    refused by the next check on every node, also a revocation recorded
#    apart while another transaction holds the row: 0 stale answers over more
#    than 10,000 checks made while revocations commit;
#  - each node cleans and touches the shards it holds;
#  - a check that cannot be answered right is refused (55000): in a
#    statement Citus sent to a worker, or after the transaction's own writes
#    when another node holds the session;
#  - a node added later answers once it holds the reference tables; a shard
#    moved while checks run is answered right before, during and after.
# Run by test/run with Citus built (test/citus/build): SESSREV_CITUS=required
# makes a missing Citus a failure instead of a skip.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib "$FindBin::RealBin/lib";
use Sessrev::Checks;
use Sessrev::Citus;

require_citus();

sub new_node {
	return citus_node($_[0], logical => 1, conf => q{
max_connections = 60
sessrev.database = 'postgres'
sessrev.touch_interval = '1s'
sessrev.reuse_interval = 1
});
}

my $coordinator = new_node('coordinator');
my @workers = map { new_node("worker$_") } 1 .. 2;
my @nodes = ($coordinator, @workers);
sub on_coordinator { return $coordinator->safe_psql('postgres', $_[0]); }
sub add_node {
	my ($node) = @_;
	on_coordinator(sprintf(q{SELECT citus_add_node('%s', %d)}, $node->host, $node->port));
}
on_coordinator(sprintf(q{SELECT citus_set_coordinator_host('%s', %d)}, $coordinator->host, $coordinator->port));
add_node($_) for @workers;
# 1.7, the first release with distribute(): updated once distributed, below.
on_coordinator(q{CREATE EXTENSION sessrev VERSION '1.7'});

# The port of the node holding the shard of user's sessions.
sub port_of {
	my ($user) = @_;
	return on_coordinator(qq{SELECT n.nodeport FROM pg_dist_placement p JOIN pg_dist_node n ON n.groupid = p.groupid
		WHERE p.shardid = get_shard_id_for_distribution_column('sessrev.sessions', '$user')});
}

sub session {
	my ($user) = @_;
	return split /\|/, on_coordinator(qq{SELECT session_id || '|' || token FROM sessrev.create_session('$user')});
}
# The sessions of 20 users made before the distribution.
my @before = map { [ $_, session($_) ] } map { "early$_" } 1 .. 20;
sub count_live {
	my ($node, @tokens) = @_;
	return $node->safe_psql('postgres', sprintf(q{SELECT count(*) FILTER (WHERE NOT sessrev.is_revoked(t))
		FROM unnest(ARRAY[%s]::text[]) t}, join(',', map { "'$_'" } @tokens)));
}

# A revocation recorded apart before the distribution: it must follow the
# session into its shard. Recorded in distribute()'s own transaction, so that
# the worker cannot fold it into the row first.
my (undef, $p_id, $p_tok) = ('pending-early', session('pending-early'));

# --- sessrev.distribute() --------------------------------------------------------
my ($ret, $out, $err) = $workers[0]->psql('postgres', 'SELECT sessrev.distribute()');
like($err, qr/runs on the coordinator/, 'distribute() is refused on a worker');
($ret, $out, $err) = $coordinator->psql('postgres', q{SET citus.enable_unsafe_triggers = on;
	SELECT create_reference_table('sessrev.jwt_denylist')});
like($err, qr/cannot become a Citus table/, 'a sessrev table is not made a Citus table but by distribute()');
on_coordinator(qq{BEGIN;
	INSERT INTO sessrev.pending_revocations (session_id, reason, actor) VALUES ('$p_id', 'recorded apart', 'test');
	SELECT sessrev.distribute(4);
	COMMIT});
is(on_coordinator(q{SELECT string_agg(logicalrelid::text || ':' || partmethod::text, ' ' ORDER BY logicalrelid::text)
	FROM pg_dist_partition WHERE logicalrelid::text LIKE 'sessrev.%'}),
	'sessrev.global_token_cutoff:n sessrev.jwt_denylist:n sessrev.pending_revocations:h sessrev.retired_tokens:h '
	  . 'sessrev.sessions:h sessrev.user_token_cutoffs:h',
	'distribute(): four distributed tables and two reference tables');
is(on_coordinator(q{SELECT count(DISTINCT colocationid) FROM pg_dist_partition
	WHERE logicalrelid IN ('sessrev.sessions'::regclass, 'sessrev.pending_revocations'::regclass,
	                       'sessrev.retired_tokens'::regclass, 'sessrev.user_token_cutoffs'::regclass)}), '1',
	'the distributed ones are co-located');
is(on_coordinator(q{SELECT count(DISTINCT n.nodeport) FROM pg_dist_shard s JOIN pg_dist_placement p USING (shardid)
	JOIN pg_dist_node n ON n.groupid = p.groupid WHERE s.logicalrelid = 'sessrev.sessions'::regclass}),
	'2', 'the sessions are spread over both workers');
($ret, $out, $err) = $coordinator->psql('postgres', 'SELECT sessrev.distribute()');
like($err, qr/already distributed/, 'distribute() runs once');
is(on_coordinator('SELECT count(*) FROM pg_prepared_xacts'), '0', 'no prepared transaction is left behind');

# Still recorded apart in the user's shard, or already folded into the row by
# the worker (which takes the reason from it): either way it survived.
is(on_coordinator(qq{SELECT coalesce((SELECT reason FROM sessrev.pending_revocations WHERE session_id = '$p_id'
	AND user_id = 'pending-early'), (SELECT revoked_reason FROM sessrev.sessions WHERE id = '$p_id'))}),
	'recorded apart', "a revocation recorded apart moves into its user's shard with the session");
is(count_live($_, $p_tok), '0', 'and still refuses the session on ' . $_->name) for @nodes;

my @early_tokens = map { $_->[2] } @before;
is(count_live($_, @early_tokens), '20', 'the sessions made before answer live on node ' . $_->name) for @nodes;
is($workers[1]->safe_psql('postgres', qq{SELECT user_id FROM sessrev.validate_session('$before[0][2]')}), 'early1',
	'validate_session of a session made before, on a worker');

# --- New sessions: routed to their shard, answered from its node's cache ----------
my ($n_id, $n_tok) = session('newcomer');
like($n_tok, qr/^[0-9a-f]{8}\.[A-Za-z0-9_-]{43}$/, "a new token carries its shard's hash");
is(count_live($_, $n_tok), '1', 'a new session is live on node ' . $_->name) for @nodes;
my $holder_port = port_of('newcomer');
my ($holder) = grep { $_->port == $holder_port } @workers;
# The cache serves once the transactions older than its first check ended.
my $from_cache = 0;
for (1 .. 100) {
	my $hits = cache_hits($holder);
	count_live($holder, ($n_tok) x 20);
	$from_cache = 1, last if cache_hits($holder) > $hits;
	select(undef, undef, undef, 0.1);
}
ok($from_cache, 'the node holding the shard answers from its cache');
is(cache_hits($coordinator), '0', 'the coordinator holds no session: it asks the node that does');
my ($forged) = $n_tok =~ /^[0-9a-f]{8}(\..*)$/;
is(count_live($_, "00000000$forged", "ffffffff$forged"), '0',
	'a token whose shard prefix was changed (another token, routed to another shard) is refused, not an error, on '
	  . $_->name) for @nodes;

# --- Every function through the coordinator --------------------------------------
is(on_coordinator(qq{SELECT user_id FROM sessrev.validate_session('$n_tok')}), 'newcomer', 'validate_session');
is(on_coordinator(qq{SELECT (sessrev.validate_session_record('$n_tok')).user_id}), 'newcomer', 'validate_session_record');
is(on_coordinator(qq{SELECT sessrev.is_revoked('$n_id'::uuid)}), 'f', 'is_revoked(session id)');
my (undef, $n2_tok) = session('newcomer');
is(on_coordinator(q{SELECT count(*) FROM sessrev.user_sessions('newcomer')}), '2', 'user_sessions');
is(on_coordinator(q{SELECT count(*) FROM sessrev.active_sessions WHERE user_id = 'newcomer'}), '2', 'active_sessions');
is(on_coordinator(qq{BEGIN; SELECT FROM sessrev.validate_session('$n_tok'); SELECT count(*) FROM sessrev.my_sessions(); COMMIT}),
	'2', 'my_sessions after validate_session');
my $rotated = on_coordinator(qq{SELECT token FROM sessrev.rotate_token('$n2_tok')});
like($rotated, qr/^[0-9a-f]{8}\./, 'rotate_token: the new token carries the shard too');
is(count_live($_, $rotated), '1', 'rotate_token: the new token is live on ' . $_->name) for @nodes;
is(on_coordinator(qq{SELECT count(*) FROM sessrev.retired_tokens WHERE user_id = 'newcomer'}), '1',
	'rotate_token: the old token is retired in the user\'s shard');
is(on_coordinator(qq{SELECT sessrev.extend_session('$n_id', interval '2 hours') > now()}), 't', 'extend_session');
is(on_coordinator(q{SELECT sessrev.jwt_issued_at('newcomer') > 0}), 't', 'jwt_issued_at');
is(on_coordinator(qq{BEGIN; SELECT FROM sessrev.validate_session('$n_tok'); SELECT sessrev.revoke_my_other_sessions(); COMMIT}),
	'1', 'revoke_my_other_sessions');
is(count_live($_, $rotated), '0', 'the other device is signed out on ' . $_->name) for @nodes;
is(count_live($_, $n_tok), '1', 'the current one is not, on ' . $_->name) for @nodes;
is(on_coordinator(q{SELECT sessions_unexpired FROM sessrev.metrics()}) > 0, 1, 'metrics');

# A touch due is written by the worker of the node holding the session.
on_coordinator(qq{UPDATE sessrev.sessions SET last_active_at = '2000-01-01' WHERE id = '$n_id'});
is(on_coordinator(qq{SELECT count(*) FROM sessrev.validate_session('$n_tok')}), '1', 'validate_session with a touch due');
ok($coordinator->poll_query_until('postgres', qq{SELECT last_active_at > now() - interval '1 minute'
	FROM sessrev.sessions WHERE id = '$n_id'}), 'the touch is written into the shard by its node');

# --- Every revocation path, each refused by the next check on every node ----------
my @checkers = map { $_->background_psql('postgres') } @nodes;
for my $how ('revoke_session', 'revoke_token', 'revoke_user_sessions', 'UPDATE revoked', 'UPDATE expires_at',
	'DELETE', 'revoke_jwt', 'revoke_user_tokens_before')
{
	for my $era ('new', 'early') {
		my $user = "u-$how-$era";
		$user =~ s/\W/_/g;
		my ($id, $token);
		if ($era eq 'new') {
			($id, $token) = session($user);
		} else {
			# A session made before the distribution (its token carries no shard).
			my $b = shift @before;
			(undef, $id, $token) = @$b;
			$user = $b->[0];
		}
		is(answers($checkers[$_], $token, $user), 'false/1/false', "$how ($era token): live before on " . $nodes[$_]->name)
		  for 0 .. $#nodes;
		on_coordinator(revocation_sql($how, $id, $token, $user));
		is(answers($checkers[$_], $token, $user), refused_answer($how),
			"$how ($era token): refused by the next check on " . $nodes[$_]->name) for 0 .. $#nodes;
	}
}

# --- A revocation recorded apart, while another transaction holds the row ---------
my ($h_id, $h_tok) = session('held');
my $holding = $coordinator->background_psql('postgres');
$holding->query_safe(qq{BEGIN; SELECT FROM sessrev.sessions WHERE id = '$h_id' AND user_id = 'held' FOR UPDATE});
is(on_coordinator(qq{SET statement_timeout = '5s'; SELECT sessrev.revoke_session('$h_id', 'held row')}), 't',
	'revoke_session does not wait for the transaction holding the row');
is(on_coordinator(q{SELECT count(*) FROM sessrev.pending_revocations WHERE user_id = 'held'}), '1',
	"the revocation is recorded apart, in the user's shard");
is(count_live($_, $h_tok), '0', 'a revocation recorded apart is refused on ' . $_->name) for @nodes;
$holding->query_safe('ROLLBACK');
$holding->quit;
ok(on_coordinator('SELECT sessrev.apply_pending_revocations()') >= 1,
	'apply_pending_revocations folds it in (and any JWT cut-off recorded apart earlier, when its row was busy)');
is(on_coordinator(qq{SELECT revoked FROM sessrev.sessions WHERE id = '$h_id'}), 't', 'into the row');
is(count_live($_, $h_tok), '0', 'and it stays refused on ' . $_->name) for @nodes;

# --- A revocation left open holds no other user's up ---------------------------------
session($_) for 'open-a', 'open-b';
my $open = $coordinator->background_psql('postgres');
$open->query_safe(q{BEGIN; SELECT sessrev.revoke_user_sessions('open-a')});
is(on_coordinator(q{SET statement_timeout = '5s'; SELECT sessrev.revoke_user_sessions('open-b')}), '1',
	"a revocation left open does not hold another user's up");
$open->query_safe('COMMIT');
$open->quit;

# --- A first JWT cut-off held by an open transaction --------------------------------
# Inserting a user's first cut-off waits for another transaction inserting
# it; sessrev's lock_timeout reaches the shard's node, where the revocation
# records it apart instead of waiting.
session('cutter');
my $cutting = $coordinator->background_psql('postgres');
$cutting->query_safe(q{BEGIN; INSERT INTO sessrev.user_token_cutoffs (user_id, not_before) VALUES ('cutter', now())});
is(on_coordinator(q{SET statement_timeout = '5s'; SELECT sessrev.revoke_user_sessions('cutter', 'held cut-off')}), '1',
	"an administrator's revocation does not wait for an open first cut-off of the user");
is(on_coordinator(q{SELECT count(*) FROM sessrev.pending_revocations WHERE user_id = 'cutter' AND not_before IS NOT NULL}),
	'1', 'the cut-off is recorded apart in the user\'s shard');
is($_->safe_psql('postgres', q{SELECT sessrev.is_jwt_revoked('any', 'cutter', now() - interval '1 minute')}), 't',
	'a JWT of that user issued before is refused on ' . $_->name) for @nodes;
$cutting->query_safe('ROLLBACK');
$cutting->quit;

# --- Reuse of a rotated-out token, presented on a worker ----------------------------
my (undef, $r0) = session('reuser');
my $r1 = on_coordinator(qq{SELECT token FROM sessrev.rotate_token('$r0')});
is(count_live($_, $r1), '1', 'the rotated token is live on ' . $_->name) for @nodes;
sleep 2;    # past sessrev.reuse_interval
is($workers[1]->safe_psql('postgres', qq{SELECT count(*) FROM sessrev.validate_session('$r0')}), '0',
	'the old token presented after reuse_interval on a worker validates nothing');
ok($coordinator->poll_query_until('postgres', qq{SELECT sessrev.is_revoked('$r1')}),
	"the reuse is reported to the coordinator, which revokes the session");
is(count_live($_, $r1), '0', 'the thief\'s rotated token is refused on ' . $_->name) for @nodes;
is(on_coordinator(q{SELECT count(*) FROM sessrev.session_audit_log WHERE user_id = 'reuser' AND action = 'TOKEN_REUSE'}),
	'1', 'in the coordinator\'s audit log');

# --- Writes on the coordinator only; refused rather than answered wrong ------------
for my $write (q{SELECT sessrev.create_session('on-a-worker')}, qq{SELECT sessrev.revoke_session('$n_id')},
	q{SELECT sessrev.revoke_user_sessions('newcomer')}, qq{SELECT sessrev.rotate_token('$n_tok')})
{
	($ret, $out, $err) = $workers[0]->psql('postgres', $write);
	like($err, qr/writes are made on the coordinator/, "a worker refuses $write");
}
is(count_live($_, $n_tok), '1', 'and nothing changed, on ' . $_->name) for @nodes;

# --- ALTER EXTENSION UPDATE of a distributed 1.7, from the coordinator ----------------
my $default = on_coordinator(q{SELECT default_version FROM pg_available_extensions WHERE name = 'sessrev'});
on_coordinator('ALTER EXTENSION sessrev UPDATE');
is(join(' ', map { $_->safe_psql('postgres', q{SELECT extversion FROM pg_extension WHERE extname = 'sessrev'}) }
	@nodes), join(' ', ($default) x @nodes), "ALTER EXTENSION sessrev UPDATE on the coordinator: $default on every node");
is(count_live($_, $n_tok), '1', 'a session stays live through the update on ' . $_->name) for @nodes;
is(join(' ', map { $_->safe_psql('postgres', 'SELECT count(*) FROM pg_prepared_xacts') } @nodes), '0 0 0',
	'the update leaves no prepared transaction');

# --- A users table distributed co-located with the sessions, tracked ---------------
# Its triggers fire on its shards, on the nodes of its users' sessions: the
# revocation is recorded there, in the transaction that changes the user.
on_coordinator(q{CREATE TABLE public.users (id text PRIMARY KEY, pw text, role text, email text);
	SELECT create_distributed_table('public.users', 'id', colocate_with => 'sessrev.sessions');
	CREATE TABLE public.users_apart (id text PRIMARY KEY, pw text);
	SELECT create_distributed_table('public.users_apart', 'id', colocate_with => 'none');
	CREATE TABLE public.users_by_email (id text, pw text, email text PRIMARY KEY);
	SELECT create_distributed_table('public.users_by_email', 'email', colocate_with => 'sessrev.sessions')});
for ([ 'users_apart', 'id', qr/not distributed co-located with sessrev.sessions/ ],
	[ 'users_by_email', 'id', qr/not distributed by id/ ])
{
	my ($table, $column, $why) = @$_;
	($ret, $out, $err) = $coordinator->psql('postgres', qq{\\set VERBOSITY verbose
SELECT sessrev.track_user_table('public.$table', '$column', '{pw}')});
	ok($err =~ /0A000/ && $err =~ $why, "tracking $table is refused (0A000): $why") or diag($err);
}
on_coordinator(q{SELECT sessrev.track_user_table('public.users', 'id', '{pw}', '{role}')});
is(join(' ', map { $_->safe_psql('postgres', q{SET citus.show_shards_for_app_name_prefixes = '*';
	SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
	WHERE c.relname LIKE 'users\\_1%' AND t.tgname LIKE 'sessrev_revoke_sessions%' AND t.tgenabled = 'A'})} @workers),
	join(' ', map { $_->safe_psql('postgres', q{SET citus.show_shards_for_app_name_prefixes = '*';
		SELECT count(*) FROM pg_class WHERE relname LIKE 'users\\_1%' AND relkind = 'r'})} @workers),
	'the co-located users table is tracked: its row trigger, enabled ALWAYS, on each of its shards '
	. '(Citus copies no TRUNCATE trigger: the shell\'s fires on the coordinator)');
ok($workers[0]->safe_psql('postgres', q{SET citus.show_shards_for_app_name_prefixes = '*';
	SELECT count(*) FROM pg_class WHERE relname LIKE 'users\\_1%' AND relkind = 'r'}) > 0, 'worker1 holds shards of it');
my %tracked = map { $_ => [ session($_), session($_) ] } qw(tr-pw tr-role tr-rollback tr-deleted tr-held tr-trunc1 tr-trunc2);
on_coordinator(q{INSERT INTO public.users SELECT u, 'secret', 'member', u || '@example.com'
	FROM unnest(ARRAY['tr-pw', 'tr-role', 'tr-rollback', 'tr-deleted', 'tr-held', 'tr-trunc1', 'tr-trunc2']) u});
sub tracked_tokens { return map { $tracked{$_}[1], $tracked{$_}[3] } @_; }
is(count_live($_, tracked_tokens(keys %tracked)), '14', 'the tracked users\' sessions are live on ' . $_->name)
  for @nodes;
# The role that changes users has no grant of sessrev's at all.
on_coordinator(q{CREATE ROLE users_admin LOGIN; GRANT ALL ON public.users TO users_admin});
on_coordinator(q{SET ROLE users_admin; UPDATE public.users SET email = 'new@example.com' WHERE id = 'tr-pw'});
is(count_live($_, tracked_tokens('tr-pw')), '2', 'an untracked column changed: both sessions live on ' . $_->name)
  for @nodes;
on_coordinator(q{SET ROLE users_admin; UPDATE public.users SET pw = 'changed' WHERE id = 'tr-pw'});
is(count_live($_, tracked_tokens('tr-pw')), '0', 'a credential changed, as a role without sessrev grants: '
	. 'both sessions refused on ' . $_->name) for @nodes;
on_coordinator(q{SET ROLE users_admin; UPDATE public.users SET role = 'admin' WHERE id = 'tr-role'});
is(count_live($_, tracked_tokens('tr-role')), '0', 'a privilege changed: refused on ' . $_->name) for @nodes;
on_coordinator(q{BEGIN; SET LOCAL ROLE users_admin; UPDATE public.users SET pw = 'x' WHERE id = 'tr-rollback'; ROLLBACK});
is(count_live($_, tracked_tokens('tr-rollback')), '2', 'a change rolled back revokes nothing on ' . $_->name) for @nodes;
on_coordinator(q{SET ROLE users_admin; DELETE FROM public.users WHERE id = 'tr-deleted'});
is(count_live($_, tracked_tokens('tr-deleted')), '0', 'a user deleted: refused on ' . $_->name) for @nodes;
is($_->safe_psql('postgres', q{SELECT sessrev.is_jwt_revoked('any-jti', 'tr-deleted', now() - interval '1 second')}),
	't', 'and a JWT issued before is revoked on ' . $_->name) for @nodes;
is($_->safe_psql('postgres', q{SELECT sessrev.is_jwt_revoked('any-jti', 'tr-rollback', now() - interval '1 second')}),
	'f', 'another user\'s is not, on ' . $_->name) for @nodes;
# Another transaction holds a session row of the user: the change does not wait.
my $tr_holding = $coordinator->background_psql('postgres');
$tr_holding->query_safe(qq{BEGIN; SELECT FROM sessrev.sessions WHERE id = '$tracked{'tr-held'}[0]'
	AND user_id = 'tr-held' FOR UPDATE});
on_coordinator(q{SET statement_timeout = '5s'; SET ROLE users_admin; UPDATE public.users SET pw = 'y' WHERE id = 'tr-held'});
is(count_live($_, tracked_tokens('tr-held')), '0', 'a held session row: the change did not wait, refused on '
	. $_->name) for @nodes;
$tr_holding->query_safe('ROLLBACK');
$tr_holding->quit;
# Citus fires no trigger on the shards for a TRUNCATE: it is refused; a
# DELETE of every row revokes every user.
($ret, $out, $err) = $coordinator->psql('postgres', q{\\set VERBOSITY verbose
SET ROLE users_admin; TRUNCATE public.users});
ok($err =~ /0A000/ && $err =~ /TRUNCATE of users, a tracked distributed table, is refused/,
	'TRUNCATE of a tracked distributed users table is refused (0A000)') or diag($err);
is(count_live($_, tracked_tokens('tr-trunc1', 'tr-trunc2')), '4', 'and revokes nothing on ' . $_->name) for @nodes;
is(on_coordinator(q{SELECT count(*) FROM public.users}), '6', 'nor empties the table');
on_coordinator(q{SET ROLE users_admin; DELETE FROM public.users WHERE id LIKE 'tr-trunc%'});
is(count_live($_, tracked_tokens('tr-trunc1', 'tr-trunc2')), '0', 'a DELETE of several users: refused on ' . $_->name)
  for @nodes;
($ret, $out, $err) = $coordinator->psql('postgres', q{\\set VERBOSITY verbose
SET ROLE users_admin; SELECT sessrev.revoke_user_in_shard('tr-untouched', 'forged')});
like($err, qr/42501/, 'revoke_user_in_shard is not callable by a role (42501)');
for my $w (@workers) {
	($ret, $out, $err) = $w->psql('postgres', q{SET ROLE users_admin; SELECT sessrev.revoke_user_in_shard('x', 'y')});
	like($err, qr/permission denied/, 'nor on ' . $w->name);
}
is(on_coordinator(q{SELECT count(*) FILTER (WHERE id >= 0) || '/' || count(DISTINCT (id, user_id))
	|| '/' || count(*) FROM sessrev.pending_revocations WHERE user_id LIKE 'tr-%'}) =~ s{^0/([1-9]\d*)/\1$}{ok}r, 'ok',
	'rows recorded on the shards\' nodes are numbered below 0, apart from the coordinator\'s, each (id, user) once');
# A shard truncated on its own node (Citus fires no trigger there) is refused.
my $users_shard = on_coordinator(sprintf(q{SELECT 'public.users_' || s.shardid FROM pg_dist_shard s
	JOIN pg_dist_placement p USING (shardid) JOIN pg_dist_node n ON n.groupid = p.groupid
	WHERE s.logicalrelid = 'public.users'::regclass AND n.nodeport = %d
	  AND s.shardid = get_shard_id_for_distribution_column('public.users', 'tr-rollback')}, port_of('tr-rollback')));
my ($rb_node) = grep { $_->port == port_of('tr-rollback') } @workers;
($ret, $out, $err) = $rb_node->psql('postgres', qq{\\set VERBOSITY verbose
SET ROLE users_admin; SET citus.enable_manual_changes_to_shards = on; TRUNCATE $users_shard});
ok($err =~ /0A000/ && $err =~ /a shard of a tracked distributed table, is refused/,
	'TRUNCATE of a shard of the tracked table on its node is refused (0A000)') or diag($err);
is(count_live($_, tracked_tokens('tr-rollback')), '2', 'and revokes nothing on ' . $_->name) for @nodes;
# Repeated changes of one user add no row per change.
my ($rp_id) = session('tx-repeat');
on_coordinator(q{INSERT INTO public.users VALUES ('tx-repeat', 'p', 'member', NULL)});
on_coordinator(qq{SET ROLE users_admin; UPDATE public.users SET role = 'r$_' WHERE id = 'tx-repeat'}) for 1 .. 30;
cmp_ok(on_coordinator(q{SELECT count(*) FROM sessrev.pending_revocations WHERE user_id = 'tx-repeat'}), '<=', 2,
	'30 changes of a user leave at most its session and one cut-off recorded apart');
# A table whose name is too long for <name>_<shard id>: Citus names its shards
# with a hash, and they are recognised as shards.
my $long = 'users_with_a_name_long_enough_that_citus_hashes_its_shard_name';
on_coordinator(qq{CREATE TABLE public.$long (id text PRIMARY KEY, pw text);
	SELECT create_distributed_table('public.$long', 'id', colocate_with => 'sessrev.sessions');
	SELECT sessrev.track_user_table('public.$long', 'id', '{pw}');
	INSERT INTO public.$long VALUES ('tx-long', 'p'); GRANT ALL ON public.$long TO users_admin});
my (undef, $long_tok) = session('tx-long');
on_coordinator(qq{SET ROLE users_admin; UPDATE public.$long SET pw = 'q' WHERE id = 'tx-long'});
is(count_live($_, $long_tok), '0', 'a tracked table with a long name (hashed shard names) revokes: refused on '
	. $_->name) for @nodes;
on_coordinator(qq{DROP TABLE public.$long});
# The worker's fold writes the rows and, once, the audit rows (the shards'
# nodes have no audit log).
on_coordinator('SELECT sessrev.apply_pending_revocations()');
is(on_coordinator(q{SELECT string_agg(user_id || ':' || revoked_reason, ' ' ORDER BY user_id, id)
	FROM sessrev.sessions WHERE user_id LIKE 'tr-%' AND revoked}),
	join(' ', map { ("$_->[0]:$_->[1]") x 2 } [ 'tr-deleted', 'User deleted' ], [ 'tr-held', 'Credentials reset' ],
		[ 'tr-pw', 'Credentials reset' ], [ 'tr-role', 'Privileges changed' ], [ 'tr-trunc1', 'User deleted' ],
		[ 'tr-trunc2', 'User deleted' ]),
	'folded into the rows, with their reasons');
is(on_coordinator(q{SELECT count(*) FROM sessrev.session_audit_log WHERE user_id LIKE 'tr-%'
	AND action = 'SESSION_REVOKED'}), '12', 'one audit row per session (6 users, 2 each), on the coordinator');
on_coordinator('SELECT sessrev.apply_pending_revocations()');
is(on_coordinator(q{SELECT count(*) FROM sessrev.session_audit_log WHERE user_id LIKE 'tr-%'
	AND action = 'SESSION_REVOKED'}), '12', 'and only once');
is(count_live($_, tracked_tokens('tr-rollback')), '2', 'the user whose change rolled back stays live on ' . $_->name)
  for @nodes;
is(on_coordinator(q{SELECT string_agg(user_id, ' ' ORDER BY user_id) FROM sessrev.user_token_cutoffs
	WHERE user_id LIKE 'tr-%'}), 'tr-deleted tr-held tr-pw tr-role tr-trunc1 tr-trunc2',
	'the JWT cut-offs recorded with them are folded in too');
is(on_coordinator(q{SELECT count(*) FROM sessrev.pending_revocations WHERE user_id LIKE 'tr-%'}), '0',
	'and nothing is left recorded apart');
on_coordinator(q{SELECT sessrev.untrack_user_table('public.users')});
is(join(' ', map { $_->safe_psql('postgres', q{SET citus.show_shards_for_app_name_prefixes = '*';
	SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
	WHERE c.relname LIKE 'users\\_1%' AND t.tgname LIKE 'sessrev_revoke_sessions%'})} @workers), '0 0',
	'untrack_user_table drops the triggers of every shard');
# Tracked again, through the shard move below.
on_coordinator(q{SELECT sessrev.track_user_table('public.users', 'id', '{pw}', '{role}')});

on_coordinator(q{CREATE TABLE public.tokens (n int PRIMARY KEY, token text);
	SELECT create_distributed_table('public.tokens', 'n')});
on_coordinator(qq{INSERT INTO public.tokens VALUES (1, '$n_tok')});
($ret, $out, $err) = $coordinator->psql('postgres', 'SELECT sessrev.is_revoked(token) FROM public.tokens');
like($err, qr/Citus sent here from another node is refused/, 'a check inside a statement Citus sends to a worker is refused');
my ($o_id, $o_tok) = session('other');
($ret, $out, $err) = $coordinator->psql('postgres', qq{BEGIN; SELECT sessrev.revoke_session('$o_id');
	SELECT sessrev.is_revoked('$o_tok'); COMMIT});
like($err, qr/this transaction changed sessrev's tables/, "a check after the transaction's own revocation is refused");
is(count_live($_, $o_tok), '1', 'and that transaction changed nothing, on ' . $_->name) for @nodes;

# --- 0 stale answers while revocations commit --------------------------------------
# 200 sessions of 20 users; 50 rounds, each revoking 4 sessions by one of four
# paths, then all 200 are checked on the coordinator and on a worker in turn.
on_coordinator(q{CREATE TABLE public.stress (n int PRIMARY KEY, user_id text, id uuid, token text)});
on_coordinator(q{INSERT INTO public.stress
	SELECT n, 's' || (n % 20), c.session_id, c.token FROM generate_series(0, 199) n,
	       LATERAL sessrev.create_session('s' || (n % 20)) c});
my @stress = split /\n/, on_coordinator(q{SELECT id || ' ' || token FROM public.stress ORDER BY n});
my $check_all = sprintf(q{SELECT string_agg(sessrev.is_revoked(t)::text, ',' ORDER BY n)
	FROM unnest(ARRAY[%s]) WITH ORDINALITY AS u(t, n)}, join(',', map { "'" . (split / /)[1] . "'" } @stress));
my %revoked;
my ($stale, $checks) = (0, 0);
my @paths = (
	sub { "SELECT sessrev.revoke_session('$_[0]')" },
	sub { "SELECT sessrev.revoke_token('$_[1]')" },
	sub { "DELETE FROM sessrev.sessions WHERE id = '$_[0]'" },
	sub { "UPDATE sessrev.sessions SET revoked = true, revoked_at = now() WHERE id = '$_[0]'" },
);
for my $round (0 .. 49) {
	my @now = map { $round * 4 + $_ } 0 .. 3;
	on_coordinator(join '; ', map { $paths[$_ % 4]->(split / /, $stress[ $now[$_] ]) } 0 .. 3);
	$revoked{$_} = 1 for @now;
	for my $c ($checkers[0], $checkers[ 1 + $round % 2 ]) {
		my @a = split /,/, $c->query_safe($check_all);
		for my $n (0 .. 199) {
			$checks++;
			$stale++ if ($revoked{$n} ? 'true' : 'false') ne $a[$n];
		}
	}
}
cmp_ok($checks, '>=', 10000, "$checks checks made between rounds of committed revocations");
is($stale, 0, 'each answered as the revocations committed so far say');

# --- Cleanup: each node cleans the shards it holds ---------------------------------
on_coordinator(q{UPDATE sessrev.sessions SET created_at = '2000-01-01', last_active_at = '2000-01-01',
	expires_at = '2000-01-02' WHERE user_id LIKE 's%'});
my $expired = on_coordinator(q{SELECT count(*) FROM sessrev.sessions WHERE expires_at < now() - interval '7 days'});
my $deleted = 0;
$deleted += $_->safe_psql('postgres', 'SELECT sessrev.cleanup_expired_sessions()') for @nodes;
cmp_ok($expired, '>=', 150, "$expired sessions expired more than 7 days ago");
is($deleted, $expired, 'cleanup_expired_sessions on each node deletes those of the shards it holds');
is(on_coordinator(q{SELECT count(*) FROM sessrev.sessions WHERE user_id LIKE 's%'}), '0',
	'the expired sessions are gone from every shard');
on_coordinator(q{SELECT sessrev.revoke_jwt('expiring', now() + interval '1 second')});
sleep 2;
# The denylist's copy on each node (a reference table's), read there.
# Each node's copy, read in its shard there (Citus reads one placement).
my $copies = q{SELECT count(*) FROM sessrev.jwt_denylist_%s WHERE jti = 'expiring'};
my $denylist_shard = on_coordinator(q{SELECT shardid FROM pg_dist_shard WHERE logicalrelid = 'sessrev.jwt_denylist'::regclass});
is($_->safe_psql('postgres', sprintf($copies, $denylist_shard)), '1', 'the expired JWT is in the copy of ' . $_->name)
  for @nodes;
$_->safe_psql('postgres', 'SELECT sessrev.cleanup_expired_sessions()') for @nodes;
is($_->safe_psql('postgres', sprintf($copies, $denylist_shard)), '0',
	'each node deletes the expired JWTs of its copy of the denylist: ' . $_->name) for @nodes;

# --- A node added later, and a shard moved while checks run ------------------------
my $worker3 = new_node('worker3');
add_node($worker3);
push @nodes, $worker3;
on_coordinator('SELECT replicate_reference_tables()');
my (undef, $m_tok) = session('mover');
is(count_live($worker3, $m_tok, $n_tok), '2', 'a node added later answers');
my $shard = on_coordinator(q{SELECT get_shard_id_for_distribution_column('sessrev.sessions', 'mover')});
my $from_port = port_of('mover');
# A tracked user in the moving shard, changed while the move runs: the
# copies Citus makes by logical replication fire the trigger on the new
# placement, where it must neither fail nor hold the move up.
my $mv_user = on_coordinator(qq{SELECT u FROM generate_series(1, 10000) g, LATERAL (SELECT 'mv' || g AS u) x
	WHERE get_shard_id_for_distribution_column('sessrev.sessions', u) = $shard ORDER BY g LIMIT 1});
on_coordinator(qq{INSERT INTO public.users VALUES ('$mv_user', 'p', 'member', NULL)});
my (undef, $mv_tok) = session($mv_user);
my $mv_changes = 0;
my $mover = $coordinator->background_psql('postgres');
$mover->{stdin} .= sprintf(qq{SELECT citus_move_shard_placement(%d, '%s', %d, '%s', %d);\n\\echo moved\n},
	$shard, $coordinator->host, $from_port, $worker3->host, $worker3->port);
$mover->{run}->pump_nb;
# A second session of the same user (so in the same shard) is revoked while
# the move runs: before, every check must answer it live, after, revoked.
my (undef, $m2_tok) = session('mover');
# A revoked session answered live would be a hole; a live one answered
# revoked, at the instant a node's metadata switches, is counted and shown.
my ($during, $stale_during, $refused_live, $revoked_during) = (0, 0, 0, 0);
my $checker3 = $worker3->background_psql('postgres');
my $revoked = 0;
until ($mover->{stdout} =~ /moved/) {
	for my $c (@checkers[0 .. 2], $checker3) {
		$during++;
		$refused_live++ if $c->query_safe(qq{SELECT sessrev.is_revoked('$m_tok')}) ne 'f';
		my $m2 = $c->query_safe(qq{SELECT sessrev.is_revoked('$m2_tok')});
		$stale_during++ if $revoked && $m2 ne 't';
		$refused_live++ if !$revoked && $m2 ne 'f';
	}
	if ($during % 8 == 0) {
		on_coordinator(qq{UPDATE public.users SET role = 'r$during' WHERE id = '$mv_user'});
		$mv_changes++;
	}
	if (!$revoked && $during >= 40) {
		on_coordinator(qq{SELECT sessrev.revoke_token('$m2_tok')});
		$revoked = 1;
		$revoked_during = $mover->{stdout} =~ /moved/ ? 0 : 1;
	}
	$mover->{run}->pump_nb;
	last if $during > 20000;
}
$mover->quit;
cmp_ok($during, ">", 0, "$during checks of both sessions on four connections while the shard moved");
ok($revoked_during, 'a session of the moving shard was revoked while the move ran');
is($stale_during, 0, 'the session revoked during the move is refused by every check after its revocation');
note("$refused_live of the live session's checks during the move answered revoked");
cmp_ok($refused_live, '<', $during / 10, 'the live session answers live during the move (a few refusals at the switch)');
is(port_of('mover'), $worker3->port, 'the shard moved');
cmp_ok($mv_changes, '>', 0, "a tracked user of the moving shard was changed $mv_changes times during the move");
is(count_live($_, $mv_tok), '0', 'that user\'s session is refused after the move on ' . $_->name) for @nodes;
# The same long-lived connections, whose shard maps were read before the move.
is(join(',', map { $_->query_safe(qq{SELECT sessrev.is_revoked('$m_tok')::text || sessrev.is_revoked('$m2_tok')::text}) }
	@checkers[0 .. 2], $checker3), join(',', ('falsetrue') x 4), 'after the move, on the connections that checked before it');
is(count_live($_, $m_tok), '1', 'the moved session is live on ' . $_->name) for @nodes;
on_coordinator(q{SELECT sessrev.revoke_user_sessions('mover')});
is(join(',', map { $_->query_safe(qq{SELECT sessrev.is_revoked('$m_tok')}) } @checkers[0 .. 2], $checker3), 't,t,t,t',
	'revoked after the move, refused by the connections that checked before it');

# --- As the grant profiles -----------------------------------------------------------
# A forwarded check runs as the current role on the node holding the session,
# which checks that role's privileges again: a grant on one node alone
# answers nothing there.
on_coordinator(q{CREATE ROLE app_checker LOGIN; CREATE ROLE no_grant LOGIN; CREATE ROLE coordinator_only LOGIN;
	SELECT sessrev.grant_backend('app_checker'); SELECT sessrev.grant_backend('coordinator_only')});
on_coordinator(q{SELECT run_command_on_workers($$SET citus.enable_ddl_propagation TO off;
	SELECT sessrev.grant_backend('app_checker')$$)});
my (undef, $g_tok) = session('granted');
is($_->safe_psql('postgres', qq{SET ROLE app_checker; SELECT sessrev.is_revoked('$g_tok')}), 'f',
	'a role granted the backend profile on every node checks on ' . $_->name) for @nodes;
sub refused_as {
	my ($node, $role, $name) = @_;
	my ($rc, $out, $err) = $node->psql('postgres', qq{\\set VERBOSITY verbose
SET ROLE $role; SELECT sessrev.is_revoked('$g_tok')});
	ok($rc != 0 && $err =~ /ERROR:  42501: /, $name) or diag("rc $rc out '$out' err '$err'");
}
refused_as($_, 'no_grant', 'a role without a grant is refused (42501) on ' . $_->name) for @nodes;
refused_as($coordinator, 'coordinator_only',
	'a role granted on the coordinator alone is refused by the node holding the session (42501)');

# --- Attacks: a client named as Citus's or sessrev's own connections; the database owner
my ($sp_id, $sp_tok) = session('spoofed');
on_coordinator(qq{SELECT sessrev.revoke_session('$sp_id')});
for my $app ('citus_internal gpid=10000000042', 'citus_rebalancer gpid=10000000042', 'sessrev_check_forwarding',
	'sessrev_check_forwarding_again')
{
	for my $node (@nodes) {
		my ($rc, $out, $err) = $node->psql('postgres',
			qq{SET ROLE app_checker; SET application_name = '$app'; SELECT sessrev.is_revoked('$sp_tok')});
		ok($out ne 'f', "a revoked session is not answered live to a client named '$app' on " . $node->name)
		  or diag("out '$out' err '$err'");
	}
}
my $w1_shard = on_coordinator(sprintf(q{SELECT 'sessrev.sessions_' || s.shardid FROM pg_dist_shard s
	JOIN pg_dist_placement p USING (shardid) JOIN pg_dist_node n ON n.groupid = p.groupid
	WHERE s.logicalrelid = 'sessrev.sessions'::regclass AND n.nodeport = %d ORDER BY 1 LIMIT 1}, $workers[0]->port));
# Citus makes the owner the same on every node.
on_coordinator(q{CREATE ROLE db_owner LOGIN; ALTER DATABASE postgres OWNER TO db_owner});
is(join(' ', map { $_->safe_psql('postgres', q{SELECT datdba::regrole FROM pg_database WHERE datname = 'postgres'}) }
	@nodes), join(' ', ('db_owner') x @nodes), 'db_owner owns the database on every node');
for (
	[ $coordinator, q{SELECT sessrev.distribute()}, qr/permission denied/ ],
	[ $coordinator, q{SELECT undistribute_table('sessrev.sessions')}, qr/must be owner|permission denied/ ],
	[ $coordinator, q{SELECT alter_distributed_table('sessrev.sessions', shard_count => 4)},
		qr/must be owner|permission denied|cannot become/ ],
	[ $coordinator, sprintf(q{SELECT citus_move_shard_placement(%s, '%s', %d, '%s', %d)},
		$w1_shard =~ s/.*_//r, $workers[0]->host, $workers[0]->port, $workers[1]->host, $workers[1]->port),
		qr/must be owner|permission denied|superuser/ ],
	[ $workers[0], qq{SET citus.enable_manual_changes_to_shards = on; UPDATE $w1_shard SET revoked = false},
		qr/permission denied/ ],
	[ $workers[0], qq{SET application_name = 'citus_internal gpid=10000000042';
		CREATE TABLE sessrev.sessions_999999 (LIKE sessrev.sessions)}, qr/permission denied/ ])
{
	my ($node, $sql, $why) = @$_;
	my ($rc, $out, $err) = $node->psql('postgres', "SET ROLE db_owner; $sql");
	ok($rc != 0 && $err =~ $why, 'the database owner is refused on ' . $node->name . ": $sql") or diag($err);
}
on_coordinator(q{ALTER DATABASE postgres OWNER TO postgres});

# --- TRUNCATE and the emergency logout ------------------------------------------------
my (undef, $t_tok) = session('truncated');
on_coordinator('TRUNCATE sessrev.sessions');
is(count_live($_, $t_tok), '0', 'TRUNCATE: refused on ' . $_->name) for @nodes;
my (undef, $e_tok) = session('emergency');
is(count_live($_, $e_tok), '1', 'live before the emergency logout on ' . $_->name) for @nodes;
on_coordinator(q{SELECT sessrev.revoke_all_sessions('incident')});
is(count_live($_, $e_tok), '0', 'revoke_all_sessions: refused on ' . $_->name) for @nodes;

is(join(' ', map { $_->safe_psql('postgres', 'SELECT count(*) FROM pg_prepared_xacts') } @nodes), '0 0 0 0',
	"no prepared transaction of Citus's is left on any node");
$_->quit for @checkers, $checker3;

# --- A node restarted ------------------------------------------------------------------
# After a start, what prepared transactions changed is unknown until the
# transactions older than the first check end; that doubt keeps the cache
# from serving, and refuses no live session.
my (undef, $after_tok) = session('after-restart');
my $after_holder = port_of('after-restart');
my ($restarted) = grep { $_->port == $after_holder } @nodes;
$restarted->restart;
is(count_live($_, $after_tok), '1', 'right after its node restarted, a live session answers live on ' . $_->name)
  for @nodes;
done_testing();
