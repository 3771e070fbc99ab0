# Cleanup deletes a batch by ctid and re-checks each row it has to wait for:
# a session that another transaction extends while the cleanup waits on its
# row lock is kept (it no longer qualifies), and the rest of the batch goes.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('cleanup_recheck');
$node->init;
$node->start;
sub sql { return $node->safe_psql('postgres', $_[0]); }
sql('CREATE EXTENSION sessrev');

# Expired ten days ago, past the default seven days of retention.
my @ids = split /\n/, sql(q{
	INSERT INTO sessrev.sessions (user_id, token_hash, created_at, last_active_at, expires_at)
	SELECT 'old-' || i, sessrev.hash_token('old-' || i), now() - interval '30 days',
	       now() - interval '30 days', now() - interval '10 days'
	  FROM generate_series(1, 3) i
	RETURNING id});
my $extended = $ids[0];

my $extender = $node->background_psql('postgres');
$extender->query_safe('BEGIN');
$extender->query_safe(qq{UPDATE sessrev.sessions SET expires_at = now() + interval '1 day' WHERE id = '$extended'});

my $cleaner = $node->background_psql('postgres');
$cleaner->query_until(qr/started/, "\\echo started\nSELECT sessrev.cleanup_expired_sessions();\n");
ok($node->poll_query_until('postgres', q{
	SELECT count(*) = 1 FROM pg_stat_activity
	 WHERE query LIKE 'SELECT sessrev.cleanup_expired_sessions()%' AND wait_event_type = 'Lock'}),
	'the cleanup waits for the row being extended');

$extender->query_safe('COMMIT');
ok($node->poll_query_until('postgres', q{
	SELECT count(*) = 0 FROM pg_stat_activity
	 WHERE query LIKE 'SELECT sessrev.cleanup_expired_sessions()%' AND state = 'active'}),
	'then finishes');

is(sql(qq{SELECT count(*) FROM sessrev.sessions WHERE id = '$extended' AND expires_at > now()}), '1',
	'the session extended meanwhile is kept, with its new expiry');
is(sql(q{SELECT count(*) FROM sessrev.sessions WHERE user_id LIKE 'old-%'}), '1',
	'the other expired sessions of the batch are deleted');
is(sql(q{SELECT details->>'expired_deleted' FROM sessrev.session_audit_log
          WHERE action = 'CLEANUP' ORDER BY id DESC LIMIT 1}), '2',
	'and the audit row counts the two deleted');

$extender->quit;
$cleaner->quit;
$node->stop;
done_testing();
