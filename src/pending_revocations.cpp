#include "pending_revocations.hpp"

#include "boundary.hpp"
#include "jwt_lookup.hpp"
#include "session_lookup.hpp"

extern "C" {
#include "utils/fmgroids.h"
#include "utils/timestamp.h"
}

namespace sessrev::pending {
namespace {

bool latest(const Datum *values, const bool *isnull, void *arg) {
    TimestampTz *newest = static_cast<TimestampTz *>(arg);
    if (!isnull[0] && DatumGetTimestampTz(values[0]) > *newest) *newest = DatumGetTimestampTz(values[0]);
    return true;
}

}  // namespace

bool session_revoked(Datum session_id, TimestampTz created_at) {
    TimestampTz cutoff;
    if (jwt::global_cutoff_cached(&cutoff) && created_at <= cutoff) return true;
    const lookup::Layout l = lookup::layout();
    if (!OidIsValid(l.pending)) return false;
    return lookup::fetch_unique(l.pending, l.pending_session_index, F_UUID_EQ, session_id, 0, nullptr, nullptr,
                                nullptr);
}

bool user_jwt_cutoff(Datum user_id, TimestampTz *not_before) {
    const lookup::Layout l = lookup::layout();
    if (!OidIsValid(l.pending)) return false;
    TimestampTz newest = DT_NOBEGIN;
    const AttrNumber attnums[1] = {l.pending_not_before};
    lookup::fetch_each(l.pending, l.pending_user_index, F_TEXTEQ, user_id, 1, attnums, latest, &newest);
    if (newest == DT_NOBEGIN) return false;
    *not_before = newest;
    return true;
}

}  // namespace sessrev::pending

// session_revoked_apart(session_id uuid, created_at timestamptz) RETURNS
// boolean: the part of the rule for "live" that the row does not hold. Every
// view and function that lists sessions applies it beside session_is_live.
//
// Distributed: evaluated in the statement Citus runs on the shard's node, it
// reads the revocations recorded apart in the shard held here that holds the
// session; where no shard held here does (Citus evaluated it elsewhere), it
// answers revoked: fail closed.
SESSREV_FUNCTION(session_revoked_apart) {
    namespace lookup = sessrev::lookup;
    if (PG_ARGISNULL(0) || PG_ARGISNULL(1)) PG_RETURN_BOOL(true);
    if (!lookup::distributed())
        PG_RETURN_BOOL(sessrev::pending::session_revoked(PG_GETARG_DATUM(0), PG_GETARG_TIMESTAMPTZ(1)));
    const lookup::ShardMap map = lookup::layout().shards;
    for (int i = 0; i < map.n; i++) {
        if (!lookup::held_here(map, i)) continue;
        lookup::at_shard(i);
        const lookup::Layout l = lookup::layout();
        if (lookup::fetch_unique(l.sessions, l.id_index, F_UUID_EQ, PG_GETARG_DATUM(0), 0, nullptr, nullptr, nullptr))
            PG_RETURN_BOOL(sessrev::pending::session_revoked(PG_GETARG_DATUM(0), PG_GETARG_TIMESTAMPTZ(1)));
    }
    lookup::at_shard(-1);
    PG_RETURN_BOOL(true);
}
