# Revocation is final (1.5, issue 24): the holes a third adversarial review
# found in 1.4.3, each tried as an attacker would with the documented grant
# profiles, and kept as tests. Each of them fails against 1.4.3.
#  1  a touch the worker skipped left the cache promising activity; the idle
#     session was then skipped by every revocation and revived by a touch
#  2  reuse detection rolled back with its caller (and did nothing read-only)
#  3  an end user's prepared (or open) transaction held every revocation up
#  4  forward_touch moved time backwards, and revived idle sessions
#  5  a database owner's settings stopped the worker; its error was wiped
#  6  a reader waited for a revocation (rotated-out token)
#  7  rows per end user were unbounded
#  8  an end user forged the audit actor
#  10 JWTs issued in the second of a cut-off were refused for good
# (Hole 9, upgrades held back by other roles' objects: 040_upgrade.pl.)
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = PostgreSQL::Test::Cluster->new('final');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'sessrev'
sessrev.cleanup_interval = 0
max_prepared_transactions = 5
});
$node->start;
sub sql { return $node->safe_psql('postgres', $_[0]); }
# The error message of a statement that must fail.
sub error_of {
	my ($sql, $db) = @_;
	my ($rc, $out, $err) = $node->psql($db // 'postgres', $sql);
	return $rc == 0 ? "(no error: $out)" : $err;
}
sql(q{CREATE EXTENSION sessrev;
	CREATE ROLE web_user LOGIN; SELECT sessrev.grant_end_user('web_user');
	CREATE ROLE web_backend LOGIN; SELECT sessrev.grant_backend('web_backend');
	CREATE ROLE forwarder LOGIN; SELECT sessrev.grant_touch_forwarder('forwarder');
	CREATE ROLE db_owner LOGIN; ALTER DATABASE postgres OWNER TO db_owner;});
$node->poll_query_until('postgres', 'SELECT pid IS NOT NULL FROM sessrev.worker_status()')
  or die 'the worker did not start';
# An end user's statements, as PostgREST runs them: SET ROLE to the end-user role.
sub as_user { return "SET ROLE web_user; $_[0]"; }
sub session {
	my ($user) = @_;
	return split /\|/, sql(qq{SELECT session_id || '|' || token FROM sessrev.create_session('$user')});
}
sub queue_drained {
	# The worker writes queued touches at least once a second.
	usleep(2_500_000);
}

# --- 1: a skipped touch forgets its promise; idle is final -------------------
sql(q{ALTER SYSTEM SET sessrev.idle_timeout = '6s'; SELECT pg_reload_conf()});
my ($idle_id, $idle_tok) = session('idle-user');
# Last active 4 s ago: a touch is due (every idle_timeout / 2), not yet idle.
sql(qq{UPDATE sessrev.sessions SET last_active_at = clock_timestamp() - interval '4 s' WHERE id = '$idle_id'});
my $holder = $node->background_psql('postgres');
$holder->query_safe(as_user(qq{BEGIN; SELECT count(*) FROM sessrev.validate_session('$idle_tok');
	SELECT FROM sessrev.rotate_token('$idle_tok')}));
is(sql(qq{SELECT count(*) FROM sessrev.validate_session('$idle_tok')}), '1',
	'(1) the session validates while its own user holds its row (the touch is queued)');
queue_drained();
$holder->query_safe('ROLLBACK');
$holder->quit;
# 4 s + 2.5 s: the table now says idle, since the worker could not write the touch.
is(sql(qq{SELECT sessrev.session_is_live(revoked, expires_at, last_active_at) FROM sessrev.sessions
           WHERE id = '$idle_id'}), 'f', '(1) the table says idle: the worker skipped the held row');
is(sql(qq{SELECT sessrev.is_revoked('$idle_tok')}), 't',
	'(1) is_revoked agrees with the table (no cached promise of the skipped touch)');
is(sql(qq{SELECT count(*) FROM sessrev.validate_session('$idle_tok')}), '0',
	'(1) validate_session agrees with the table');
is(sql(qq{SELECT sessrev.revoke_session('$idle_id', 'Admin action', 'admin')}), 't',
	'(1) an administrator\'s revocation takes the idle session');
like(error_of(qq{UPDATE sessrev.sessions SET revoked = false, revoked_at = NULL, last_active_at = now()
                  WHERE id = '$idle_id'}), qr/final/, '(1) no update makes it live again');
is(sql(qq{SELECT sessrev.touch_session('$idle_id', now(), now())}), '', '(1) a touch of it answers gone');
sql(q{ALTER SYSTEM RESET sessrev.idle_timeout; SELECT pg_reload_conf()});

# An idle session that was never revoked stays dead for every writer.
sql(q{SET sessrev.idle_timeout = '1h'});
my ($idle2_id, $idle2_tok) = session('idle-user-2');
sql(qq{UPDATE sessrev.sessions SET last_active_at = now() - interval '2 h' WHERE id = '$idle2_id'});
is(sql(qq{SET sessrev.idle_timeout = '1h';
	SELECT sessrev.extend_session('$idle2_id', '1 day') IS NULL,
	       (SELECT count(*) FROM sessrev.rotate_token('$idle2_tok')),
	       sessrev.touch_session('$idle2_id', now(), now()) IS NULL}), 't|0|t',
	'(1) extend_session, rotate_token and touch_session leave an idle session dead');

# --- 2: reuse detection commits whatever the caller does ----------------------
sql(q{ALTER SYSTEM SET sessrev.reuse_interval = 0; SELECT pg_reload_conf()});
for my $how ('ROLLBACK', 'READ ONLY') {
	my ($rid, $rtok) = session("reuse-$how");
	my $new = sql(as_user(qq{SELECT token FROM sessrev.rotate_token('$rtok')}));
	sql(qq{UPDATE sessrev.retired_tokens SET retired_at = now() - interval '1 s' WHERE session_id = '$rid'});
	my $begin = $how eq 'READ ONLY' ? 'BEGIN READ ONLY' : 'BEGIN';
	# The PostgREST pre-request function raises on an invalid token: its transaction rolls back.
	sql(as_user(qq{$begin; SELECT count(*) FROM sessrev.validate_session('$rtok'); ROLLBACK}));
	ok($node->poll_query_until('postgres', qq{SELECT sessrev.is_revoked('$new')}),
		"(2) a rotated-out token presented after reuse_interval revokes the session ($how)");
	is(sql(qq{SELECT count(*) FROM sessrev.session_audit_log WHERE session_id = '$rid' AND action = 'TOKEN_REUSE'}),
		'1', "(2) and one TOKEN_REUSE row stays ($how)");
	sql(as_user(qq{SELECT count(*) FROM sessrev.validate_session('$rtok')}));
	usleep(1_500_000);
	is(sql(qq{SELECT count(*) FROM sessrev.session_audit_log WHERE session_id = '$rid' AND action = 'TOKEN_REUSE'}),
		'1', "(2) presented again, no second TOKEN_REUSE row ($how)");
}
sql(q{ALTER SYSTEM RESET sessrev.reuse_interval; SELECT pg_reload_conf()});

# --- 3: no end user holds a revocation up -------------------------------------
sql(q{CREATE TABLE app_users (id text PRIMARY KEY, password_hash text);
	INSERT INTO app_users VALUES ('prepared-user', 'x'), ('open-user', 'x');
	SELECT sessrev.track_user_table('app_users', 'id', '{password_hash}')});
my ($p1_id, $p1_tok) = session('prepared-user');
my ($p2_id, $p2_tok) = session('prepared-user');
my ($p3_id, $p3_tok) = session('prepared-user');
sql(as_user(qq{BEGIN; SELECT count(*) FROM sessrev.validate_session('$p1_tok');
	SELECT sessrev.revoke_my_other_sessions(); SELECT FROM sessrev.rotate_token('$p1_tok');
	PREPARE TRANSACTION 'end_user_holds'}));
$node->restart;
my $fast = q{SET lock_timeout = '3s'; SET statement_timeout = '10s';};
is(sql(qq{$fast SELECT sessrev.revoke_token('$p1_tok', 'Forced logout', 'admin')}), 't',
	'(3) revoke_token of a session an end user\'s prepared transaction holds does not wait');
is(sql(qq{SELECT sessrev.is_revoked('$p1_tok')}), 't', '(3) and the session is refused at once');
is(sql(qq{$fast SELECT sessrev.revoke_user_sessions('prepared-user', 'Admin action', 'admin')}), '2',
	'(3) revoke_user_sessions does not wait either (the two other sessions, held too)');
is(sql(qq{SELECT sessrev.is_revoked('$p2_tok')::text || sessrev.is_revoked('$p3_tok')::text}), 'truetrue',
	'(3) and they are refused at once');
my ($l_id, $l_tok) = session('login-meanwhile');
is(sql(qq{SELECT sessrev.is_revoked('$l_tok')}), 'f', '(3) logins go on meanwhile');
is(sql(qq{$fast UPDATE app_users SET password_hash = 'y' WHERE id = 'prepared-user' RETURNING id}), 'prepared-user',
	'(3) a password change of a tracked users table does not wait either');
sql('COMMIT PREPARED \'end_user_holds\'');
is(sql(qq{SELECT count(*) FROM sessrev.sessions WHERE id = '$p1_id' AND token_hash <> sessrev.hash_token('$p1_tok')}),
	'1', '(3) the prepared rotation committed');
is(sql(qq{SELECT sessrev.is_revoked('$p1_id'::uuid)}), 't',
	'(3) and the session it rotated stays revoked (the revocation was recorded apart)');
sql('SELECT sessrev.apply_pending_revocations()');
is(sql(qq{SELECT string_agg(revoked::text, ',' ORDER BY id) FROM sessrev.sessions WHERE user_id = 'prepared-user'}),
	'true,true,true', '(3) once the rows are free, the pending revocations are folded into them');
is(sql('SELECT count(*) FROM sessrev.pending_revocations WHERE session_id IS NOT NULL'), '0',
	'(3) and no pending session revocation is left');

# An idle-in-transaction end user holding its row: the emergency logout does
# not wait, and no login waits for it.
my ($o_id, $o_tok) = session('open-user');
my $open = $node->background_psql('postgres');
$open->query_safe(as_user(qq{BEGIN; SELECT FROM sessrev.rotate_token('$o_tok')}));
is(sql(qq{$fast SELECT sessrev.revoke_all_sessions('Drill', 'admin') IS NULL}), 't',
	'(3) revoke_all_sessions does not wait');
is(sql(qq{SELECT sessrev.is_revoked('$o_tok')::text || sessrev.is_revoked('$l_tok')::text}), 'truetrue',
	'(3) and every earlier session is refused at once');
my ($after_id, $after_tok) = session('after-user');
is(sql(qq{SELECT sessrev.is_revoked('$after_tok')}), 'f', '(3) a login after it is live');
$open->query_safe('COMMIT');
$open->quit;
is(sql(qq{SELECT sessrev.is_revoked('$o_id'::uuid)}), 't', '(3) the end user\'s rotation did not revive its session');

# A rotation left open while an administrator revokes: the new token, cached
# at the rotation's commit, must not be served live (the revocation committed
# first, recorded apart); nor after the emergency logout.
for my $how ('revoke_session', 'revoke_all_sessions') {
	my ($r_id, $r_tok) = session("rotating-$how");
	my $rotator = $node->background_psql('postgres');
	my $r_new = $rotator->query_safe(as_user(qq{BEGIN; SELECT token FROM sessrev.rotate_token('$r_tok')}));
	$r_new =~ s/.*\n//s;
	sql($how eq 'revoke_session' ? qq{$fast SELECT sessrev.revoke_session('$r_id')}
	                             : qq{$fast SELECT sessrev.revoke_all_sessions()});
	$rotator->query_safe('COMMIT');
	$rotator->quit;
	is(sql(qq{SELECT sessrev.is_revoked('$r_new')::text || (SELECT count(*) FROM sessrev.validate_session('$r_new'))
	          || sessrev.is_revoked('$r_new')::text}), 'true0true',
		"(3) a rotation committed after $how is not cached live");
}

# A transaction opened while the session was live cannot revive it once it
# is dead by the clock.
sql(q{ALTER SYSTEM SET sessrev.idle_timeout = '4s'; SELECT pg_reload_conf()});
my ($lt_id, $lt_tok) = session('long-transaction');
# Last active 3 s ago: live when the transaction starts, idle 1 s later; a
# rotation 2 s later would make it active as of the transaction's start.
sql(qq{UPDATE sessrev.sessions SET last_active_at = clock_timestamp() - interval '3 s' WHERE id = '$lt_id'});
my $long = $node->background_psql('postgres', on_error_stop => 0);
$long->query_safe(as_user(q{BEGIN; SELECT 1}));
sleep 2;
my $rotated_late = $long->query(qq{SELECT count(*) FROM sessrev.rotate_token('$lt_tok')});
$long->query('ROLLBACK');
$long->quit;
sql(q{ALTER SYSTEM RESET sessrev.idle_timeout; SELECT pg_reload_conf()});
isnt($rotated_late, '1', '(3) a rotation in a transaction opened before the session went idle does not revive it');
is(sql(qq{SELECT count(*) FROM sessrev.sessions WHERE id = '$lt_id' AND token_hash = sessrev.hash_token('$lt_tok')}),
	'1', '(3) the idle session keeps its token');

# An open end-user transaction holding the user's JWT cut-off row.
my $jwt_holder = $node->background_psql('postgres');
my ($j_id, $j_tok) = session('jwt-holder');
$jwt_holder->query_safe(as_user(qq{BEGIN; SELECT count(*) FROM sessrev.validate_session('$j_tok');
	SELECT sessrev.revoke_my_other_sessions()}));
is(sql(qq{$fast SELECT sessrev.revoke_user_sessions('jwt-holder', 'Admin action', 'admin')}), '1',
	'(3) revoke_user_sessions does not wait for an open transaction holding the user\'s JWT cut-off');
is(sql(q{SELECT sessrev.is_jwt_revoked(NULL, 'jwt-holder', now() - interval '1 s')}), 't',
	'(3) and the user\'s earlier JWTs are refused at once');
$jwt_holder->query_safe('ROLLBACK');
$jwt_holder->quit;

# --- 4: forward_touch within its grant ----------------------------------------
my ($f_id, $f_tok) = session('forwarded-user');
my $before = sql(qq{SELECT last_active_at FROM sessrev.sessions WHERE id = '$f_id'});
like(error_of(qq{SELECT sessrev.forward_touch('$f_id', '-infinity', now())}, 'postgres'), qr/permission denied|finite/,
	'(4) a non-finite time is refused');
$node->psql('postgres', qq{SET ROLE forwarder; SELECT sessrev.forward_touch('$f_id', '-infinity', now())});
$node->psql('postgres', qq{SET ROLE forwarder; SELECT sessrev.forward_touch('$f_id', '1999-01-01', '1999-01-01')});
is(sql(qq{SELECT last_active_at FROM sessrev.sessions WHERE id = '$f_id'}), $before,
	'(4) the forwarder cannot move last_active_at backwards');
sql(qq{UPDATE sessrev.sessions SET last_active_at = now() - interval '2 h' WHERE id = '$f_id'});
is(sql(qq{SET sessrev.idle_timeout = '1h'; SET ROLE forwarder; SELECT sessrev.forward_touch('$f_id', now(), now())}),
	'f', '(4) the forwarder cannot revive an idle session');
is(sql(qq{SET sessrev.idle_timeout = '1h'; SELECT sessrev.is_revoked('$f_tok')}), 't', '(4) which stays idle');
like(error_of(qq{SET ROLE forwarder; SELECT sessrev.forward_touch('$f_id', 'infinity', now())}), qr/finite/,
	'(4) forward_touch refuses a non-finite time with a clear error');

# --- 5: the worker's environment is its own -----------------------------------
# A node whose worker serves database app, owned by an ordinary role that
# attaches every class of setting to it at once.
my $env = PostgreSQL::Test::Cluster->new('worker_env');
$env->init;
$env->append_conf('postgresql.conf', q{
shared_preload_libraries = 'sessrev'
sessrev.database = 'app'
sessrev.cleanup_interval = '1s'
});
$env->start;
$env->safe_psql('postgres', q{CREATE ROLE app_owner LOGIN; CREATE DATABASE app OWNER app_owner});
$env->safe_psql('app', q{CREATE EXTENSION sessrev});
$env->restart;  # the worker connects to app at once, rather than after its back-off
$env->poll_query_until('app', 'SELECT runs > 0 FROM sessrev.worker_status()') or die 'the worker did not run';
my $su = $env->safe_psql('postgres', 'SELECT rolname FROM pg_roles WHERE oid = 10');
my @settings = ("session_authorization = 'app_owner'", "role = 'app_owner'", 'default_transaction_read_only = on',
	"default_transaction_isolation = 'serializable'", "statement_timeout = '1ms'", "lock_timeout = '1ms'",
	"search_path = 'evil'", "temp_buffers = '800kB'", "plpgsql.extra_errors = 'all'",
	"work_mem = '64kB'", "enable_indexscan = off");
# plpgsql's settings are the owner's to attach once plpgsql is loaded (a DO block).
$env->safe_psql('app', 'SET ROLE app_owner; DO $$BEGIN END$$; ' . join('; ', map { "ALTER DATABASE app SET $_" } @settings));
{
	# Its own statement_timeout lifted (a connection option outranks the
	# database's 1 ms, which a loaded machine can exceed even here).
	local $ENV{PGOPTIONS} = '-c statement_timeout=0';
	is($env->safe_psql('app', 'SELECT current_user, current_setting(\'default_transaction_read_only\')'), 'app_owner|on',
		'(5) control: a new connection to app runs under the owner\'s settings');
}
$env->safe_psql('postgres', q{SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'sessrev cleanup'});
$env->poll_query_until('postgres',
	q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'sessrev cleanup' AND backend_start > now() - interval '1 min'})
  or die 'the worker did not come back';
