// Shared-memory state that lets is_jwt_revoked answer without the tables:
//  - Bloom filters of denylisted jtis and of users with a cut-off. Bits are set
//    by triggers before the inserting transaction commits, so a "definitely
//    not" is never stale; a "maybe" reads the table. Only rebuilds clear bits.
//  - The global cut-off, filled like a cache entry (generation ticket) and
//    invalidated when a transaction that changed it commits.
// Per-user cut-offs themselves are entries of the main cache (Kind::user_cutoff).
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

void add(Filter filter, const token::Hash &hash);
// False only when the value was never added since the last rebuild.
bool may_contain(Filter filter, const token::Hash &hash);

// Clears both filters and refills them from the tables; the caller holds locks
// that keep the tables from changing.
void rebuild();

enum class Global { unknown, none, set };
Global global_cutoff(TimestampTz *not_before);
uint64 global_ticket();
void fill_global(Global state, TimestampTz not_before, uint64 ticket);
void invalidate_global();

}  // namespace sessrev::jwt_cache
