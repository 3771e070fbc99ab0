# ALTER EXTENSION sessrev UPDATE from every older release gives what a fresh
# CREATE EXTENSION gives (same objects, definitions, comments and privileges),
# keeps every row and every answer, re-tracks user tables in the new form, and,
# preloaded, keeps the cache serving without a restart. A schema sessrev
# squatted by another role stops the upgrade and a fresh install.
# Generic: the versions come from the installed scripts and sessrev.control, so
# a later release only adds its upgrade script.
use strict;
use warnings;
use File::Basename qw(dirname);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $top = dirname(__FILE__) . '/../..';
open my $ctl, '<', "$top/sessrev.control" or die "sessrev.control: $!";
my ($default_version) = map { /^default_version\s*=\s*'([^']+)'/ ? $1 : () } <$ctl>;
close $ctl;
die 'no default_version in sessrev.control' unless $default_version;

# The application data an older release leaves behind, written with the 1.0
# API (which every release keeps).
my $populate = q{
	CREATE TABLE public.tokens (i int PRIMARY KEY, user_id text, session_id uuid, token text);
	CREATE TABLE public.users (id text PRIMARY KEY, pw text, role text, nickname text);
	INSERT INTO public.users SELECT 'user-' || i, 'secret', 'member', 'nick' FROM generate_series(0, 3) i;
	SELECT sessrev.track_user_table('users', 'id', '{pw}', '{role}');
	SELECT sessrev.revoke_all_sessions('before the test', 'tap');
	INSERT INTO public.tokens
	SELECT i, 'user-' || (i % 4), c.session_id, c.token
	  FROM generate_series(1, 20) i,
	       LATERAL sessrev.create_session('user-' || (i % 4), ip_address => '192.0.2.1',
	               user_agent => 'Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0', metadata => '{"n": 1}') c;
	SELECT sessrev.revoke_session(session_id, 'upgrade test', 'tap') FROM public.tokens WHERE i % 5 = 0;
	UPDATE public.tokens SET token = (SELECT r.token FROM sessrev.rotate_token(token) r) WHERE i = 1;
	SELECT sessrev.revoke_jwt('jti-denied', now() + interval '1 day', 'user-1', 'upgrade test', 'tap');
	SELECT sessrev.revoke_user_tokens_before('user-2', now());
};
my $answers = q{SELECT string_agg(sessrev.is_revoked(token)::text, ',' ORDER BY i) FROM public.tokens};
my $expected_answers = join ',', map { $_ % 5 == 0 ? 'true' : 'false' } 1 .. 20;

# count and md5 of every row of every table, over the columns it has now, and
# the audit sequence; applied after the update over the same columns.
sub digest_query {
	my ($node, $db) = @_;
	my @tables = split /\n/, $node->safe_psql($db, q{
		SELECT c.oid::regclass::text || '|' ||
		       string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum)
		  FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
		 WHERE c.relkind = 'r' AND c.relnamespace IN ('sessrev'::regnamespace, 'public'::regnamespace)
		 GROUP BY c.oid ORDER BY 1});
	my @parts;
	for (@tables) {
		my ($table, $columns) = split /\|/;
		push @parts, qq{SELECT '$table: ' || count(*) || ' ' || coalesce(md5(string_agg(r::text, E'\\n' ORDER BY r::text)), '-')
		                  FROM (SELECT $columns FROM $table) r};
	}
	push @parts, q{SELECT 'audit sequence: ' || last_value FROM sessrev.session_audit_log_id_seq};
	return "SELECT line FROM (\n" . join("\nUNION ALL\n", @parts) . "\n) d(line) ORDER BY 1";
}

