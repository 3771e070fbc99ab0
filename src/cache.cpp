#include "cache.hpp"

#include "jwt_cache.hpp"
#include "settings.hpp"

extern "C" {
#include "common/hashfn.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
}

#include <cstring>

namespace sessrev::cache {
namespace {

constexpr int ways = 8;                   // entries per set
constexpr int partitions = 128;           // LWLocks
constexpr const char *tranche = "sessrev_cache";

// One cache line per entry. Whether a way is used, and a first filter on its
// key, live apart in the set's tags: a lookup reads one line of tags and then
// only the entry whose tag matches.
struct Entry {
    Oid database;
    Oid relation;
    Kind kind;
    pg_atomic_uint32 referenced;  // second-chance bit, set by hits
    unsigned char bytes[32];
    TimestampTz expires_at;
    TimestampTz last_active_at;
};
static_assert(sizeof(Entry) == 64, "an entry is one cache line");

struct alignas(64) Partition {
    pg_atomic_uint64 generation;  // bumped by every invalidation in the partition
    pg_atomic_uint64 hits;
    pg_atomic_uint64 misses;
    pg_atomic_uint64 evictions;
    pg_atomic_uint64 invalidations;
    pg_atomic_uint64 entries;
};

struct Shared {
    pg_atomic_uint64 global_generation;  // bumped by every flush
    uint32 sets;
    Partition partition[partitions];
    // followed by sets * ways tags (0 = free way), then sets * ways entries
};

Shared *shared = nullptr;
uint32 *tags = nullptr;
Entry *entries = nullptr;
LWLockPadded *locks = nullptr;

uint32 set_count(int capacity) { return static_cast<uint32>((capacity + ways - 1) / ways); }

uint64 key_hash(const Key &key) {
    uint64 h;
    if (key.kind != Kind::session_id) {
        memcpy(&h, key.bytes, sizeof h);  // already a uniform SHA-256 (token, user id)
    } else {
        h = hash_bytes_extended(key.bytes, 16, 0);
    }
    return h ^ (static_cast<uint64>(key.database) * 0x9E3779B97F4A7C15ULL) ^ key.relation;
}

struct Slot {
    uint32 set;
    int partition;
    uint32 tag;  // never 0
};

Slot slot_of(const Key &key) {
    uint64 h = key_hash(key);
    uint32 set = static_cast<uint32>(h % shared->sets);
    return {set, static_cast<int>(set % partitions), static_cast<uint32>(h >> 32) | 1};
}

LWLock *lock_of(int partition) { return &locks[partition].lock; }

std::size_t first_way(uint32 set) { return static_cast<std::size_t>(set) * ways; }

bool matches(const Entry &e, const Key &key) {
    return e.kind == key.kind && e.database == key.database && e.relation == key.relation &&
           memcmp(e.bytes, key.bytes, sizeof e.bytes) == 0;
}

// The way holding key, or -1.
std::ptrdiff_t find(const Slot &s, const Key &key) {
    const std::size_t first = first_way(s.set);
    for (std::size_t w = first; w < first + ways; w++)
        if (tags[w] == s.tag && matches(entries[w], key)) return static_cast<std::ptrdiff_t>(w);
    return -1;
}

// A free way, or the first not recently referenced one (clock within the set).
std::size_t victim(uint32 set, bool *evicted) {
    const std::size_t first = first_way(set);
    for (std::size_t w = first; w < first + ways; w++)
        if (tags[w] == 0) {
            *evicted = false;
            return w;
        }
    *evicted = true;
    for (int round = 0; round < 2; round++)
        for (std::size_t w = first; w < first + ways; w++) {
            if (pg_atomic_read_u32(&entries[w].referenced) == 0) return w;
            pg_atomic_write_u32(&entries[w].referenced, 0);
        }
    return first;
}

// Rounded up so that the entries after the tags start on a cache line.
std::size_t tags_size(uint32 sets) { return TYPEALIGN(64, static_cast<std::size_t>(sets) * ways * sizeof(uint32)); }

shmem_startup_hook_type prev_shmem_startup = nullptr;

}  // namespace

std::size_t shmem_size(int capacity) {
    const uint32 sets = set_count(capacity);
    return add_size(add_size(sizeof(Shared), tags_size(sets)),
                    mul_size(static_cast<Size>(sets) * ways, sizeof(Entry)));
}

void request_shmem() {
    if (settings::cache_size <= 0) return;
    RequestAddinShmemSpace(shmem_size(settings::cache_size));
    RequestAddinShmemSpace(jwt_cache::shmem_size());
    RequestNamedLWLockTranche(tranche, partitions);
}

static void startup(void) {
    if (prev_shmem_startup) prev_shmem_startup();
    if (settings::cache_size <= 0) return;
    LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
    bool found;
    shared = static_cast<Shared *>(
        ShmemInitStruct("sessrev cache", shmem_size(settings::cache_size), &found));
    const uint32 sets = set_count(settings::cache_size);
    tags = reinterpret_cast<uint32 *>(reinterpret_cast<char *>(shared) + sizeof(Shared));
    entries = reinterpret_cast<Entry *>(reinterpret_cast<char *>(tags) + tags_size(sets));
    locks = GetNamedLWLockTranche(tranche);
    if (!found) {
        shared->sets = sets;
        pg_atomic_init_u64(&shared->global_generation, 0);
        for (Partition &p : shared->partition) {
            pg_atomic_init_u64(&p.generation, 0);
            pg_atomic_init_u64(&p.hits, 0);
            pg_atomic_init_u64(&p.misses, 0);
            pg_atomic_init_u64(&p.evictions, 0);
            pg_atomic_init_u64(&p.invalidations, 0);
            pg_atomic_init_u64(&p.entries, 0);
        }
        memset(tags, 0, tags_size(sets));
        const std::size_t n = static_cast<std::size_t>(sets) * ways;
        for (std::size_t i = 0; i < n; i++) pg_atomic_init_u32(&entries[i].referenced, 0);
    }
    jwt_cache::startup();
    LWLockRelease(AddinShmemInitLock);
}

void startup_shmem() {
    prev_shmem_startup = shmem_startup_hook;
    shmem_startup_hook = startup;
}

bool enabled() { return shared != nullptr; }

bool lookup(const Key &key, Times *times) {
    Slot s = slot_of(key);
    Partition &p = shared->partition[s.partition];
    LWLockAcquire(lock_of(s.partition), LW_SHARED);
    std::ptrdiff_t w = find(s, key);
    if (w >= 0) {
        Entry &e = entries[w];
        times->expires_at = e.expires_at;
        times->last_active_at = e.last_active_at;
        if (pg_atomic_read_u32(&e.referenced) == 0) pg_atomic_write_u32(&e.referenced, 1);
    }
    LWLockRelease(lock_of(s.partition));
    if (w >= 0) pg_atomic_fetch_add_u64(&p.hits, 1);
    return w >= 0;
}

void count_miss(const Key &key) {
    pg_atomic_fetch_add_u64(&shared->partition[slot_of(key).partition].misses, 1);
}

FillTicket ticket(const Key &key) {
    FillTicket t;
    t.global = pg_atomic_read_u64(&shared->global_generation);
    t.partition = pg_atomic_read_u64(&shared->partition[slot_of(key).partition].generation);
    // The generations must be read before the snapshot that the lookup takes.
    pg_memory_barrier();
    return t;
}

void fill(const Key &key, const Times &times, const FillTicket &t) {
    Slot s = slot_of(key);
    Partition &p = shared->partition[s.partition];
    LWLockAcquire(lock_of(s.partition), LW_EXCLUSIVE);
    bool current = pg_atomic_read_u64(&shared->global_generation) == t.global &&
                   pg_atomic_read_u64(&p.generation) == t.partition;
    if (current && find(s, key) < 0) {
        bool evicted;
        std::size_t w = victim(s.set, &evicted);
        Entry &e = entries[w];
        e.database = key.database;
        e.relation = key.relation;
        e.kind = key.kind;
        memcpy(e.bytes, key.bytes, sizeof e.bytes);
        e.expires_at = times.expires_at;
        e.last_active_at = times.last_active_at;
        pg_atomic_write_u32(&e.referenced, 0);
        tags[w] = s.tag;
        if (evicted)
            pg_atomic_fetch_add_u64(&p.evictions, 1);
        else
            pg_atomic_fetch_add_u64(&p.entries, 1);
    }
    LWLockRelease(lock_of(s.partition));
}

void invalidate(const Key &key) {
    Slot s = slot_of(key);
    Partition &p = shared->partition[s.partition];
    LWLockAcquire(lock_of(s.partition), LW_EXCLUSIVE);
    pg_atomic_fetch_add_u64(&p.generation, 1);
    std::ptrdiff_t w = find(s, key);
    if (w >= 0) {
        tags[w] = 0;
        pg_atomic_fetch_sub_u64(&p.entries, 1);
        pg_atomic_fetch_add_u64(&p.invalidations, 1);
    }
    LWLockRelease(lock_of(s.partition));
}

void flush() {
    // First the generation, so that no fill begun before the flush survives it.
    pg_atomic_fetch_add_u64(&shared->global_generation, 1);
    pg_memory_barrier();
    for (int part = 0; part < partitions; part++) {
        Partition &p = shared->partition[part];
        LWLockAcquire(lock_of(part), LW_EXCLUSIVE);
        pg_atomic_fetch_add_u64(&p.generation, 1);
        uint64 removed = 0;
        for (uint32 set = part; set < shared->sets; set += partitions) {
            const std::size_t first = first_way(set);
            for (std::size_t w = first; w < first + ways; w++)
                if (tags[w] != 0) {
                    tags[w] = 0;
                    removed++;
                }
        }
        pg_atomic_fetch_sub_u64(&p.entries, removed);
        pg_atomic_fetch_add_u64(&p.invalidations, removed);
        LWLockRelease(lock_of(part));
    }
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
        s.invalidations += pg_atomic_read_u64(&p.invalidations);
    }
    return s;
}

void reset_stats() {
    for (Partition &p : shared->partition) {
        pg_atomic_write_u64(&p.hits, 0);
        pg_atomic_write_u64(&p.misses, 0);
        pg_atomic_write_u64(&p.evictions, 0);
        pg_atomic_write_u64(&p.invalidations, 0);
    }
}

}  // namespace sessrev::cache
