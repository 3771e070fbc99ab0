// Revocations that never wait (SQL 1.5). A revocation updates the rows it can
// lock at once; a row another transaction holds (an end user's open or
// prepared transaction, say) is revoked by a row of
// sessrev.pending_revocations instead, an insert that waits for no one, and
// the worker (or cleanup_expired_sessions) folds it into the session row
// later. The emergency logout is only a cut-off (global_token_cutoff): every
// session created at or before it is revoked, whatever its row says. A user's
// JWT cut-off whose row is held is recorded the same way. Every check reads
// these beside the row: a session is live only if its row is live and nothing
// here revokes it.
#pragma once

extern "C" {
#include "postgres.h"

#include "datatype/timestamp.h"
}

namespace sessrev::pending {

// Whether the session (id, created_at) is revoked apart from its row: by the
// global cut-off or by a pending revocation of its id.
bool session_revoked(Datum session_id, TimestampTz created_at);

// True and sets not_before to the latest JWT cut-off of the user recorded
// apart, if any.
bool user_jwt_cutoff(Datum user_id, TimestampTz *not_before);

}  // namespace sessrev::pending
