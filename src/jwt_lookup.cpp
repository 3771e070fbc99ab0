#include "jwt_lookup.hpp"

#include "pending_revocations.hpp"
#include "session_lookup.hpp"

extern "C" {
#include "utils/fmgroids.h"
#include "utils/timestamp.h"
}

namespace sessrev::jwt {
namespace {

// The not_before of the row found, if there is one.
bool not_before_of(Oid relid, Oid indexid, RegProcedure equal, Datum key, AttrNumber attnum,
                   TimestampTz *not_before) {
    Datum value;
    bool isnull;
    if (!lookup::fetch_unique(relid, indexid, equal, key, 1, &attnum, &value, &isnull) || isnull)
        return false;
    *not_before = DatumGetTimestampTz(value);
    return true;
}

}  // namespace

bool jti_denylisted(Datum jti) {
    const lookup::Layout l = lookup::layout();
    return lookup::fetch_unique(l.jwt_denylist, l.jwt_denylist_pkey, F_TEXTEQ, jti, 0, nullptr,
                                nullptr, nullptr);
}

bool user_cutoff(Datum user_id, TimestampTz *not_before) {
    const lookup::Layout l = lookup::layout();
    bool found = not_before_of(l.user_cutoffs, l.user_cutoffs_pkey, F_TEXTEQ, user_id, l.user_not_before,
                               not_before);
    // A cut-off recorded apart, while the user's row was held (pending_revocations.hpp).
    TimestampTz pending;
    if (pending::user_jwt_cutoff(user_id, &pending) && (!found || pending > *not_before)) {
        *not_before = pending;
        found = true;
    }
    return found;
}

bool global_cutoff(TimestampTz *not_before) {
    const lookup::Layout l = lookup::layout();
    return not_before_of(l.global_cutoff, l.global_cutoff_pkey, F_BOOLEQ, BoolGetDatum(true),
                         l.global_not_before, not_before);
}

}  // namespace sessrev::jwt
