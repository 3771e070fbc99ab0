# What the Citus TAP suites share: skipping (or failing) without Citus, and
# a node with citus and sessrev preloaded.
package Sessrev::Citus;
use strict;
use warnings;
use Exporter 'import';
use PostgreSQL::Test::Cluster;
use Test::More;
our @EXPORT = qw(require_citus citus_node);

# Skips the suite when Citus is not installed; SESSREV_CITUS=required (set
# by test/run once test/citus/build installed it) makes that a failure.
sub require_citus {
	my $pkglib = `pg_config --pkglibdir`;
	chomp $pkglib;
	return if -f "$pkglib/citus.so";
	BAIL_OUT("Citus is not installed ($pkglib/citus.so): test/citus/build")
	  if ($ENV{SESSREV_CITUS} // '') eq 'required';
	plan skip_all => 'Citus is not installed (test/citus/build installs it)';
}

# A started node named name, citus and sessrev preloaded, the citus
# extension created in each of databases (created first, but postgres).
# logical: wal_level logical (for shard moves); conf: more settings.
sub citus_node {
	my ($name, %options) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init($options{logical} ? (allows_streaming => 'logical') : ());
	$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'citus,sessrev'
max_prepared_transactions = 20
sessrev.cleanup_interval = 0
} . ($options{conf} // ''));
	# Where a node connects to itself (the servers listen on their socket only).
	$node->append_conf('postgresql.conf', "citus.local_hostname = '" . $node->host . "'\n");
	$node->start;
	for my $db (@{ $options{databases} // ['postgres'] }) {
		$node->safe_psql('postgres', "CREATE DATABASE $db") unless $db eq 'postgres';
		$node->safe_psql($db, 'CREATE EXTENSION citus');
	}
	return $node;
}

1;
