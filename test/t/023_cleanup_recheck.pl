# Cleanup deletes a batch by ctid and never waits for a row another
# transaction holds (1.5: no role can hold the cleanup up): the held row is
# skipped and the rest of the batch goes; a later cleanup takes the held row.
# An expired session cannot be extended any more (expired is final).
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

my $holder = $node->background_psql('postgres');
$holder->query_safe('BEGIN');
$holder->query_safe(qq{SELECT FROM sessrev.sessions WHERE id = '$extended' FOR UPDATE});
my ($rc, $out, $err) = $node->psql('postgres',
	qq{UPDATE sessrev.sessions SET expires_at = now() + interval '1 day' WHERE id = '$ids[1]'});
like($err, qr/final/, 'an expired session cannot be extended by a direct UPDATE');

is(sql(q{SET lock_timeout = '5s'; SELECT sessrev.cleanup_expired_sessions()}), '2',
	'the cleanup does not wait for the held row and deletes the two others');
is(sql(q{SELECT count(*) FROM sessrev.sessions WHERE user_id LIKE 'old-%'}), '1',
	'the held row is left');
is(sql(q{SELECT details->>'expired_deleted' FROM sessrev.session_audit_log
          WHERE action = 'CLEANUP' ORDER BY id DESC LIMIT 1}), '2',
	'and the audit row counts the two deleted');
$holder->query_safe('COMMIT');
is(sql(q{SELECT sessrev.cleanup_expired_sessions()}), '1', 'the next cleanup deletes it');

$holder->quit;
$node->stop;
done_testing();
