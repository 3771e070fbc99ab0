#include "worker.hpp"

#include "check_forwarding.hpp"

#include "boundary.hpp"
#include "check_forwarding.hpp"
#include "cleanup.hpp"
#include "compat.hpp"
#include "reuse_reports.hpp"
#include "session_lookup.hpp"
#include "settings.hpp"
#include "standby_records.hpp"
#include "touch_forwarding.hpp"
#include "touch_promises.hpp"
#include "touch_queue.hpp"
#include "touch_writer.hpp"
#include "worker_environment.hpp"

extern "C" {
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_type_d.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

PGDLLEXPORT void sessrev_worker_main(Datum);
}

#include <cstring>

namespace sessrev::worker {
namespace {

constexpr const char *worker_name = "sessrev cleanup";
// How often queued touches reach the table at the latest.
constexpr long touch_write_ms = 1000;

struct Shared {
    slock_t mutex;
    int pid;
    Latch *latch;
    Oid database;         // the database it cleans, once connected
    int failed_connects;  // consecutive starts that could not connect
    bool run_requested;
    bool apply_requested;  // pending revocations were recorded
    TimestampTz last_run_at;
    int64 last_deleted;
    int64 total_deleted;
    int64 runs;
    char last_error[256];
};

Shared *shared = nullptr;
shmem_startup_hook_type prev_shmem_startup = nullptr;

void startup() {
    if (prev_shmem_startup) prev_shmem_startup();
    LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
    bool found;
    shared = static_cast<Shared *>(ShmemInitStruct("sessrev worker", sizeof(Shared), &found));
    if (!found) {
        memset(shared, 0, sizeof(Shared));
        SpinLockInit(&shared->mutex);
    }
    LWLockRelease(AddinShmemInitLock);
}

void forget_worker(int, Datum) {
    SpinLockAcquire(&shared->mutex);
    shared->pid = 0;
    shared->database = InvalidOid;
    shared->latch = nullptr;
    SpinLockRelease(&shared->mutex);
}

bool take_apply_request() {
    SpinLockAcquire(&shared->mutex);
    bool requested = shared->apply_requested;
    shared->apply_requested = false;
    SpinLockRelease(&shared->mutex);
    return requested;
}

bool take_run_request() {
    SpinLockAcquire(&shared->mutex);
    bool requested = shared->run_requested;
    shared->run_requested = false;
    SpinLockRelease(&shared->mutex);
    return requested;
}

void record_run(int64 deleted) {
    SpinLockAcquire(&shared->mutex);
    shared->last_run_at = GetCurrentTimestamp();
    shared->last_deleted = deleted;
    shared->total_deleted += deleted;
    shared->runs++;
    shared->last_error[0] = '\0';
    SpinLockRelease(&shared->mutex);
}

void record_error(const char *message) {
    SpinLockAcquire(&shared->mutex);
    shared->last_run_at = GetCurrentTimestamp();
    strlcpy(shared->last_error, message, sizeof shared->last_error);
    SpinLockRelease(&shared->mutex);
}

// Runs body in its own transaction with SPI connected and a snapshot set.
template <typename Body>
void in_transaction(const char *activity, Body body) {
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    SPI_connect();
    PushActiveSnapshot(GetTransactionSnapshot());
    pgstat_report_activity(STATE_RUNNING, activity);
    body();
    SPI_finish();
    PopActiveSnapshot();
    CommitTransactionCommand();
    pgstat_report_stat(false);
    pgstat_report_activity(STATE_IDLE, nullptr);
}

// On a standby: sends the queued touches to the primary, as many batches as
// write_touches writes; a batch the primary did not take is dropped, and the
// cached promises of every touch not written are forgotten.
void forward_touches() {
    touch_queue::Touch touches[1024];
    for (int batches = 0; batches < 64; batches++) {
        const std::size_t n = touch_queue::take(touches, sizeof touches / sizeof touches[0]);
        if (n == 0) return;
        pg_uuid_t *refused;
        std::size_t refused_count;
        const bool sent = touch_forwarding::send(touches, n, &refused, &refused_count);
        if (!sent) {
            refused = static_cast<pg_uuid_t *>(palloc(n * sizeof(pg_uuid_t)));
            for (std::size_t i = 0; i < n; i++) refused[i] = touches[i].session_id;
            refused_count = n;
        }
        if (refused_count > 0)
            in_transaction("sessrev: forgetting dropped touches",
                           [&] { touch_promises::forget(refused, refused_count); });
        if (!sent) return;
    }
}

// Revokes the sessions of rotated-out tokens reported as reused
// (reuse_reports.hpp), each in a transaction of its own; a standby sends them
// to its primary. At most one batch a round, so that reports cannot starve
// touches and cleanup.
void revoke_reused() {
    token::Hash hashes[64];
    if (std::size_t n = reuse_reports::take(hashes, 64); n > 0) {
        if (RecoveryInProgress()) {
            touch_forwarding::send_reuse_reports(hashes, n);
            return;
        }
        // Distributed, on a node other than the coordinator: its revocations
        // are made there (their audit log is the coordinator's).
        // A failure keeps the reports for the next round and says why in
        // worker_status(), rather than stopping the worker.
        bool forwarded = false;
        in_transaction("sessrev: sending reused tokens to the coordinator", [&] {
            lookup::Layout tables;
            if (!OidIsValid(get_extension_oid("sessrev", true)) || !lookup::find_tables(&tables) ||
                tables.placement.where != placement::Where::distributed || tables.placement.group == 0)
                return;
            forwarded = true;
            if (const char *failure = check_forwarding::try_report_reuse(hashes, n)) {
                for (std::size_t i = 0; i < n; i++) reuse_reports::push(hashes[i]);
                record_error(psprintf("reused tokens not yet reported to the coordinator: %s", failure));
            }
        });
        if (forwarded) {
            // Reports kept after a failure wait a second: the coordinator
            // may be down, and each round would ask it at once again.
            if (reuse_reports::waiting() > 0) {
                ResetLatch(MyLatch);
                (void)WaitLatch(MyLatch, WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 1000, PG_WAIT_EXTENSION);
            }
            return;
        }
        for (std::size_t i = 0; i < n; i++)
            in_transaction("sessrev: revoking a reused token's session", [&] {
                if (!OidIsValid(get_extension_oid("sessrev", true))) return;
                bytea *hash = static_cast<bytea *>(palloc(VARHDRSZ + hashes[i].size()));
                SET_VARSIZE(hash, VARHDRSZ + hashes[i].size());
                memcpy(VARDATA(hash), hashes[i].data(), hashes[i].size());
                Oid types[1] = {BYTEAOID};
                Datum values[1] = {PointerGetDatum(hash)};
                if (SPI_execute_with_args("SELECT sessrev.validate_retired_token($1)", 1, types, values, nullptr,
                                          false, 0) != SPI_OK_SELECT)
                    elog(ERROR, "sessrev: could not revoke a reused token's session");
            });
    }
}

// Writes the queued touches (touch_queue.hpp), a batch per transaction; at
// most 64 batches at a time, so that a queue refilled as fast as it drains
// cannot starve the cleanup.
void write_touches() {
    if (RecoveryInProgress()) {
        forward_touches();
        return;
    }
    std::size_t taken = 1;
    for (int batches = 0; taken > 0 && batches < 64; batches++)
        in_transaction("sessrev: writing touches", [&] { taken = touch_writer::write_batch(); });
}

// Leaves the machine to requests for sessrev.cleanup_delay between batches.
void pause_between_batches() {
    if (settings::cleanup_delay <= 0) return;
    WaitLatch(MyLatch, WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, settings::cleanup_delay, PG_WAIT_EXTENSION);
    CHECK_FOR_INTERRUPTS();
    if (ConfigReloadPending) {
        ConfigReloadPending = false;
        ProcessConfigFile(PGC_SIGHUP);
    }
}

// One cleanup: every target, one transaction per batch, under the cleanup
// lock that manual cleanups also take. Returns sessions deleted, or -1 when the
// extension is missing or another cleanup holds the lock.
int64 run_cleanup(bool *reported_missing) {
    bool installed = false;
    bool here = true;
    bool locked = false;
    cleanup::Cutoffs cutoffs{};
    static cleanup::Step steps[cleanup::max_steps];
    int step_count = 0;
    in_transaction("sessrev: checking for the extension", [&] {
        installed = OidIsValid(get_extension_oid("sessrev", true));
        if (!installed) return;
        // A Citus worker's copies of the tables are empty, and a Citus
        // table's rows are in its shards: nothing here to clean.
        lookup::Layout tables;
        here = !lookup::find_tables(&tables) || tables.placement.where == placement::Where::here ||
               tables.placement.where == placement::Where::distributed;
        if (!here) return;
        locked = cleanup::try_lock(true);
        Datum week = DirectFunctionCall3(interval_in, CStringGetDatum("7 days"),
                                         ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
        Datum month = DirectFunctionCall3(interval_in, CStringGetDatum("30 days"),
                                          ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
        cutoffs = cleanup::cutoffs(week, month);
        // Distributed: this node's shards (sessrev.distribute()).
        if (locked) step_count = cleanup::steps(steps, cleanup::max_steps);
    });
    if (!installed) {
        if (!*reported_missing)
            ereport(LOG, (errmsg("sessrev: extension \"sessrev\" is not installed in database "
                                 "\"%s\"; the cleanup worker waits until it is",
                                 settings::database)));
        *reported_missing = true;
        return -1;
    }
    *reported_missing = false;
    if (!here) {
        record_error("skipped: this node's sessrev tables do not hold its rows (a Citus worker, or a "
                     "sessrev table made a Citus table); cleanup runs where they are");
        return -1;
    }
    if (!locked) {
        record_error("skipped: another cleanup (cleanup_expired_sessions) held the cleanup lock");
        return -1;
    }

    cleanup::Counts counts;
    for (int i = 0; i < step_count; i++) {
        const cleanup::Target target = steps[i].target;
        cleanup::Walk walk(steps[i], cutoffs.of(target));
        while (!walk.done()) {
            in_transaction("sessrev: cleanup batch", [&] { counts.of(target) += walk.next_batch(); });
            // Requests' touches do not wait for a long cleanup.
            write_touches();
            if (!walk.done()) pause_between_batches();
        }
    }
    in_transaction("sessrev: cleanup done", [&] {
        if (cleanup::folds_pending()) cleanup::apply_pending();
        cleanup::write_audit(counts, worker_name);
        cleanup::unlock_session_level();
    });
    return counts.sessions() + counts.jwts;
}

}  // namespace

void request_shmem() { RequestAddinShmemSpace(MAXALIGN(sizeof(Shared))); }

void startup_shmem() {
    prev_shmem_startup = shmem_startup_hook;
    shmem_startup_hook = startup;
}

void register_worker() {
    BackgroundWorker worker;
    memset(&worker, 0, sizeof worker);
    worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
    // Starts on standbys too, where it only waits: cleanup belongs to the primary.
    worker.bgw_start_time = BgWorkerStart_ConsistentState;
    worker.bgw_restart_time = 5;
    strlcpy(worker.bgw_library_name, "sessrev", BGW_MAXLEN);
    strlcpy(worker.bgw_function_name, "sessrev_worker_main", BGW_MAXLEN);
    strlcpy(worker.bgw_name, worker_name, BGW_MAXLEN);
    strlcpy(worker.bgw_type, worker_name, BGW_MAXLEN);
    RegisterBackgroundWorker(&worker);
}

Status status() {
    Status s{};
    if (shared == nullptr) return s;
    s.exists = true;
    SpinLockAcquire(&shared->mutex);
    s.pid = shared->pid;
    s.last_run_at = shared->last_run_at;
    s.last_deleted = shared->last_deleted;
    s.total_deleted = shared->total_deleted;
    s.runs = shared->runs;
    memcpy(s.last_error, shared->last_error, sizeof s.last_error);
    SpinLockRelease(&shared->mutex);
    return s;
}

bool wake() {
    if (shared == nullptr) return false;
    SpinLockAcquire(&shared->mutex);
    // The worker cleans its own database; elsewhere the caller cleans itself.
    Latch *latch = shared->database == MyDatabaseId ? shared->latch : nullptr;
    if (latch != nullptr) shared->run_requested = true;
    SpinLockRelease(&shared->mutex);
    if (latch == nullptr) return false;
    SetLatch(latch);
    return true;
}

bool serves(Oid database) {
    if (shared == nullptr) return false;
    SpinLockAcquire(&shared->mutex);
    const bool serving = shared->pid != 0 && shared->database == database;
    SpinLockRelease(&shared->mutex);
    return serving;
}

void request_apply() {
    if (shared == nullptr) return;
    SpinLockAcquire(&shared->mutex);
    Latch *latch = shared->database == MyDatabaseId ? shared->latch : nullptr;
    if (latch != nullptr) shared->apply_requested = true;
    SpinLockRelease(&shared->mutex);
    if (latch != nullptr) SetLatch(latch);
}

void nudge() {
    if (shared == nullptr) return;
    SpinLockAcquire(&shared->mutex);
    Latch *latch = shared->latch;
    SpinLockRelease(&shared->mutex);
    if (latch != nullptr) SetLatch(latch);
}

}  // namespace sessrev::worker

namespace sessrev::worker {
namespace {

// A start that cannot connect (sessrev.database missing) ends in FATAL, and
// the postmaster starts the worker again 5 s later: wait longer before each
// new attempt, so that it costs a log line every few minutes, and say why in
// worker_status() meanwhile.
void connect() {
    // A failure stays in worker_status() until a run succeeds, also across
    // the restart that follows it.
    char previous_error[sizeof shared->last_error];
    SpinLockAcquire(&shared->mutex);
    const int failed = shared->failed_connects++;
    memcpy(previous_error, shared->last_error, sizeof previous_error);
    if (failed > 0) previous_error[0] = '\0';  // it is this message
    snprintf(shared->last_error, sizeof shared->last_error,
             "could not connect to database \"%s\" (sessrev.database); does it exist?",
             settings::database);
    SpinLockRelease(&shared->mutex);
    if (failed > 0) {
        // The latch starts set, and a SIGHUP sets it too: wait out the whole delay.
        const TimestampTz until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
                                                              Min(30000L * failed, 600000L));
        for (long left; (left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), until)) > 0;) {
            ResetLatch(MyLatch);
            WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, left, PG_WAIT_EXTENSION);
            CHECK_FOR_INTERRUPTS();
        }
    }
    worker_environment::remember();
    BackgroundWorkerInitializeConnection(settings::database, nullptr, 0);
    worker_environment::restore();
    // The worker, a superuser, resolves nothing through a search_path.
    SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
    pgstat_report_appname(worker_name);
    SpinLockAcquire(&shared->mutex);
    shared->failed_connects = 0;
    memcpy(shared->last_error, previous_error, sizeof shared->last_error);
    shared->database = MyDatabaseId;
    shared->pid = MyProcPid;
    shared->latch = MyLatch;
    SpinLockRelease(&shared->mutex);
    before_shmem_exit(forget_worker, 0);
}

