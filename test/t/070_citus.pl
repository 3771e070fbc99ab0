# sessrev in a Citus cluster (a coordinator and two workers, sessrev preloaded
# after citus on each), with sessrev's tables on the coordinator:
#  - CREATE EXTENSION, ALTER EXTENSION ... UPDATE and citus_add_node work from
#    the coordinator (Citus creates the extension on the workers in a
#    two-phase commit), leaving no prepared transaction behind;
#  - every function answers on the coordinator, from its cache, and every
#    revocation path (also one committed with a distributed write, by Citus's
#    two-phase commit) is refused by the next check: 0 stale answers over more
#    than 10,000 checks made while revocations commit;
#  - no worker answers from its empty tables: a client's check there is
#    answered by the coordinator (check_forwarding.hpp), as the current role,
#    and right after each revocation path (0 stale over 40,000 more checks);
#    a role that cannot log in to the coordinator, or a coordinator that is
#    down, gets an error; every revocation, listing and statement reading
#    sessrev's tables there fails with 55000, and so does
#    a check that Citus sends to a worker inside a statement that reads a
#    distributed table, and any check on a worker whose metadata was removed
#    (group 0 again); the cleanup worker skips there; a Citus server answers
#    only once its metadata shows it to be the coordinator;
#  - a distributed or reference users table cannot be tracked (0A000), and
#    revoking in the transaction that changes the user works instead;
#  - none of sessrev's tables can be made a Citus table (0A000), and every
#    check still answers afterwards; one made a Citus table while sessrev was
#    not loaded makes every check on every node refuse (0A000).
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

sub new_node { return citus_node($_[0]); }

my $coordinator = new_node('coordinator');
my @workers = map { new_node("worker$_") } 1 .. 2;
sub on_coordinator { return $coordinator->safe_psql('postgres', $_[0]); }
sub add_node {
	my ($node) = @_;
	on_coordinator(sprintf(q{SELECT citus_add_node('%s', %d)}, $node->host, $node->port));
}
on_coordinator(sprintf(q{SELECT citus_set_coordinator_host('%s', %d)}, $coordinator->host, $coordinator->port));
add_node($_) for @workers;

# The version and the prepared transactions left on each node.
sub versions {
	return join ' ', map {
		$_->safe_psql('postgres', q{SELECT coalesce((SELECT extversion FROM pg_extension WHERE extname = 'sessrev'), 'none')
		                             || '/' || (SELECT count(*) FROM pg_prepared_xacts)})
	} ($coordinator, @workers);
}

# --- Lifecycle through the coordinator ---------------------------------------
on_coordinator(q{CREATE EXTENSION sessrev VERSION '1.4'});
is(versions(), '1.4/0 1.4/0 1.4/0', 'CREATE EXTENSION on the coordinator creates it on every worker');
on_coordinator('ALTER EXTENSION sessrev UPDATE');
my $default = on_coordinator(q{SELECT default_version FROM pg_available_extensions WHERE name = 'sessrev'});
is(versions(), join(' ', ("$default/0") x 3),
	"ALTER EXTENSION sessrev UPDATE on the coordinator updates every worker to $default");

# --- Every function on the coordinator, from its cache ------------------------
on_coordinator(q{
	CREATE ROLE app_backend; CREATE ROLE app_user; CREATE ROLE app_auditor;
	SELECT sessrev.grant_backend('app_backend');
	SELECT sessrev.grant_end_user('app_user');
	SELECT sessrev.grant_auditor('app_auditor');
});
pass('the grant profiles are granted on the coordinator');

sub session {
	my ($user) = @_;
	return split /\|/, on_coordinator(qq{SELECT session_id || '|' || token FROM sessrev.create_session('$user',
	                                     ip_address => '192.0.2.7', user_agent => 'Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0')});
}
my $checker = $coordinator->background_psql('postgres');
my (undef, $warm) = session('warm-up');
ok(wait_for_cache($coordinator, $checker, $warm, 'warm-up'), "the coordinator's cache serves");

