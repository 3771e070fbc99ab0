// Prepared transactions that changed what the caches hold. Their commit
// (COMMIT PREPARED, in any session, or a two_phase subscription's apply
// worker) happens where no callback of theirs runs, so the caches cannot be
// told at the commit. Instead, from PREPARE TRANSACTION on, the epoch buckets
// they changed are in doubt: a lookup there misses and a fill there is
// refused, so every check reads the table, which is right before and after the
// commit. Once the transaction is no longer in progress (committed or rolled
// back), the next check that meets the doubt bumps those buckets' epochs and
// only then lifts the doubt, so no entry filled before can outlive it.
//
// After a restart, transactions prepared before it are in doubt everywhere:
// with max_prepared_transactions > 0, nothing is cached until every
// transaction older than the first check has ended.
//
// A hot standby with sessrev.standby_cache follows its primary the same way
// (standby_records.hpp): each replayed record of a transaction that changed
// sessrev's tables puts what it changed in doubt before its commit can be
// replayed, and the doubt lifts once the transaction is no longer running
// there. After the standby's start, and after each start of its primary, it
// caches nothing until a record shows that the primary writes them.
#pragma once

extern "C" {
#include "postgres.h"
}

#include <cstddef>

namespace sessrev::in_doubt {

std::size_t shmem_size();
void request_shmem();  // shmem_request_hook
void startup();        // shmem_startup_hook (from the cache's)

// At PREPARE: xid changed the buckets whose bits are set in buckets
// (cache::buckets bits; with all, anything: a TRUNCATE), and maybe a global JWT
// cut-off. Raises an error when max_prepared_transactions entries are in use.
void add(TransactionId xid, const uint64 *buckets, bool all, bool global);

// On a standby, from the replay of a record: like add; filters when it added
// to is_jwt_revoked's filters; resume when the transaction committed re-arms
// the cache of that database. Never fails: when no entry is free, everything
// is in doubt as after a start.
void replayed(TransactionId xid, const uint64 *buckets, bool all, bool global, bool filters, Oid resume);
// On a standby: a record of the primary was replayed; the start's doubt may
// lift.
void primary_writes_records();
// On a standby: its primary (re)started or a new one took over, and may not
// write the records: everything in doubt until a record arrives.
void await_primary();
// A record could not be followed: nothing is cached until the next start.
void stop_serving();

// Whether a lookup or a fill in bucket must leave the cache alone now. A
// lookup asks before it reads the entry and its epoch.
bool blocks(uint32 bucket);
// Whether a prepared transaction not yet ended changed bucket (not the
// doubt of a start). In a Citus two-phase commit the outcome may already be
// decided on another node (the coordinator commits before COMMIT PREPARED
// reaches the workers, and tells its client COMMIT even when one fails), so
// the distributed layout answers such a session revoked until it ends.
bool prepared_in(uint32 bucket);
// Whether a prepared transaction not yet ended changed the global cut-off.
bool prepared_global();
// Likewise for the cached global JWT cut-offs.
bool blocks_global();
// On a standby, whether a build of is_jwt_revoked's filters from the tables
// could miss a row: a transaction that added to them, or anything, is in doubt.
bool blocks_filter_build();

}  // namespace sessrev::in_doubt
