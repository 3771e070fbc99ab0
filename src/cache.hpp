// The shared-memory cache of live sessions behind is_revoked, when sessrev is
// in shared_preload_libraries. It holds only live sessions (a flood of unknown
// tokens never enters it), in a 4-way set-associative table of fixed size (32
// bytes an entry, one 128-byte set per lookup) with one LWLock per partition
// for writers; a hit reads optimistically under a per-partition sequence
// counter and takes no lock unless a writer got in the way.
//
// Staleness is prevented in two steps:
//  - a transaction that changes sessrev.sessions records the old keys (trigger)
//    and removes them after its commit is visible but before COMMIT returns;
//  - a reader that misses reads the partition's generation before taking a
//    fresh snapshot, and its fill is dropped if an invalidation ran meanwhile.
#pragma once

extern "C" {
#include "postgres.h"

#include "datatype/timestamp.h"
}

#include <cstddef>

namespace sessrev::cache {

enum class Kind : uint8 { token_hash = 1, session_id = 2, user_cutoff = 3 };

// What identifies a cached session: the database and the sessions table it
// came from (a re-created extension has a new table), and the token hash, the
// session id or the user id's hash. Only the first 16 bytes enter the entry's
// fingerprint: they are a uniform SHA-256 prefix or a whole uuid.
struct Key {
    Oid database;
    Oid relation;
    Kind kind;
    unsigned char bytes[32];
};

// What a hit needs to re-check liveness without the table (for a user's
// cut-off, expires_at holds the cut-off).
struct Times {
    TimestampTz expires_at;
    TimestampTz last_active_at;
};

// Generations read before a miss's lookup; a fill succeeds only if unchanged.
struct FillTicket {
    uint64 global;
    uint64 partition;
};

struct Stats {
    bool enabled;
    int64 capacity;
    int64 entries;
    int64 hits;
    int64 misses;
    int64 evictions;
    int64 invalidations;
};

std::size_t shmem_size(int capacity);
void request_shmem();  // shmem_request_hook
void startup_shmem();  // shmem_startup_hook

// True when the cache exists in this server (preloaded, cache_size > 0).
bool enabled();

// Copies the entry for key into times and returns true on a hit.
bool lookup(const Key &key, Times *times);
void count_miss(const Key &key);

FillTicket ticket(const Key &key);
// Stores (or refreshes) key's times unless an invalidation ran since ticket.
// Call only from a transaction without an XID: one that wrote may have read
// its own uncommitted rows, which must not outlive a rollback in the cache.
bool may_fill();
void fill(const Key &key, const Times &times, const FillTicket &ticket);

// Removes key; called after the changing transaction's commit is visible.
void invalidate(const Key &key);
// Removes everything (TRUNCATE, bulk changes, cache_reset).
void flush();

Stats stats();
void reset_stats();

}  // namespace sessrev::cache
