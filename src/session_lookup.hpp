// Direct indexed lookup of a session's liveness in sessrev.sessions.
#pragma once

extern "C" {
#include "postgres.h"
}

namespace sessrev::lookup {

// Which unique index a lookup goes through.
enum class Key { token_hash, session_id };

// True when the row found by key is an active, unexpired, not idle-expired
// session as seen by the current snapshot; false for anything else. Reads
// without table privileges: callers are gated by EXECUTE on the function.
bool session_is_live(Key key, Datum value);

}  // namespace sessrev::lookup
