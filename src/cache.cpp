#include "cache.hpp"

#include "in_doubt.hpp"
#include "jwt_cache.hpp"
#include "seqlock.hpp"
#include "settings.hpp"
#include "token.hpp"

extern "C" {
#include "access/xact.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "common/hashfn.h"
}

#include <cstring>

namespace sessrev::cache {
namespace {

constexpr int ways = 8;          // entries per set: one set is 256 bytes, four adjacent lines
constexpr int partitions = 128;  // LWLocks
// Epochs (buckets, cache.hpp): an invalidation kills about entries/buckets
// entries besides its own (they refill on their next check); 64 KiB of epochs
// stay in the CPU's cache.
constexpr int max_suspended = 64;
constexpr const char *tranche = "sessrev_cache";

// An entry holds a 128-bit fingerprint of its key instead of the key: the first
// 16 bytes of the token's (or user id's) SHA-256, or the session id, XORed with
// a mask derived from the database, the table, the kind and a secret drawn at
// server start. Two keys share a fingerprint only by a 2^-128 accident that no
// SQL user can steer, since nobody sees the secret. All zeroes marks a free way.
// The entry is alive while epoch is its bucket's current epoch.
struct Entry {
    uint64 fingerprint[2];
    TimestampTz expires_at;
    // Whole seconds, rounded down: a hit may see a session idle a second early
    // (and let the table decide), never late. Also the eviction order.
    int32 last_active_s;
    uint32 epoch;
};
static_assert(sizeof(Entry) == 32, "eight entries to a 256-byte set");

struct alignas(256) Set {
    Entry way[ways];
};

struct alignas(64) Partition {
    // Odd while a writer (holding the partition's lock exclusively) changes a
    // set: hits read without the lock and retry if it moved.
    pg_atomic_uint32 seq;
    pg_atomic_uint64 hits;
    pg_atomic_uint64 misses;
    pg_atomic_uint64 evictions;
    pg_atomic_uint64 invalidations;
    pg_atomic_uint64 entries;
};

struct alignas(alignof(Set)) Shared {
    uint32 sets;
    unsigned char secret[32];
    uint64 place_seed;
    Partition partition[partitions];
    pg_atomic_uint32 epoch[buckets];
    // Databases whose triggers are disarmed; readers look only at the count
    // unless it is non-zero.
    pg_atomic_uint32 suspended_count;
    slock_t suspended_mutex;
    Oid suspended[max_suspended];
    // followed by `sets` Sets, each aligned to its size
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

// ±infinity stay themselves; anything else is rounded down to the second. A
// time before 1932 becomes 1932, still idle under any idle timeout (at most 68
// years) today; one after 2068 becomes 2068.
constexpr int32 minus_infinity_s = PG_INT32_MIN;
constexpr int32 plus_infinity_s = PG_INT32_MAX;

int32 to_seconds(TimestampTz t) {
    if (TIMESTAMP_IS_NOBEGIN(t)) return minus_infinity_s;
    if (TIMESTAMP_IS_NOEND(t)) return plus_infinity_s;
    int64 s = t / USECS_PER_SEC - (t % USECS_PER_SEC < 0 ? 1 : 0);
    if (s <= minus_infinity_s) return minus_infinity_s + 1;
    return static_cast<int32>(Min(s, static_cast<int64>(plus_infinity_s - 1)));
}

TimestampTz from_seconds(int32 s) {
    TimestampTz t;
    if (s == minus_infinity_s)
        TIMESTAMP_NOBEGIN(t);
    else if (s == plus_infinity_s)
        TIMESTAMP_NOEND(t);
    else
        t = static_cast<TimestampTz>(s) * USECS_PER_SEC;
    return t;
}

}  // namespace

// The bucket follows from the stored fingerprint alone, so that an entry's
// liveness can be judged from the entry.
uint32 bucket_of(const uint64 fingerprint[2]) {
    uint64 x = fingerprint[0] ^ fingerprint[1];
    x ^= x >> 33;
    x *= UINT64CONST(0xff51afd7ed558ccd);
    x ^= x >> 33;
    return static_cast<uint32>(x % buckets);
}

Identity identity_of(const Key &key) {
    uint64 half[2];
    memcpy(half, key.bytes, sizeof half);
    const uint64 *mask = mask_of(key);
    Identity id;
    id.fingerprint[0] = half[0] ^ mask[0];
    id.fingerprint[1] = half[1] ^ mask[1];
    if ((id.fingerprint[0] | id.fingerprint[1]) == 0) id.fingerprint[0] = 1;  // never "free"
    id.bucket = bucket_of(id.fingerprint);
    return id;
}

uint32 current_epoch(uint32 bucket) { return pg_atomic_read_u32(&shared->epoch[bucket]); }

bool is_alive(const uint64 fingerprint[2], uint32 epoch) { return epoch == current_epoch(bucket_of(fingerprint)); }

void prefetch_epoch(uint32 bucket) { __builtin_prefetch(&shared->epoch[bucket]); }

namespace {

// Multiply-shift instead of a division: place is uniform, so its high bits are.
uint32 set_of(uint64 place) {
    return static_cast<uint32>((static_cast<unsigned __int128>(place) * shared->sets) >> 64);
}
int partition_of(uint32 set) { return static_cast<int>(set % partitions); }

LWLock *lock_of(int partition) { return &locks[partition].lock; }

bool is_free(const Entry &e) { return (e.fingerprint[0] | e.fingerprint[1]) == 0; }
bool matches(const Entry &e, const Identity &id) {
    return e.fingerprint[0] == id.fingerprint[0] && e.fingerprint[1] == id.fingerprint[1];
}

Entry *find(uint32 set_index, const Identity &id) {
    for (Entry &e : sets[set_index].way)
        if (matches(e, id)) return &e;
    return nullptr;
}

enum class Reuse { free_way, dead_entry, eviction };

// A free way, else a dead entry, else the least recently active entry.
Entry *victim(uint32 set_index, Reuse *reuse) {
    Set &set = sets[set_index];
    Entry *oldest = &set.way[0];
    Entry *dead = nullptr;
    for (Entry &e : set.way) {
        if (is_free(e)) {
            *reuse = Reuse::free_way;
            return &e;
        }
        if (dead == nullptr && !is_alive(e.fingerprint, e.epoch)) dead = &e;
        if (e.last_active_s < oldest->last_active_s) oldest = &e;
    }
    *reuse = dead != nullptr ? Reuse::dead_entry : Reuse::eviction;
    return dead != nullptr ? dead : oldest;
}

shmem_startup_hook_type prev_shmem_startup = nullptr;

}  // namespace

std::size_t shmem_size(int capacity) {
    return add_size(sizeof(Shared), mul_size(set_count(capacity), sizeof(Set)));
}

void request_shmem() {
    if (settings::cache_size <= 0) return;
    // Room to align the sets to a whole set.
    RequestAddinShmemSpace(add_size(shmem_size(settings::cache_size), alignof(Set)));
    RequestAddinShmemSpace(jwt_cache::shmem_size());
    in_doubt::request_shmem();
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
        if (!pg_strong_random(shared->secret, sizeof shared->secret) ||
            !pg_strong_random(&shared->place_seed, sizeof shared->place_seed))
            ereport(FATAL, (errmsg("sessrev: could not generate the cache secret")));
        for (pg_atomic_uint32 &epoch : shared->epoch) pg_atomic_init_u32(&epoch, 0);
        pg_atomic_init_u32(&shared->suspended_count, 0);
        SpinLockInit(&shared->suspended_mutex);
        for (Partition &p : shared->partition) {
            pg_atomic_init_u32(&p.seq, 0);
            pg_atomic_init_u64(&p.hits, 0);
            pg_atomic_init_u64(&p.misses, 0);
            pg_atomic_init_u64(&p.evictions, 0);
            pg_atomic_init_u64(&p.invalidations, 0);
            pg_atomic_init_u64(&p.entries, 0);
        }
        memset(static_cast<void *>(sets), 0, static_cast<std::size_t>(shared->sets) * sizeof(Set));
    }
    jwt_cache::startup();
    in_doubt::startup();
    LWLockRelease(AddinShmemInitLock);
}

void startup_shmem() {
    prev_shmem_startup = shmem_startup_hook;
    shmem_startup_hook = startup;
}

bool enabled() { return shared != nullptr; }

uint64 place_of(const Key &key, const void *bytes, std::size_t length) {
    // Seeded, so that nobody can aim many live sessions at one set; and by the
    // key's database and table, so that the same token in two databases does
    // not crowd one set.
    return hash_bytes_extended(static_cast<const unsigned char *>(bytes), static_cast<int>(length),
                               shared->place_seed ^ mask_of(key)[1]);
}

void prefetch(uint64 place) {
    prefetch_lines(&sets[set_of(place)], sizeof(Set));
}

bool lookup(const Key &key, uint64 place, Times *times) {
    const Identity id = identity_of(key);
    if (in_doubt::blocks(id.bucket)) return false;
    const uint32 set_index = set_of(place);
    const int part = partition_of(set_index);
    Partition &p = shared->partition[part];
    Entry found{};
    // Optimistic read: copy the set and keep the copy only if no writer moved
    // the partition's sequence meanwhile; else read it under the shared lock.
    Set copy;
    if (seqlock::read_unchanged(p.seq, [&] {
            memcpy(static_cast<void *>(&copy), const_cast<const Set *>(&sets[set_index]), sizeof copy);
        })) {
        for (const Entry &e : copy.way)
            if (matches(e, id)) {
                found = e;
                break;
            }
    } else {
        LWLockAcquire(lock_of(part), LW_SHARED);
        if (const Entry *e = find(set_index, id)) found = *e;
        LWLockRelease(lock_of(part));
    }
    // A revocation that committed before this call began has bumped the epoch.
    if (is_free(found) || found.epoch != current_epoch(id.bucket)) return false;
    times->expires_at = found.expires_at;
    times->last_active_at = from_seconds(found.last_active_s);
    pg_atomic_fetch_add_u64(&p.hits, 1);
    return true;
}

void count_miss(uint64 place) {
    pg_atomic_fetch_add_u64(&shared->partition[partition_of(set_of(place))].misses, 1);
}

bool may_fill() { return !TransactionIdIsValid(GetTopTransactionIdIfAny()); }

FillTicket ticket(const Key &key) {
    FillTicket t{current_epoch(identity_of(key).bucket)};
    // The epoch must be read before the snapshot that the lookup takes.
    pg_memory_barrier();
    return t;
}

void fill(const Key &key, uint64 place, const Times &times, const FillTicket &t) {
    const Identity id = identity_of(key);
    // Already dead: an invalidation ran after the ticket; or a prepared
    // transaction may commit a change to it unseen.
    if (in_doubt::blocks(id.bucket) || current_epoch(id.bucket) != t.epoch) return;
    const uint32 set_index = set_of(place);
    const int part = partition_of(set_index);
    Partition &p = shared->partition[part];
    LWLockAcquire(lock_of(part), LW_EXCLUSIVE);
    seqlock::begin_write(p.seq);
    Entry *e = find(set_index, id);
    if (e == nullptr) {
        Reuse reuse;
        e = victim(set_index, &reuse);
        e->fingerprint[0] = id.fingerprint[0];
        e->fingerprint[1] = id.fingerprint[1];
        if (reuse == Reuse::eviction) pg_atomic_fetch_add_u64(&p.evictions, 1);
        if (reuse == Reuse::free_way) pg_atomic_fetch_add_u64(&p.entries, 1);
    }
    // A touched or extended session refreshes its entry's times. An
    // invalidation between the check above and here leaves the entry dead.
    e->epoch = t.epoch;
    e->expires_at = times.expires_at;
    e->last_active_s = to_seconds(times.last_active_at);
    seqlock::end_write(p.seq);
    LWLockRelease(lock_of(part));
}

uint32 bucket_of(const Key &key) { return identity_of(key).bucket; }

void invalidate_bucket(uint32 bucket) {
    pg_atomic_fetch_add_u32(&shared->epoch[bucket], 1);
    pg_atomic_fetch_add_u64(&shared->partition[bucket % partitions].invalidations, 1);
}

bool suspend_if_room(Oid database) {
    SpinLockAcquire(&shared->suspended_mutex);
    const uint32 count = pg_atomic_read_u32(&shared->suspended_count);
    bool present = false;
    for (uint32 i = 0; i < count; i++) present |= shared->suspended[i] == database;
    if (!present && count < max_suspended) {
        shared->suspended[count] = database;
        pg_write_barrier();
        pg_atomic_write_u32(&shared->suspended_count, count + 1);
    }
    SpinLockRelease(&shared->suspended_mutex);
    pg_memory_barrier();
    return present || count < max_suspended;
}

void suspend(Oid database) {
    if (!suspend_if_room(database))
        ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                        errmsg("sessrev: too many databases with disabled sessrev triggers"),
                        errhint("Re-enable them with ALTER TABLE ... ENABLE ALWAYS TRIGGER.")));
}

