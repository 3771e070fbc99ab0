#include "cache.hpp"

#include "jwt_cache.hpp"
#include "settings.hpp"
#include "token.hpp"

extern "C" {
#include "access/xact.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
}

#include <cstring>

namespace sessrev::cache {
namespace {

constexpr int ways = 4;          // entries per set: one set is 128 bytes, two adjacent lines
constexpr int partitions = 128;  // LWLocks
constexpr const char *tranche = "sessrev_cache";

// An entry holds a 128-bit fingerprint of its key instead of the key: the first
// 16 bytes of the token's (or user id's) SHA-256, or the session id, XORed with
// a mask derived from the database, the table, the kind and a secret drawn at
// server start. Two keys share a fingerprint only by a 2^-128 accident that no
// SQL user can steer, since nobody sees the secret. All zeroes marks a free way.
struct Entry {
    uint64 fingerprint[2];
    TimestampTz expires_at;
    TimestampTz last_active_at;  // also the eviction order: least recently active goes
};
static_assert(sizeof(Entry) == 32, "four entries to a 128-byte set");

struct alignas(128) Set {
    Entry way[ways];
};

struct alignas(64) Partition {
    // Odd while a writer (holding the partition's lock exclusively) changes a
    // set: hits read without the lock and retry if it moved.
    pg_atomic_uint32 seq;
    pg_atomic_uint64 generation;  // bumped by every invalidation in the partition
    pg_atomic_uint64 hits;
    pg_atomic_uint64 misses;
    pg_atomic_uint64 evictions;
    pg_atomic_uint64 invalidations;
    pg_atomic_uint64 entries;
};

struct alignas(128) Shared {
    pg_atomic_uint64 global_generation;  // bumped by every flush
    uint32 sets;
    unsigned char secret[32];
    Partition partition[partitions];
    // followed by `sets` Sets
};

Shared *shared = nullptr;
Set *sets = nullptr;
LWLockPadded *locks = nullptr;

uint32 set_count(int capacity) { return static_cast<uint32>((capacity + ways - 1) / ways); }

// The per-(database, table, kind) mask, computed once per backend.
struct Mask {
    Oid database;
    Oid relation;
    Kind kind;
    uint64 bits[2];
};
constexpr int remembered_masks = 8;
Mask masks[remembered_masks];
int mask_count = 0;

const uint64 *mask_of(const Key &key) {
    for (int i = 0; i < mask_count; i++)
        if (masks[i].database == key.database && masks[i].relation == key.relation &&
            masks[i].kind == key.kind)
            return masks[i].bits;
    unsigned char input[sizeof shared->secret + 2 * sizeof(Oid) + 1];
    memcpy(input, shared->secret, sizeof shared->secret);
    memcpy(input + sizeof shared->secret, &key.database, sizeof(Oid));
    memcpy(input + sizeof shared->secret + sizeof(Oid), &key.relation, sizeof(Oid));
    input[sizeof input - 1] = static_cast<unsigned char>(key.kind);
    const token::Hash h = token::sha256({reinterpret_cast<const char *>(input), sizeof input});
    Mask &m = masks[mask_count < remembered_masks ? mask_count++ : remembered_masks - 1];
    m.database = key.database;
    m.relation = key.relation;
    m.kind = key.kind;
    memcpy(m.bits, h.data(), sizeof m.bits);
    return m.bits;
}

struct Slot {
    uint64 fingerprint[2];
    uint32 set;
    int partition;
};

Slot slot_of(const Key &key) {
    Slot s;
    memcpy(s.fingerprint, key.bytes, sizeof s.fingerprint);
    const uint64 *mask = mask_of(key);
    s.fingerprint[0] ^= mask[0];
    s.fingerprint[1] ^= mask[1];
    if ((s.fingerprint[0] | s.fingerprint[1]) == 0) s.fingerprint[0] = 1;  // never "free"
    s.set = static_cast<uint32>((s.fingerprint[0] ^ s.fingerprint[1]) % shared->sets);
    s.partition = static_cast<int>(s.set % partitions);
    return s;
}

LWLock *lock_of(int partition) { return &locks[partition].lock; }

bool is_free(const Entry &e) { return (e.fingerprint[0] | e.fingerprint[1]) == 0; }

// Brackets a writer's changes to a partition's sets (under the exclusive lock).
void begin_write(Partition &p) {
    pg_atomic_fetch_add_u32(&p.seq, 1);
    pg_write_barrier();
}
void end_write(Partition &p) {
    pg_write_barrier();
    pg_atomic_fetch_add_u32(&p.seq, 1);
}

Entry *find(const Slot &s) {
    Set &set = sets[s.set];
    for (Entry &e : set.way)
        if (e.fingerprint[0] == s.fingerprint[0] && e.fingerprint[1] == s.fingerprint[1]) return &e;
    return nullptr;
}

// A free way, or the least recently active entry of the set.
Entry *victim(uint32 set_index, bool *evicted) {
    Set &set = sets[set_index];
    Entry *oldest = &set.way[0];
    for (Entry &e : set.way) {
        if (is_free(e)) {
            *evicted = false;
            return &e;
        }
        if (e.last_active_at < oldest->last_active_at) oldest = &e;
    }
    *evicted = true;
    return oldest;
}

shmem_startup_hook_type prev_shmem_startup = nullptr;

}  // namespace

std::size_t shmem_size(int capacity) {
    return add_size(sizeof(Shared), mul_size(set_count(capacity), sizeof(Set)));
}

void request_shmem() {
    if (settings::cache_size <= 0) return;
    // Room to align the sets to 128 bytes.
    RequestAddinShmemSpace(add_size(shmem_size(settings::cache_size), alignof(Set)));
    RequestAddinShmemSpace(jwt_cache::shmem_size());
    RequestNamedLWLockTranche(tranche, partitions);
}

static void startup(void) {
    if (prev_shmem_startup) prev_shmem_startup();
    if (settings::cache_size <= 0) return;
    LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
    bool found;
    char *raw = static_cast<char *>(ShmemInitStruct(
        "sessrev cache", add_size(shmem_size(settings::cache_size), alignof(Set)), &found));
    shared = reinterpret_cast<Shared *>(TYPEALIGN(alignof(Set), raw));
    sets = reinterpret_cast<Set *>(reinterpret_cast<char *>(shared) + sizeof(Shared));
    locks = GetNamedLWLockTranche(tranche);
    if (!found) {
        shared->sets = set_count(settings::cache_size);
        if (!pg_strong_random(shared->secret, sizeof shared->secret))
            ereport(FATAL, (errmsg("sessrev: could not generate the cache secret")));
        pg_atomic_init_u64(&shared->global_generation, 0);
        for (Partition &p : shared->partition) {
            pg_atomic_init_u32(&p.seq, 0);
            pg_atomic_init_u64(&p.generation, 0);
            pg_atomic_init_u64(&p.hits, 0);
            pg_atomic_init_u64(&p.misses, 0);
            pg_atomic_init_u64(&p.evictions, 0);
            pg_atomic_init_u64(&p.invalidations, 0);
            pg_atomic_init_u64(&p.entries, 0);
        }
        memset(static_cast<void *>(sets), 0, static_cast<std::size_t>(shared->sets) * sizeof(Set));
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
    const Slot s = slot_of(key);
    Partition &p = shared->partition[s.partition];
    bool found = false;
    bool consistent = false;
    // Optimistic read: copy the set and keep the copy only if no writer moved
    // the partition's sequence meanwhile; else read it under the shared lock.
    for (int attempt = 0; attempt < 2 && !consistent; attempt++) {
        const uint32 before = pg_atomic_read_u32(&p.seq);
        if (before % 2 == 1) continue;
        pg_read_barrier();
        Set copy;
        memcpy(static_cast<void *>(&copy), const_cast<const Set *>(&sets[s.set]), sizeof copy);
        pg_read_barrier();
        if (pg_atomic_read_u32(&p.seq) != before) continue;
        consistent = true;
        for (const Entry &e : copy.way)
            if (e.fingerprint[0] == s.fingerprint[0] && e.fingerprint[1] == s.fingerprint[1]) {
                times->expires_at = e.expires_at;
                times->last_active_at = e.last_active_at;
                found = true;
                break;
            }
    }
    if (!consistent) {
        LWLockAcquire(lock_of(s.partition), LW_SHARED);
        if (const Entry *e = find(s)) {
            times->expires_at = e->expires_at;
            times->last_active_at = e->last_active_at;
            found = true;
        }
        LWLockRelease(lock_of(s.partition));
    }
    if (found) pg_atomic_fetch_add_u64(&p.hits, 1);
    return found;
}

void count_miss(const Key &key) {
    pg_atomic_fetch_add_u64(&shared->partition[slot_of(key).partition].misses, 1);
}

bool may_fill() { return !TransactionIdIsValid(GetTopTransactionIdIfAny()); }

FillTicket ticket(const Key &key) {
    FillTicket t;
    t.global = pg_atomic_read_u64(&shared->global_generation);
    t.partition = pg_atomic_read_u64(&shared->partition[slot_of(key).partition].generation);
    // The generations must be read before the snapshot that the lookup takes.
    pg_memory_barrier();
    return t;
}

void fill(const Key &key, const Times &times, const FillTicket &t) {
    const Slot s = slot_of(key);
    Partition &p = shared->partition[s.partition];
    LWLockAcquire(lock_of(s.partition), LW_EXCLUSIVE);
    bool current = pg_atomic_read_u64(&shared->global_generation) == t.global &&
                   pg_atomic_read_u64(&p.generation) == t.partition;
    if (current) {
        begin_write(p);
        Entry *e = find(s);
        if (e == nullptr) {
            bool evicted;
            e = victim(s.set, &evicted);
            e->fingerprint[0] = s.fingerprint[0];
            e->fingerprint[1] = s.fingerprint[1];
            if (evicted)
                pg_atomic_fetch_add_u64(&p.evictions, 1);
            else
                pg_atomic_fetch_add_u64(&p.entries, 1);
        }
        // A touched or extended session refreshes its entry's times.
        e->expires_at = times.expires_at;
        e->last_active_at = times.last_active_at;
        end_write(p);
    }
    LWLockRelease(lock_of(s.partition));
}

void invalidate(const Key &key) {
    const Slot s = slot_of(key);
    Partition &p = shared->partition[s.partition];
    LWLockAcquire(lock_of(s.partition), LW_EXCLUSIVE);
    pg_atomic_fetch_add_u64(&p.generation, 1);
    if (Entry *e = find(s)) {
        begin_write(p);
        memset(static_cast<void *>(e), 0, sizeof *e);
        end_write(p);
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
        begin_write(p);
        for (uint32 set = part; set < shared->sets; set += partitions)
            for (Entry &e : sets[set].way)
                if (!is_free(e)) {
                    memset(static_cast<void *>(&e), 0, sizeof e);
                    removed++;
                }
        end_write(p);
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
