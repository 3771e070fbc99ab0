// Shared-memory state that lets is_jwt_revoked answer without the tables:
//  - Bloom filters of denylisted jtis and of users with a cut-off. A build
//    fills them from the tables under locks that keep writers out; after it,
//    triggers set bits before the inserting transaction commits, so a
//    "definitely not" is never stale; a "maybe" reads the table.
//  - The global cut-off, filled like a cache entry (generation ticket) and
//    invalidated when a transaction that changed it commits.
// Each database has its own filters and global cut-off, in one of
// sessrev.jwt_cache_databases slots claimed on first use (a slot of a dropped
// database is taken over); while every slot serves another database, a
// database reads its tables every time.
// Per-user cut-offs themselves are entries of the main cache (Kind::user_cutoff),
// which is keyed by database.
#pragma once

extern "C" {
#include "postgres.h"

#include "datatype/timestamp.h"
}

#include "token.hpp"

#include <cstddef>

namespace sessrev::jwt_cache {

enum class Filter { jti, user };

std::size_t shmem_size();
void startup();  // called from the cache's shmem startup

// True when the cache is enabled (the filters exist).
bool enabled();

// True when this database has a slot and its filters are built; claims a slot
// and builds them first if need be.
bool serves_this_database();

void add(Filter filter, const token::Hash &hash);
// On a standby, from the replay of a primary's record, before the inserting
// transaction's commit can be visible: the filters of database, if it has a
// slot.
void add_replayed(Oid database, Filter filter, const token::Hash &hash);
// False only when the value was never added since the last build.
bool may_contain(Filter filter, const token::Hash &hash);

// Rebuilds this database's filters from its tables (dropping bits of deleted
// rows); one build at a time per database.
void rebuild();
// Frees this database's slot: rows may have changed unseen
// (trigger_arming.hpp); its next reader claims one and builds anew.
void forget_build();
// Likewise for database's slot (InvalidOid: every slot), from any process.
void forget_build_of(Oid database);

enum class Global { unknown, none, set };
Global global_cutoff(TimestampTz *not_before);
uint64 global_ticket();
void fill_global(Global state, TimestampTz not_before, uint64 ticket);
void invalidate_global();
// Every database's (a prepared transaction's commit, seen after the fact).
void invalidate_all_globals();

}  // namespace sessrev::jwt_cache