void resume(Oid database) {
    SpinLockAcquire(&shared->suspended_mutex);
    const uint32 count = pg_atomic_read_u32(&shared->suspended_count);
    for (uint32 i = 0; i < count; i++)
        if (shared->suspended[i] == database) {
            shared->suspended[i] = shared->suspended[count - 1];
            pg_write_barrier();
            pg_atomic_write_u32(&shared->suspended_count, count - 1);
            break;
        }
    SpinLockRelease(&shared->suspended_mutex);
}

bool suspended(Oid database) {
    if (pg_atomic_read_u32(&shared->suspended_count) == 0) return false;
    SpinLockAcquire(&shared->suspended_mutex);
    bool found = false;
    for (uint32 i = 0; i < pg_atomic_read_u32(&shared->suspended_count); i++)
        found |= shared->suspended[i] == database;
    SpinLockRelease(&shared->suspended_mutex);
    return found;
}

void flush() {
    // First the epochs, so that no fill begun before the flush survives it.
    for (pg_atomic_uint32 &epoch : shared->epoch) pg_atomic_fetch_add_u32(&epoch, 1);
    for (int part = 0; part < partitions; part++) {
        Partition &p = shared->partition[part];
        LWLockAcquire(lock_of(part), LW_EXCLUSIVE);
        uint64 removed = 0;
        seqlock::begin_write(p.seq);
        for (uint32 set = part; set < shared->sets; set += partitions)
            for (Entry &e : sets[set].way)
                if (!is_free(e)) {
                    memset(static_cast<void *>(&e), 0, sizeof e);
                    removed++;
                }
        seqlock::end_write(p.seq);
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
