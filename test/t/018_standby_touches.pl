# Touches made on a hot standby reach the primary (sessrev.primary_conninfo):
# validate_session on the standby answers a session whose touch is due, and
# its standby's worker sends the touch to the primary, once for many requests;
# the primary's sessrev.forward_touch keeps to the touch rules (never past its
# now(), never on a revoked session) and grants nothing else to the
# forwarder's role; an unreachable primary costs a WARNING, never a request.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf', "shared_preload_libraries = 'sessrev'\nsessrev.cleanup_interval = 0\n");
$primary->start;
$primary->safe_psql('postgres', q{
	CREATE EXTENSION sessrev;
	CREATE ROLE forwarder LOGIN;
	SELECT sessrev.grant_touch_forwarder('forwarder');
	CREATE ROLE nobody LOGIN;
	-- Every write that moves last_active_at forward, as the primary sees it.
	CREATE TABLE touch_log (session_id uuid);
	CREATE FUNCTION log_touch() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		IF NEW.last_active_at > OLD.last_active_at THEN
			INSERT INTO public.touch_log VALUES (NEW.id);
		END IF;
		RETURN NULL;
	END $$;
	CREATE TRIGGER test_touch_log AFTER UPDATE ON sessrev.sessions
		FOR EACH ROW EXECUTE FUNCTION log_touch();});
$primary->backup('backup');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'backup', has_streaming => 1);
$standby->append_conf('postgresql.conf',
	"sessrev.primary_conninfo = 'host=" . $primary->host . ' port=' . $primary->port . " dbname=postgres user=forwarder'\n");
$standby->start;

sub on_primary { return $primary->safe_psql('postgres', $_[0]); }
sub replayed { $primary->wait_for_catchup($standby, 'replay'); }

# A session last active two hours ago: its touch is due on every request.
sub due_session {
	my ($user) = @_;
	my ($id, $token) = split /\|/,
	  on_primary(qq{SELECT session_id || '|' || token FROM sessrev.create_session('$user')});
	on_primary(qq{UPDATE sessrev.sessions SET last_active_at = now() - interval '2 hours' WHERE id = '$id'});
	replayed();
	return ($id, $token);
}
sub touched_on_primary {
	my ($id) = @_;
	return $primary->poll_query_until('postgres',
		qq{SELECT last_active_at > now() - interval '1 minute' FROM sessrev.sessions WHERE id = '$id'});
}

{
	my ($id, $token) = due_session('u-touch');
	is($standby->safe_psql('postgres', qq{SELECT user_id FROM sessrev.validate_session('$token')}), 'u-touch',
		'the standby answers a session whose touch is due');
	ok(touched_on_primary($id), "the standby's touch reaches the primary");
}

{
	my ($id, $token) = due_session('u-many');
	$standby->safe_psql('postgres', qq{SELECT count(*) FROM generate_series(1, 50) i,
		LATERAL (SELECT * FROM sessrev.validate_session('$token')) v}) for 1 .. 4;
	ok(touched_on_primary($id), '200 requests of one due session on the standby touch it on the primary');
	sleep 3;    # the worker's next batches, had any touch been left
	is(on_primary(qq{SELECT count(*) FROM touch_log WHERE session_id = '$id'}), '1', 'with one write');
}

# sessrev.forward_touch, as the forwarder's role.
{
	my ($id) = due_session('u-rules');
	my $as_forwarder = sub {
		my ($sql) = @_;
		return $primary->psql('postgres', $sql, extra_params => [ '-U', 'forwarder' ]);
	};
	my ($rc, $out, $err) = $as_forwarder->(qq{SELECT sessrev.forward_touch('$id', now() + interval '1 day', now() + interval '1 day')});
	is($rc, 0, 'the forwarder may call forward_touch');
	is(on_primary(qq{SELECT last_active_at <= now() FROM sessrev.sessions WHERE id = '$id'}), 't',
		'a touch from a clock ahead stops at the primary\'s now()');
	on_primary(qq{SELECT sessrev.revoke_session('$id')});
	my $before = on_primary(qq{SELECT last_active_at FROM sessrev.sessions WHERE id = '$id'});
	(undef, $out) = $as_forwarder->(qq{SELECT sessrev.forward_touch('$id', now(), now())});
	is($out, 'f', 'a revoked session is not touched');
	is(on_primary(qq{SELECT last_active_at FROM sessrev.sessions WHERE id = '$id'}), $before, 'and its row is unchanged');
	(undef, undef, $err) = $as_forwarder->(q{SELECT sessrev.forward_touch(NULL, now(), now())});
	like($err, qr/ERROR:  sessrev.forward_touch: session_id, at and threshold must not be NULL/, 'NULL is refused');
	for my $other ("sessrev.touch_session('$id', now(), now())", "sessrev.revoke_session('$id')",
		"sessrev.create_session('x')")
	{
		(undef, undef, $err) = $as_forwarder->("SELECT $other");
		like($err, qr/permission denied for function/, "the forwarder may not call $other");
	}
	(undef, undef, $err) = $as_forwarder->('SELECT count(*) FROM sessrev.sessions');
	like($err, qr/permission denied for table sessions/, 'nor read the sessions');
	(undef, undef, $err) = $primary->psql('postgres', qq{SELECT sessrev.forward_touch('$id', now(), now())},
		extra_params => [ '-U', 'nobody' ]);
	like($err, qr/permission denied for (schema sessrev|function forward_touch)/, 'another role may not call it');
}

# An unreachable primary: the request is answered, the touch dropped, a WARNING logged.
{
	my ($id, $token) = due_session('u-unreachable');
	$standby->append_conf('postgresql.conf', "sessrev.primary_conninfo = 'host=/nonexistent port=1 connect_timeout=1'\n");
	$standby->reload;
	sleep 1;
	my $offset = -s $standby->logfile;
	is($standby->safe_psql('postgres', qq{SELECT user_id FROM sessrev.validate_session('$token')}), 'u-unreachable',
		'with the primary out of reach, the standby still answers');
	ok($standby->wait_for_log(qr/sessrev: could not forward touches to the primary/, $offset),
		'and logs why the touch was dropped');
}

$standby->stop;
$primary->stop;
done_testing();
