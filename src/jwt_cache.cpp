#include "jwt_cache.hpp"
#include "compat.hpp"

#include "session_lookup.hpp"

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
}

#include <cstring>

namespace sessrev::jwt_cache {
namespace {

constexpr uint32 filter_bits = 1u << 23;  // 1 MiB per filter buffer
constexpr uint32 filter_words = filter_bits / 64;
constexpr int hashes = 4;

struct Shared {
    // Odd until built and while a build runs; readers seeing it odd or
    // changing answer "maybe".
    pg_atomic_uint64 filter_generation;
    pg_atomic_uint32 active;  // which of the two buffers is in use
    pg_atomic_uint32 owner;   // the database described; InvalidOid until the first build
    slock_t build_mutex;
    bool building;
    int builder_pid;  // whose build it is: one killed mid-build is taken over
    slock_t global_mutex;
    Global global_state;
    TimestampTz global_not_before;
    uint64 global_generation;
    pg_atomic_uint64 bits[2][2][filter_words];  // [buffer][filter][word]
};

Shared *shared = nullptr;

pg_atomic_uint64 *words(uint32 buffer, Filter f) {
    return shared->bits[buffer][f == Filter::jti ? 0 : 1];
}

uint32 bit_index(const token::Hash &hash, int i) {
    uint32 v;
    memcpy(&v, hash.data() + 4 * i, sizeof v);
    return v & (filter_bits - 1);
}

void set_bits(uint32 buffer, Filter f, const token::Hash &hash) {
    pg_atomic_uint64 *w = words(buffer, f);
    for (int i = 0; i < hashes; i++) {
        uint32 b = bit_index(hash, i);
        pg_atomic_fetch_or_u64(&w[b / 64], UINT64CONST(1) << (b % 64));
    }
}

// Adds the text column of every row of relid to the filter in buffer.
void fill_from(Oid relid, const char *column, uint32 buffer, Filter f) {
    Relation rel = table_open(relid, AccessShareLock);
    AttrNumber attnum = get_attnum(relid, column);
    // A snapshot taken now, after the caller's locks: it sees every committed row.
    Snapshot snapshot = RegisterSnapshot(GetLatestSnapshot());
    TableScanDesc scan = table_beginscan(rel, snapshot, 0, nullptr);
    TupleTableSlot *slot = table_slot_create(rel, nullptr);
    while (table_scan_getnextslot(scan, ForwardScanDirection, slot)) {
        bool isnull;
        Datum value = slot_getattr(slot, attnum, &isnull);
        if (isnull) continue;
        text *t = DatumGetTextPP(value);
        set_bits(buffer, f, token::sha256({VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t)}));
    }
    ExecDropSingleTupleTableSlot(slot);
    table_endscan(scan);
    UnregisterSnapshot(snapshot);
    table_close(rel, NoLock);
}

}  // namespace

std::size_t shmem_size() { return MAXALIGN(sizeof(Shared)); }

void startup() {
    bool found;
    shared = static_cast<Shared *>(ShmemInitStruct("sessrev jwt cache", shmem_size(), &found));
    if (found) return;
    memset(static_cast<void *>(shared), 0, sizeof(Shared));
    pg_atomic_init_u64(&shared->filter_generation, 1);  // not built
    pg_atomic_init_u32(&shared->active, 0);
    pg_atomic_init_u32(&shared->owner, InvalidOid);
    SpinLockInit(&shared->build_mutex);
    SpinLockInit(&shared->global_mutex);
    shared->global_state = Global::unknown;
}

bool enabled() { return shared != nullptr; }

bool owned_here() { return pg_atomic_read_u32(&shared->owner) == MyDatabaseId; }

void add(Filter filter, const token::Hash &hash) {
    // Another database's filters, or none built yet: a build will read the row.
    if (owned_here()) set_bits(pg_atomic_read_u32(&shared->active), filter, hash);
}

bool may_contain(Filter filter, const token::Hash &hash) {
    if (!owned_here()) return true;
    uint64 before = pg_atomic_read_u64(&shared->filter_generation);
    if (before % 2 == 1) return true;
    pg_read_barrier();
    pg_atomic_uint64 *w = words(pg_atomic_read_u32(&shared->active), filter);
    bool all_set = true;
    for (int i = 0; i < hashes && all_set; i++) {
        uint32 b = bit_index(hash, i);
        all_set = (pg_atomic_read_u64(&w[b / 64]) >> (b % 64)) & 1;
    }
    pg_read_barrier();
    return all_set || pg_atomic_read_u64(&shared->filter_generation) != before;
}

