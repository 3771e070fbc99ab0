#include "jwt_cache.hpp"

#include "in_doubt.hpp"
#include "compat.hpp"

#include "session_lookup.hpp"
#include "settings.hpp"

extern "C" {
#include "access/table.h"
#include "access/tableam.h"
#include "executor/tuptable.h"
#include "port/atomics.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "storage/procarray.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
}

#include <cstring>

namespace sessrev::jwt_cache {
namespace {

constexpr uint32 filter_bits = 1u << 23;  // 1 MiB per filter buffer
constexpr uint32 filter_words = filter_bits / 64;
constexpr int hashes = 4;

// One database's filters and global cut-off.
struct Slot {
    // Odd until built and while a build runs, and while the slot changes
    // hands; readers seeing it odd or changing answer "maybe".
    pg_atomic_uint64 filter_generation;
    pg_atomic_uint32 active;  // which of the two buffers is in use
    pg_atomic_uint32 owner;   // the database described; InvalidOid while free
    pg_atomic_uint64 replayed;  // bits set by replay (a standby's build that saw one gives up)
    slock_t build_mutex;
    bool building;
    int builder_pid;  // whose build it is: one killed mid-build is taken over
    slock_t global_mutex;
    Global global_state;
    Oid global_owner;  // the database global_state describes
    TimestampTz global_not_before;
    uint64 global_generation;
    pg_atomic_uint64 bits[2][2][filter_words];  // [buffer][filter][word]
};

struct Shared {
    slock_t claim_mutex;  // a slot changes hands under it
    int slots;
    Slot slot[FLEXIBLE_ARRAY_MEMBER];
};

Shared *shared = nullptr;

int slot_count() { return settings::cache_size > 0 ? settings::jwt_cache_databases : 0; }

// This database's slot, or nullptr. The owner is read again by every use
// that trusts the slot's bits (inside its generation check).
Slot *mine() {
    static Slot *remembered = nullptr;
    if (remembered != nullptr && pg_atomic_read_u32(&remembered->owner) == MyDatabaseId) return remembered;
    remembered = nullptr;
    for (int i = 0; i < shared->slots; i++)
        if (pg_atomic_read_u32(&shared->slot[i].owner) == MyDatabaseId) remembered = &shared->slot[i];
    return remembered;
}

pg_atomic_uint64 *words(Slot *slot, uint32 buffer, Filter f) {
    return slot->bits[buffer][f == Filter::jti ? 0 : 1];
}

uint32 bit_index(const token::Hash &hash, int i) {
    uint32 v;
    memcpy(&v, hash.data() + 4 * i, sizeof v);
    return v & (filter_bits - 1);
}

void set_bits(Slot *slot, uint32 buffer, Filter f, const token::Hash &hash) {
    pg_atomic_uint64 *w = words(slot, buffer, f);
    for (int i = 0; i < hashes; i++) {
        uint32 b = bit_index(hash, i);
        pg_atomic_fetch_or_u64(&w[b / 64], UINT64CONST(1) << (b % 64));
    }
}

// Adds the text column of every row of relid to the filter in buffer.
void fill_from(Slot *slot, Oid relid, const char *column, uint32 buffer, Filter f) {
    Relation rel = table_open(relid, AccessShareLock);
    AttrNumber attnum = get_attnum(relid, column);
    // A snapshot taken now, after the caller's locks: it sees every committed row.
    Snapshot snapshot = RegisterSnapshot(GetLatestSnapshot());
    TableScanDesc scan = table_beginscan(rel, snapshot, 0, nullptr);
    TupleTableSlot *row = table_slot_create(rel, nullptr);
    while (table_scan_getnextslot(scan, ForwardScanDirection, row)) {
        bool isnull;
        Datum value = slot_getattr(row, attnum, &isnull);
        if (isnull) continue;
        text *t = DatumGetTextPP(value);
        set_bits(slot, buffer, f, token::sha256({VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t)}));
    }
    ExecDropSingleTupleTableSlot(row);
    table_endscan(scan);
    UnregisterSnapshot(snapshot);
    table_close(rel, NoLock);
}

}  // namespace

std::size_t shmem_size() {
    return MAXALIGN(add_size(offsetof(Shared, slot), mul_size(slot_count(), sizeof(Slot))));
}