# Checks from database postgres: app's settings do not reach them.
$env->safe_psql('postgres', 'CREATE EXTENSION sessrev');
my $runs = $env->safe_psql('postgres', 'SELECT runs FROM sessrev.worker_status()');
ok($env->poll_query_until('postgres', "SELECT runs > $runs + 1 AND last_error IS NULL FROM sessrev.worker_status()"),
	'(5) under session_authorization, role, read-only, isolation, timeout, search_path, temp_buffers, plpgsql '
	. 'and planner settings '
	. 'of the database, the worker still cleans up');
# A touch made in app (the worker's database) is written.
my ($e_id, $e_tok) = split /\|/, $env->safe_psql('app', qq{SET statement_timeout = 0; SET SESSION AUTHORIZATION $su; SET ROLE NONE; SET default_transaction_read_only = off;
	BEGIN READ WRITE; SELECT session_id || '|' || token FROM sessrev.create_session('env-user'); COMMIT});
$env->safe_psql('app', qq{SET statement_timeout = 0; SET SESSION AUTHORIZATION $su; SET ROLE NONE; BEGIN READ WRITE;
	UPDATE sessrev.sessions SET last_active_at = now() - interval '2 h' WHERE id = '$e_id'; COMMIT});
$env->safe_psql('app', qq{SET statement_timeout = 0; SET SESSION AUTHORIZATION $su; SET ROLE NONE; SELECT count(*) FROM sessrev.validate_session('$e_tok')});
# Polled by hand: app's settings (a role without rights there, a 1 ms
# timeout) must be undone by each check first.
my $touched = 'f';
for (1 .. 100) {
	$touched = $env->safe_psql('app', qq{SET statement_timeout = 0; SET SESSION AUTHORIZATION $su; SET ROLE NONE;
		SELECT last_active_at > now() - interval '1 minute' FROM sessrev.sessions WHERE id = '$e_id'});
	last if $touched eq 't';
	usleep(100_000);
}
is($touched, 't', '(5) and writes the touches queued there');
# A failure stays visible until the worker succeeds again, across its restart.
$env->safe_psql('postgres', q{ALTER SYSTEM SET sessrev.cleanup_interval = '1h'; SELECT pg_reload_conf()});
my $lock_holder = $env->background_psql('app');
$lock_holder->query_safe(qq{SET statement_timeout = 0; SET SESSION AUTHORIZATION $su; SET ROLE NONE; BEGIN READ WRITE;
	SELECT sessrev.cleanup_expired_sessions()});