namespace {

void finish_build() {
    SpinLockAcquire(&shared->build_mutex);
    shared->building = false;
    shared->builder_pid = 0;
    SpinLockRelease(&shared->build_mutex);
}

// Builds the filters for this database unless another database owns them, a
// build is running, or (without force) they are built already.
void build(bool force) {
    SpinLockAcquire(&shared->build_mutex);
    const Oid owner = pg_atomic_read_u32(&shared->owner);
    const bool built = pg_atomic_read_u64(&shared->filter_generation) % 2 == 0;
    // A builder that died (FATAL skips its cleanup) left building set.
    const bool builder_alive = shared->building && shared->builder_pid != MyProcPid &&
                               BackendPidGetProc(shared->builder_pid) != nullptr;
    if (builder_alive || (OidIsValid(owner) && owner != MyDatabaseId) || (built && !force)) {
        SpinLockRelease(&shared->build_mutex);
        return;
    }
    shared->building = true;
    shared->builder_pid = MyProcPid;
    pg_atomic_write_u32(&shared->owner, MyDatabaseId);
    if (built) pg_atomic_fetch_add_u64(&shared->filter_generation, 1);  // odd: "maybe"
    SpinLockRelease(&shared->build_mutex);

    PG_TRY();
    {
        const lookup::Layout l = lookup::layout();
        // No insert may be in flight while the filters are filled from the
        // tables; but a reader never waits for one: it answers from the tables
        // and a later call builds.
        if (!ConditionalLockRelationOid(l.jwt_denylist, ShareLock)) {
            finish_build();
            return;
        }
        if (!ConditionalLockRelationOid(l.user_cutoffs, ShareLock)) {
            UnlockRelationOid(l.jwt_denylist, ShareLock);
            finish_build();
            return;
        }
        const uint32 next = 1 - pg_atomic_read_u32(&shared->active);
        for (Filter f : {Filter::jti, Filter::user}) {
            pg_atomic_uint64 *w = words(next, f);
            for (uint32 i = 0; i < filter_words; i++) pg_atomic_write_u64(&w[i], 0);
        }
        fill_from(l.jwt_denylist, "jti", next, Filter::jti);
        fill_from(l.user_cutoffs, "user_id", next, Filter::user);
        pg_atomic_write_u32(&shared->active, next);
        pg_write_barrier();
        pg_atomic_fetch_add_u64(&shared->filter_generation, 1);  // even: built
        // Writers may go on: from here their triggers set bits themselves.
        UnlockRelationOid(l.user_cutoffs, ShareLock);
        UnlockRelationOid(l.jwt_denylist, ShareLock);
    }
    PG_CATCH();
    {
        // Still odd: readers keep reading the tables until a build succeeds.
        finish_build();
        PG_RE_THROW();
    }
    PG_END_TRY();
    finish_build();
}

}  // namespace

bool serves_this_database() {
    if (!OidIsValid(pg_atomic_read_u32(&shared->owner)) ||
        (owned_here() && pg_atomic_read_u64(&shared->filter_generation) % 2 == 1))
        build(false);
    return owned_here() && pg_atomic_read_u64(&shared->filter_generation) % 2 == 0;
}

void rebuild() { build(true); }

void forget_build() {
    SpinLockAcquire(&shared->build_mutex);
    if (pg_atomic_read_u64(&shared->filter_generation) % 2 == 0)
        pg_atomic_fetch_add_u64(&shared->filter_generation, 1);  // odd: "maybe" until rebuilt
    pg_atomic_write_u32(&shared->owner, InvalidOid);
    SpinLockRelease(&shared->build_mutex);
}

Global global_cutoff(TimestampTz *not_before) {
    SpinLockAcquire(&shared->global_mutex);
    Global state = shared->global_state;
    *not_before = shared->global_not_before;
    SpinLockRelease(&shared->global_mutex);
    return state;
}

uint64 global_ticket() {
    SpinLockAcquire(&shared->global_mutex);
    uint64 generation = shared->global_generation;
    SpinLockRelease(&shared->global_mutex);
    return generation;
}

void fill_global(Global state, TimestampTz not_before, uint64 ticket) {
    SpinLockAcquire(&shared->global_mutex);
    if (shared->global_generation == ticket) {
        shared->global_state = state;
        shared->global_not_before = not_before;
    }
    SpinLockRelease(&shared->global_mutex);
}

void invalidate_global() {
    SpinLockAcquire(&shared->global_mutex);
    shared->global_generation++;
    shared->global_state = Global::unknown;
    SpinLockRelease(&shared->global_mutex);
}

}  // namespace sessrev::jwt_cache
