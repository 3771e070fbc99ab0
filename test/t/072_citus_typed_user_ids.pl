# sessrev's sessions co-located with an application's users table distributed
# by a bigint or a uuid id (sessrev.distribute(user_id_type => ...): a
# coordinator and two workers, then a third, sessrev preloaded after citus),
# one database per type:
#  - distribute() refuses another type, and user ids that are not the type's
#    own text, changing nothing; then distributes by user_id_bigint or
#    user_id_uuid, and a users table distributed by such an id co-locates;
#  - a new token carries the shard Citus gives the id; sessions made before
#    answer live on every node;
#  - every function works through the coordinator, each revocation path is
#    refused by the next check on every node, also a user named other than
#    as the type writes it, and 0 stale answers while revocations commit;
#  - the tracked users table revokes in the transaction that changes a user;
#  - a node added later takes a moved shard, and answers for it.
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

my %layouts = (
	bigint => { db => 'bigint_app', id => sub { 1000 + $_[0] }, other => sub { ' +' . (1000 + $_[0]) } },
	uuid   => {
		db    => 'uuid_app',
		id    => sub { sprintf('00000000-0000-4000-8000-%012d', $_[0]) },
		other => sub { uc sprintf('{00000000-0000-4000-8000-%012d}', $_[0]) }
	},);

sub new_node {
	return citus_node($_[0], logical => 1, databases => [ map { $layouts{$_}{db} } sort keys %layouts ], conf => q{
max_connections = 60
sessrev.touch_interval = '1s'
});
}

my $coordinator = new_node('coordinator');
my @workers = map { new_node("worker$_") } 1 .. 2;
my @nodes = ($coordinator, @workers);
for my $db (map { $_->{db} } values %layouts) {
	$coordinator->safe_psql($db,
		sprintf(q{SELECT citus_set_coordinator_host('%s', %d)}, $coordinator->host, $coordinator->port));
	$coordinator->safe_psql($db, sprintf(q{SELECT citus_add_node('%s', %d)}, $_->host, $_->port)) for @workers;
	$coordinator->safe_psql($db, 'CREATE EXTENSION sessrev');
}

