// SQL-callable cleanup_expired_sessions.
#include "arguments.hpp"
#include "boundary.hpp"
#include "cleanup.hpp"

extern "C" {
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
}

// cleanup_expired_sessions(expired_retention interval, revoked_retention interval)
//     RETURNS integer: the number of sessions deleted, in the caller's transaction.
SESSREV_FUNCTION(cleanup_expired_sessions) {
    namespace cleanup = sessrev::cleanup;
    Datum expired_retention =
        sessrev::arguments::non_negative_interval(fcinfo, 0, "expired_retention");
    Datum revoked_retention =
        sessrev::arguments::non_negative_interval(fcinfo, 1, "revoked_retention");
    SPI_connect();
    if (!cleanup::try_lock(false)) {
        ereport(NOTICE, (errmsg("sessrev: another cleanup is running; nothing done")));
        SPI_finish();
        PG_RETURN_INT32(0);
    }
    if (cleanup::folds_pending()) cleanup::apply_pending();
    const cleanup::Cutoffs cutoffs = cleanup::cutoffs(expired_retention, revoked_retention);
    cleanup::Counts counts;
    cleanup::Step *steps = static_cast<cleanup::Step *>(palloc(cleanup::max_steps * sizeof(cleanup::Step)));
    const int n = cleanup::steps(steps, cleanup::max_steps);
    for (int i = 0; i < n; i++) {
        cleanup::Walk walk(steps[i], cutoffs.of(steps[i].target));
        while (!walk.done()) counts.of(steps[i].target) += walk.next_batch();
    }
    cleanup::write_audit(counts, GetUserNameFromId(GetSessionUserId(), false));
    SPI_finish();
    PG_RETURN_INT32(static_cast<int32>(counts.sessions()));
}