$env->safe_psql('postgres', q{SELECT sessrev.run_cleanup_now()});
$env->safe_psql('app', qq{SET statement_timeout = 0; SET SESSION AUTHORIZATION $su; SET ROLE NONE; SELECT sessrev.run_cleanup_now()});
ok($env->poll_query_until('postgres', q{SELECT last_error LIKE 'skipped%' FROM sessrev.worker_status()}),
	'(5) a skipped cleanup is reported in worker_status()');
$env->safe_psql('postgres', q{SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'sessrev cleanup'});
sleep 1;
$env->poll_query_until('postgres', q{SELECT pid IS NOT NULL FROM sessrev.worker_status()})
  or die 'the worker did not come back';
like($env->safe_psql('postgres', 'SELECT last_error FROM sessrev.worker_status()'), qr/^skipped/,
	'(5) and the report survives the worker\'s restart');
$lock_holder->query_safe('COMMIT');
$lock_holder->quit;
$env->stop;

# --- 6: readers never wait ------------------------------------------------------
# A rotated-out token, within reuse_interval (requests in flight) and after it
# (reuse: its session is to be revoked), presented while another transaction
# holds a revocation of that session open.
for my $after (0, 1) {
	my ($w_id, $w_tok) = session("waiting-user-$after");
	my $w_new = sql(qq{SELECT token FROM sessrev.rotate_token('$w_tok')});
	sql(qq{UPDATE sessrev.retired_tokens SET retired_at = now() - interval '1 min' WHERE session_id = '$w_id'})
	  if $after;
	my $revoker = $node->background_psql('postgres');
	$revoker->query_safe(qq{BEGIN; SELECT sessrev.revoke_session('$w_id')});
	my $start = time;
	my $what = $after ? 'after reuse_interval' : 'within reuse_interval';
	is(sql(qq{SET lock_timeout = '2s'; SELECT count(*) FROM sessrev.validate_session('$w_tok')}), $after ? '0' : '1',
		"(6) a rotated-out token $what is answered while a revocation of its session is open");
	cmp_ok(time - $start, '<', 1.5, "(6) without waiting for the revocation ($what)");
	$revoker->query_safe('COMMIT');
	$revoker->quit;
	is(sql(qq{SELECT count(*) FROM sessrev.validate_session('$w_tok')}), '0',
		"(6) and is refused once the revocation commits ($what)");
}

