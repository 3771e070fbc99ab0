// The sequence a cache partition's readers check instead of taking its lock:
// odd while a writer, holding the partition's exclusive lock, changes its
// sets. Shared by the is_revoked cache (cache.cpp) and the session cache
// (session_cache.cpp), so both read and write under the same barriers.
#pragma once

extern "C" {
#include "postgres.h"

#include "port/atomics.h"
}

namespace sessrev::seqlock {

inline void begin_write(pg_atomic_uint32 &seq) {
    pg_atomic_fetch_add_u32(&seq, 1);
    pg_write_barrier();
}

inline void end_write(pg_atomic_uint32 &seq) {
    pg_write_barrier();
    pg_atomic_fetch_add_u32(&seq, 1);
}

// Runs copy (which copies what it needs out of the partition's sets) at most
// twice, and says whether one run saw no writer: only then may its copy be
// used. On false the caller reads again under the partition's shared lock.
template <typename Copy>
inline bool read_unchanged(pg_atomic_uint32 &seq, Copy &&copy) {
    for (int attempt = 0; attempt < 2; attempt++) {
        const uint32 before = pg_atomic_read_u32(&seq);
        if (before % 2 == 1) continue;
        pg_read_barrier();
        copy();
        pg_read_barrier();
        if (pg_atomic_read_u32(&seq) == before) return true;
    }
    return false;
}

}  // namespace sessrev::seqlock
