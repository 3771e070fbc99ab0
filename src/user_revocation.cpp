// SQL-callable revoke_user_sessions: force logout of one user, in one statement
// that revokes and writes the audit rows together.
#include "arguments.hpp"
#include "boundary.hpp"
#include "spi.hpp"

extern "C" {
#include "catalog/pg_type_d.h"
}

namespace {

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
INSERT INTO sessrev.session_audit_log (user_id, action, actor, details)
SELECT $1, 'REVOKE_ALL_USER', $3,
       pg_catalog.jsonb_build_object('reason', $2, 'count', pg_catalog.count(*),
                                     'excluded_session_id', $4)
  FROM revoked
RETURNING (details ->> 'count')::bigint
)SQL";

}  // namespace

// revoke_user_sessions(user_id text, reason text, revoked_by text,
//                      exclude_session_id uuid) RETURNS integer
SESSREV_FUNCTION(revoke_user_sessions) {
    Datum values[4];
    char nulls[4] = {' ', ' ', ' ', ' '};
    Oid types[4] = {TEXTOID, TEXTOID, TEXTOID, UUIDOID};
    values[0] = PointerGetDatum(sessrev::arguments::user_id(fcinfo, 0));
    for (int i = 1; i < 4; i++) {
        if (PG_ARGISNULL(i))
            nulls[i] = 'n';
        else
            values[i] = PG_GETARG_DATUM(i);
    }
    SPI_connect();
    int64 count = sessrev::spi::single_int64(revoke_user_query, 4, types, values, nulls);
    SPI_finish();
    PG_RETURN_INT32(static_cast<int32>(count));
}
