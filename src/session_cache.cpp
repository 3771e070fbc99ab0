#include "session_cache.hpp"

#include "settings.hpp"

extern "C" {
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
}

#include <cstring>

namespace sessrev::session_cache {
namespace {

constexpr int ways = 2;  // a set is 512 bytes, fetched whole while the token is hashed
constexpr int partitions = 128;
constexpr const char *tranche = "sessrev_session_cache";

// All-zero fingerprint: a free way. Alive while epoch is its bucket's current
// one (cache::current_epoch), exactly like an is_revoked entry.
struct Entry {
    uint64 fingerprint[2];
    uint32 epoch;
    uint16 user_id_length;
    uint16 metadata_length;
    TimestampTz expires_at;
    TimestampTz last_active_at;
    pg_uuid_t session_id;
    char payload[payload_bytes];
};
static_assert(sizeof(Entry) == 256, "four cache lines an entry");

struct alignas(128) Set {
    Entry way[ways];
};

struct alignas(64) Partition {
    pg_atomic_uint32 seq;  // odd while a writer changes one of its sets
    pg_atomic_uint64 hits;
    pg_atomic_uint64 misses;
    pg_atomic_uint64 evictions;
    pg_atomic_uint64 entries;
    pg_atomic_uint64 too_large;
};

struct alignas(128) Shared {
    uint32 sets;
    Partition partition[partitions];
    // followed by `sets` Sets
};

Shared *shared = nullptr;
Set *sets = nullptr;
LWLockPadded *locks = nullptr;
shmem_startup_hook_type prev_shmem_startup = nullptr;

uint32 set_count(int capacity) { return static_cast<uint32>((capacity + ways - 1) / ways); }
int capacity() { return settings::cache_size > 0 ? settings::session_cache_size : 0; }

uint32 set_of(uint64 place) {
    return static_cast<uint32>((static_cast<unsigned __int128>(place) * shared->sets) >> 64);
}
int partition_of(uint32 set) { return static_cast<int>(set % partitions); }
LWLock *lock_of(int partition) { return &locks[partition].lock; }

// Brackets a writer's changes to a partition's sets (under its exclusive lock).
void begin_write(Partition &p) {
    pg_atomic_fetch_add_u32(&p.seq, 1);
    pg_write_barrier();
}
void end_write(Partition &p) {
    pg_write_barrier();
    pg_atomic_fetch_add_u32(&p.seq, 1);
}

bool is_free(const Entry &e) { return (e.fingerprint[0] | e.fingerprint[1]) == 0; }
bool matches(const Entry &e, const cache::Identity &id) {
    return e.fingerprint[0] == id.fingerprint[0] && e.fingerprint[1] == id.fingerprint[1];
}

void startup() {
    if (prev_shmem_startup) prev_shmem_startup();
    if (capacity() <= 0) return;
    LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
    bool found;
    char *raw = static_cast<char *>(
        ShmemInitStruct("sessrev session cache", add_size(shmem_size(capacity()), alignof(Set)), &found));
    shared = reinterpret_cast<Shared *>(TYPEALIGN(alignof(Set), raw));
    sets = reinterpret_cast<Set *>(reinterpret_cast<char *>(shared) + sizeof(Shared));
    locks = GetNamedLWLockTranche(tranche);
    if (!found) {
        shared->sets = set_count(capacity());
        for (Partition &p : shared->partition) {
            pg_atomic_init_u32(&p.seq, 0);
            pg_atomic_init_u64(&p.hits, 0);
            pg_atomic_init_u64(&p.misses, 0);
            pg_atomic_init_u64(&p.evictions, 0);
            pg_atomic_init_u64(&p.entries, 0);
            pg_atomic_init_u64(&p.too_large, 0);
        }
        memset(static_cast<void *>(sets), 0, static_cast<std::size_t>(shared->sets) * sizeof(Set));
    }
    LWLockRelease(AddinShmemInitLock);
}

}  // namespace

std::size_t shmem_size(int entries) {
    return add_size(sizeof(Shared), mul_size(set_count(entries), sizeof(Set)));
}

void request_shmem() {
    if (capacity() <= 0) return;
    RequestAddinShmemSpace(add_size(shmem_size(capacity()), alignof(Set)));
    RequestNamedLWLockTranche(tranche, partitions);
}

void startup_shmem() {
    prev_shmem_startup = shmem_startup_hook;
    shmem_startup_hook = startup;
}

bool enabled() { return shared != nullptr && cache::enabled(); }

bool fits(std::size_t user_id_length, std::size_t metadata_length) {
    return user_id_length + metadata_length <= payload_bytes;
}

void prefetch(uint64 place) {
    const char *set = reinterpret_cast<const char *>(&sets[set_of(place)]);
    for (std::size_t line = 0; line < sizeof(Set); line += 64) __builtin_prefetch(set + line);
}

bool lookup(const cache::Key &key, uint64 place, Profile *profile, cache::FillTicket *seen) {
    const cache::Identity id = cache::identity_of(key);
    const uint32 set_index = set_of(place);
    const int part = partition_of(set_index);
    Partition &p = shared->partition[part];
    Entry found{};
    bool consistent = false;
    // Optimistic read under the partition's sequence, as cache::lookup does;
    // only the matching way is copied.
    for (int attempt = 0; attempt < 2 && !consistent; attempt++) {
        const uint32 before = pg_atomic_read_u32(&p.seq);
        if (before % 2 == 1) continue;
        pg_read_barrier();
        found = Entry{};
        for (const Entry &e : sets[set_index].way) {
            const volatile Entry &v = e;
            if (v.fingerprint[0] == id.fingerprint[0] && v.fingerprint[1] == id.fingerprint[1]) {
                memcpy(static_cast<void *>(&found), const_cast<const Entry *>(&e), sizeof found);
                break;
            }
        }
        pg_read_barrier();
        consistent = pg_atomic_read_u32(&p.seq) == before;
    }
    if (!consistent) {
        found = Entry{};
        LWLockAcquire(lock_of(part), LW_SHARED);
        for (const Entry &e : sets[set_index].way)
            if (matches(e, id)) {
                found = e;
                break;
            }
        LWLockRelease(lock_of(part));
    }
    // A torn copy cannot pass: the fingerprint and epoch are checked on the copy.
    if (is_free(found) || !matches(found, id) || found.epoch != cache::current_epoch(id.bucket))
        return false;
    seen->epoch = found.epoch;
    profile->session_id = found.session_id;
    profile->expires_at = found.expires_at;
    profile->last_active_at = found.last_active_at;
    profile->user_id_length = found.user_id_length;
    profile->metadata_length = found.metadata_length;
    memcpy(profile->payload, found.payload, found.user_id_length + found.metadata_length);
    pg_atomic_fetch_add_u64(&p.hits, 1);
    return true;
}

void count_miss(uint64 place) {
    pg_atomic_fetch_add_u64(&shared->partition[partition_of(set_of(place))].misses, 1);
}

void fill(const cache::Key &key, uint64 place, const Profile &profile,
          const cache::FillTicket &ticket) {
    const uint32 set_index = set_of(place);
    const int part = partition_of(set_index);
    Partition &p = shared->partition[part];
    if (!fits(profile.user_id_length, profile.metadata_length)) {
        pg_atomic_fetch_add_u64(&p.too_large, 1);
        return;
    }
    const cache::Identity id = cache::identity_of(key);
    if (cache::current_epoch(id.bucket) != ticket.epoch) return;  // already dead
    LWLockAcquire(lock_of(part), LW_EXCLUSIVE);
    begin_write(p);
    Set &set = sets[set_index];
    Entry *e = nullptr;
    for (Entry &way : set.way)
        if (matches(way, id)) e = &way;
    if (e == nullptr) {
        // A free way, else a dead one, else the least recently active.
        for (Entry &way : set.way)
            if (e == nullptr && is_free(way)) {
                e = &way;
                pg_atomic_fetch_add_u64(&p.entries, 1);
            }
        for (Entry &way : set.way)
            if (e == nullptr && way.epoch != cache::current_epoch(cache::bucket_of(way.fingerprint)))
                e = &way;
        if (e == nullptr) {
            e = &set.way[0];
            for (Entry &way : set.way)
                if (way.last_active_at < e->last_active_at) e = &way;
            pg_atomic_fetch_add_u64(&p.evictions, 1);
        }
    }
    e->fingerprint[0] = id.fingerprint[0];
    e->fingerprint[1] = id.fingerprint[1];
    // An invalidation after the check above leaves this entry dead on arrival.
    e->epoch = ticket.epoch;
    e->user_id_length = profile.user_id_length;
    e->metadata_length = profile.metadata_length;
    e->expires_at = profile.expires_at;
    e->last_active_at = profile.last_active_at;
    e->session_id = profile.session_id;
    memcpy(e->payload, profile.payload, profile.user_id_length + profile.metadata_length);
    end_write(p);
    LWLockRelease(lock_of(part));
}

Stats stats() {
    Stats s{};
    s.enabled = enabled();
    if (!s.enabled) return s;
    s.capacity = static_cast<int64>(shared->sets) * ways;
    for (Partition &p : shared->partition) {
        s.entries += pg_atomic_read_u64(&p.entries);
        s.hits += pg_atomic_read_u64(&p.hits);
        s.misses += pg_atomic_read_u64(&p.misses);
        s.evictions += pg_atomic_read_u64(&p.evictions);
        s.too_large += pg_atomic_read_u64(&p.too_large);
    }
    return s;
}

void clear() {
    if (shared == nullptr) return;
    for (int part = 0; part < partitions; part++) {
        Partition &p = shared->partition[part];
        LWLockAcquire(lock_of(part), LW_EXCLUSIVE);
        begin_write(p);
        for (uint32 set = part; set < shared->sets; set += partitions)
            memset(static_cast<void *>(&sets[set]), 0, sizeof(Set));
        end_write(p);
        pg_atomic_write_u64(&p.entries, 0);
        LWLockRelease(lock_of(part));
    }
}

void reset_stats() {
    if (shared == nullptr) return;
    for (Partition &p : shared->partition) {
        pg_atomic_write_u64(&p.hits, 0);
        pg_atomic_write_u64(&p.misses, 0);
        pg_atomic_write_u64(&p.evictions, 0);
        pg_atomic_write_u64(&p.too_large, 0);
    }
}

}  // namespace sessrev::session_cache
