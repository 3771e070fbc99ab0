# No other role's object holds an upgrade back (1.5, issue 24, hole 9). A role
# holding the documented tracking grant (USAGE on the schema, EXECUTE on
# user_table_changed) puts 1.0's tracking trigger on a view of its own; 1.1's
# re-tracking of tables tracked under 1.0 cannot process it. The update from
# 1.0 skips it with a WARNING that names it and finishes, so the database gets
# every later security fix.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('held_back');
$node->init;
$node->start;
sub sql { return $node->safe_psql('postgres', $_[0]); }

my $newest = sql(q{SELECT default_version FROM pg_available_extensions WHERE name = 'sessrev'});
sql(q{CREATE EXTENSION sessrev VERSION '1.0';
	CREATE TABLE public.users (id text PRIMARY KEY, pw text);
	SELECT sessrev.track_user_table('users', 'id', '{pw}');
	CREATE ROLE tracker LOGIN;
	GRANT CREATE ON SCHEMA public TO tracker;
	GRANT USAGE ON SCHEMA sessrev TO tracker;
	GRANT EXECUTE ON FUNCTION sessrev.user_table_changed() TO tracker;
	GRANT SELECT ON public.users TO tracker;});
sql(q{SET ROLE tracker;
	CREATE VIEW public.tracker_users AS SELECT id, pw FROM public.users;
	CREATE TRIGGER sessrev_revoke_sessions INSTEAD OF UPDATE ON public.tracker_users
	    FOR EACH ROW EXECUTE FUNCTION sessrev.user_table_changed('id', '{pw}', '{}')});

my ($rc, $out, $err) = $node->psql('postgres', 'ALTER EXTENSION sessrev UPDATE');
is($rc, 0, 'ALTER EXTENSION sessrev UPDATE from 1.0 finishes despite a tracking trigger on a view');
like($err, qr/WARNING:.*tracker_users cannot be tracked/, 'with a WARNING that names the object it skipped');
is(sql(q{SELECT extversion FROM pg_extension WHERE extname = 'sessrev'}), $newest,
	"the database is at the newest release ($newest)");
is(sql(q{SELECT count(*) FROM pg_trigger WHERE tgrelid = 'public.users'::regclass AND tgname LIKE 'sessrev_%'}), '2',
	'the real table is tracked anew');
my ($sid, $tok) = split /\|/, sql(q{SELECT session_id || '|' || token FROM sessrev.create_session('u1')});
sql(q{INSERT INTO public.users VALUES ('u1', 'a'); UPDATE public.users SET pw = 'b' WHERE id = 'u1'});
is(sql(qq{SELECT sessrev.is_revoked('$tok')}), 't', 'and a password change there revokes the user\'s sessions');

$node->stop;
done_testing();