# --- 7: bounded rows per session -----------------------------------------------
my ($b_id, $b_tok) = session('bounded-user');
my $tok = $b_tok;
for my $i (1 .. 10) { $tok = sql(as_user(qq{SELECT token FROM sessrev.rotate_token('$tok')})); }
like(error_of(as_user(qq{SELECT token FROM sessrev.rotate_token('$tok')})), qr/rotated its token 10 times/,
	'(7) an 11th rotation within a minute is refused');
is(sql(qq{SELECT count(*) FROM sessrev.retired_tokens WHERE session_id = '$b_id'}), '10',
	'(7) at most sessrev.max_retired_tokens rotated-out tokens are kept per session');
for my $i (1 .. 10) {
	sql(as_user(qq{BEGIN; SELECT count(*) FROM sessrev.validate_session('$tok');
		SELECT sessrev.revoke_my_other_sessions(); COMMIT}));
}
like(error_of(as_user(qq{BEGIN; SELECT count(*) FROM sessrev.validate_session('$tok');
		SELECT sessrev.revoke_my_other_sessions(); COMMIT})),
	qr/signed out other devices 10 times/, '(7) an 11th sign-out of other devices within a minute is refused');
is(sql(q{SELECT count(*) FROM sessrev.session_audit_log WHERE user_id = 'bounded-user' AND action = 'REVOKE_ALL_USER'}),
	'0', '(7) a sign-out of other devices that revoked nothing writes no summary row');

