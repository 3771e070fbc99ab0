// Shared-memory state that lets is_jwt_revoked answer without the tables:
//  - Bloom filters of denylisted jtis and of users with a cut-off. A build
//    fills them from the tables under locks that keep writers out; after it,
//    triggers set bits before the inserting transaction commits, so a
//    "definitely not" is never stale; a "maybe" reads the table.
//  - The global cut-off, filled like a cache entry (generation ticket) and
//    invalidated when a transaction that changed it commits.
// The filters and the global cut-off describe one database, the first to use
// them after server start; other databases read their tables every time.
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

// True when the filters and the global cut-off describe this database and are
// built; builds them first if no database owns them yet.
bool serves_this_database();

void add(Filter filter, const token::Hash &hash);
// False only when the value was never added since the last build.
bool may_contain(Filter filter, const token::Hash &hash);

// Rebuilds the filters from this database's tables (dropping bits of deleted
// rows) if this database owns them; one build at a time.
void rebuild();
// Drops the filters: rows may have changed unseen (trigger_arming.hpp); the
// next reader of any database builds them anew.
void forget_build();

enum class Global { unknown, none, set };
Global global_cutoff(TimestampTz *not_before);
uint64 global_ticket();
void fill_global(Global state, TimestampTz not_before, uint64 ticket);
void invalidate_global();

}  // namespace sessrev::jwt_cache
