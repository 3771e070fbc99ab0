// Checks on SQL arguments shared by the C++ entry points; each failure is an
// SqlError with the SQLSTATE a caller can act on.
#pragma once

#include "boundary.hpp"

namespace sessrev::arguments {

// Longest user_id accepted, in bytes.
inline constexpr int max_user_id_bytes = 256;

// The text argument n, which must be present.
text *required_text(FunctionCallInfo fcinfo, int n, const char *name);

// The text argument n as a user id: present, not empty, not oversized.
text *user_id(FunctionCallInfo fcinfo, int n);

// Longest reason and actor (revoked_by) stored, in bytes.
inline constexpr int max_reason_bytes = 1024;
inline constexpr int max_actor_bytes = 256;

// The text argument n as a reason: NULL (nullptr) or at most max_reason_bytes.
text *reason(FunctionCallInfo fcinfo, int n);

// The text argument n as the application's actor: at most max_actor_bytes;
// when NULL, the current session's user, or no one (*isnull). The database
// role is recorded apart (session_audit_log.db_role).
Datum actor(FunctionCallInfo fcinfo, int n, bool *isnull);

// The interval argument n, which must be present and not negative.
Datum non_negative_interval(FunctionCallInfo fcinfo, int n, const char *name);

}  // namespace sessrev::arguments