# The dump of schema sessrev without what differs between two databases of
# one cluster anyway (the \restrict key, OIDs, relfrozenxid, LSNs, the
# audit sequence's position).
sub dump_of {
	my ($node, $db, @options) = @_;
	my ($stdout, $stderr);
	my $ok = IPC::Run::run(
		[ 'pg_dump', '--schema-only', '-n', 'sessrev', @options, '-d', $node->connstr($db) ],
		'>', \$stdout, '2>', \$stderr);
	die "pg_dump of $db failed: $stderr" unless $ok;
	my @kept;
	for my $line (split /\n/, $stdout) {
		next if $line =~ /^\\(un)?restrict /;
		next if $line =~ /^-- (Dumped|PostgreSQL database dump)/;
		next if $line =~ /^SET |pg_catalog\.set_config\('search_path'/;
		next if $line =~ /binary_upgrade_set_next_/;
		next if $line =~ /^SELECT pg_catalog\.setval\(/;    # data: compared with the rows
		next if $line =~ /^UPDATE pg_catalog\.pg_class$|^WHERE oid = /;    # relfrozenxid
		$line =~ s/('\{\d+(,\d+)*\}')/'{OIDS}'/g if $line =~ /binary_upgrade_create_empty_extension/;
		push @kept, $line;
	}
	return join("\n", @kept) . "\n";
}

# is() for long texts: on a difference, shows a diff rather than both texts.
my $scratch = PostgreSQL::Test::Utils::tempdir;
sub same_text {
	my ($got, $expected, $name) = @_;
	return pass($name) if $got eq $expected;
	open my $g, '>', "$scratch/got" or die;
	print $g $got;
	close $g;
	open my $e, '>', "$scratch/expected" or die;
	print $e $expected;
	close $e;
	my $diff = `diff -u $scratch/expected $scratch/got`;
	my @lines = split /\n/, $diff;
	splice @lines, 80 if @lines > 80;
	fail($name);
	diag(join "\n", @lines);
	return 0;
}

# Everything of the extension that a later release must rebuild alike: its
# members, the definition, comment and privileges of each function, and the
# tables whose rows pg_dump keeps.
my %catalog = (
	members => q{
		SELECT string_agg(pg_describe_object(classid, objid, objsubid), E'\n' ORDER BY 1)
		  FROM pg_depend
		 WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
		   AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'sessrev')},
	functions => q{
		SELECT string_agg(p.oid::regprocedure::text || E'\n' || pg_get_functiondef(p.oid)
		                  || E'\nACL ' || coalesce(p.proacl::text, 'default')
		                  || E'\nCOMMENT ' || coalesce(obj_description(p.oid, 'pg_proc'), 'none'),
		                  E'\n----\n' ORDER BY p.oid::regprocedure::text)
		  FROM pg_proc p WHERE p.pronamespace = 'sessrev'::regnamespace},
	config_tables => q{
		SELECT string_agg(c::regclass::text || ' ' || w, ', ' ORDER BY c::regclass::text)
		  FROM pg_extension e, unnest(e.extconfig, e.extcondition) AS u(c, w)
		 WHERE e.extname = 'sessrev'},
);

sub user_triggers {
	my ($node, $db) = @_;
	return $node->safe_psql($db, q{
		SELECT string_agg(t.tgname || ' ' || t.tgenabled::text || ' ' || ((t.tgtype & 32) <> 0) || ' '
		                  || replace(encode(t.tgargs, 'escape'), '\000', '|'), E'\n' ORDER BY t.tgname)
		  FROM pg_trigger t WHERE t.tgrelid = 'public.users'::regclass AND NOT t.tgisinternal});
}

# The triggers track_user_table('users', 'id', '{pw}', '{role}') installs now.
sub tracked_form {
	my ($node, $db) = @_;
	my ($id, $pw, $role) = split /\|/, $node->safe_psql($db, q{
		SELECT string_agg(attnum::text, '|' ORDER BY array_position('{id,pw,role}'::name[], attname))
		  FROM pg_attribute WHERE attrelid = 'public.users'::regclass AND attname IN ('id', 'pw', 'role')});
	return "sessrev_revoke_sessions A false $id|{$pw}|{$role}|\n"
	  . "sessrev_revoke_sessions_truncate A true $id|{$pw}|{$role}|";
}

for my $mode ('not preloaded', 'preloaded') {
	my $node = PostgreSQL::Test::Cluster->new($mode eq 'preloaded' ? 'upgrade_cached' : 'upgrade_direct');
	$node->init;
	$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'sessrev'
sessrev.cleanup_interval = 0
sessrev.cache_size = 10000
}) if $mode eq 'preloaded';
	$node->start;

	my @old_versions = split /\n/, $node->safe_psql('postgres', qq{
		SELECT version FROM pg_available_extension_versions
		 WHERE name = 'sessrev' AND version <> '$default_version'
		 ORDER BY string_to_array(version, '.')::int[]});
	ok(scalar(grep { $_ eq '1.0' } @old_versions), "$mode: release 1.0 is installable to upgrade from");

	$node->safe_psql('postgres', 'CREATE DATABASE b');
	$node->safe_psql('b', 'CREATE EXTENSION sessrev');
	# An application role granted validate_session by hand, here and in every
	# database below before its update: a grant the update must keep as the
	# DBA's (pg_dump dumps it), not take for the extension's.
	$node->safe_psql('postgres', 'CREATE ROLE hand_granted NOLOGIN');
	$node->safe_psql('b', q{
		GRANT USAGE ON SCHEMA sessrev TO hand_granted;
		GRANT EXECUTE ON FUNCTION sessrev.validate_session(text) TO hand_granted});
	is($node->safe_psql('b', q{SELECT extversion FROM pg_extension WHERE extname = 'sessrev'}),
		$default_version, "$mode: a fresh install is at default_version $default_version");
	my %fresh = map { $_ => $node->safe_psql('b', $catalog{$_}) } keys %catalog;
	my $fresh_dump = dump_of($node, 'b');
	my $fresh_full_dump = dump_of($node, 'b', '--binary-upgrade', '--extension=sessrev');
	like($fresh_full_dump, qr/(?=.*^CREATE TABLE sessrev\.sessions )(?=.*^CREATE FUNCTION sessrev\.validate_session\()/ms,
		"$mode: the --binary-upgrade dump holds the extension's members");

	for my $old (@old_versions) {
		my $db = 'a_' . ($old =~ s/\W/_/gr);
		my $what = "$mode, from $old";
		$node->safe_psql('postgres', "CREATE DATABASE $db");
		$node->safe_psql($db, "CREATE EXTENSION sessrev VERSION '$old'");
		$node->safe_psql($db, q{
			GRANT USAGE ON SCHEMA sessrev TO hand_granted;
			GRANT EXECUTE ON FUNCTION sessrev.validate_session(text) TO hand_granted});
		$node->safe_psql($db, $populate);
		my $digest = digest_query($node, $db);
		my $rows_before = $node->safe_psql($db, $digest);
		my $answers_before = $node->safe_psql($db, $answers);
		is($answers_before, $expected_answers, "$what: sessions answer as made before the update");
		like($rows_before, qr/sessrev\.jwt_denylist: 1 .*sessrev\.retired_tokens: 1 .*sessrev\.user_token_cutoffs: 1 /s,
			"$what: every table holds data before the update");

		# A connection opened before the update, which has cached a live token.
		my ($live_id, $live) = split /\|/, $node->safe_psql($db, 'SELECT session_id, token FROM public.tokens WHERE i = 2');
		my $checker = $node->background_psql($db);
		is($checker->query_safe("SELECT sessrev.is_revoked('$live')"), 'f', "$what: live token checked before the update");

		my ($ret, $out, $err) = $node->psql($db, 'ALTER EXTENSION sessrev UPDATE');
		is($ret, 0, "$what: ALTER EXTENSION sessrev UPDATE succeeds");
		unlike($err, qr/WARNING|ERROR/, "$what: the update warns of nothing");
		is($node->safe_psql($db, q{SELECT extversion FROM pg_extension WHERE extname = 'sessrev'}),
			$default_version, "$what: the update reaches default_version $default_version");

		# The same extension as a fresh install.
		same_text(dump_of($node, $db), $fresh_dump, "$what: pg_dump --schema-only -n sessrev equals a fresh install's");
		same_text(dump_of($node, $db, '--binary-upgrade', '--extension=sessrev'), $fresh_full_dump,
			"$what: the dump of every member (--binary-upgrade) equals a fresh install's");
		for my $part (sort keys %catalog) {
			same_text($node->safe_psql($db, $catalog{$part}), $fresh{$part}, "$what: $part equal a fresh install's");
		}

		# The same data and answers.
		is($node->safe_psql($db, $digest), $rows_before, "$what: every row survived the update");
		is($node->safe_psql($db, $answers), $answers_before, "$what: revoked sessions stay revoked, live ones live");
		my $third = $node->safe_psql($db, 'SELECT token FROM public.tokens WHERE i = 3');
		is($node->safe_psql($db, qq{
			SET ROLE hand_granted;
			SELECT string_agg(v.user_id, ',') FROM sessrev.validate_session('$third') v}), 'user-3',
			"$what: a role granted validate_session before the update still validates");
		like(scalar(`pg_dump --schema-only -d '@{[ $node->connstr($db) ]}'`),
			qr/^GRANT ALL ON FUNCTION sessrev\.validate_session\(token text\) TO hand_granted;$/m,
			"$what: pg_dump keeps that grant");
		is($node->safe_psql($db, q{SELECT sessrev.is_jwt_revoked('jti-denied', 'user-1', now())}), 't',
			"$what: the denylisted JWT is still revoked");
		is($node->safe_psql($db, q{SELECT sessrev.is_jwt_revoked('jti-other', 'user-3', now() + interval '1 second')}), 'f',
			"$what: another JWT issued now is not");
		is($node->safe_psql($db, q{SELECT sessrev.is_jwt_revoked(NULL, 'user-2', (SELECT not_before - interval '1 millisecond' FROM sessrev.user_token_cutoffs WHERE user_id = 'user-2'))}), 't',
			"$what: the user cut-off still revokes");

		# The tracked table is tracked in the new form: columns by number,
		# ALWAYS, with a TRUNCATE trigger.
		is(user_triggers($node, $db), tracked_form($node, $db),
			"$what: users is re-tracked: columns by number, ENABLE ALWAYS, a TRUNCATE trigger");
		$node->safe_psql($db, q{UPDATE public.users SET nickname = 'renamed' WHERE id = 'user-2'});
		$node->safe_psql($db, q{DELETE FROM public.users WHERE id = 'user-1'});
		$node->safe_psql($db, q{UPDATE public.users SET role = 'admin' WHERE id = 'user-3'});
		is($node->safe_psql($db, q{
			SELECT string_agg(DISTINCT user_id, ',' ORDER BY user_id) FROM public.tokens
			 WHERE i % 5 <> 0 AND sessrev.is_revoked(token)}), 'user-1,user-3',
			"$what: deleting a user or changing a privilege revokes that user's sessions, nothing else does");

		if ($mode eq 'preloaded') {
			# The cache keeps serving across the update, without a restart.
			my $hits = sub { $node->safe_psql($db, 'SELECT hits FROM sessrev.cache_stats()') };
			my $before = $hits->();
			is($checker->query_safe("SELECT sessrev.is_revoked('$live')"), 'f',
				"$what: the old connection still answers live after the update");
			is($checker->query_safe("SELECT sessrev.is_revoked('$live')"), 'f', "$what: and again");
			cmp_ok($hits->(), '>', $before, "$what: from the cache (hits grow)");
			is($node->safe_psql($db, 'SELECT enabled FROM sessrev.cache_stats()'), 't', "$what: the cache is on");
			$node->safe_psql($db, "SELECT sessrev.revoke_session('$live_id')");
			is($checker->query_safe("SELECT sessrev.is_revoked('$live')"), 't',
				"$what: a revocation after the update is seen at once by the connection that cached the token");
		}
		else {
			$node->safe_psql($db, "SELECT sessrev.revoke_session('$live_id')");
			is($checker->query_safe("SELECT sessrev.is_revoked('$live')"), 't',
				"$what: a revocation after the update is seen by an older connection");
		}
		$checker->quit;

		# A partitioned users table tracked by the old release (1.0 accepted
		# one; its partitions carry clones of the tracking trigger). Whether the
		# new release tracks it or refuses it with a warning, the update must
		# go through, and a deleted user must not keep live sessions silently.
		my $pdb = 'part_' . ($old =~ s/\W/_/gr);
		$node->safe_psql('postgres', "CREATE DATABASE $pdb");
		$node->safe_psql($pdb, "CREATE EXTENSION sessrev VERSION '$old'");
		# Releases since 1.1 refuse to track a partitioned table themselves.
		my ($refused) = $node->psql($pdb, q{
			CREATE TABLE public.probe (id text) PARTITION BY LIST (id);
			SELECT sessrev.track_user_table('probe', 'id')});
		$node->safe_psql($pdb, 'DROP TABLE public.probe');
		next if $refused != 0;
		$node->safe_psql($pdb, qq{
			CREATE TABLE public.users (id text, pw text, role text) PARTITION BY LIST (role);
			CREATE TABLE public.users_member PARTITION OF public.users FOR VALUES IN ('member');
			CREATE TABLE public.users_admin PARTITION OF public.users FOR VALUES IN ('admin');
			INSERT INTO public.users VALUES ('p-1', 'pw', 'member'), ('p-2', 'pw', 'admin');
			SELECT sessrev.track_user_table('users', 'id', '{pw}', '{role}');
			CREATE TABLE public.tokens AS
			SELECT u.id AS user_id, c.token FROM (VALUES ('p-1'), ('p-2')) u(id), LATERAL sessrev.create_session(u.id) c;
		});
		($ret, $out, $err) = $node->psql($pdb, 'ALTER EXTENSION sessrev UPDATE');
		is($ret, 0, "$what: the update succeeds with a tracked partitioned table") or diag($err);
	  SKIP: {
			skip "$what: the update failed, nothing to check", 1 if $ret != 0;
			my ($deleted) = $node->psql($pdb, q{DELETE FROM public.users WHERE id = 'p-1'});
			my $after = $node->safe_psql($pdb, q{
				SELECT string_agg(user_id || '=' || sessrev.is_revoked(token), ',' ORDER BY user_id) FROM public.tokens});
			ok($deleted != 0 || $after eq 'p-1=true,p-2=false',
				"$what: after it, deleting a user of the partitioned table revokes that user's sessions or is refused")
			  or diag("DELETE exited $deleted; sessions: $after");
		}
	}

	# Schema squatting: a role with CREATE on the database made schema sessrev
	# before the superuser installed 1.0 there (which 1.0 adopted).
	$node->safe_psql('postgres', q{
		CREATE ROLE squatter LOGIN;
		CREATE DATABASE squatted_old;
		CREATE DATABASE squatted_new;
		GRANT CREATE ON DATABASE squatted_old, squatted_new TO squatter;
	});
	for my $db ('squatted_old', 'squatted_new') {
		$node->safe_psql($db, 'CREATE SCHEMA sessrev', extra_params => [ '-U', 'squatter' ]);
	}
	$node->safe_psql('squatted_old', q{CREATE EXTENSION sessrev VERSION '1.0'});
	my ($ret, $out, $err) = $node->psql('squatted_old', "\\set VERBOSITY verbose\nALTER EXTENSION sessrev UPDATE");
	isnt($ret, 0, "$mode: upgrading 1.0 installed into a squatted schema fails");
	like($err, qr/ERROR:  42501: .*owned by role squatter/, "$mode: and names the schema's owner");
	is($node->safe_psql('squatted_old', q{SELECT extversion FROM pg_extension WHERE extname = 'sessrev'}), '1.0',
		"$mode: the squatted install stays at 1.0");

	($ret, $out, $err) = $node->psql('squatted_new', "\\set VERBOSITY verbose\nCREATE EXTENSION sessrev");
	isnt($ret, 0, "$mode: a fresh install into a squatted schema fails");
	like($err, qr/ERROR:  42501: .*owned by role squatter/, "$mode: with SQLSTATE 42501, naming the owner");
	is($node->safe_psql('squatted_new', q{
		SELECT (SELECT count(*) FROM pg_extension WHERE extname = 'sessrev') || '/' ||
		       (SELECT count(*) FROM pg_class WHERE relnamespace = 'sessrev'::regnamespace) || '/' ||
		       (SELECT count(*) FROM pg_proc WHERE pronamespace = 'sessrev'::regnamespace)}), '0/0/0',
		"$mode: and leaves no extension, table or function behind");

	$node->stop;
}