for my $type (sort keys %layouts) {
	my $db = $layouts{$type}{db};
	my $id = $layouts{$type}{id};
	my $other = $layouts{$type}{other};
	my $sql = sub { return $coordinator->safe_psql($db, $_[0]); };
	my $session = sub { return split /\|/, $sql->(qq{SELECT session_id || '|' || token FROM sessrev.create_session('$_[0]')}); };
	my $live = sub {
		my ($node, @tokens) = @_;
		return $node->safe_psql($db, sprintf(q{SELECT count(*) FILTER (WHERE NOT sessrev.is_revoked(t))
			FROM unnest(ARRAY[%s]::text[]) t}, join(',', map { "'$_'" } @tokens)));
	};

	# --- distribute(user_id_type => ...) -----------------------------------------
	my @before = map { [ $id->($_), $session->($id->($_)) ] } 1 .. 5;
	my ($b_id) = $session->('bob');
	my ($ret, $out, $err) = $coordinator->psql($db, q{SELECT sessrev.distribute(4, 'integer')});
	like($err, qr/user_id_type must be text, bigint or uuid/, "$type: distribute() refuses another type");
	($ret, $out, $err) = $coordinator->psql($db, qq{\\set VERBOSITY verbose\nSELECT sessrev.distribute(4, '$type')});
	like($err, qr/22023: user id "bob" is not a $type as $type writes it/,
		"$type: distribute() refuses a user id that is not the type's own text (22023)");
	is($sql->(q{SELECT count(*) FROM pg_dist_partition}) . '/' . $sql->(q{SELECT count(*) FROM sessrev.sessions}),
		'0/6', "$type: and changes nothing");
	$sql->(qq{DELETE FROM sessrev.sessions WHERE id = '$b_id'});
	$sql->(qq{SELECT sessrev.distribute(4, '$type')});
	is($sql->(q{SELECT string_agg(DISTINCT column_to_column_name(logicalrelid, partkey), ',')
		FROM pg_dist_partition WHERE partmethod = 'h' AND logicalrelid::text LIKE 'sessrev.%'}),
		"user_id_$type", "$type: the co-located tables are distributed by user_id_$type");
	$sql->(qq{CREATE TABLE users (id $type PRIMARY KEY, password_hash text, role text, name text);
		SELECT create_distributed_table('users', 'id', colocate_with => 'sessrev.sessions')});
	is($sql->(q{SELECT count(DISTINCT colocationid) FROM pg_dist_partition
		WHERE logicalrelid IN ('users'::regclass, 'sessrev.sessions'::regclass)}), '1',
		"$type: a users table distributed by a $type id co-locates with the sessions");
	is($live->($_, map { $_->[2] } @before), '5', "$type: sessions made before answer live on " . $_->name) for @nodes;

	# --- New sessions: in the shard Citus gives the id ----------------------------
	my ($n_id, $n_tok) = $session->($id->(10));
	is($sql->(qq{SELECT s.shardid FROM pg_dist_shard s WHERE s.logicalrelid = 'sessrev.sessions'::regclass
		AND ('x' || left('$n_tok', 8))::bit(32)::int BETWEEN s.shardminvalue::int AND s.shardmaxvalue::int}),
		$sql->(qq{SELECT get_shard_id_for_distribution_column('sessrev.sessions', '${\ $id->(10)}'::$type)}),
		"$type: a new token carries the hash of the shard that Citus gives the id");
	is($sql->(qq{SELECT user_id_$type = '${\ $id->(10)}'::$type FROM sessrev.sessions WHERE id = '$n_id'}), 't',
		"$type: the row carries the id as a $type");
	is($live->($_, $n_tok), '1', "$type: a new session is live on " . $_->name) for @nodes;
	is($_->safe_psql($db, qq{SELECT user_id FROM sessrev.validate_session('$n_tok')}), $id->(10),
		"$type: validate_session on " . $_->name) for @nodes;

	# --- Bad ids: a clear error, nothing written ----------------------------------
	($ret, $out, $err) = $coordinator->psql($db, q{SELECT sessrev.create_session('bob')});
	like($err, qr/invalid input syntax for type/, "$type: create_session of an id that is no $type: 22P02");
	($ret, $out, $err) = $coordinator->psql($db, qq{SELECT sessrev.create_session('${\ $other->(10)}')});
	like($err, qr/violates check constraint "sessions_user_id_$type"/,
		"$type: create_session of an id not written as the type writes it: refused (23514)");
	is($sql->(q{SELECT count(*) FROM sessrev.sessions}), '6', "$type: neither wrote a session");

	# --- Every function through the coordinator -----------------------------------
	my $user = $id->(10);
	my (undef, $n2_tok) = $session->($user);
	is($sql->(qq{SELECT count(*) FROM sessrev.user_sessions('$user')}), '2', "$type: user_sessions");
	is($sql->(qq{SELECT count(*) FROM sessrev.active_sessions WHERE user_id = '$user'}), '2', "$type: active_sessions");
	my $rotated = $sql->(qq{SELECT token FROM sessrev.rotate_token('$n2_tok')});
	is($live->($_, $rotated) . '/' . $live->($_, $n2_tok), '1/0', "$type: rotate_token, on " . $_->name) for @nodes;
	is($sql->(qq{SELECT count(*) FROM sessrev.retired_tokens WHERE user_id = '$user'}), '1',
		"$type: the old token is retired in the user's shard");
	is($sql->(qq{SELECT sessrev.extend_session('$n_id', interval '2 hours') > now()}), 't', "$type: extend_session");
	is($sql->(qq{SELECT sessrev.jwt_issued_at('$user') > 0}), 't', "$type: jwt_issued_at");
	is($sql->(qq{BEGIN; SELECT FROM sessrev.validate_session('$n_tok'); SELECT sessrev.revoke_my_other_sessions(); COMMIT}),
		'1', "$type: revoke_my_other_sessions");
	is($live->($_, $rotated) . '/' . $live->($_, $n_tok), '0/1', "$type: the other device is signed out on " . $_->name)
	  for @nodes;

	# --- Every revocation path, refused by the next check on every node -----------
	my @checkers = map { $_->background_psql($db) } @nodes;
	my $n = 20;
	for my $how ('revoke_session', 'revoke_token', 'revoke_user_sessions', 'UPDATE revoked', 'DELETE', 'revoke_jwt',
		'revoke_user_tokens_before')
	{
		my $u = $id->(++$n);
		my ($s_id, $s_tok) = $session->($u);
		is(answers($checkers[$_], $s_tok, $u), 'false/1/false', "$type: $how: live before on " . $nodes[$_]->name)
		  for 0 .. $#nodes;
		$sql->(revocation_sql($how, $s_id, $s_tok, $u));
		is(answers($checkers[$_], $s_tok, $u), refused_answer($how), "$type: $how: refused on " . $nodes[$_]->name)
		  for 0 .. $#nodes;
	}

	# A user named otherwise than the type writes it is the same user.
	my $u = $id->(++$n);
	my (undef, $o_tok) = $session->($u);
	is($sql->(qq{SELECT sessrev.revoke_user_sessions('${\ $other->($n)}')}), '1',
		"$type: revoke_user_sessions('${\ $other->($n)}') revokes the sessions of $u");
	is(answers($checkers[$_], $o_tok, $u), 'true/0/true', "$type: and its JWTs, refused on " . $nodes[$_]->name)
	  for 0 .. $#nodes;
	is($_->safe_psql($db, qq{SELECT sessrev.is_jwt_revoked(NULL, '${\ $other->($n)}', now() - interval '1 minute')}),
		't', "$type: is_jwt_revoked of the user named otherwise, on " . $_->name) for @nodes;

	# --- A revocation recorded apart, while another transaction holds the row -----
	$u = $id->(++$n);
	my ($h_id, $h_tok) = $session->($u);
	my $holding = $coordinator->background_psql($db);
	$holding->query_safe(qq{BEGIN; SELECT FROM sessrev.sessions WHERE id = '$h_id' AND user_id = '$u' FOR UPDATE});
	is($sql->(qq{SET statement_timeout = '5s'; SELECT sessrev.revoke_session('$h_id', 'held row')}), 't',
		"$type: revoke_session does not wait for the transaction holding the row");
	is($live->($_, $h_tok), '0', "$type: the revocation recorded apart is refused on " . $_->name) for @nodes;
	$holding->query_safe('ROLLBACK');
	$holding->quit;
	ok($sql->('SELECT sessrev.apply_pending_revocations()') >= 1, "$type: apply_pending_revocations folds it in");
	is($sql->(qq{SELECT revoked FROM sessrev.sessions WHERE id = '$h_id'}), 't', "$type: into the row");

	# --- The users table, tracked --------------------------------------------------
	$sql->(qq{INSERT INTO users SELECT id, 'hash', 'member', 'n' FROM unnest(ARRAY[${\ join ',', map { "'" . $id->($_) . "'" } 101 .. 104}]::$type\[]) id;
		CREATE ROLE users_admin_$type LOGIN;
		GRANT ALL ON users TO users_admin_$type;
		GRANT USAGE ON SCHEMA public TO users_admin_$type;
		SELECT sessrev.track_user_table('users', 'id', '{password_hash}', '{role}')});
	my %tracked = map { $_ => [ $session->($id->($_)) ] } 101 .. 104;
	my $as_admin = sub {
		my ($statement) = @_;
		return $coordinator->psql($db, "SET ROLE users_admin_$type; $statement");
	};
	$as_admin->(qq{UPDATE users SET name = 'm' WHERE id = '${\ $id->(101)}'});
	is($live->($_, $tracked{101}[1]), '1', "$type: an untracked column changed revokes nothing, on " . $_->name)
	  for @nodes;
	$as_admin->(qq{BEGIN; UPDATE users SET password_hash = 'new' WHERE id = '${\ $id->(102)}'; ROLLBACK});
	is($live->($_, $tracked{102}[1]), '1', "$type: a change rolled back revokes nothing, on " . $_->name) for @nodes;
	($ret, $out, $err) = $as_admin->(qq{UPDATE users SET password_hash = 'new' WHERE id = '${\ $id->(101)}'});
	is($ret, 0, "$type: a credential change, by a role with no grant of sessrev's") or diag $err;
	$as_admin->(qq{UPDATE users SET role = 'admin' WHERE id = '${\ $id->(102)}'});
	$as_admin->(qq{DELETE FROM users WHERE id = '${\ $id->(103)}'});
	for my $node (@nodes) {
		is($live->($node, map { $tracked{$_}[1] } 101 .. 103), '0',
			"$type: credential, privilege and deletion each revoke, on " . $node->name);
		is($live->($node, $tracked{104}[1]), '1', "$type: another user keeps the session, on " . $node->name);
		is($node->safe_psql($db, qq{SELECT sessrev.is_jwt_revoked(NULL, '${\ $id->(103)}', now() - interval '1 minute')}),
			't', "$type: and the deleted user's older JWTs, on " . $node->name);
	}
	$sql->('SELECT sessrev.apply_pending_revocations()');
	is($sql->(qq{SELECT string_agg(revoked_reason, ',' ORDER BY user_id) FROM sessrev.sessions
		WHERE user_id IN ('${\ $id->(101)}', '${\ $id->(102)}', '${\ $id->(103)}')}),
		'Credentials reset,Privileges changed,User deleted', "$type: the fold writes the rows with their reasons");

	# --- Ids that cannot be keys, and statements the key routing leaves alone ------
	# A table of the coordinator's own, tracked, with text ids: a change of an
	# id that cannot be a key revokes nothing there is, and does not fail the
	# statement, which revokes the others.
	$sql->(qq{CREATE TABLE accounts (login text PRIMARY KEY, pw text);
		INSERT INTO accounts VALUES ('bob', 'x'), ('${\ $id->(110)}', 'x');
		SELECT sessrev.track_user_table('accounts', 'login', '{pw}', '{}')});
	my (undef, $a_tok) = $session->($id->(110));
	($ret, $out, $err) = $coordinator->psql($db, q{UPDATE accounts SET pw = 'y'});
	is($ret, 0, "$type: a tracked change of 'bob' and of a user with sessions commits") or diag $err;
	is($live->($_, $a_tok), '0', "$type: and the user's session is refused on " . $_->name) for @nodes;
	is($sql->(q{SELECT sessrev.revoke_user_sessions('bob')}) . '/'
		  . $sql->(q{SELECT sessrev.is_jwt_revoked(NULL, 'bob', now() - interval '1 minute')}),
		'0/f', "$type: revoke_user_sessions and is_jwt_revoked of an id that cannot be a $type: nothing, no error");
	# A keyed table named through a join's alias, not first in the join: left
	# to Citus as written (a twin there would be printed with the join's
	# column numbers, another column). Citus 13.2.2 refuses any condition
	# through such an alias ("Unrecognized range table id"): refused or right.
	my $j_user = $id->(104);
	($ret, $out, $err) = $coordinator->psql($db, qq{SELECT count(*) FROM (users u JOIN sessrev.sessions s
		ON s.user_id_$type = u.id) j WHERE j.user_id = '$j_user'});
	ok($ret != 0 || $out eq $sql->(qq{SELECT count(*) FROM sessrev.sessions WHERE user_id = '$j_user'}),
		"$type: a condition through a join alias is refused or matches the user's rows ($out$err)");
	if ($type eq 'bigint') {
		# Under a collation that ignores punctuation, '-1010' equals '1010':
		# no twin (it would be the key -1010, another user's shard).
		$sql->(q{CREATE COLLATION ignore_punctuation (provider = icu, locale = 'und-u-ka-shifted', deterministic = false)});
		is($sql->(qq{SELECT count(*) FROM sessrev.sessions WHERE user_id = '-${\ $id->(10)}' COLLATE ignore_punctuation}),
			$sql->(qq{SELECT count(*) FROM sessrev.sessions WHERE user_id = '${\ $id->(10)}'}),
			"$type: a nondeterministic collation's equality is left as written");
	}
	# Several rows in one INSERT, and a volatile user id: each row gets its key,
	# or the INSERT is refused, never a key of another value.
	$sql->(qq{INSERT INTO sessrev.sessions (user_id, token_hash, expires_at)
		VALUES ('${\ $id->(120)}', sessrev.hash_token('multi-120'), now() + interval '1 day'),
		       ('${\ $id->(121)}', sessrev.hash_token('multi-121'), now() + interval '1 day')});
	is($sql->(qq{SELECT count(*) FROM sessrev.sessions WHERE user_id_${type}::text = user_id
		AND user_id IN ('${\ $id->(120)}', '${\ $id->(121)}')}), '2', "$type: a multi-row INSERT keys each row");
	is($live->($_, 'multi-120', 'multi-121'), '2', "$type: and both answer live on " . $_->name) for @nodes;
	($ret, $out, $err) = $coordinator->psql($db, q{INSERT INTO sessrev.sessions (user_id, token_hash, expires_at)
		VALUES ((SELECT user_id FROM sessrev.sessions ORDER BY random() LIMIT 1), sessrev.hash_token('v'), now() + interval '1 day')});
	isnt($ret, 0, "$type: an INSERT whose user id is a volatile subquery is refused");

	# --- 0 stale answers while revocations commit ----------------------------------
	my @paths = ('revoke_session', 'revoke_token', 'revoke_user_sessions', 'revoke_user_tokens_before');
	my @pool = map { [ $id->(200 + $_), $session->($id->(200 + $_)) ] } 1 .. 40;
	my %revoked;
	my ($stale, $wrong, $checks) = (0, 0, 0);
	my $revoker = $coordinator->background_psql($db);
	for my $round (1 .. 10) {
		for my $k (0 .. 3) {
			my ($uid, $sid, $tok) = @{ $pool[ ($round - 1) * 4 + $k ] };
			$revoker->query_safe(revocation_sql($paths[$k], $sid, $tok, $uid));
			$revoked{$tok} = refused_answer($paths[$k]);
		}
		for my $c (0 .. $#checkers) {
			for my $p (@pool) {
				my $answer = answers($checkers[$c], $p->[2], $p->[0]);
				$checks++;
				my $expected = $revoked{ $p->[2] } // 'false/1/false';
				next if $answer eq $expected;
				if ($answer =~ /^false/ && $expected =~ /^true/) { $stale++ } else { $wrong++ }
			}
		}
	}
	$revoker->quit;
	is("$stale/$wrong", '0/0', "$type: $checks checks on 3 nodes while 40 revocations commit: none stale, none wrong");
	$_->quit for @checkers;
}

