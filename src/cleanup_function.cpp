// SQL-callable cleanup_expired_sessions.
#include "arguments.hpp"
#include "boundary.hpp"
#include "cleanup.hpp"

extern "C" {
#include "executor/spi.h"
}

// cleanup_expired_sessions(expired_retention interval, revoked_retention interval)
//     RETURNS integer: the number of sessions deleted.
SESSREV_FUNCTION(cleanup_expired_sessions) {
    Datum expired_retention =
        sessrev::arguments::non_negative_interval(fcinfo, 0, "expired_retention");
    Datum revoked_retention =
        sessrev::arguments::non_negative_interval(fcinfo, 1, "revoked_retention");
    SPI_connect();
    sessrev::cleanup::Counts counts = sessrev::cleanup::run(expired_retention, revoked_retention);
    SPI_finish();
    PG_RETURN_INT32(static_cast<int32>(counts.expired + counts.revoked));
}