// Queued touches first, then pending revocations if some were recorded, then
// the cleanup if one is due.
void run_once(bool cleanup_now, bool apply_now, bool *reported_missing) {
    revoke_reused();
    write_touches();
    if (apply_now && !RecoveryInProgress())
        in_transaction("sessrev: applying pending revocations", [] {
            // Distributed, the coordinator folds them in, through Citus.
            if (OidIsValid(get_extension_oid("sessrev", true)) && cleanup::folds_pending()) cleanup::apply_pending();
        });
    if (!cleanup_now) return;
    int64 deleted = run_cleanup(reported_missing);
    if (deleted >= 0) record_run(deleted);
}

void run() {
    connect();
    MemoryContext run_context =
        AllocSetContextCreate(TopMemoryContext, "sessrev cleanup", ALLOCSET_DEFAULT_SIZES);
    bool reported_missing = false;
    TimestampTz last_run = GetCurrentTimestamp();
    for (;;) {
        const int interval_s = sessrev::settings::cleanup_interval;
        // Queued touches are written at least this often, whatever the interval.
        long timeout_ms = touch_write_ms;
        if (interval_s > 0) {
            TimestampTz due = TimestampTzPlusMilliseconds(last_run, static_cast<int64>(interval_s) * 1000);
            timeout_ms = Min(timeout_ms, Max(0L, TimestampDifferenceMilliseconds(GetCurrentTimestamp(), due)));
        }
        standby_records::announce();
        WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, timeout_ms, PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
        CHECK_FOR_INTERRUPTS();
        if (ConfigReloadPending) {
            ConfigReloadPending = false;
            ProcessConfigFile(PGC_SIGHUP);
            continue;  // recompute the wait with the new interval
        }
        const bool requested = take_run_request();
        const volatile bool apply_now = take_apply_request();
        const bool due = sessrev::settings::cleanup_interval > 0 &&
                         TimestampDifferenceExceeds(
                             last_run, GetCurrentTimestamp(),
                             sessrev::settings::cleanup_interval * 1000);
        // volatile: read inside PG_TRY (setjmp).
        const volatile bool cleanup_now = (requested || due) && !RecoveryInProgress();
        if (requested || due) last_run = GetCurrentTimestamp();
        if (!cleanup_now && !apply_now && touch_queue::waiting() == 0 && reuse_reports::waiting() == 0)
            continue;

        MemoryContext caller = MemoryContextSwitchTo(run_context);
        PG_TRY();
        {
            run_once(cleanup_now, apply_now, &reported_missing);
        }
        PG_CATCH();
        {
            // Keep the error for worker_status(); the worker then exits and the
            // postmaster restarts it after bgw_restart_time.
            MemoryContextSwitchTo(run_context);
            ErrorData *edata = CopyErrorData();
            record_error(edata->message);
            PG_RE_THROW();
        }
        PG_END_TRY();
        MemoryContextSwitchTo(caller);
        MemoryContextReset(run_context);
    }
}

}  // namespace
}  // namespace sessrev::worker

extern "C" void sessrev_worker_main(Datum) {
    pqsignal(SIGHUP, SignalHandlerForConfigReload);
    pqsignal(SIGTERM, die);
    BackgroundWorkerUnblockSignals();
    sessrev::guarded_entry("sessrev_worker_main", sessrev::worker::run);
}