# --- 8: the audit log says who --------------------------------------------------
my ($a_id, $a_tok) = session('audited-user');
like(error_of(as_user(qq{SELECT sessrev.revoke_token('$a_tok', 'Forced logout', 'security-team')})),
	qr/revoked_by may be given only/, '(8) an end user cannot name the audit actor');
is($node->safe_psql('postgres', qq{SELECT sessrev.revoke_token('$a_tok')}, extra_params => ['-U', 'web_user']), 't',
	'(8) an end user logs out (connected as web_user)');
is(sql(qq{SELECT actor || ' as ' || db_role FROM sessrev.session_audit_log
           WHERE session_id = '$a_id' AND action = 'SESSION_REVOKED'}), 'audited-user as web_user',
	'(8) the audit row names the session\'s user as actor and the database role apart');
my ($a2_id, $a2_tok) = session('audited-user');
is($node->safe_psql('postgres', qq{SELECT sessrev.revoke_token('$a2_tok', 'Forced logout', 'security-team')},
	extra_params => ['-U', 'web_backend']), 't', '(8) a backend names the actor');
is(sql(qq{SELECT actor || ' as ' || db_role FROM sessrev.session_audit_log
           WHERE session_id = '$a2_id' AND action = 'SESSION_REVOKED'}), 'security-team as web_backend',
	'(8) and the audit row says so, with the database role');