# The cleanup worker keeps working across the update, without a restart: it
# cleans the old release's catalogs, then the new one's, as the same process.
{
	my $node = PostgreSQL::Test::Cluster->new('upgrade_worker');
	$node->init;
	$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'sessrev'
sessrev.cleanup_interval = '1s'
});
	$node->start;
	my @old_versions = split /\n/, $node->safe_psql('postgres', qq{
		SELECT version FROM pg_available_extension_versions
		 WHERE name = 'sessrev' AND version <> '$default_version'
		 ORDER BY string_to_array(version, '.')::int[]});
	my $expired_rows = q{
		INSERT INTO sessrev.sessions (user_id, token_hash, created_at, expires_at)
		SELECT 'old', sessrev.hash_token(gen_random_uuid()::text), now() - interval '30 days',
		       now() - interval '10 days' FROM generate_series(1, 100)};
	my $cleaned = q{SELECT count(*) = 0 FROM sessrev.sessions};
	for my $old (@old_versions) {
		my $what = "worker, from $old";
		$node->safe_psql('postgres', "DROP EXTENSION IF EXISTS sessrev; CREATE EXTENSION sessrev VERSION '$old'");
		$node->safe_psql('postgres', $expired_rows);
		ok($node->poll_query_until('postgres', $cleaned), "$what: the worker cleans up under $old");
		my $pid = $node->safe_psql('postgres', 'SELECT pid FROM sessrev.worker_status()');
		like($pid, qr/^\d+$/, "$what: the worker runs");
		my $runs = $node->safe_psql('postgres', 'SELECT runs FROM sessrev.worker_status()');

		$node->safe_psql('postgres', 'ALTER EXTENSION sessrev UPDATE');
		$node->safe_psql('postgres', $expired_rows);
		ok($node->poll_query_until('postgres', $cleaned), "$what: the worker cleans up after the update");
		is($node->safe_psql('postgres', 'SELECT pid FROM sessrev.worker_status()'), $pid,
			"$what: the same worker process, not restarted");
		is($node->safe_psql('postgres', "SELECT runs > $runs AND last_error IS NULL FROM sessrev.worker_status()"), 't',
			"$what: its runs go on, with no error");
		is($node->safe_psql('postgres', q{
			SELECT count(*) FROM sessrev.session_audit_log
			 WHERE action = 'CLEANUP' AND actor = 'sessrev cleanup' AND (details->>'expired_deleted')::int = 100}), '2',
			"$what: a CLEANUP audit row for each batch, before and after the update");
	}
	unlike(slurp_file($node->logfile), qr/sessrev cleanup.*exited with exit code/, 'the worker never crashed');
	$node->stop;
}
done_testing();
