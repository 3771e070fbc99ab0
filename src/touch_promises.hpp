// A backend that queues a touch caches the session with the touch's time
// already in it (validate_session.cpp): a promise that the worker will write
// it. A touch the worker could not write (the row was locked, the session is
// no longer live, the primary refused a standby's forwarded touch) breaks
// that promise, so the session's entries are invalidated at once: the next
// check reads the table, which never answers live where it holds a dead row.
#pragma once

extern "C" {
#include "postgres.h"

#include "utils/uuid.h"
}

#include <cstddef>

namespace sessrev::touch_promises {

// Forgets the cached entries of a session whose token hash is known.
void forget(const pg_uuid_t &session_id, const bytea *token_hash);

// Forgets the cached entries of these sessions, reading their token hashes;
// SPI must be connected, in a transaction.
void forget(const pg_uuid_t *session_ids, std::size_t count);

}  // namespace sessrev::touch_promises
