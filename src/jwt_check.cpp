// SQL-callable is_jwt_revoked(jti text, user_id text, issued_at timestamptz):
// from shared memory when the cache is enabled, from the tables otherwise.
#include "boundary.hpp"
#include "compat.hpp"
#include "cache.hpp"
#include "cache_invalidation.hpp"
#include "check_forwarding.hpp"
#include "shard_routing.hpp"
#include "in_doubt.hpp"
#include "jwt_cache.hpp"
#include "jwt_lookup.hpp"
#include "session_lookup.hpp"
#include "settings.hpp"
#include "token.hpp"
#include "trigger_arming.hpp"

extern "C" {
#include "access/xlog.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "utils/timestamp.h"
}

#include <cstring>

namespace {

namespace cache = sessrev::cache;
namespace jwt_cache = sessrev::jwt_cache;

// Tokens a little in the future are clock skew between issuer and database.
constexpr int64 allowed_clock_skew = 60 * USECS_PER_SEC;

// The filters and cached cut-offs serve this call unless the cache is off, this
// is a standby without sessrev.standby_cache (replay fires no triggers), this
// transaction changed sessrev's tables itself, sessrev's triggers are not all
// armed, or the filters describe another database.
//
// Distributed (sessrev.distribute()), never: the filters are built per node
// from one table each, and a user's cut-off is in the user's shard.
bool cache_usable() {
    return jwt_cache::enabled() && !sessrev::lookup::distributed() &&
           (sessrev::settings::standby_cache || !RecoveryInProgress()) &&
           !sessrev::invalidation::pending_in_transaction() &&
           sessrev::arming::cache_may_serve() && jwt_cache::serves_this_database();
}

sessrev::token::Hash hash_text(Datum value) {
    text *t = DatumGetTextPP(value);
    return sessrev::token::sha256({VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t)});
}

bool global_cutoff(bool usable, TimestampTz *not_before) {
    if (!usable || sessrev::in_doubt::blocks_global()) return sessrev::jwt::global_cutoff(not_before);
    jwt_cache::Global state = jwt_cache::global_cutoff(not_before);
    if (state == jwt_cache::Global::unknown) {
        const uint64 ticket = jwt_cache::global_ticket();
        pg_memory_barrier();  // the ticket precedes the lookup's snapshot
        const bool found = sessrev::jwt::global_cutoff(not_before);
        state = found ? jwt_cache::Global::set : jwt_cache::Global::none;
        if (cache::may_fill()) jwt_cache::fill_global(state, *not_before, ticket);
    }
    return state == jwt_cache::Global::set;
}

bool user_cutoff(bool usable, Datum user_id, TimestampTz *not_before) {
    if (!usable) return sessrev::jwt::user_cutoff(user_id, not_before);
    const sessrev::token::Hash hash = hash_text(user_id);
    if (!jwt_cache::may_contain(jwt_cache::Filter::user, hash)) return false;
    cache::Key key{MyDatabaseId, sessrev::lookup::layout().user_cutoffs, cache::Kind::user_cutoff, {}};
    memcpy(key.bytes, hash.data(), hash.size());
    const uint64 place = cache::place_of(key, hash.data(), hash.size());
    cache::Times times;
    if (cache::lookup(key, place, &times)) {
        *not_before = times.expires_at;
        return true;
    }
    cache::count_miss(place);
    const cache::FillTicket ticket = cache::ticket(key);
    if (!sessrev::jwt::user_cutoff(user_id, not_before)) return false;
    // last_active_at orders evictions: the cut-off counts as active now.
    if (cache::may_fill()) cache::fill(key, place, {*not_before, GetCurrentTimestamp()}, ticket);
    return true;
}

bool jti_denylisted(bool usable, Datum jti) {
    if (usable && !jwt_cache::may_contain(jwt_cache::Filter::jti, hash_text(jti)))
        return false;
    return sessrev::jwt::jti_denylisted(jti);
}

}  // namespace

bool sessrev::jwt::global_cutoff_cached(TimestampTz *not_before) {
    return ::global_cutoff(cache_usable(), not_before);
}

// is_jwt_revoked(jti text, user_id text, issued_at timestamptz) RETURNS boolean
SESSREV_FUNCTION(is_jwt_revoked) {
    using sessrev::SqlError;
    const bool has_jti = !PG_ARGISNULL(0);
    const bool has_user = !PG_ARGISNULL(1);
    if (!has_jti && !has_user)
        throw SqlError(ERRCODE_NULL_VALUE_NOT_ALLOWED, "jti and user_id must not both be NULL");
    if (PG_ARGISNULL(2))
        throw SqlError(ERRCODE_NULL_VALUE_NOT_ALLOWED, "issued_at must not be NULL");
    const TimestampTz issued_at = PG_GETARG_TIMESTAMPTZ(2);
    if (issued_at > GetCurrentTimestamp() + allowed_clock_skew)
        throw SqlError(ERRCODE_INVALID_PARAMETER_VALUE,
                       "issued_at is in the future (more than 60 seconds of clock skew)");
    if (sessrev::check_forwarding::applies())
        PG_RETURN_BOOL(sessrev::check_forwarding::is_jwt_revoked(0, has_jti ? PG_GETARG_TEXT_PP(0) : nullptr,
                                                                 has_user ? PG_GETARG_TEXT_PP(1) : nullptr,
                                                                 issued_at));
    // Distributed: the denylist and the global cut-off are reference tables,
    // held by every node; a user's cut-off is in the user's shard.
    sessrev::lookup::at_shard(-1);
    // Distributed by a bigint or uuid key: the user's cut-off is kept under
    // the key's own text, and an id that cannot be a key has none.
    Datum user = Datum(0);
    const bool user_kept = has_user && sessrev::routing::stored_user_id(PG_GETARG_DATUM(1), &user);
    if (sessrev::lookup::distributed()) {
        if (user_kept) {
            const sessrev::routing::Route route = sessrev::routing::of_user(user);
            if (route.goes == sessrev::routing::Goes::remote) {
                sessrev::routing::refuse_remote_if_unsafe();
                PG_RETURN_BOOL(sessrev::check_forwarding::is_jwt_revoked(
                    route.group, has_jti ? PG_GETARG_TEXT_PP(0) : nullptr, DatumGetTextPP(user), issued_at));
            }
            sessrev::lookup::at_shard(route.range);
        }
    }
    // An emergency logout prepared here, maybe told committed already.
    if (sessrev::routing::prepared_global_change()) PG_RETURN_BOOL(true);
    // Decided once: the answer then rests on one view of the cache.
    const bool usable = cache_usable();
    TimestampTz not_before;
    if (global_cutoff(usable, &not_before) && issued_at < not_before) PG_RETURN_BOOL(true);
    if (user_kept && user_cutoff(usable, user, &not_before) && issued_at < not_before)
        PG_RETURN_BOOL(true);
    PG_RETURN_BOOL(has_jti && jti_denylisted(usable, PG_GETARG_DATUM(0)));
}
