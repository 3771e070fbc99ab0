// The session a transaction has validated (validate_session) or declared
// (set_current_session): backend-local, forgotten when the transaction ends so
// that nothing leaks into the next transaction of a pooled connection.
#pragma once

extern "C" {
#include "postgres.h"

#include "utils/uuid.h"
}

#include <cstddef>

namespace sessrev::current_session {

void register_callbacks();

// The current session's user id (NUL-terminated), or nullptr when none.
const char *user_id();
// The current session's id, or nullptr when none.
const pg_uuid_t *session_id();

// Makes a checked session current for the rest of the transaction (or until
// the subtransaction that made it rolls back); user_id is at most 256 bytes.
void remember(const pg_uuid_t &session_id, const char *user_id, std::size_t length);
void forget();

}  // namespace sessrev::current_session
