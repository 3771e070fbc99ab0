// The shared-memory cache behind validate_session: who a token's live session
// is (its id, user id, times and metadata), so a hit answers without reading
// sessrev.sessions. It sits beside the is_revoked cache (cache.hpp) and lives
// by the same rules: entries are keyed by the token's fingerprint and placed by
// the token's keyed hash, and an entry counts only while its epoch is its
// bucket's current one, so every invalidation of the token's key (revocation,
// any change of a returned column, TRUNCATE, cache_reset) kills it at the
// revoking commit. An entry takes 128 or 256 bytes (session_cache.cpp); a
// session whose user id and metadata do not fit in payload_bytes is answered
// from the table.
#pragma once

#include "cache.hpp"

extern "C" {
#include "utils/uuid.h"
}

#include <cstddef>

namespace sessrev::session_cache {

inline constexpr std::size_t payload_bytes = 200;

// What validate_session returns. payload holds the user id's bytes, then the
// metadata jsonb as stored (a varlena with its 4-byte header).
struct Profile {
    pg_uuid_t session_id;
    TimestampTz expires_at;
    TimestampTz last_active_at;
    uint16 user_id_length;
    uint16 metadata_length;
    char payload[payload_bytes];
};

struct Stats {
    bool enabled;
    int64 capacity;
    int64 entries;
    int64 hits;
    int64 misses;
    int64 evictions;
    int64 too_large;
};

std::size_t shmem_size(int capacity);
void request_shmem();  // shmem_request_hook
void startup_shmem();  // shmem_startup_hook

// True when it exists in this server (preloaded, both cache sizes > 0).
bool enabled();

// Whether a user id and metadata of these sizes fit an entry.
bool fits(std::size_t user_id_length, std::size_t metadata_length);

// place comes from cache::place_of for the token.
void prefetch(uint64 place);
// On a hit, *seen is the epoch the entry was valid under: a refresh of the
// entry (a queued touch) fills with it, so that it dies if the key was
// invalidated since.
bool lookup(const cache::Key &key, uint64 place, Profile *profile, cache::FillTicket *seen);
void count_miss(uint64 place);
// As cache::fill: dead on arrival if key's bucket moved since ticket. A
// profile that does not fit is counted and not stored.
void fill(const cache::Key &key, uint64 place, const Profile &profile,
          const cache::FillTicket &ticket);

Stats stats();
// Empties it (cache_reset; entries die by their epochs otherwise).
void clear();
void reset_stats();

}  // namespace sessrev::session_cache
