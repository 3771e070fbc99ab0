// The background cleanup worker: registered when sessrev is preloaded, it runs
// the cleanup every sessrev.cleanup_interval in database sessrev.database, one
// short transaction per batch, and reports itself in shared memory.
#pragma once

extern "C" {
#include "postgres.h"

#include "datatype/timestamp.h"
}

namespace sessrev::worker {

void register_worker();  // from _PG_init while preloading
void request_shmem();    // shmem_request_hook
void startup_shmem();    // shmem_startup_hook

struct Status {
    bool exists;  // the worker's shared memory exists (preloaded)
    int pid;      // 0 when no worker is running
    TimestampTz last_run_at;  // 0 before the first run
    int64 last_deleted;
    int64 total_deleted;
    int64 runs;
    char last_error[256];
};

Status status();

// Asks a running worker to clean up now; false when there is none.
bool wake();

// True when a worker is running connected to database.
bool serves(Oid database);
// Wakes the worker to write queued touches (touch_queue.hpp) now.
void nudge();
// Asks the worker serving this database to fold pending revocations
// (pending_revocations.hpp); after a commit that recorded some.
void request_apply();

}  // namespace sessrev::worker
