#include "in_doubt.hpp"

#include "cache.hpp"
#include "jwt_cache.hpp"
#include "settings.hpp"

extern "C" {
#include "access/parallel.h"
#include "access/transam.h"
#include "access/twophase.h"
#include "access/xlog.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/lwlock.h"
#include "storage/procarray.h"
#include "storage/shmem.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
}

#include <cstring>

namespace sessrev::in_doubt {
namespace {

constexpr uint32 bucket_words = cache::buckets / 64;
constexpr const char *tranche = "sessrev_in_doubt";

struct Entry {
    TransactionId xid;  // InvalidTransactionId: free
    bool all;
    bool global;
    bool filters;  // added to is_jwt_revoked's filters (replayed)
    Oid resume;  // a database whose cache resumes if the transaction committed
    uint64 buckets[bucket_words];
};

struct Shared {
    // Reasons for doubt: entries in use, plus one while the transactions from
    // before the server started may still be prepared. 0: one read per check.
    pg_atomic_uint32 reasons;
    pg_atomic_uint32 all;     // reasons that cover every bucket
    pg_atomic_uint32 global;  // reasons that cover the global JWT cut-offs
    pg_atomic_uint32 global_entries;  // of them, transactions' (not the start's)
    pg_atomic_uint32 filters; // replayed entries that added to the JWT filters
    bool restarted;           // the start's reason is still there (or again: rearm())
    TransactionId horizon;    // the start's: every transaction older must end first
    bool awaiting_primary;    // in recovery: no record since the start or the primary's
    bool stopped;             // a reason for good: a record could not be followed
    pg_atomic_uint64 next_resolution;  // TimestampTz; one attempt a millisecond
    int capacity;
    pg_atomic_uint32 bucket[cache::buckets];  // entries in doubt over each bucket
    Entry entry[FLEXIBLE_ARRAY_MEMBER];
};

Shared *shared = nullptr;
LWLock *lock = nullptr;

// A standby follows every transaction of its primary that changed sessrev's
// tables; the primary's max_connections and max_prepared_transactions cannot
// exceed the standby's.
int capacity() { return max_prepared_xacts + (settings::standby_cache ? MaxBackends : 0); }

void count(pg_atomic_uint32 *counter, bool on, int delta) {
    if (!on) return;
    if (delta > 0)
        pg_atomic_fetch_add_u32(counter, 1);
    else
        pg_atomic_fetch_sub_u32(counter, 1);
}

// A reason that covers everything (every bucket, the global JWT cut-offs):
// the start's, or one for good.
void count_everything(int delta) {
    count(&shared->all, true, delta);
    count(&shared->global, true, delta);
    count(&shared->reasons, true, delta);
}

// Under the exclusive lock: the transaction of e has ended. Its buckets' epochs
// move first, so that nothing filled before outlives the doubt.
void release(Entry &e) {
    for (uint32 w = 0; w < bucket_words; w++)
        for (uint64 bits = e.buckets[w]; bits != 0; bits &= bits - 1)
            cache::invalidate_bucket(w * 64 + static_cast<uint32>(__builtin_ctzll(bits)));
    if (e.all) cache::flush();
    if (e.global) jwt_cache::invalidate_all_globals();
    if (OidIsValid(e.resume) && TransactionIdDidCommit(e.xid)) {
        // Its rows may have changed unseen while the triggers were off.
        jwt_cache::forget_build_of(e.resume);
        cache::resume(e.resume);
    }
    pg_memory_barrier();
    for (uint32 w = 0; w < bucket_words; w++)
        for (uint64 bits = e.buckets[w]; bits != 0; bits &= bits - 1)
            pg_atomic_fetch_sub_u32(&shared->bucket[w * 64 + static_cast<uint32>(__builtin_ctzll(bits))], 1);
    count(&shared->all, e.all, -1);
    count(&shared->global, e.global, -1);
    count(&shared->global_entries, e.global, -1);
    count(&shared->filters, e.filters, -1);
    e.xid = InvalidTransactionId;
    pg_atomic_fetch_sub_u32(&shared->reasons, 1);
}

// Under the exclusive lock: lifts the doubt of every transaction that has
// ended; from a check (in a transaction), also the start's.
void release_ended(bool in_transaction) {
    for (int i = 0; i < shared->capacity; i++) {
        Entry &e = shared->entry[i];
        if (TransactionIdIsValid(e.xid) && !TransactionIdIsInProgress(e.xid)) release(e);
    }
    if (!shared->restarted || !in_transaction || IsInParallelMode()) return;
    // In recovery, nothing is cached until a record shows that the primary
    // writes them.
    if (RecoveryInProgress() && shared->awaiting_primary) return;
    // The first check after the start sets the horizon; a later one lifts the
    // start's doubt once nothing older is still running (or prepared): a
    // fresh snapshot's xmin, on a primary as on a standby. Every epoch moves
    // first: a fill begun while an old transaction was prepared may be under
    // way.
    if (!TransactionIdIsValid(shared->horizon)) {
        shared->horizon = ReadNextTransactionId();
    } else if (TransactionIdFollowsOrEquals(GetLatestSnapshot()->xmin, shared->horizon)) {
        cache::flush();
        jwt_cache::invalidate_all_globals();
        pg_memory_barrier();
        shared->restarted = false;
        count_everything(-1);
    }
}

// At most once a millisecond across the server, and never waiting for another
// backend's attempt.
void try_resolution() {
    const TimestampTz now = GetCurrentTimestamp();
    if (now < static_cast<TimestampTz>(pg_atomic_read_u64(&shared->next_resolution))) return;
    pg_atomic_write_u64(&shared->next_resolution, static_cast<uint64>(now + 1000));
    if (!LWLockConditionalAcquire(lock, LW_EXCLUSIVE)) return;
    release_ended(true);
    LWLockRelease(lock);
}

// Under the exclusive lock: everything in doubt again until every transaction
// older than the next check has ended, as after a start.
void rearm() {
    // Filters built meanwhile may lack what was never replayed.
    jwt_cache::forget_build_of(InvalidOid);
    if (shared->restarted) return;
    shared->restarted = true;
    shared->horizon = InvalidTransactionId;
    count_everything(1);
}

// Under the exclusive lock: a free entry, after releasing what has ended if
// need be; nullptr when none.
Entry *free_entry(bool in_transaction) {
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) release_ended(in_transaction);
        for (int i = 0; i < shared->capacity; i++)
            if (!TransactionIdIsValid(shared->entry[i].xid)) return &shared->entry[i];
    }
    return nullptr;
}

