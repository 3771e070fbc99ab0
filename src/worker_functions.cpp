// SQL-callable worker_status(), wake_cleanup_worker() and
// touch_queue_waiting().
#include "boundary.hpp"
#include "touch_queue.hpp"
#include "worker.hpp"

extern "C" {
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"
}

// worker_status() RETURNS TABLE(pid int, last_run_at timestamptz, last_deleted bigint,
//     total_deleted bigint, runs bigint, last_error text): one row, from shared memory.
SESSREV_FUNCTION(worker_status) {
    InitMaterializedSRF(fcinfo, 0);
    ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    const sessrev::worker::Status s = sessrev::worker::status();
    Datum values[6] = {Int32GetDatum(s.pid), TimestampTzGetDatum(s.last_run_at),
                       Int64GetDatum(s.last_deleted), Int64GetDatum(s.total_deleted),
                       Int64GetDatum(s.runs), CStringGetTextDatum(s.last_error)};
    bool nulls[6] = {s.pid == 0, s.last_run_at == 0, s.runs == 0, !s.exists, !s.exists,
                     s.last_error[0] == '\0'};
    tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    return (Datum) 0;
}

// wake_cleanup_worker() RETURNS boolean: true when a running worker was asked to
// clean up now.
SESSREV_FUNCTION(wake_cleanup_worker) { PG_RETURN_BOOL(sessrev::worker::wake()); }

// touch_queue_waiting() RETURNS bigint: touches queued for the worker to write
// (all databases; 0 when the library is not preloaded).
SESSREV_FUNCTION(touch_queue_waiting) {
    PG_RETURN_INT64(static_cast<int64>(sessrev::touch_queue::waiting()));
}
