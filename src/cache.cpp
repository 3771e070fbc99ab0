#include "cache.hpp"

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

// One cache line per entry.
struct Entry {
    Oid database;
    Oid relation;
    Kind kind;
    bool used;
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
    // followed by sets * ways entries
};

Shared *shared = nullptr;
Entry *entries = nullptr;
LWLockPadded *locks = nullptr;

uint32 set_count(int capacity) { return static_cast<uint32>((capacity + ways - 1) / ways); }

uint64 key_hash(const Key &key) {
    uint64 h;
    if (key.kind == Kind::token_hash) {
        memcpy(&h, key.bytes, sizeof h);  // already a uniform SHA-256
    } else {
        h = hash_bytes_extended(key.bytes, 16, 0);
    }
    return h ^ (static_cast<uint64>(key.database) * 0x9E3779B97F4A7C15ULL) ^ key.relation;
}

struct Slot {
    uint32 set;
    int partition;
};

Slot slot_of(const Key &key) {
    uint32 set = static_cast<uint32>(key_hash(key) % shared->sets);
    return {set, static_cast<int>(set % partitions)};
}

LWLock *lock_of(int partition) { return &locks[partition].lock; }

Entry *set_begin(uint32 set) { return entries + static_cast<std::size_t>(set) * ways; }

bool matches(const Entry &e, const Key &key) {
    return e.used && e.kind == key.kind && e.database == key.database &&
           e.relation == key.relation && memcmp(e.bytes, key.bytes, sizeof e.bytes) == 0;
}

Entry *find(uint32 set, const Key &key) {
    Entry *e = set_begin(set);
    for (int i = 0; i < ways; i++)
        if (matches(e[i], key)) return &e[i];
    return nullptr;
}

// A free way, or the first not recently referenced one (clock within the set).
Entry *victim(uint32 set, bool *evicted) {
    Entry *e = set_begin(set);
    for (int i = 0; i < ways; i++)
        if (!e[i].used) {
            *evicted = false;
            return &e[i];
        }
    *evicted = true;
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < ways; i++) {
            if (pg_atomic_read_u32(&e[i].referenced) == 0) return &e[i];
            pg_atomic_write_u32(&e[i].referenced, 0);
        }
    return &e[0];
}

shmem_startup_hook_type prev_shmem_startup = nullptr;

}  // namespace

std::size_t shmem_size(int capacity) {
    return add_size(sizeof(Shared), mul_size(static_cast<Size>(set_count(capacity)) * ways, sizeof(Entry)));
}

void request_shmem() {
    if (settings::cache_size <= 0) return;
    RequestAddinShmemSpace(shmem_size(settings::cache_size));
    RequestNamedLWLockTranche(tranche, partitions);
}

static void startup(void) {
    if (prev_shmem_startup) prev_shmem_startup();
    if (settings::cache_size <= 0) return;
    LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
    bool found;
    shared = static_cast<Shared *>(
        ShmemInitStruct("sessrev cache", shmem_size(settings::cache_size), &found));
    entries = reinterpret_cast<Entry *>(reinterpret_cast<char *>(shared) + sizeof(Shared));
    locks = GetNamedLWLockTranche(tranche);
    if (!found) {
        shared->sets = set_count(settings::cache_size);
        pg_atomic_init_u64(&shared->global_generation, 0);
        for (Partition &p : shared->partition) {
            pg_atomic_init_u64(&p.generation, 0);
            pg_atomic_init_u64(&p.hits, 0);
            pg_atomic_init_u64(&p.misses, 0);
            pg_atomic_init_u64(&p.evictions, 0);
            pg_atomic_init_u64(&p.invalidations, 0);
            pg_atomic_init_u64(&p.entries, 0);
        }
        const std::size_t n = static_cast<std::size_t>(shared->sets) * ways;
        for (std::size_t i = 0; i < n; i++) {
            entries[i].used = false;
            pg_atomic_init_u32(&entries[i].referenced, 0);
        }
    }
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
    Entry *e = find(s.set, key);
    if (e != nullptr) {
        times->expires_at = e->expires_at;
        times->last_active_at = e->last_active_at;
        if (pg_atomic_read_u32(&e->referenced) == 0) pg_atomic_write_u32(&e->referenced, 1);
    }
    LWLockRelease(lock_of(s.partition));
    if (e != nullptr) pg_atomic_fetch_add_u64(&p.hits, 1);
    return e != nullptr;
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
    if (current && find(s.set, key) == nullptr) {
        bool evicted;
        Entry *e = victim(s.set, &evicted);
        e->database = key.database;
        e->relation = key.relation;
        e->kind = key.kind;
        memcpy(e->bytes, key.bytes, sizeof e->bytes);
        e->expires_at = times.expires_at;
        e->last_active_at = times.last_active_at;
        pg_atomic_write_u32(&e->referenced, 0);
        e->used = true;
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
    if (Entry *e = find(s.set, key)) {
        e->used = false;
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
            Entry *e = set_begin(set);
            for (int i = 0; i < ways; i++)
                if (e[i].used) {
                    e[i].used = false;
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
