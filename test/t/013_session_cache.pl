# validate_session at cache speed, and its touches: a cache hit gives the very
# row the table gives (every column), a change of any returned column by a
# direct UPDATE is seen by the next call of another connection, create_session
# and rotate_token leave the new token cached, metadata too large to cache is
# answered from the table, user ids and metadata on both sides of a varlena's
# 1-byte header come back whole, and touches are queued for the worker: written
# once per session however many requests, never making a concurrent request or
# a logout wait, and not lost in read-only transactions.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $node = PostgreSQL::Test::Cluster->new('session_cache');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'sessrev'
sessrev.cleanup_interval = 0
max_connections = 40
});
$node->start;
sub sql { return $node->safe_psql('postgres', $_[0]); }
sql('CREATE EXTENSION sessrev');

sub stats { return split /\|/, sql('SELECT hits, misses, too_large FROM sessrev.session_cache_stats()'); }
my $row = q{SELECT session_id || '|' || user_id || '|' || expires_at || '|' || last_active_at || '|' || metadata
              FROM sessrev.validate_session('%s')};
my $table_row = q{SELECT id || '|' || user_id || '|' || expires_at || '|' || last_active_at || '|' || metadata
                    FROM sessrev.sessions WHERE id = '%s'};

# The first request after login is a hit: create_session warmed the cache.
my ($id, $token) = split /\|/, sql(q{
	SELECT session_id, token FROM sessrev.create_session('alice', metadata => '{"role": "admin", "tenant": 7}')});
my ($hits, $misses) = stats();
my $first = sql(sprintf $row, $token);
my ($hits_after, $misses_after) = stats();
is($hits_after - $hits, 1, 'the first validate_session after create_session is a cache hit');
is($misses_after, $misses, 'and no miss');
is($first, sql(sprintf $table_row, $id), 'a hit returns the row of the table, every column');

# A miss (after cache_reset) and the hit that follows agree with each other and the table.
sql('SELECT sessrev.cache_reset()');
my $miss = sql(sprintf $row, $token);
is((stats())[1], 1, 'after cache_reset the next call misses');
my $hit = sql(sprintf $row, $token);
is((stats())[0], 1, 'and the one after hits');
is($hit, $miss, 'hit and miss give identical rows');
is($hit, sql(sprintf $table_row, $id), 'identical to the table');
is(sql(qq{SELECT sessrev.current_user_id() || ' ' || sessrev.current_session_id()
            FROM sessrev.validate_session('$token')}), "alice $id",
	'a hit sets current_user_id() and current_session_id()');

# Called in a select list rather than FROM, it returns the same row, or none.
is(sql(qq{SELECT (v).session_id || '|' || (v).user_id || '|' || (v).expires_at || '|' || (v).last_active_at || '|' || (v).metadata
            FROM (SELECT sessrev.validate_session('$token') v) s}), $hit, 'in a select list: the same row');
is(sql(q{SELECT count(*) FROM (SELECT sessrev.validate_session('no-such-token')) s}), '0',
	'in a select list: no row for an unknown token');

# Direct UPDATEs of returned columns are seen by another connection's next call.
my $other = $node->background_psql('postgres');
is($other->query_safe(sprintf $row, $token), $hit, 'another connection hits the same row');
my %changes = (
	metadata   => q{metadata = '{"role": "user"}'},
	user_id    => q{user_id = 'alice2'},
	expires_at => q{expires_at = expires_at + interval '1 hour'},
);
for my $column (sort keys %changes) {
	sql("UPDATE sessrev.sessions SET $changes{$column} WHERE id = '$id'");
	is($other->query_safe(sprintf $row, $token), sql(sprintf $table_row, $id),
		"a direct UPDATE of $column is returned by the next call of another connection");
	is($other->query_safe(sprintf $row, $token), sql(sprintf $table_row, $id), "and by the hit after it");
}
is($other->query_safe(qq{SELECT metadata FROM sessrev.validate_session('$token')}), '{"role": "user"}',
	'the new metadata, not the cached one');

# rotate_token leaves the new token cached; the old one still validates within reuse_interval.
my $rotated = sql(qq{SELECT token FROM sessrev.rotate_token('$token')});
($hits) = stats();
is(sql(qq{SELECT session_id FROM sessrev.validate_session('$rotated')}), $id, 'the rotated token validates');
is((stats())[0] - $hits, 1, 'from the cache: rotate_token warmed it');
is(sql(qq{SELECT session_id FROM sessrev.validate_session('$token')}), $id,
	'the rotated-out token still validates within reuse_interval');

# Metadata too large to cache: answered from the table, every time.
my $big = '{"blob": "' . ('x' x 400) . '"}';
my ($big_id, $big_token) = split /\|/, sql(qq{SELECT session_id, token FROM sessrev.create_session('bob', metadata => '$big')});
my ($h0, $m0, $t0) = stats();
for (1 .. 3) {
	is(sql(sprintf $row, $big_token), sql(sprintf $table_row, $big_id), "large metadata: the table's row (call $_)");
}
my ($h1, $m1, $t1) = stats();
is($h1, $h0, 'large metadata is never a hit');
cmp_ok($t1, '>', $t0, 'and is counted as too large');

# A session revoked elsewhere is refused by the next call of a connection that cached it.
my ($rid, $rtoken) = split /\|/, sql(q{SELECT session_id, token FROM sessrev.create_session('carol')});
is($other->query_safe(qq{SELECT count(*) FROM sessrev.validate_session('$rtoken')}), '1', 'cached by another connection');
sql(qq{SELECT sessrev.revoke_session('$rid')});
is($other->query_safe(qq{SELECT count(*) FROM sessrev.validate_session('$rtoken')}), '0',
	'refused by its next call after the revocation commits');
