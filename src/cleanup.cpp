#include "cleanup.hpp"

#include "settings.hpp"
#include "spi.hpp"

extern "C" {
#include "catalog/pg_type_d.h"
#include "miscadmin.h"
#include "utils/fmgrprotos.h"
#include "utils/timestamp.h"
}

namespace sessrev::cleanup {
namespace {

// Each query deletes up to $3 rows older than the cut-off $1, walking its index
// from $2 onwards (keyset order, so a batch never re-reads what earlier batches
// deleted), and returns how many it deleted and where to resume.
struct BatchQuery {
    const char *sql;
};

constexpr BatchQuery expired_sessions{R"SQL(
WITH victims AS (
    SELECT id, expires_at FROM sessrev.sessions
     WHERE expires_at < $1 AND expires_at >= $2
     ORDER BY expires_at LIMIT $3
), gone AS (
    DELETE FROM sessrev.sessions s USING victims v WHERE s.id = v.id RETURNING s.expires_at
)
SELECT pg_catalog.count(*), pg_catalog.max(expires_at) FROM gone
)SQL"};

constexpr BatchQuery revoked_sessions{R"SQL(
WITH victims AS (
    SELECT id, revoked_at FROM sessrev.sessions
     WHERE revoked AND revoked_at < $1 AND revoked_at >= $2
     ORDER BY revoked_at LIMIT $3
), gone AS (
    DELETE FROM sessrev.sessions s USING victims v WHERE s.id = v.id RETURNING s.revoked_at
)
SELECT pg_catalog.count(*), pg_catalog.max(revoked_at) FROM gone
)SQL"};

constexpr BatchQuery old_audit_rows{R"SQL(
WITH victims AS (
    SELECT id, created_at FROM sessrev.session_audit_log
     WHERE created_at < $1 AND created_at >= $2
     ORDER BY created_at LIMIT $3
), gone AS (
    DELETE FROM sessrev.session_audit_log a USING victims v WHERE a.id = v.id
    RETURNING a.created_at
)
SELECT pg_catalog.count(*), pg_catalog.max(created_at) FROM gone
)SQL"};

constexpr const char *audit_query = R"SQL(
INSERT INTO sessrev.session_audit_log (action, actor, details)
VALUES ('CLEANUP', pg_catalog.session_user(),
        pg_catalog.jsonb_build_object('expired_deleted', $1, 'revoked_deleted', $2,
                                      'audit_deleted', $3))
)SQL";

TimestampTz now_minus(Datum interval) {
    Datum now = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
    return DatumGetTimestampTz(DirectFunctionCall2(timestamptz_mi_interval, now, interval));
}

int64 delete_older_than(const BatchQuery &query, TimestampTz cutoff) {
    Oid types[3] = {TIMESTAMPTZOID, TIMESTAMPTZOID, INT4OID};
    Datum values[3] = {TimestampTzGetDatum(cutoff), TimestampTzGetDatum(DT_NOBEGIN),
                       Int32GetDatum(settings::cleanup_batch_size)};
    SPIPlanPtr plan = SPI_prepare(query.sql, 3, types);
    if (plan == nullptr)
        elog(ERROR, "sessrev: could not prepare cleanup query: %s",
             SPI_result_code_string(SPI_result));
    int64 total = 0;
    for (;;) {
        CHECK_FOR_INTERRUPTS();
        int rc = SPI_execute_plan(plan, values, nullptr, false, 0);
        if (rc != SPI_OK_SELECT || SPI_processed != 1)
            elog(ERROR, "sessrev: cleanup query failed: %s", SPI_result_code_string(rc));
        bool isnull;
        int64 deleted = DatumGetInt64(
            SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
        Datum resume = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
        total += deleted;
        if (deleted < settings::cleanup_batch_size || isnull) break;
        values[1] = resume;
    }
    SPI_freeplan(plan);
    return total;
}

}  // namespace

Counts run(Datum expired_retention, Datum revoked_retention) {
    Counts counts;
    counts.expired = delete_older_than(expired_sessions, now_minus(expired_retention));
    counts.revoked = delete_older_than(revoked_sessions, now_minus(revoked_retention));
    if (settings::audit_retention > 0) {
        TimestampTz cutoff = GetCurrentTransactionStartTimestamp() -
                             static_cast<int64>(settings::audit_retention) * USECS_PER_SEC;
        counts.audit = delete_older_than(old_audit_rows, cutoff);
    }
    Oid types[3] = {INT8OID, INT8OID, INT8OID};
    Datum values[3] = {Int64GetDatum(counts.expired), Int64GetDatum(counts.revoked),
                       Int64GetDatum(counts.audit)};
    int rc = SPI_execute_with_args(audit_query, 3, types, values, nullptr, false, 0);
    if (rc != SPI_OK_INSERT) elog(ERROR, "sessrev: could not write the CLEANUP audit row");
    return counts;
}

}  // namespace sessrev::cleanup
