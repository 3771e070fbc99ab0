// SQL-callable is_jwt_revoked(jti text, user_id text, issued_at timestamptz).
#include "boundary.hpp"
#include "jwt_lookup.hpp"

extern "C" {
#include "utils/timestamp.h"
}

namespace {

// Tokens a little in the future are clock skew between issuer and database.
constexpr int64 allowed_clock_skew = 60 * USECS_PER_SEC;

}  // namespace

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

    TimestampTz not_before;
    if (sessrev::jwt::global_cutoff(&not_before) && issued_at < not_before) PG_RETURN_BOOL(true);
    if (has_user && sessrev::jwt::user_cutoff(PG_GETARG_DATUM(1), &not_before) &&
        issued_at < not_before)
        PG_RETURN_BOOL(true);
    if (has_jti && sessrev::jwt::jti_denylisted(PG_GETARG_DATUM(0))) PG_RETURN_BOOL(true);
    PG_RETURN_BOOL(false);
}