# --- A node added later takes a moved shard, in both databases --------------------
my $worker3 = new_node('worker3');
for my $type (sort keys %layouts) {
	my $db = $layouts{$type}{db};
	my $id = $layouts{$type}{id};
	my $sql = sub { return $coordinator->safe_psql($db, $_[0]); };
	$sql->(sprintf(q{SELECT citus_add_node('%s', %d)}, $worker3->host, $worker3->port));
	$sql->('SELECT replicate_reference_tables()');
	my $u = $id->(104);
	my $tok = $sql->(qq{SELECT token FROM sessrev.create_session('$u')});
	my $shard = $sql->(qq{SELECT get_shard_id_for_distribution_column('sessrev.sessions', '$u'::$type)});
	$sql->(qq{SELECT citus_move_shard_placement($shard, nodename, nodeport, '${\ $worker3->host}', ${\ $worker3->port},
		shard_transfer_mode => 'force_logical') FROM pg_dist_shard_placement WHERE shardid = $shard});
	is($sql->(qq{SELECT n.nodeport FROM pg_dist_placement p JOIN pg_dist_node n USING (groupid) WHERE p.shardid = $shard}),
		$worker3->port, "$type: the user's shard moved to the new node");
	my @all = (@nodes, $worker3);
	is($_->safe_psql($db, qq{SELECT sessrev.is_revoked('$tok')}), 'f', "$type: live after the move, on " . $_->name)
	  for @all;
	$sql->(qq{UPDATE users SET password_hash = 'moved' WHERE id = '$u'});
	is($_->safe_psql($db, qq{SELECT sessrev.is_revoked('$tok')}), 't',
		"$type: the tracked change after the move revokes, on " . $_->name) for @all;
	is($sql->('SELECT count(*) FROM pg_prepared_xacts'), '0', "$type: no prepared transaction is left");
}

done_testing();