my ($a_id, $a_tok) = session('alice');
my (undef, $a2_tok) = session('alice');
is(answers($checker, $a_tok, 'alice'), 'false/1/false', 'a new session is live on the coordinator');
my $hits = cache_hits($coordinator);
answers($checker, $a_tok, 'alice');
cmp_ok(cache_hits($coordinator), '>', $hits, "answered from the coordinator's cache");
is(on_coordinator(qq{SELECT sessrev.is_revoked('$a_id'::uuid)}), 'f', 'is_revoked(session id)');
is(on_coordinator(qq{SELECT user_id FROM sessrev.validate_session('$a_tok')}), 'alice', 'validate_session');
is(on_coordinator(qq{SELECT (sessrev.validate_session_record('$a_tok')).user_id}), 'alice', 'validate_session_record');
is(on_coordinator(q{SELECT count(*) FROM sessrev.user_sessions('alice')}), '2', 'user_sessions');
is(on_coordinator(qq{BEGIN; SELECT FROM sessrev.validate_session('$a_tok'); SELECT count(*) FROM sessrev.my_sessions(); COMMIT}), '2',
	'my_sessions after validate_session');
my $rotated = on_coordinator(qq{SELECT token FROM sessrev.rotate_token('$a2_tok')});
is(on_coordinator(qq{SELECT sessrev.is_revoked('$rotated')}), 'f', 'rotate_token: the new token is live');
is(on_coordinator(qq{SELECT sessrev.extend_session('$a_id', interval '2 hours') > now()}), 't', 'extend_session');
is(on_coordinator(q{SELECT sessrev.jwt_issued_at('alice') > 0}), 't', 'jwt_issued_at');
is(on_coordinator(qq{BEGIN; SELECT FROM sessrev.validate_session('$a_tok'); SELECT sessrev.revoke_my_other_sessions(); COMMIT}), '1',
	'revoke_my_other_sessions');
is(on_coordinator(qq{SELECT sessrev.is_revoked('$rotated')}), 't', 'the other device is signed out');
is(on_coordinator(q{SELECT sessrev.cleanup_expired_sessions() >= 0}), 't', 'cleanup_expired_sessions');
is(on_coordinator(q{SELECT sessrev.run_cleanup_now()}), 't', 'run_cleanup_now');
$coordinator->poll_query_until('postgres', q{SELECT runs > 0 AND last_error IS NULL FROM sessrev.worker_status()})
  or diag(on_coordinator('SELECT * FROM sessrev.worker_status()'));
is(on_coordinator(q{SELECT runs > 0 AND last_error IS NULL FROM sessrev.worker_status()}), 't',
	"the coordinator's cleanup worker runs");
is(on_coordinator(q{SELECT count(*) FROM sessrev.session_audit_log WHERE user_id = 'alice'}) > 0, 1,
	'the audit log records on the coordinator');

# --- Every revocation path, each refused by the next check ---------------------
# On the coordinator, and on each worker, whose checks the coordinator answers.
my @worker_checkers = map { $_->background_psql('postgres') } @workers;
for my $how ('revoke_session', 'revoke_token', 'revoke_user_sessions', 'UPDATE revoked', 'UPDATE expires_at',
	'DELETE', 'revoke_jwt', 'revoke_user_tokens_before', 'TRUNCATE')
{
	my $user = "u-$how";
	$user =~ s/\W/_/g;
	my ($id, $token) = session($user);
	is(answers($checker, $token, $user), 'false/1/false', "$how: live before");
	is(answers($_, $token, $user), 'false/1/false', "$how: live before on a worker") for @worker_checkers;
	on_coordinator(revocation_sql($how, $id, $token, $user));
	is(answers($checker, $token, $user), refused_answer($how), "$how: refused by the next check");
	is(answers($worker_checkers[$_], $token, $user), refused_answer($how),
		"$how: refused by the next check on worker" . ($_ + 1)) for 0 .. $#worker_checkers;
}

