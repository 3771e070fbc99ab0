// The session a transaction has validated (validate_session) or declared
// (set_current_session): backend-local, forgotten when the transaction ends so
// that nothing leaks into the next transaction of a pooled connection.
#pragma once

namespace sessrev::current_session {

void register_callbacks();

}  // namespace sessrev::current_session
