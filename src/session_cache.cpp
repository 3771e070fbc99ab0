#include "session_cache.hpp"

#include "in_doubt.hpp"
#include "seqlock.hpp"
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

// A set is 512 bytes, prefetched while the token is hashed, of four
// 128-byte slots. An entry takes one slot when its user id and metadata fit in
// the slot after its header, else two adjacent ones: small sessions get four
// ways, and two entries that share a set no longer push each other out.
constexpr int slots = 4;
constexpr std::size_t slot_bytes = 128;
constexpr int partitions = 128;
constexpr const char *tranche = "sessrev_session_cache";

// All-zero fingerprint: a free slot. Alive while epoch is its bucket's current
// one (cache::current_epoch), exactly like an is_revoked entry.
struct Header {
    uint64 fingerprint[2];
    uint32 epoch;
    uint16 user_id_length;
    uint16 metadata_length;
    TimestampTz expires_at;
    TimestampTz last_active_at;
    pg_uuid_t session_id;
};
constexpr std::size_t slot_payload = slot_bytes - sizeof(Header);
static_assert(sizeof(Header) + payload_bytes == 2 * slot_bytes, "the largest entry fills two slots");

// An entry at slot s: its header, then its payload running on over slot s + 1
// when it takes two.
struct Entry {
    Header header;
    char payload[payload_bytes];
};

// Aligned to its size, so that a set never straddles two pages (a lookup
// then costs at most one TLB miss).
struct alignas(512) Set {
    unsigned char bytes[slots * slot_bytes];
};
static_assert(sizeof(Set) == 512, "eight cache lines a set");

int span_of(std::size_t payload_length) { return payload_length <= slot_payload ? 1 : 2; }

Header *header_at(Set &set, int slot) { return reinterpret_cast<Header *>(set.bytes + slot * slot_bytes); }
Entry *entry_at(Set &set, int slot) { return reinterpret_cast<Entry *>(set.bytes + slot * slot_bytes); }

struct alignas(64) Partition {
    pg_atomic_uint32 seq;  // odd while a writer changes one of its sets
    pg_atomic_uint64 hits;
    pg_atomic_uint64 misses;
    pg_atomic_uint64 evictions;
    pg_atomic_uint64 entries;
    pg_atomic_uint64 too_large;
};

struct alignas(alignof(Set)) Shared {
    uint32 sets;
    Partition partition[partitions];
    // followed by `sets` Sets
};

Shared *shared = nullptr;
Set *sets = nullptr;
LWLockPadded *locks = nullptr;
shmem_startup_hook_type prev_shmem_startup = nullptr;

// capacity counts entries of the largest size: two a set.
constexpr int largest_per_set = slots / 2;
uint32 set_count(int capacity) {
    return static_cast<uint32>((capacity + largest_per_set - 1) / largest_per_set);
}
int capacity() { return settings::cache_size > 0 ? settings::session_cache_size : 0; }

uint32 set_of(uint64 place) {
    return static_cast<uint32>((static_cast<unsigned __int128>(place) * shared->sets) >> 64);
}
int partition_of(uint32 set) { return static_cast<int>(set % partitions); }
LWLock *lock_of(int partition) { return &locks[partition].lock; }

bool is_free(const Header &h) { return (h.fingerprint[0] | h.fingerprint[1]) == 0; }
bool matches(const Header &h, const cache::Identity &id) {
    return h.fingerprint[0] == id.fingerprint[0] && h.fingerprint[1] == id.fingerprint[1];
}
bool is_dead(const Header &h) { return !cache::is_alive(h.fingerprint, h.epoch); }
int span_of(const Header &h) {
    return is_free(h) ? 1 : span_of(static_cast<std::size_t>(h.user_id_length) + h.metadata_length);
}

// For each slot, the slot its entry starts at, or -1 when it is free.
void owners_of(Set &set, int owner[slots]) {
    for (int s = 0; s < slots;) {
        const Header &h = *header_at(set, s);
        const int span = is_free(h) ? 1 : Min(span_of(h), slots - s);
        for (int k = 0; k < span; k++) owner[s + k] = is_free(h) ? -1 : s;
        s += span;
    }
}

// The slot of the entry for id in a consistent copy of a set, or -1.
int find(Set &set, const cache::Identity &id) {
    for (int s = 0; s < slots;) {
        const Header &h = *header_at(set, s);
        const int span = span_of(h);
        if (!is_free(h) && matches(h, id))
            return s + span <= slots && h.user_id_length + h.metadata_length <= payload_bytes ? s : -1;
        s += span;
    }
    return -1;
}

// Frees the entry at slot s (its header and payload).
void release(Set &set, int s, Partition &p) {
    const int span = Min(span_of(*header_at(set, s)), slots - s);
    memset(set.bytes + s * slot_bytes, 0, span * slot_bytes);
    pg_atomic_fetch_sub_u64(&p.entries, 1);
}

