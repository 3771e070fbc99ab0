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
}

namespace sessrev::placement {

enum class Where : uint8 {
    here,            // no Citus, or the coordinator with sessrev's own tables
    on_coordinator,  // a Citus worker: the rows are in the coordinator's tables
    unconfirmed,     // Citus, group 0, but no coordinator in pg_dist_node: a
                     // worker without metadata looks the same
    citus_table,     // one of sessrev's tables is a Citus table
};

struct Placement {
    Where where = Where::here;
    int32 group = 0;              // this node's Citus group (0: the coordinator)
    Oid table = InvalidOid;       // for citus_table: which one
    char kind = '\0';             // for citus_table: pg_dist_partition's partmethod
};

// Judges the tables (relids, n of them; invalid ones are skipped) from Citus's
// metadata in this database. Catalog reads: inside a transaction.
Placement judge(const Oid *relids, int n);

// Whether relid is one of Citus's metadata tables that decide the placement
// (a relcache invalidation of it means the judgement may have changed).
bool is_metadata_table(Oid relid);

// Whether sessrev's own extension script (CREATE or ALTER EXTENSION sessrev)
// is running: Citus runs it on every node, workers included.
bool in_sessrev_script();

// The coordinator's address in pg_dist_node (its active primary of group 0);
// false when none is listed.
bool coordinator_address(char **host, int32 *port);

// Whether this backend runs a statement that Citus sent from another node
// (its connections name themselves citus_internal, citus_rebalancer or
// citus_run_command): part of a transaction begun elsewhere, whose own
// uncommitted changes another connection would not see.
bool in_citus_connection();

// Whether this node answers from its own tables.
inline bool serves(const Placement &p) { return p.where == Where::here; }

// Raises the error that says where the rows are.
[[noreturn]] void refuse(const Placement &p);

// Refuses, from _PG_init on, the creation of a shard of one of sessrev's
// tables (a relation named <table>_<shard id> in schema sessrev, created or
// renamed so), so that create_reference_table, create_distributed_table or
// citus_add_local_table_to_metadata on them fails on any node that has
// sessrev loaded and holds a placement, instead of leaving rows where no
// check reads.
void register_hooks();

}  // namespace sessrev::placement
