// Touches (validate_session moving last_active_at forward) taken out of the
// caller's transaction: a backend that finds a touch due queues it in shared
// memory and answers at once; the background worker writes the queued touches
// of its database in its own short transactions, about once a second. So a
// request never holds its session's row lock (a concurrent request or a logout
// never waits behind it), a read-only transaction loses no touch, and the
// touch does not depend on the request's transaction committing.
#pragma once

extern "C" {
#include "postgres.h"

#include "datatype/timestamp.h"
#include "utils/uuid.h"
}

#include <cstddef>

namespace sessrev::touch_queue {

// Move the session's last_active_at to at, unless it has moved past
// threshold meanwhile (another touch got there first).
struct Touch {
    pg_uuid_t session_id;
    TimestampTz at;
    TimestampTz threshold;
};

void request_shmem();  // shmem_request_hook
void startup_shmem();  // shmem_startup_hook

// Queues a touch for the worker, which must be serving this database; false
// (the caller touches in its own transaction) when it is not, or the queue is
// full.
bool push(const Touch &touch);

// The worker's side: takes up to max queued touches into out; returns how many.
std::size_t take(Touch *out, std::size_t max);
// Touches waiting.
std::size_t waiting();

}  // namespace sessrev::touch_queue