void fill_entry(Entry &e, TransactionId xid, const uint64 *buckets, bool all, bool global, bool filters,
                Oid resume) {
    e.all = all;
    e.global = global;
    e.filters = filters;
    e.resume = resume;
    memcpy(e.buckets, buckets, sizeof e.buckets);
    for (uint32 w = 0; w < bucket_words; w++)
        for (uint64 bits = e.buckets[w]; bits != 0; bits &= bits - 1)
            pg_atomic_fetch_add_u32(&shared->bucket[w * 64 + static_cast<uint32>(__builtin_ctzll(bits))], 1);
    count(&shared->all, all, 1);
    count(&shared->global, global, 1);
    count(&shared->global_entries, global, 1);
    count(&shared->filters, filters, 1);
    e.xid = xid;
    pg_atomic_fetch_add_u32(&shared->reasons, 1);
}

// Any doubt left after an attempt to lift what has ended.
bool any_doubt() {
    const bool doubt = pg_atomic_read_u32(&shared->reasons) != 0;
    if (doubt) try_resolution();
    return doubt;
}

}  // namespace

std::size_t shmem_size() {
    return add_size(offsetof(Shared, entry), mul_size(capacity(), sizeof(Entry)));
}

void request_shmem() {
    RequestAddinShmemSpace(shmem_size());
    RequestNamedLWLockTranche(tranche, 1);
}