void startup() {
    bool found;
    shared = static_cast<Shared *>(ShmemInitStruct("sessrev jwt cache", shmem_size(), &found));
    if (found) return;
    memset(static_cast<void *>(shared), 0, shmem_size());
    SpinLockInit(&shared->claim_mutex);
    shared->slots = slot_count();
    for (int i = 0; i < shared->slots; i++) {
        Slot &slot = shared->slot[i];
        pg_atomic_init_u64(&slot.filter_generation, 1);  // not built
        pg_atomic_init_u32(&slot.active, 0);
        pg_atomic_init_u32(&slot.owner, InvalidOid);
        pg_atomic_init_u64(&slot.replayed, 0);
        SpinLockInit(&slot.build_mutex);
        SpinLockInit(&slot.global_mutex);
        slot.global_state = Global::unknown;
    }
}

bool enabled() { return shared != nullptr && shared->slots > 0; }

void add(Filter filter, const token::Hash &hash) {
    // No slot yet, or none left: the build that claims one will read the row.
    Slot *slot = mine();
    if (slot != nullptr) set_bits(slot, pg_atomic_read_u32(&slot->active), filter, hash);
}

void add_replayed(Oid database, Filter filter, const token::Hash &hash) {
    for (int i = 0; i < shared->slots; i++) {
        Slot *slot = &shared->slot[i];
        if (pg_atomic_read_u32(&slot->owner) != database) continue;
        // Under the mutex a build publishes under: either it sees the count
        // move and gives up, or these bits go to the buffer it published.
        SpinLockAcquire(&slot->build_mutex);
        pg_atomic_fetch_add_u64(&slot->replayed, 1);
        set_bits(slot, pg_atomic_read_u32(&slot->active), filter, hash);
        SpinLockRelease(&slot->build_mutex);
    }
}

bool may_contain(Filter filter, const token::Hash &hash) {
    Slot *slot = mine();
    if (slot == nullptr) return true;
    uint64 before = pg_atomic_read_u64(&slot->filter_generation);
    if (before % 2 == 1) return true;
    pg_read_barrier();
    // The slot changes hands only while its generation is odd.
    if (pg_atomic_read_u32(&slot->owner) != MyDatabaseId) return true;
    pg_atomic_uint64 *w = words(slot, pg_atomic_read_u32(&slot->active), filter);
    bool all_set = true;
    for (int i = 0; i < hashes && all_set; i++) {
        uint32 b = bit_index(hash, i);
        all_set = (pg_atomic_read_u64(&w[b / 64]) >> (b % 64)) & 1;
    }
    pg_read_barrier();
    return all_set || pg_atomic_read_u64(&slot->filter_generation) != before;
}