// Where a new entry of span slots goes: the run that frees fewest live
// entries, then the one whose live entries were least recently active, then
// the one that reuses fewest dead entries. It frees what it takes.
int make_room(Set &set, int span, Partition &p) {
    int owner[slots];
    owners_of(set, owner);
    // (live entries freed, newest of their last activities, dead entries freed)
    struct Cost {
        int live = 0;
        TimestampTz newest = DT_NOBEGIN;
        int dead = 0;
        bool operator<(const Cost &o) const {
            if (live != o.live) return live < o.live;
            if (newest != o.newest) return newest < o.newest;
            return dead < o.dead;
        }
    };
    int best = 0;
    Cost best_cost{slots + 1, DT_NOBEGIN, 0};
    for (int start = 0; start + span <= slots; start++) {
        Cost cost;
        for (int s = start; s < start + span; s++) {
            if (owner[s] < 0 || (s > start && owner[s] == owner[s - 1])) continue;
            const Header &h = *header_at(set, owner[s]);
            if (is_dead(h)) {
                cost.dead++;
            } else {
                cost.live++;
                cost.newest = Max(cost.newest, h.last_active_at);
            }
        }
        if (cost < best_cost) {
            best = start;
            best_cost = cost;
        }
    }
    for (int s = best; s < best + span; s++) {
        if (owner[s] < 0 || (s > best && owner[s] == owner[s - 1])) continue;
        if (!is_dead(*header_at(set, owner[s]))) pg_atomic_fetch_add_u64(&p.evictions, 1);
        release(set, owner[s], p);
    }
    return best;
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
    const uint32 set_index = set_of(place);
    cache::prefetch_lines(&sets[set_index], sizeof(Set));
    // The sequence the lookup reads first.
    __builtin_prefetch(&shared->partition[partition_of(set_index)]);
}

namespace {

// Copies the entry for id out of a set that a writer may be changing: headers
// one by one along the chain of spans, then only the found entry's payload,
// every length bounded so that a torn header never reads past the set. The
// copy counts only if the partition's sequence shows no write meanwhile.
bool copy_entry(const Set &set, const cache::Identity &id, Header *header, char *payload) {
    for (int s = 0; s < slots;) {
        memcpy(static_cast<void *>(header), set.bytes + s * slot_bytes, sizeof *header);
        const int span = span_of(*header);
        if (!is_free(*header) && matches(*header, id)) {
            const std::size_t length = static_cast<std::size_t>(header->user_id_length) + header->metadata_length;
            if (s + span > slots || length > payload_bytes) return false;
            memcpy(payload, set.bytes + s * slot_bytes + sizeof(Header), length);
            return true;
        }
        s += span;
    }
    return false;
}

}  // namespace

bool lookup(const cache::Key &key, uint64 place, Profile *profile, cache::FillTicket *seen) {
    const cache::Identity id = cache::identity_of(key);
    // Fetched while the set is read: the check after it would wait otherwise.
    cache::prefetch_epoch(id.bucket);
    if (in_doubt::blocks(id.bucket)) return false;
    const uint32 set_index = set_of(place);
    const int part = partition_of(set_index);
    Partition &p = shared->partition[part];
    // Optimistic read under the partition's sequence, as cache::lookup does;
    // what was read is used only once it is known to be whole.
    Header header;
    bool found = false;
    if (!seqlock::read_unchanged(p.seq, [&] { found = copy_entry(sets[set_index], id, &header, profile->payload); })) {
        LWLockAcquire(lock_of(part), LW_SHARED);
        found = copy_entry(sets[set_index], id, &header, profile->payload);
        LWLockRelease(lock_of(part));
    }
    if (!found || header.epoch != cache::current_epoch(id.bucket)) return false;
    seen->epoch = header.epoch;
    profile->session_id = header.session_id;
    profile->expires_at = header.expires_at;
    profile->last_active_at = header.last_active_at;
    profile->user_id_length = header.user_id_length;
    profile->metadata_length = header.metadata_length;
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
    // Already dead, or a prepared transaction may commit a change to it unseen.
    if (in_doubt::blocks(id.bucket) || cache::current_epoch(id.bucket) != ticket.epoch) return;
    const std::size_t length = static_cast<std::size_t>(profile.user_id_length) + profile.metadata_length;
    LWLockAcquire(lock_of(part), LW_EXCLUSIVE);
    seqlock::begin_write(p.seq);
    Set &set = sets[set_index];
    // The old entry goes first: the new one may need a different number of slots.
    const int old = find(set, id);
    if (old >= 0) release(set, old, p);
    const int slot = make_room(set, span_of(length), p);
    Entry *e = entry_at(set, slot);
    e->header.fingerprint[0] = id.fingerprint[0];
    e->header.fingerprint[1] = id.fingerprint[1];
    // An invalidation after the check above leaves this entry dead on arrival.
    e->header.epoch = ticket.epoch;
    e->header.user_id_length = profile.user_id_length;
    e->header.metadata_length = profile.metadata_length;
    e->header.expires_at = profile.expires_at;
    e->header.last_active_at = profile.last_active_at;
    e->header.session_id = profile.session_id;
    memcpy(e->payload, profile.payload, length);
    pg_atomic_fetch_add_u64(&p.entries, 1);
    seqlock::end_write(p.seq);
    LWLockRelease(lock_of(part));
}

Stats stats() {
    Stats s{};
    s.enabled = enabled();
    if (!s.enabled) return s;
    s.capacity = static_cast<int64>(shared->sets) * largest_per_set;
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
        seqlock::begin_write(p.seq);
        for (uint32 set = part; set < shared->sets; set += partitions)
            memset(static_cast<void *>(&sets[set]), 0, sizeof(Set));
        seqlock::end_write(p.seq);
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
