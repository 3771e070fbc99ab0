// Direct lookups for stateless tokens: the denylist and the cut-offs, each with
// a fresh snapshot (the latest committed state plus this transaction's changes).
#pragma once

extern "C" {
#include "postgres.h"

#include "datatype/timestamp.h"
}

namespace sessrev::jwt {

bool jti_denylisted(Datum jti);
// True and sets not_before when the user has a cut-off.
bool user_cutoff(Datum user_id, TimestampTz *not_before);
bool global_cutoff(TimestampTz *not_before);
// The same, from the shared-memory cache where it may serve (jwt_check.cpp).
bool global_cutoff_cached(TimestampTz *not_before);

}  // namespace sessrev::jwt