# --- 10: JWTs issued in the second of a cut-off ------------------------------
# A token issued before the cut-off (its iat is whole seconds), then the logout
# everywhere, then the login straight after it (jwt_issued_at waits for the
# next second: 1.6), then a second cut-off at once, which must refuse that
# token too (1.5 gave it the next second as iat, which such a cut-off in the
# same second left valid).
my ($refused_before, $accepted_after, $refused_by_next) = (0, 0, 0);
my $waited = 0;
for my $i (1 .. 10) {
	my $old_iat = sql(q{SELECT floor(extract(epoch FROM clock_timestamp()))::bigint});
	sql(q{SELECT sessrev.revoke_user_tokens_before('jwt-cycle')});
	my $start = time;
	my $iat = sql(q{SELECT sessrev.jwt_issued_at('jwt-cycle')});
	$waited = time - $start if time - $start > $waited;
	$refused_before++ if sql(qq{SELECT sessrev.is_jwt_revoked(NULL, 'jwt-cycle', to_timestamp($old_iat))}) eq 't';
	$accepted_after++ if sql(qq{SELECT sessrev.is_jwt_revoked(NULL, 'jwt-cycle', to_timestamp($iat))}) eq 'f';
	cmp_ok($iat, '<=', sql(q{SELECT floor(extract(epoch FROM clock_timestamp()))::bigint}),
		"(10) cycle $i: the iat is not later than the clock") if $i == 1;
	sql(q{SELECT sessrev.revoke_user_tokens_before('jwt-cycle')});
	$refused_by_next++ if sql(qq{SELECT sessrev.is_jwt_revoked(NULL, 'jwt-cycle', to_timestamp($iat))}) eq 't';
}
is($refused_before, 10, '(10) 10 cycles: every token issued before the cut-off is refused');
is($accepted_after, 10, '(10) 10 cycles: every token issued with jwt_issued_at after it is accepted');
is($refused_by_next, 10, '(10) 10 cycles: and refused by the next cut-off, made at once');
cmp_ok($waited, '<', 1.5, sprintf('(10) jwt_issued_at waited at most %.2f s', $waited));