namespace {

void finish_build(Slot *slot) {
    SpinLockAcquire(&slot->build_mutex);
    slot->building = false;
    slot->builder_pid = 0;
    SpinLockRelease(&slot->build_mutex);
}

// A builder that died (FATAL skips its cleanup) left building set. Under build_mutex.
bool other_builder_alive(const Slot *slot) {
    return slot->building && slot->builder_pid != MyProcPid &&
           BackendPidGetProc(slot->builder_pid) != nullptr;
}

// Builds this database's filters in its slot unless a build is running or
// (without force) they are built already.
void build(Slot *slot, bool force) {
    SpinLockAcquire(&slot->build_mutex);
    const bool built = pg_atomic_read_u64(&slot->filter_generation) % 2 == 0;
    if (other_builder_alive(slot) || pg_atomic_read_u32(&slot->owner) != MyDatabaseId ||
        (built && !force)) {
        SpinLockRelease(&slot->build_mutex);
        return;
    }
    slot->building = true;
    slot->builder_pid = MyProcPid;
    if (built) pg_atomic_fetch_add_u64(&slot->filter_generation, 1);  // odd: "maybe"
    SpinLockRelease(&slot->build_mutex);

    PG_TRY();
    {
        const lookup::Layout l = lookup::layout();
        // No insert may be in flight while the filters are filled from the
        // tables; but a reader never waits for one: it answers from the tables
        // and a later call builds. A standby cannot take the locks: there, no
        // transaction that added to the filters may be in flight in replay at
        // the start, and none may be replayed until the end.
        const bool standby = RecoveryInProgress();
        const uint64 replayed = pg_atomic_read_u64(&slot->replayed);
        pg_memory_barrier();
        if (standby && in_doubt::blocks_filter_build()) {
            finish_build(slot);
            return;
        }
        if (!standby && !ConditionalLockRelationOid(l.jwt_denylist, ShareLock)) {
            finish_build(slot);
            return;
        }
        if (!standby && !ConditionalLockRelationOid(l.user_cutoffs, ShareLock)) {
            UnlockRelationOid(l.jwt_denylist, ShareLock);
            finish_build(slot);
            return;
        }
        // SQL 1.5: users' cut-offs recorded apart (pending_revocations.hpp).
        const bool pending = OidIsValid(l.pending);
        if (!standby && pending && !ConditionalLockRelationOid(l.pending, ShareLock)) {
            UnlockRelationOid(l.user_cutoffs, ShareLock);
            UnlockRelationOid(l.jwt_denylist, ShareLock);
            finish_build(slot);
            return;
        }
        const uint32 next = 1 - pg_atomic_read_u32(&slot->active);
        for (Filter f : {Filter::jti, Filter::user}) {
            pg_atomic_uint64 *w = words(slot, next, f);
            for (uint32 i = 0; i < filter_words; i++) pg_atomic_write_u64(&w[i], 0);
        }
        fill_from(slot, l.jwt_denylist, "jti", next, Filter::jti);
        fill_from(slot, l.user_cutoffs, "user_id", next, Filter::user);
        if (pending) fill_from(slot, l.pending, "user_id", next, Filter::user);
        pg_memory_barrier();
        const bool replay_moved = standby && (pg_atomic_read_u64(&slot->replayed) != replayed ||
                                              in_doubt::blocks_filter_build());
        SpinLockAcquire(&slot->build_mutex);
        // Released meanwhile (forget_build): the slot stays odd for its next owner.
        if (pg_atomic_read_u32(&slot->owner) == MyDatabaseId && !replay_moved) {
            pg_atomic_write_u32(&slot->active, next);
            pg_write_barrier();
            pg_atomic_fetch_add_u64(&slot->filter_generation, 1);  // even: built
        }
        slot->building = false;
        slot->builder_pid = 0;
        SpinLockRelease(&slot->build_mutex);
        // Writers may go on: from here their triggers set bits themselves.
        if (!standby) {
            if (pending) UnlockRelationOid(l.pending, ShareLock);
            UnlockRelationOid(l.user_cutoffs, ShareLock);
            UnlockRelationOid(l.jwt_denylist, ShareLock);
        }
    }
    PG_CATCH();
    {
        // Still odd: readers keep reading the tables until a build succeeds.
        finish_build(slot);
        PG_RE_THROW();
    }
    PG_END_TRY();
}

// Gives slot to this database, odd (not built) and with no global cut-off,
// if it is still held by from (InvalidOid: free) and no build runs in it.
// Under claim_mutex.
bool take(Slot *slot, Oid from) {
    SpinLockAcquire(&slot->build_mutex);
    const bool ok = pg_atomic_read_u32(&slot->owner) == from && !other_builder_alive(slot);
    if (ok) {
        if (pg_atomic_read_u64(&slot->filter_generation) % 2 == 0)
            pg_atomic_fetch_add_u64(&slot->filter_generation, 1);
        pg_write_barrier();
        pg_atomic_write_u32(&slot->owner, MyDatabaseId);
        slot->building = false;
        slot->builder_pid = 0;
    }
    SpinLockRelease(&slot->build_mutex);
    if (ok) {
        SpinLockAcquire(&slot->global_mutex);
        slot->global_generation++;
        slot->global_state = Global::unknown;
        SpinLockRelease(&slot->global_mutex);
    }
    return ok;
}

// A slot for this database: a free one, else one whose database was dropped;
// nullptr while every slot serves another database (tried again once a second).
Slot *claim() {
    static TimestampTz next_attempt = 0;
    const TimestampTz now = GetCurrentTransactionStartTimestamp();
    if (now < next_attempt) return nullptr;
    Slot *slot = nullptr;
    SpinLockAcquire(&shared->claim_mutex);
    slot = mine();  // another backend of this database may have been first
    for (int i = 0; i < shared->slots && slot == nullptr; i++)
        if (take(&shared->slot[i], InvalidOid)) slot = &shared->slot[i];
    SpinLockRelease(&shared->claim_mutex);
    for (int i = 0; i < shared->slots && slot == nullptr; i++) {
        const Oid owner = pg_atomic_read_u32(&shared->slot[i].owner);
        if (!OidIsValid(owner) || SearchSysCacheExists1(DATABASEOID, ObjectIdGetDatum(owner))) continue;
        SpinLockAcquire(&shared->claim_mutex);
        if (mine() == nullptr && take(&shared->slot[i], owner)) slot = &shared->slot[i];
        SpinLockRelease(&shared->claim_mutex);
        if (slot == nullptr) slot = mine();
    }
    if (slot == nullptr) next_attempt = now + USECS_PER_SEC;
    return slot;
}

}  // namespace