$other->quit;

# Touches: queued for the worker, written once, never waited for.
sql(q{CREATE TABLE touch_log (id uuid, at timestamptz);
	CREATE FUNCTION log_touch() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN INSERT INTO public.touch_log VALUES (NEW.id, NEW.last_active_at); RETURN NULL; END $$;
	CREATE TRIGGER log_touch AFTER UPDATE OF last_active_at ON sessrev.sessions
	    FOR EACH ROW EXECUTE FUNCTION log_touch();
	CREATE TABLE tokens (i int, token text);
	INSERT INTO tokens SELECT i, c.token FROM generate_series(1, 1000) i, LATERAL sessrev.create_session('load-' || i) c;
	UPDATE sessrev.sessions SET last_active_at = now() - interval '5 minutes' WHERE user_id LIKE 'load-%';
	TRUNCATE touch_log});
my $script = "$PostgreSQL::Test::Utils::tmp_check/touch.sql";
open my $fh, '>', $script or die;
print $fh "\\set i random(1, 1000)\nSELECT user_id FROM sessrev.validate_session((SELECT token FROM tokens WHERE i = :i));\n";
close $fh;
$node->command_ok([ 'pgbench', '-n', '-c', '20', '-j', '2', '-t', '1000', '-f', $script, $node->connstr('postgres') ],
	'20,000 concurrent requests of 1,000 sessions whose touch is due');
$node->poll_query_until('postgres', q{
	SELECT count(*) = 0 FROM sessrev.sessions WHERE user_id LIKE 'load-%' AND last_active_at < now() - interval '1 minute'})
  or die 'touches did not arrive';
is(sql(q{SELECT count(*) || ' ' || count(DISTINCT id) FROM touch_log}), '1000 1000',
	'each of the 1,000 sessions was touched exactly once');

# A request holding its transaction open does not make a second request of
# the same session, or its logout, wait.
my ($tid, $ttoken) = split /\|/, sql(q{SELECT session_id, token FROM sessrev.create_session('dave')});
sql(qq{UPDATE sessrev.sessions SET last_active_at = now() - interval '5 minutes' WHERE id = '$tid'});
my $first_request = $node->background_psql('postgres');
$first_request->query_safe(qq{BEGIN; SELECT count(*) FROM sessrev.validate_session('$ttoken')});
my $start = time;
is(sql(qq{SET lock_timeout = '2s'; SELECT count(*) FROM sessrev.validate_session('$ttoken')}), '1',
	'a second request of the session answers while the first holds its transaction open');
is(sql(qq{SET lock_timeout = '2s'; SELECT sessrev.revoke_token('$ttoken')}), 't', 'and its logout goes through');
cmp_ok(time - $start, '<', 1.5, sprintf('neither waited (%.2f s)', time - $start));
$first_request->query_safe('COMMIT');
$first_request->quit;

# Read-only transactions answer, and their touch reaches the table.
my ($oid, $otoken) = split /\|/, sql(q{SELECT session_id, token FROM sessrev.create_session('erin')});
sql(qq{UPDATE sessrev.sessions SET last_active_at = now() - interval '5 minutes' WHERE id = '$oid'});
my ($ret, $out, $err) = $node->psql('postgres', qq{
	SET default_transaction_read_only = on;
	BEGIN READ ONLY;
	SELECT count(*) FROM sessrev.validate_session('$otoken');
	COMMIT;});
is($out, '1', 'validate_session answers in a read-only transaction whose touch is due');
is($err, '', 'without an error');
ok($node->poll_query_until('postgres',
		qq{SELECT last_active_at > now() - interval '1 minute' FROM sessrev.sessions WHERE id = '$oid'}),
	'and the touch is not lost: the worker writes it');

# User ids and metadata on both sides of a varlena's 1-byte header (at most
# 126 bytes of data) and its 4-byte one, each within what the cache holds: the
# row a miss builds, the row a hit builds and the table's row agree.
sql(q{CREATE TABLE shapes AS
      SELECT c.session_id, c.token FROM generate_series(100, 140) n,
             LATERAL sessrev.create_session(repeat('u', n), metadata => jsonb_build_object('k', repeat('x', 150 - n))) c
      UNION ALL
      SELECT c.session_id, c.token FROM generate_series(90, 130) n,
             LATERAL sessrev.create_session('m', metadata => jsonb_build_object('k', repeat('x', n))) c});
my $shape_rows = q{SELECT string_agg(concat_ws('|', v.session_id, v.user_id, v.expires_at, v.last_active_at, v.metadata), ',' ORDER BY s.session_id)
                     FROM shapes s, LATERAL sessrev.validate_session(s.token) v};
sql('SELECT sessrev.cache_reset()');
my $shape_miss = sql($shape_rows);
my ($shape_hits) = stats();
my $shape_hit = sql($shape_rows);
is((stats())[0] - $shape_hits, 82, 'every shape is then a hit');
is($shape_hit, $shape_miss, 'every shape: hit and miss give identical rows');
is($shape_hit, sql(q{SELECT string_agg(concat_ws('|', t.id, t.user_id, t.expires_at, t.last_active_at, t.metadata), ',' ORDER BY t.id)
                       FROM shapes s JOIN sessrev.sessions t ON t.id = s.session_id}),
	'every shape: identical to the table');
is(sql(q{SELECT count(*) FROM shapes s WHERE sessrev.validate_session_record(s.token) IS DISTINCT FROM
           (SELECT ROW(t.id, t.user_id, t.expires_at, t.last_active_at, t.metadata) FROM sessrev.sessions t WHERE t.id = s.session_id)}),
	'0', 'every shape: the composite equals the table row, field by field');
sql('SELECT sessrev.revoke_session(session_id) FROM shapes');

$node->stop;
done_testing();