void startup() {
    bool found;
    shared = static_cast<Shared *>(ShmemInitStruct("sessrev in doubt", shmem_size(), &found));
    lock = &GetNamedLWLockTranche(tranche)[0].lock;
    if (found) return;
    memset(static_cast<void *>(shared), 0, shmem_size());
    shared->capacity = capacity();
    // Prepared transactions survive a restart; what they changed does not.
    shared->restarted = shared->capacity > 0;
    const uint32 start = shared->restarted ? 1 : 0;
    pg_atomic_init_u32(&shared->reasons, start);
    pg_atomic_init_u32(&shared->all, start);
    pg_atomic_init_u32(&shared->global, start);
    pg_atomic_init_u32(&shared->global_entries, 0);
    pg_atomic_init_u32(&shared->filters, 0);
    pg_atomic_init_u64(&shared->next_resolution, 0);
    shared->horizon = InvalidTransactionId;
    shared->awaiting_primary = settings::standby_cache;
    shared->stopped = false;
    for (pg_atomic_uint32 &b : shared->bucket) pg_atomic_init_u32(&b, 0);
}

void add(TransactionId xid, const uint64 *buckets, bool all, bool global) {
    // Without max_prepared_transactions, PostgreSQL refuses the PREPARE itself.
    if (shared == nullptr || shared->capacity == 0) return;
    LWLockAcquire(lock, LW_EXCLUSIVE);
    Entry *e = free_entry(true);
    if (e == nullptr) {
        LWLockRelease(lock);
        ereport(ERROR, (errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
                        errmsg("sessrev: too many prepared transactions changed sessrev's tables"),
                        errhint("Commit or roll back some with COMMIT PREPARED or ROLLBACK PREPARED.")));
    }
    fill_entry(*e, xid, buckets, all, global, false, InvalidOid);
    LWLockRelease(lock);
}

void replayed(TransactionId xid, const uint64 *buckets, bool all, bool global, bool filters, Oid resume) {
    if (shared == nullptr || shared->capacity == 0) return;
    LWLockAcquire(lock, LW_EXCLUSIVE);
    shared->awaiting_primary = false;
    // Replay must not fail: without room, everything is in doubt instead.
    if (Entry *e = free_entry(false); e != nullptr)
        fill_entry(*e, xid, buckets, all, global, filters, resume);
    else
        rearm();
    LWLockRelease(lock);
}

void primary_writes_records() {
    if (shared == nullptr || !shared->awaiting_primary) return;
    LWLockAcquire(lock, LW_EXCLUSIVE);
    shared->awaiting_primary = false;
    LWLockRelease(lock);
}

void await_primary() {
    if (shared == nullptr || shared->capacity == 0) return;
    LWLockAcquire(lock, LW_EXCLUSIVE);
    rearm();
    shared->awaiting_primary = true;
    LWLockRelease(lock);
}

void stop_serving() {
    if (shared == nullptr) return;
    LWLockAcquire(lock, LW_EXCLUSIVE);
    jwt_cache::forget_build_of(InvalidOid);
    if (!shared->stopped) {
        shared->stopped = true;
        count_everything(1);
    }
    LWLockRelease(lock);
}

bool blocks(uint32 bucket) {
    if (shared == nullptr) return false;
    bool blocked = any_doubt() && (pg_atomic_read_u32(&shared->all) != 0 ||
                                   pg_atomic_read_u32(&shared->bucket[bucket]) != 0);
    // The caller reads the entry and its epoch only after the doubt.
    pg_read_barrier();
    return blocked;
}

bool prepared_in(uint32 bucket) {
    if (shared == nullptr) return false;
    bool prepared = any_doubt() && pg_atomic_read_u32(&shared->bucket[bucket]) != 0;
    pg_read_barrier();
    return prepared;
}

bool prepared_global() {
    if (shared == nullptr) return false;
    // A transaction's, not the doubt of a start (which covers the global
    // cut-offs too, and would refuse every check until it lifts).
    bool prepared = any_doubt() && pg_atomic_read_u32(&shared->global_entries) != 0;
    pg_read_barrier();
    return prepared;
}

bool blocks_global() {
    if (shared == nullptr) return false;
    bool blocked = any_doubt() && pg_atomic_read_u32(&shared->global) != 0;
    pg_read_barrier();
    return blocked;
}

bool blocks_filter_build() {
    if (shared == nullptr) return false;
    bool blocked = any_doubt() && (pg_atomic_read_u32(&shared->all) != 0 ||
                                   pg_atomic_read_u32(&shared->filters) != 0);
    pg_read_barrier();
    return blocked;
}

}  // namespace sessrev::in_doubt