bool serves_this_database() {
    Slot *slot = mine();
    if (slot == nullptr) slot = claim();
    if (slot == nullptr) return false;
    if (pg_atomic_read_u64(&slot->filter_generation) % 2 == 1) build(slot, false);
    return pg_atomic_read_u32(&slot->owner) == MyDatabaseId &&
           pg_atomic_read_u64(&slot->filter_generation) % 2 == 0;
}

void rebuild() {
    Slot *slot = mine();
    if (slot == nullptr) slot = claim();
    if (slot != nullptr) build(slot, true);
}

namespace {
// Under claim_mutex.
void release_slot(Slot *slot) {
    SpinLockAcquire(&slot->build_mutex);
    if (pg_atomic_read_u64(&slot->filter_generation) % 2 == 0)
        pg_atomic_fetch_add_u64(&slot->filter_generation, 1);  // odd: "maybe" until rebuilt
    pg_atomic_write_u32(&slot->owner, InvalidOid);
    SpinLockRelease(&slot->build_mutex);
}
}  // namespace

void forget_build() {
    SpinLockAcquire(&shared->claim_mutex);
    Slot *slot = mine();
    if (slot != nullptr) release_slot(slot);
    SpinLockRelease(&shared->claim_mutex);
}

void forget_build_of(Oid database) {
    if (shared == nullptr) return;
    SpinLockAcquire(&shared->claim_mutex);
    for (int i = 0; i < shared->slots; i++)
        if (!OidIsValid(database) || pg_atomic_read_u32(&shared->slot[i].owner) == database)
            release_slot(&shared->slot[i]);
    SpinLockRelease(&shared->claim_mutex);
}

// The global cut-off is filled and read with its owner, so that a slot that
// changed hands between a caller's check and its read never answers for
// another database.
Global global_cutoff(TimestampTz *not_before) {
    Slot *slot = mine();
    if (slot == nullptr) return Global::unknown;
    SpinLockAcquire(&slot->global_mutex);
    Global state = slot->global_owner == MyDatabaseId ? slot->global_state : Global::unknown;
    *not_before = slot->global_not_before;
    SpinLockRelease(&slot->global_mutex);
    return state;
}

uint64 global_ticket() {
    Slot *slot = mine();
    if (slot == nullptr) return 0;
    SpinLockAcquire(&slot->global_mutex);
    uint64 generation = slot->global_generation;
    SpinLockRelease(&slot->global_mutex);
    return generation;
}

void fill_global(Global state, TimestampTz not_before, uint64 ticket) {
    Slot *slot = mine();
    if (slot == nullptr) return;
    SpinLockAcquire(&slot->global_mutex);
    if (slot->global_generation == ticket) {
        slot->global_state = state;
        slot->global_not_before = not_before;
        slot->global_owner = MyDatabaseId;
    }
    SpinLockRelease(&slot->global_mutex);
}

namespace {
void invalidate_global_of(Slot *slot) {
    SpinLockAcquire(&slot->global_mutex);
    slot->global_generation++;
    slot->global_state = Global::unknown;
    SpinLockRelease(&slot->global_mutex);
}
}  // namespace

void invalidate_global() {
    Slot *slot = mine();
    if (slot != nullptr) invalidate_global_of(slot);
}

void invalidate_all_globals() {
    for (int i = 0; i < shared->slots; i++) invalidate_global_of(&shared->slot[i]);
}

}  // namespace sessrev::jwt_cache
