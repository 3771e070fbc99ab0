# The session cache's slots, in a cache of one set (sessrev.session_cache_size
# = 2: two large sessions or four small ones): four small sessions share it,
# a session of two slots makes room by freeing the least recently active
# pair, a miss refills by freeing the least recently active entry, each hit
# returns the table's row, and a revoked two-slot session is refused.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('session_cache_slots');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'sessrev'
sessrev.cleanup_interval = 0
sessrev.session_cache_size = 2
});
$node->start;
sub sql { return $node->safe_psql('postgres', $_[0]); }
sql('CREATE EXTENSION sessrev');

sub stats {
	my %s;
	@s{qw(capacity entries hits misses evictions too_large)} = split /\|/,
	  sql('SELECT capacity, entries, hits, misses, evictions, too_large FROM sessrev.session_cache_stats()');
	return \%s;
}
sub row_of {
	return sql(qq{SELECT session_id || '|' || user_id || '|' || expires_at || '|' || last_active_at || '|' || metadata
	                FROM sessrev.validate_session('$_[0]')});
}
sub table_row {
	return sql(qq{SELECT id || '|' || user_id || '|' || expires_at || '|' || last_active_at || '|' || metadata
	                FROM sessrev.sessions WHERE id = '$_[0]'});
}
# Each create_session is its own transaction, so the sessions' last activity
# is in creation order: the first is the least recently active.
sub login {
	my ($user, $metadata) = @_;
	return split /\|/, sql(qq{SELECT session_id || '|' || token FROM sessrev.create_session('$user', metadata => '$metadata')});
}

is(stats()->{capacity}, 2, 'capacity counts the large kind: two in one set');

my @small = map { [ login("small-$_", '{}') ] } 1 .. 4;
my $s = stats();
is($s->{entries}, 4, 'four small sessions are cached in the one set');
is($s->{evictions}, 0, 'without pushing each other out');
for my $i (0 .. 3) {
	is(row_of($small[$i][1]), table_row($small[$i][0]), "small session $i: a hit gives the table's row");
}
$s = stats();
is($s->{hits}, 4, 'all four were hits');
is($s->{misses}, 0, 'and none missed');

# 120 bytes of metadata: more than a slot holds after the header, so two slots.
my $medium_metadata = '{"device": "' . ('m' x 100) . '"}';
my @medium = login('medium', $medium_metadata);
$s = stats();
is($s->{evictions}, 2, 'a two-slot session frees two small ones');
is($s->{entries}, 3, 'leaving it and two small ones');
is(row_of($medium[1]), table_row($medium[0]), 'the two-slot session hits with the table\'s row');
is(row_of($small[2][1]), table_row($small[2][0]), 'the third small session is still cached');
is(row_of($small[3][1]), table_row($small[3][0]), 'so is the fourth');
$s = stats();
is($s->{hits}, 7, 'those three were hits');
is($s->{misses}, 0, 'no miss yet');

# The least recently active pair went: the first two.
is(row_of($small[0][1]), table_row($small[0][0]), 'the first small session is answered from the table');
$s = stats();
is($s->{misses}, 1, 'as a miss');
is($s->{evictions}, 3, 'whose fill freed the least recently active entry');
is($s->{entries}, 3, 'one for one');
is(row_of($small[0][1]), table_row($small[0][0]), 'and is then a hit');
is(stats()->{hits}, 8, 'counted as one');

# Too large for two slots: never cached, always right.
my $large_metadata = '{"device": "' . ('l' x 300) . '"}';
my @large = login('large', $large_metadata);
is(row_of($large[1]), table_row($large[0]), 'a session too large to cache is answered from the table');
$s = stats();
ok($s->{too_large} >= 1, 'and counted as too large');
is($s->{entries}, 3, 'taking no slot');

# A two-slot entry dies with its revocation, and its slots are reused.
@medium = login('medium-2', $medium_metadata);
is(row_of($medium[1]), table_row($medium[0]), 'a new two-slot session is cached');
my $hits_before = stats()->{hits};
sql(qq{SELECT sessrev.revoke_session('$medium[0]')});
is(sql(qq{SELECT count(*) FROM sessrev.validate_session('$medium[1]')}), '0',
	'revoked, the two-slot session is refused');
is(stats()->{hits}, $hits_before, 'not from its dead entry');
my @after = login('small-after', '{}');
is(row_of($after[1]), table_row($after[0]), 'a small session cached after it hits with its row');

$node->stop;
done_testing();
