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

// Whether a lookup or a fill in bucket must leave the cache alone now. A
// lookup asks before it reads the entry and its epoch.
bool blocks(uint32 bucket);
// Likewise for the cached global JWT cut-offs.
bool blocks_global();

}  // namespace sessrev::in_doubt