# Everyone's cut-off: the same.
sql(q{SELECT sessrev.revoke_all_sessions()});
my $g_iat = sql(q{SELECT sessrev.jwt_issued_at('jwt-global')});
is(sql(qq{SELECT sessrev.is_jwt_revoked(NULL, 'jwt-global', to_timestamp($g_iat))}), 'f',
	'(10) a token issued with jwt_issued_at after an emergency logout is accepted');
sql(q{SELECT sessrev.revoke_all_sessions()});
is(sql(qq{SELECT sessrev.is_jwt_revoked(NULL, 'jwt-global', to_timestamp($g_iat))}), 't',
	'(10) and refused by the next emergency logout, made at once');

# --- The 1.5 library serves a database not yet updated to SQL 1.5 -------------
my $old_sql = PostgreSQL::Test::Cluster->new('old_sql');
$old_sql->init;
$old_sql->append_conf('postgresql.conf', q{
shared_preload_libraries = 'sessrev'
sessrev.cleanup_interval = 0
});
$old_sql->start;
$old_sql->safe_psql('postgres', q{CREATE EXTENSION sessrev VERSION '1.4'});
$old_sql->poll_query_until('postgres', 'SELECT pid IS NOT NULL FROM sessrev.worker_status()')
  or die 'the worker did not start';
my ($o4_id, $o4_tok) = split /\|/, $old_sql->safe_psql('postgres',
	q{SELECT session_id || '|' || token FROM sessrev.create_session('sql-1.4-user')});
$old_sql->safe_psql('postgres',
	qq{UPDATE sessrev.sessions SET last_active_at = now() - interval '2 h' WHERE id = '$o4_id'});
$old_sql->safe_psql('postgres', qq{SELECT count(*) FROM sessrev.validate_session('$o4_tok')});
ok($old_sql->poll_query_until('postgres',
	qq{SELECT last_active_at > now() - interval '1 minute' FROM sessrev.sessions WHERE id = '$o4_id'}),
	'(SQL 1.4) the worker writes touches in a database still at SQL 1.4');
is($old_sql->safe_psql('postgres', 'SELECT last_error IS NULL FROM sessrev.worker_status()'), 't',
	'(SQL 1.4) without an error');
is($old_sql->safe_psql('postgres', qq{SELECT sessrev.revoke_session('$o4_id')::text || sessrev.is_revoked('$o4_tok')::text}),
	'truetrue', '(SQL 1.4) revocations work as in 1.4');
$old_sql->stop;

$node->stop;
done_testing();
