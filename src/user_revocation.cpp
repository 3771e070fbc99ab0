// SQL-callable revoke_user_sessions: force logout of one user, in one statement
// that revokes and writes the audit rows together.
#include "arguments.hpp"
#include "boundary.hpp"
#include "spi.hpp"

extern "C" {
#include "catalog/pg_type_d.h"
}

namespace {

// Revokes and writes one SESSION_REVOKED row per session; returns the count.
constexpr const char *revoke_user_query = R"SQL(
WITH revoked AS (
    UPDATE sessrev.sessions
       SET revoked = true, revoked_at = pg_catalog.now(), revoked_reason = $2, revoked_by = $3
     WHERE user_id = $1 AND NOT revoked AND expires_at > pg_catalog.now()
       AND id IS DISTINCT FROM $4
 RETURNING id, user_id
), per_session AS (
    INSERT INTO sessrev.session_audit_log (session_id, user_id, action, actor, details)
    SELECT id, user_id, 'SESSION_REVOKED', $3, pg_catalog.jsonb_build_object('reason', $2)
      FROM revoked
)
SELECT pg_catalog.count(*) FROM revoked
)SQL";

// The summary row, written after the per-session rows so it follows them in id order.
constexpr const char *summary_query = R"SQL(
INSERT INTO sessrev.session_audit_log (user_id, action, actor, details)
VALUES ($1, 'REVOKE_ALL_USER', $3,
        pg_catalog.jsonb_build_object('reason', $2, 'count', $5, 'excluded_session_id', $4))
)SQL";

}  // namespace

// revoke_user_sessions(user_id text, reason text, revoked_by text,
//                      exclude_session_id uuid) RETURNS integer
SESSREV_FUNCTION(revoke_user_sessions) {
    Datum values[5];
    char nulls[5] = {' ', ' ', ' ', ' ', ' '};
    Oid types[5] = {TEXTOID, TEXTOID, TEXTOID, UUIDOID, INT8OID};
    values[0] = PointerGetDatum(sessrev::arguments::user_id(fcinfo, 0));
    for (int i = 1; i < 4; i++) {
        if (PG_ARGISNULL(i))
            nulls[i] = 'n';
        else
            values[i] = PG_GETARG_DATUM(i);
    }
    SPI_connect();
    int64 count = sessrev::spi::single_int64(revoke_user_query, 4, types, values, nulls);
    values[4] = Int64GetDatum(count);
    if (SPI_execute_with_args(summary_query, 5, types, values, nulls, false, 0) != SPI_OK_INSERT)
        elog(ERROR, "sessrev: could not write the REVOKE_ALL_USER audit row");
    // The user's JWTs issued until now are revoked too.
    if (SPI_execute_with_args("SELECT sessrev.revoke_user_tokens_before($1, pg_catalog.now())", 1,
                              types, values, nulls, false, 0) != SPI_OK_SELECT)
        elog(ERROR, "sessrev: could not set the user's token cut-off");
    SPI_finish();
    PG_RETURN_INT32(static_cast<int32>(count));
}