# --- 0 stale answers while revocations commit ----------------------------------
# 400 sessions of 40 users; 100 rounds, each revoking 4 sessions by one of four
# paths, then a checker in another connection checks all 400 (the live ones
# filling and hitting the cache), and so does one on a worker (each in turn):
# 80,000 checks, compared with what was revoked.
on_coordinator(q{CREATE TABLE public.stress (n int PRIMARY KEY, user_id text, id uuid, token text)});
on_coordinator(q{INSERT INTO public.stress
	SELECT n, 's' || (n % 40), c.session_id, c.token FROM generate_series(0, 399) n,
	       LATERAL sessrev.create_session('s' || (n % 40)) c});
# The tokens in the statement itself: public.stress is the coordinator's.
my $check_all = sprintf(q{SELECT string_agg(sessrev.is_revoked(t)::text, ',' ORDER BY n)
	FROM unnest(ARRAY[%s]) WITH ORDINALITY AS u(t, n)},
	join(',', map { "'$_'" } split /\n/, on_coordinator(q{SELECT token FROM public.stress ORDER BY n})));
my %revoked;
my $stale = 0;
my $checks = 0;
my @paths = (
	sub { "SELECT sessrev.revoke_session(id) FROM public.stress WHERE n = $_[0]" },
	sub { "SELECT sessrev.revoke_token(token) FROM public.stress WHERE n = $_[0]" },
	sub { "DELETE FROM sessrev.sessions WHERE id = (SELECT id FROM public.stress WHERE n = $_[0])" },
	sub { "UPDATE sessrev.sessions SET revoked = true, revoked_at = now() WHERE id = (SELECT id FROM public.stress WHERE n = $_[0])" },
);
for my $round (0 .. 99) {
	my @now = map { $round * 4 + $_ } 0 .. 3;
	on_coordinator(join '; ', map { $paths[$_ % 4]->($now[$_]) } 0 .. 3);
	$revoked{$_} = 1 for @now;
	for my $c ($checker, $worker_checkers[$round % @worker_checkers]) {
		my $answers = $c->query_safe($check_all);
		my @a = split /,/, $answers;
		for my $n (0 .. 399) {
			$checks++;
			$stale++ if $revoked{$n} && $a[$n] ne 'true';
		}
	}
}
cmp_ok($checks, '>=', 10000, "$checks checks made while revocations committed");
is($stale, 0, 'none of them answered a revoked session as live');

# --- A revocation committed with a distributed write (Citus's 2PC) -------------
on_coordinator(q{
	CREATE TABLE public.users (id text PRIMARY KEY, pw text);
	SELECT create_distributed_table('public.users', 'id');
	INSERT INTO public.users VALUES ('bob', 'old'), ('carol', 'old');
});
my (undef, $b_tok) = session('bob');
is(answers($checker, $b_tok, 'bob'), 'false/1/false', 'bob is live');
on_coordinator(q{BEGIN; UPDATE public.users SET pw = 'new' WHERE id = 'bob';
	SELECT sessrev.revoke_user_sessions('bob', 'password changed'); ROLLBACK});
is(answers($checker, $b_tok, 'bob'), 'false/1/false', 'a password change rolled back revokes nothing');
on_coordinator(q{BEGIN; UPDATE public.users SET pw = 'new' WHERE id = 'bob';
	SELECT sessrev.revoke_user_sessions('bob', 'password changed'); COMMIT});
is(answers($checker, $b_tok, 'bob'), 'true/0/true', 'revoked with the distributed password change, at its commit');
is(on_coordinator(q{SELECT count(*) FROM pg_prepared_xacts}), '0', 'no prepared transaction left on the coordinator');

