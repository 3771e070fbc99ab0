// Where sessrev's rows are when the database is part of a Citus cluster.
//
// sessrev reads its tables directly (index scans in C++, a cache filled from
// them and invalidated by their triggers). That is right only on the node
// whose own tables hold the rows. In a Citus cluster two things break it:
//  - on a worker, sessrev's tables are the worker's own, empty copies (Citus
//    creates the extension on every node; the rows stay on the coordinator),
//    and a statement that reads a distributed table is sent to a worker whole,
//    checks included;
//  - a sessrev table made a Citus table (create_reference_table,
//    create_distributed_table, ...) keeps its old rows in the coordinator's
//    shell, which no write reaches any more, while the rows live in shards.
// Both are refused with an error that says where the rows are (fail closed):
// this release keeps sessrev's tables on the coordinator (docs/SCALING.md).
#pragma once

extern "C" {
#include "postgres.h"

#include "nodes/plannodes.h"
}

namespace sessrev::placement {

enum class Where : uint8 {
    here,            // no Citus, or the coordinator with sessrev's own tables
    on_coordinator,  // a Citus worker: the rows are in the coordinator's tables
    unconfirmed,     // Citus, group 0, but no coordinator in pg_dist_node: a
                     // worker without metadata looks the same
    citus_table,     // one of sessrev's tables is a Citus table, not as
                     // sessrev.distribute() made them
    distributed,     // as sessrev.distribute() made them: each node answers
                     // for the shards it holds (shard_map.hpp)
};

struct Placement {
    Where where = Where::here;
    int32 group = 0;              // this node's Citus group (0: the coordinator)
    Oid table = InvalidOid;       // for citus_table: which one
    char kind = '\0';             // for citus_table: pg_dist_partition's partmethod
};

// Judges the tables (relids, n of them; invalid ones are skipped) from Citus's
// metadata in this database: distributed when each is the Citus table
// distributed_kinds says ('h' hash-distributed, 'r' reference), as
// sessrev.distribute() makes them. Catalog reads: inside a transaction.
Placement judge(const Oid *relids, const char *distributed_kinds, int n);

// Whether relid is one of Citus's metadata tables that decide the placement
// (a relcache invalidation of it means the judgement may have changed).
bool is_metadata_table(Oid relid);

// Whether sessrev's own extension script (CREATE or ALTER EXTENSION sessrev)
// is running: Citus runs it on every node, workers included.
bool in_sessrev_script();

// The address in pg_dist_node of the active primary of group (0: the
// coordinator); false when none is listed.
bool node_address(int32 group, char **host, int32 *port);

// One shard of a hash-distributed table: its range of hash values (both ends
// included) and the group of its active placement.
struct ShardRange {
    int32 min;
    int32 max;
    int64 shard;
    int32 group;
};

// The shards of relid, sorted by min (palloc'd); their count, -1 when
// Citus's metadata does not describe a hash-distributed table with exactly
// one active placement of each shard.
int shard_ranges(Oid relid, ShardRange **ranges);

// The column that hash-distributed table relid is distributed by (Citus's
// partkey); InvalidAttrNumber when relid is not one.
AttrNumber distribution_column(Oid relid);

// The shard id of reference table relid, and whether group holds a
// placement of it; 0 when relid is not a reference table.
int64 reference_shard(Oid relid, int32 group, bool *placed_here);

// Whether relid is named as a shard of one of sessrev's tables would be
// (<table>_<shard id>, in schema sessrev).
bool names_a_shard(Oid relid);

// Whether relid is a Citus table (its shell, where Citus keeps it).
bool is_citus_table(Oid relid);
// Whether relid is a shard of a Citus table (any table's: <table>_<shard
// id> in the table's schema, with that shard id in pg_dist_shard).
bool is_citus_shard(Oid relid);

// Whether this backend answers a check that another node forwarded to it
// (check_forwarding.hpp): it answers for its own shards, and forwards nothing.
bool in_forwarded_check();
// Whether that check was forwarded twice: a node that received it from a
// node that had received it (the shard moved, and the first node's metadata
// said so before the sender's did). Such a check is forwarded no further.
bool forwarded_again();

// Whether this backend runs a statement that Citus sent from another node
// (its connections name themselves citus_internal, citus_rebalancer or
// citus_run_command): part of a transaction begun elsewhere, whose own
// uncommitted changes another connection would not see.
bool in_citus_connection();

// Whether this node answers from its own tables.
inline bool serves(const Placement &p) { return p.where == Where::here || p.where == Where::distributed; }

// Raises the error that says where the rows are.
[[noreturn]] void refuse(const Placement &p);

// Refuses, from _PG_init on, the creation of a shard of one of sessrev's
// tables (a relation named <table>_<shard id> in schema sessrev, created or
// renamed so), so that create_reference_table, create_distributed_table or
// citus_add_local_table_to_metadata on them fails on any node that has
// sessrev loaded and holds a placement, instead of leaving rows where no
// check reads.
void register_hooks();

// Refuses (0A000) a statement that calls one of Citus's functions making a
// table a Citus table (create_distributed_table, create_reference_table, ...)
// on one of sessrev's tables, except in sessrev.distribute(): Citus makes
// the shards through its own connections, where the shard-creation hook
// lets it (a shard move, a new node).
void refuse_conversions(const PlannedStmt *statement);

// Lets this transaction make shards of sessrev's tables (sessrev.distribute()).
void allow_shards();
// Whether sessrev.distribute() runs in this transaction.
bool distributing();

}  // namespace sessrev::placement
