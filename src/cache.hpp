// The shared-memory cache of live sessions behind is_revoked, when sessrev is
// in shared_preload_libraries. It holds only live sessions (a flood of unknown
// tokens never enters it), in an 8-way set-associative table of fixed size (32
// bytes an entry, one 256-byte set per lookup) with one LWLock per partition
// for writers; a hit reads optimistically under a per-partition sequence
// counter and takes no lock unless a writer got in the way.
//
// A key's identity (its fingerprint) and its place (which set holds it) are
// separate: a token's place is a keyed hash of the token itself, so a lookup
// can start fetching its set from memory while it computes the token's SHA-256.
// Since an invalidation knows only the row, not the token, it cannot find the
// entry; it bumps the epoch of the key's bucket instead, and an entry counts
// only while its epoch is its bucket's current one. So staleness is prevented:
//  - a transaction that changes sessrev.sessions records the old keys (trigger)
//    and bumps their epochs after its commit is visible but before COMMIT
//    returns;
//  - a reader that misses reads the key's epoch before taking a fresh snapshot
//    and fills with that epoch, so a fill that raced an invalidation is dead.
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

// What an entry stores of its key, and the epoch bucket the key belongs to
// (shared with session_cache.hpp, whose entries live and die by the same
// epochs).
struct Identity {
    uint64 fingerprint[2];
    uint32 bucket;
};
Identity identity_of(const Key &key);
// The bucket of a stored fingerprint.
uint32 bucket_of(const uint64 fingerprint[2]);
uint32 current_epoch(uint32 bucket);
// Whether an entry stored with this fingerprint and epoch still counts: no
// invalidation of its bucket since it was filled.
bool is_alive(const uint64 fingerprint[2], uint32 epoch);
// Starts fetching a bucket's epoch, to be read after the entry it guards.
void prefetch_epoch(uint32 bucket);

// The key's epoch, read before a miss's lookup; the fill carries it.
struct FillTicket {
    uint32 epoch;
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

// Where a key is kept: a keyed hash of what the caller looks it up by (the
// token, the session id, the user id's hash) within key's database, table and
// kind (its bytes are not read). A lookup and its fill must pass the same
// place; a wrong one costs a miss, never a wrong answer.
uint64 place_of(const Key &key, const void *bytes, std::size_t length);
// Starts fetching place's set, so the work before lookup() overlaps the wait.
void prefetch(uint64 place);

// Starts fetching every cache line of length bytes at at (a set of this cache
// or of the session cache).
inline void prefetch_lines(const void *at, std::size_t length) {
    for (std::size_t line = 0; line < length; line += 64)
        __builtin_prefetch(static_cast<const char *>(at) + line);
}

// Copies the entry for key into times and returns true on a hit.
bool lookup(const Key &key, uint64 place, Times *times);
void count_miss(uint64 place);

FillTicket ticket(const Key &key);
// Stores (or refreshes) key's times; if an invalidation ran since ticket, the
// entry is dead on arrival. Call only from a transaction without an XID: one
// that wrote may have read its own uncommitted rows, which must not outlive a
// rollback in the cache.
bool may_fill();
void fill(const Key &key, uint64 place, const Times &times, const FillTicket &ticket);

// Epoch buckets: every key belongs to one. A transaction records the buckets
// of what it changed (a fixed-size bitmap, however many rows it changed) and
// kills their entries after its commit is visible by bumping their epochs.
inline constexpr uint32 buckets = 16384;
uint32 bucket_of(const Key &key);
void invalidate_bucket(uint32 bucket);
// Removes everything (TRUNCATE, bulk changes, cache_reset).
void flush();

// A database whose triggers were disarmed (trigger_arming.hpp): the cache
// serves nothing there until resume(). Raises an error when too many
// databases are suspended at once.
void suspend(Oid database);
// Likewise, false instead of the error (replay must not fail).
bool suspend_if_room(Oid database);
void resume(Oid database);
bool suspended(Oid database);

Stats stats();
void reset_stats();

}  // namespace sessrev::cache