# --- Tracking a distributed or reference users table is refused ---------------
sub fails_with {
	my ($node, $sql, $sqlstate, $pattern, $name) = @_;
	my ($rc, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\n$sql");
	ok($rc != 0 && $err =~ /ERROR:  $sqlstate: / && $err =~ $pattern, $name) or diag("rc $rc out '$out' err '$err'");
}
fails_with($coordinator, q{SELECT sessrev.track_user_table('public.users', 'id', '{pw}')}, '0A000',
	qr/is a Citus table/, 'tracking a distributed users table is refused');
on_coordinator(q{CREATE TABLE public.roles_ref (id text PRIMARY KEY, pw text); SELECT create_reference_table('public.roles_ref')});
fails_with($coordinator, q{SELECT sessrev.track_user_table('public.roles_ref', 'id', '{pw}')}, '0A000',
	qr/is a Citus table/, 'tracking a reference users table is refused');
on_coordinator(q{CREATE TABLE public.local_users (id text PRIMARY KEY, pw text); INSERT INTO public.local_users VALUES ('dave', 'old');
	SELECT sessrev.track_user_table('public.local_users', 'id', '{pw}')});
my (undef, $d_tok) = session('dave');
on_coordinator(q{UPDATE public.local_users SET pw = 'new' WHERE id = 'dave'});
is(answers($checker, $d_tok, 'dave'), refused_answer('revoke_user_sessions'),
	"a tracked table on the coordinator revokes at its update's commit");

# --- Workers: checks answered by the coordinator, writes refused ---------------
my (undef, $e_tok) = session('erin');
my $refusal = qr/sessrev's sessions are not on this node/;
my ($e_id) = split /\|/, on_coordinator(qq{SELECT session_id FROM sessrev.validate_session('$e_tok')});
my %expected = (
	qq{SELECT sessrev.is_revoked('$e_tok')} => 'f',
	qq{SELECT sessrev.is_revoked('$e_id'::uuid)} => 'f',
	q{SELECT sessrev.is_revoked(gen_random_uuid())} => 't',
	q{SELECT sessrev.is_revoked('no such token')} => 't',
	qq{SELECT user_id || ' ' || metadata FROM sessrev.validate_session('$e_tok')} => 'erin {}',
	qq{SELECT (sessrev.validate_session_record('$e_tok')).user_id} => 'erin',
	q{SELECT count(*) FROM sessrev.validate_session('no such token')} => '0',
	q{SELECT sessrev.is_jwt_revoked('jti-x', 'erin', now())} => 'f',
	qq{BEGIN; SELECT FROM sessrev.validate_session('$e_tok'); SELECT sessrev.current_user_id(); COMMIT} => 'erin',);
for my $i (0 .. $#workers) {
	my $w = $workers[$i];
	my $name = 'worker' . ($i + 1);
	for my $call (sort keys %expected) {
		is($w->safe_psql('postgres', $call), $expected{$call}, "$name answers through the coordinator: $call");
	}
	# Writes, and whatever reads the tables: listings, views, SQL functions,
	# direct statements (the executor refuses them, table_guard.hpp).
	for my $call (q{SELECT * FROM sessrev.create_session('erin')},
		q{SELECT sessrev.revoke_session(gen_random_uuid())}, q{SELECT sessrev.revoke_user_sessions('erin')},
		qq{SELECT sessrev.revoke_token('$e_tok')}, q{SELECT sessrev.revoke_jwt('jti-x', now() + interval '1 hour')},
		q{SELECT sessrev.revoke_user_tokens_before('erin')}, q{SELECT sessrev.revoke_all_sessions()},
		q{SELECT count(*) FROM sessrev.user_sessions('erin')}, q{SELECT count(*) FROM sessrev.active_sessions},
		q{SELECT count(*) FROM sessrev.sessions}, q{SELECT count(*) FROM sessrev.session_audit_log},
		qq{SELECT sessrev.extend_session('$e_id', interval '1 hour')}, qq{SELECT * FROM sessrev.rotate_token('$e_tok')},
		q{SELECT sessrev.jwt_issued_at('erin')}, q{SELECT * FROM sessrev.metrics()},
		qq{UPDATE sessrev.sessions SET revoked = true WHERE id = '$e_id'},
		qq{BEGIN; SELECT FROM sessrev.validate_session('$e_tok'); SELECT count(*) FROM sessrev.my_sessions(); COMMIT})
	{
		fails_with($w, $call, '55000', $refusal, "$name refuses: $call");
	}
	$w->safe_psql('postgres', 'SELECT sessrev.run_cleanup_now()');
	$w->poll_query_until('postgres', q{SELECT last_error LIKE 'skipped: %' FROM sessrev.worker_status()});
	like($w->safe_psql('postgres', 'SELECT last_error FROM sessrev.worker_status()'), qr/^skipped: .*Citus worker/,
		"$name: the cleanup worker skips, and says why");
}
# A forwarded check runs as the current role, on the coordinator too.
# Citus propagates roles, not grants on an extension's functions, and refuses
# them on a worker unless told not to propagate them: a profile is granted on
# every node so (README's Citus section).
on_coordinator(q{CREATE ROLE checker_login LOGIN; CREATE ROLE no_grant LOGIN; CREATE ROLE worker_only LOGIN;
	SELECT sessrev.grant_backend('checker_login')});
is(on_coordinator(q{SELECT string_agg(success::text, ',') FROM run_command_on_workers(
	$$SET citus.enable_ddl_propagation TO off; SELECT sessrev.grant_backend('checker_login');
	  SELECT sessrev.grant_backend('app_backend'); SELECT sessrev.grant_backend('worker_only')$$)}), 'true,true',
	'the backend profile is granted on the workers');
# One session, two roles: each check goes out as the role of the moment, and
# the coordinator checks that role's privileges again.
{
	my ($rc, $out, $err) = $workers[0]->psql('postgres', qq{\\set VERBOSITY verbose
		SET ROLE checker_login; SELECT sessrev.is_revoked('$e_tok');
		RESET ROLE; SET ROLE worker_only; SELECT sessrev.is_revoked('$e_tok')});
	is($out, 'f', 'a role granted the backend profile on both nodes checks on a worker');
	like($err, qr/ERROR:  42501: .*permission denied for schema sessrev/,
		'in the same session, a role granted it on the worker only is refused by the coordinator');
}
fails_with($workers[0], qq{SET ROLE no_grant; SELECT sessrev.is_revoked('$e_tok')}, '42501', qr/permission denied/,
	'a role without EXECUTE is refused on the worker');
fails_with($workers[0], qq{SET ROLE app_backend; SELECT sessrev.is_revoked('$e_tok')}, '08006',
	qr/could not ask the coordinator.*not permitted to log in/s,
	'a role that cannot log in to the coordinator (app_backend: NOLOGIN) gets an error, not an answer');

on_coordinator(q{CREATE TABLE public.orders (tenant int, item int); SELECT create_distributed_table('public.orders', 'tenant');
	INSERT INTO public.orders VALUES (5, 1)});
fails_with($coordinator, qq{SELECT sessrev.is_revoked('$e_tok'), o.item FROM public.orders o WHERE o.tenant = 5}, '55000',
	$refusal, 'a check that Citus sends to a worker with a distributed query is refused there');
is(on_coordinator(qq{SELECT sessrev.is_revoked('$e_tok')}), 'f', 'the same check in its own statement answers');
# The statement Citus sends may rename its connection; the name it started
# with still marks it, so the check after this transaction's own revocation
# is refused, not asked of the coordinator (which would not see it yet).
my (undef, $own_tok) = session('own');
fails_with($coordinator, qq{BEGIN; SELECT sessrev.revoke_token('$own_tok');
	SELECT set_config('application_name', 'renamed', false), o.item FROM public.orders o WHERE o.tenant = 5;
	SELECT sessrev.is_revoked('$own_tok'), o.item FROM public.orders o WHERE o.tenant = 5; COMMIT}, '55000', $refusal,
	"a check sent to a worker after its transaction's own revocation, the connection renamed, is refused");

# --- sessrev's tables cannot become Citus tables --------------------------------
for my $call (q{SELECT create_reference_table('sessrev.sessions')},
	q{SELECT create_distributed_table('sessrev.jwt_denylist', 'jti')},
	q{SELECT create_reference_table('sessrev.global_token_cutoff')},
	q{SELECT create_distributed_table('sessrev.user_token_cutoffs', 'user_id')})
{
	fails_with($coordinator, "SET citus.enable_unsafe_triggers = on; $call", '0A000', qr/cannot become a Citus table/,
		"refused: $call");
}
fails_with($coordinator, q{ALTER TABLE sessrev.global_token_cutoff RENAME TO global_token_cutoff_102999}, '0A000',
	qr/cannot become a Citus table/, 'renaming one of them as a shard is refused too');
is(on_coordinator(q{SELECT count(*) FROM pg_dist_partition WHERE logicalrelid::text LIKE 'sessrev.%'}), '0',
	'none of them is a Citus table');
is(answers($checker, $e_tok, 'erin'), 'false/1/false', 'checks still answer on the coordinator');

# --- What a forwarded check sends and reads back means the same bytes ----------
# A database owner sets the coordinator's client_encoding; the worker's
# session has its own time zone and date style.
on_coordinator(q{SELECT sessrev.revoke_jwt('jti-é', now() + interval '1 hour', 'é');
	SELECT sessrev.revoke_user_tokens_before('ü')});
my (undef, $accent_tok) = session('é');
my $expires = on_coordinator(qq{SELECT extract(epoch FROM expires_at) FROM sessrev.validate_session('$accent_tok')});
on_coordinator(q{ALTER DATABASE postgres SET client_encoding = 'LATIN1'});
is($workers[0]->safe_psql('postgres', qq{SET client_encoding = 'UTF8'; SET TimeZone = 'Asia/Kolkata'; SET DateStyle = 'SQL, DMY';
	SELECT sessrev.is_jwt_revoked('jti-é', NULL, now()) || ' ' || sessrev.is_jwt_revoked(NULL, 'ü', now() - interval '1 minute')
	       || ' ' || user_id || ' ' || extract(epoch FROM expires_at) FROM sessrev.validate_session('$accent_tok')}),
	"true true é $expires",
	'a non-ASCII jti, user cut-off and user id, and the expiry, read the same through the coordinator');
on_coordinator(q{ALTER DATABASE postgres RESET client_encoding});

# --- The emergency logout, last: its cut-off refuses every earlier JWT too ------
on_coordinator(revocation_sql('revoke_all_sessions'));
is(answers($checker, $e_tok, 'erin'), refused_answer('revoke_all_sessions'), 'revoke_all_sessions: refused by the next check');

# --- A worker whose metadata is removed falls back to group 0 ------------------
# It still holds shards, so statements reach it: it must not pass for the
# coordinator. A JWT revoked on the coordinator is the probe.
on_coordinator(q{SELECT sessrev.revoke_jwt('jti-probe', now() + interval '1 day', 'erin')});
on_coordinator(sprintf(q{SELECT stop_metadata_sync_to_node('%s', %d)}, $workers[1]->host, $workers[1]->port));
is($workers[1]->safe_psql('postgres', 'SELECT groupid FROM pg_dist_local_group'), '0',
	'worker2 without metadata is in group 0');
fails_with($workers[1], q{SELECT sessrev.is_jwt_revoked('jti-probe', 'erin', now())}, '55000',
	qr/not known to be on this node/, 'worker2 without metadata refuses checks');
my $refused_everywhere = 1;
for my $tenant (1 .. 20) {
	my ($rc, $out) = $coordinator->psql('postgres',
		"SELECT sessrev.is_jwt_revoked('jti-probe', 'erin', now()) FROM public.orders WHERE tenant = $tenant");
	$refused_everywhere = 0 if $rc == 0 && $out ne '' && $out ne 't';
}
ok($refused_everywhere, 'no check pushed to any worker answers the revoked jti as valid');
on_coordinator(sprintf(q{SELECT start_metadata_sync_to_node('%s', %d)}, $workers[1]->host, $workers[1]->port));
is($workers[1]->safe_psql('postgres', q{SELECT sessrev.is_jwt_revoked('jti-probe', 'erin', now())}), 't',
	'worker2 with its metadata back answers through the coordinator');

# --- Citus on a server that is no cluster's coordinator yet --------------------
my $lone = new_node('lone');
$lone->safe_psql('postgres', 'CREATE EXTENSION sessrev');
fails_with($lone, q{SELECT sessrev.is_revoked('x')}, '55000', qr/citus_set_coordinator_host/,
	'a Citus server not known as a coordinator refuses, and says what to run');
$lone->safe_psql('postgres', sprintf(q{SELECT citus_set_coordinator_host('%s', %d)}, $lone->host, $lone->port));
is($lone->safe_psql('postgres', q{SELECT sessrev.is_revoked('x')}), 't', 'once it is, it answers');
$lone->stop;

# --- A worker added later -------------------------------------------------------
my $late = new_node('worker3');
add_node($late);
is($late->safe_psql('postgres', q{SELECT extversion FROM pg_extension WHERE extname = 'sessrev'}), $default,
	'citus_add_node creates the extension on the new worker');
is($late->safe_psql('postgres', qq{SELECT sessrev.is_revoked('$e_tok')}), 't',
	'the new worker answers through the coordinator (erin was signed out by the emergency logout)');

# --- The coordinator down: a worker's check fails, never answers -------------
$_->quit for @worker_checkers;
$coordinator->stop;
fails_with($workers[0], qq{SELECT sessrev.is_revoked('$e_tok')}, '08006', qr/could not ask the coordinator/,
	"with the coordinator down, a worker's check is an error");
$coordinator->start;
is($workers[0]->safe_psql('postgres', qq{SELECT sessrev.is_revoked('$e_tok')}), 't',
	'once it is back, the same check answers');

# --- A forward interrupted midway leaves nothing behind -------------------------
# The coordinator's check waits behind an ACCESS EXCLUSIVE lock (a DBA's DDL);
# the worker's statement_timeout cancels it while its answer is unread; the
# next check in that session answers, on a new connection.
my $waiting = $workers[0]->background_psql('postgres', on_error_stop => 0);
$waiting->query_safe(qq{SELECT sessrev.is_revoked('$e_tok')});
my $holder = $coordinator->background_psql('postgres');
$holder->query_safe('BEGIN; LOCK TABLE sessrev.sessions IN ACCESS EXCLUSIVE MODE');
$waiting->query_safe(q{SET statement_timeout = '300ms'});
my (undef, $failed) = $waiting->query(qq{SELECT sessrev.is_revoked('$e_tok')});
ok($failed && $waiting->{stderr} =~ /canceling statement due to statement timeout/,
	"a forwarded check waiting on the coordinator is cancelled by the worker's statement_timeout")
  or diag($waiting->{stderr});
$waiting->{stderr} = '';
$holder->query_safe('COMMIT');
$holder->quit;
$waiting->query_safe(q{RESET statement_timeout});
my (undef, $fresh_tok) = session('fresh');
is($waiting->query_safe(qq{SELECT sessrev.is_revoked('$fresh_tok')}), 'f',
	"the next check in that session answers its own question (a live session), not the cancelled one's");
$waiting->quit;

# --- A kept connection that the coordinator closed -----------------------------
# Its backend terminated (as a restart or its idle_session_timeout would):
# the worker's next check reconnects once and answers.
my $kept = $workers[0]->background_psql('postgres');
is($kept->query_safe(qq{SELECT sessrev.is_revoked('$fresh_tok')}), 'f', 'a worker session checks');
is(on_coordinator(q{SELECT count(pg_terminate_backend(pid)) > 0 FROM pg_stat_activity
	WHERE application_name = 'sessrev_check_forwarding'}), 't', "the coordinator ends the worker's forwarding connections");
is($kept->query_safe(qq{SELECT sessrev.is_revoked('$fresh_tok')}), 'f', 'the next check in that session answers on a new one');
$kept->quit;

# --- The coordinator's connection slots: a cap per worker -----------------------
$workers[1]->append_conf('postgresql.conf', 'sessrev.max_forwarding_connections = 1');
$workers[1]->reload;
my $first = $workers[1]->background_psql('postgres');
is($first->query_safe(qq{SELECT sessrev.is_revoked('$fresh_tok')}), 'f', 'the first backend forwards');
fails_with($workers[1], qq{SELECT sessrev.is_revoked('$fresh_tok')}, '53300', qr/already hold a connection/,
	'a second one is refused past sessrev.max_forwarding_connections');
$first->quit;
$workers[1]->poll_query_until('postgres', qq{SELECT sessrev.is_revoked('$fresh_tok')}, 'f')
  or diag('the slot was not given back');
is($workers[1]->safe_psql('postgres', qq{SELECT sessrev.is_revoked('$fresh_tok')}), 'f',
	'once the first exits, another backend forwards');
is(on_coordinator(q{SELECT count(*) FROM pg_prepared_xacts}) . '/'
	  . join('/', map { $_->safe_psql('postgres', 'SELECT count(*) FROM pg_prepared_xacts') } (@workers, $late)),
	'0/0/0/0', "no prepared transaction of Citus's left on any node");

$checker->quit;

# --- A server that becomes a worker under a backend that judged it alone -------
# The backend resolved sessrev's tables before Citus was installed there, so
# it knew none of Citus's metadata tables; creating the extension makes every
# backend judge again, and once the node is a worker its checks go to the
# coordinator (here: a jti that only the coordinator's denylist holds).
my $convert = PostgreSQL::Test::Cluster->new('convert');
$convert->init;
$convert->append_conf('postgresql.conf', qq{shared_preload_libraries = 'citus,sessrev'
max_prepared_transactions = 20
sessrev.cleanup_interval = 0
citus.local_hostname = '} . $convert->host . "'\n");
$convert->start;
$convert->safe_psql('postgres', 'CREATE EXTENSION sessrev');
my $alone = $convert->background_psql('postgres', on_error_stop => 0);
is($alone->query_safe(q{SELECT sessrev.is_jwt_revoked('jti-convert', 'nobody', now())}), 'f',
	'a server without Citus answers from its own tables');
$convert->safe_psql('postgres', 'CREATE EXTENSION citus');
my (undef, $unconfirmed) = $alone->query(q{SELECT sessrev.is_jwt_revoked('jti-convert', 'nobody', now())});
ok($unconfirmed && $alone->{stderr} =~ /not known to be on this node/,
	'the same backend refuses once Citus is installed there and no coordinator is known')
  or diag($alone->{stderr});
$alone->{stderr} = '';
on_coordinator(q{SELECT sessrev.revoke_jwt('jti-convert', now() + interval '1 hour')});
add_node($convert);
is($alone->query_safe(q{SELECT sessrev.is_jwt_revoked('jti-convert', 'nobody', now())}), 't',
	"once it is a worker, the same backend's check is the coordinator's answer");
$alone->quit;
on_coordinator(sprintf(q{SELECT citus_remove_node('%s', %d)}, $convert->host, $convert->port));
$convert->stop;

# --- A sessrev table made a Citus table where sessrev was not loaded -------------
# Without sessrev preloaded, nothing refuses the shards; once it is loaded
# again, every check refuses rather than read the shell's stale rows.
my @all = ($coordinator, @workers, $late);
for my $node (@all) {
	$node->adjust_conf('postgresql.conf', 'shared_preload_libraries', q{'citus'});
	$node->restart;
}
on_coordinator(q{SET citus.enable_unsafe_triggers = on; SELECT create_reference_table('sessrev.jwt_denylist')});
for my $node (@all) {
	$node->adjust_conf('postgresql.conf', 'shared_preload_libraries', q{'citus,sessrev'});
	$node->restart;
}
for my $node (@all) {
	fails_with($node, qq{SELECT sessrev.is_revoked('$e_tok')}, '0A000', qr/sessrev\.jwt_denylist is a Citus reference/,
		$node->name . ': every check refuses once a sessrev table is a Citus table');
}
fails_with($coordinator, q{SELECT sessrev.is_jwt_revoked('jti-x', 'erin', now())}, '0A000', qr/is a Citus/,
	'is_jwt_revoked refuses on the coordinator too');
done_testing();
