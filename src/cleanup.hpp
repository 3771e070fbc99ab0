// Deletion of expired and long-revoked sessions and of old audit rows, batch by
// batch so that no statement touches more than cleanup_batch_size rows.
#pragma once

extern "C" {
#include "postgres.h"
}

namespace sessrev::cleanup {

struct Counts {
    int64 expired = 0;  // sessions expired longer than the expired retention
    int64 revoked = 0;  // sessions revoked longer than the revoked retention
    int64 audit = 0;    // audit rows older than sessrev.audit_retention
};

// Deletes everything due and writes one CLEANUP audit row with the counts.
// Runs inside the caller's transaction; must be called between SPI_connect
// and SPI_finish.
Counts run(Datum expired_retention, Datum revoked_retention);

}  // namespace sessrev::cleanup
