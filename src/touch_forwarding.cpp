#include "touch_forwarding.hpp"

#include "settings.hpp"

extern "C" {
#include "libpq-fe.h"
#include "miscadmin.h"
#include "lib/stringinfo.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"
#include "utils/wait_event.h"
}

#include <cstring>

namespace sessrev::touch_forwarding {
namespace {

constexpr long timeout_ms = 10000;
constexpr long warn_every_ms = 60000;

// Runs as the role of the conninfo, on the primary: only sessrev's function
// and pg_catalog's, whatever that role's search_path. Answers the sessions
// whose touch was not written.
constexpr const char *query =
    "SELECT u.id FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.uuid[]), "
    "pg_catalog.unnest($2::pg_catalog.timestamptz[]), pg_catalog.unnest($3::pg_catalog.timestamptz[])) "
    "AS u(id, at, threshold) WHERE NOT sessrev.forward_touch(u.id, u.at, u.threshold)";

// A rotated-out token presented on the standby after reuse_interval
// (reuse_reports.hpp): the primary revokes its session.
constexpr const char *reuse_query =
    "SELECT pg_catalog.count(*) FROM pg_catalog.unnest($1::pg_catalog.bytea[]) AS h(hash) "
    "WHERE sessrev.report_token_reuse(h.hash)";

PGconn *connection = nullptr;
char *connected_with = nullptr;  // the conninfo the connection was made with
TimestampTz last_warning = 0;

void warn(const char *what, const char *detail) {
    const TimestampTz now = GetCurrentTimestamp();
    if (last_warning != 0 && !TimestampDifferenceExceeds(last_warning, now, warn_every_ms)) return;
    last_warning = now;
    ereport(WARNING, (errmsg("sessrev: could not forward touches to the primary: %s", what),
                      detail != nullptr ? errdetail_internal("%s", detail) : 0,
                      errhint("Check sessrev.primary_conninfo; touches are dropped meanwhile.")));
}

// Waits for the connection's socket (or the latch, or the deadline); false at
// the deadline. Interrupts (a shutdown) are served here.
bool wait_for(int events, TimestampTz deadline) {
    const long left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
    if (left <= 0) return false;
    const int rc = WaitLatchOrSocket(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH | events,
                                     PQsocket(connection), left, PG_WAIT_EXTENSION);
    if (rc & WL_LATCH_SET) ResetLatch(MyLatch);
    CHECK_FOR_INTERRUPTS();
    return true;
}

bool connect(TimestampTz deadline) {
    if (connection != nullptr && PQstatus(connection) == CONNECTION_OK &&
        strcmp(connected_with, settings::primary_conninfo) == 0)
        return true;
    disconnect();
    connection = PQconnectStart(settings::primary_conninfo);
    connected_with = MemoryContextStrdup(TopMemoryContext, settings::primary_conninfo);
    if (connection == nullptr || PQstatus(connection) == CONNECTION_BAD) {
        warn("could not connect", connection != nullptr ? PQerrorMessage(connection) : nullptr);
        disconnect();
        return false;
    }
    for (;;) {
        const PostgresPollingStatusType status = PQconnectPoll(connection);
        if (status == PGRES_POLLING_OK) return true;
        if (status == PGRES_POLLING_FAILED ||
            !wait_for(status == PGRES_POLLING_READING ? WL_SOCKET_READABLE : WL_SOCKET_WRITEABLE, deadline)) {
            warn("could not connect", PQerrorMessage(connection));
            disconnect();
            return false;
        }
    }
}

// The array literal of count values, each written by out.
template <typename Out>
char *array_literal(const touch_queue::Touch *touches, std::size_t count, Out out) {
    StringInfoData buf;
    initStringInfo(&buf);
    appendStringInfoChar(&buf, '{');
    for (std::size_t i = 0; i < count; i++) {
        if (i > 0) appendStringInfoChar(&buf, ',');
        appendStringInfo(&buf, "\"%s\"", out(touches[i]));
    }
    appendStringInfoChar(&buf, '}');
    return buf.data;
}

// Sends sql with its parameters and reads every result; true when it
// succeeded, with the sessions its rows name in *refused (when asked for).
bool exchange(const char *sql, int nparams, const char *const *values, TimestampTz deadline,
              pg_uuid_t **refused, std::size_t *refused_count) {
    if (PQsendQueryParams(connection, sql, nparams, nullptr, values, nullptr, nullptr, 0) == 0) {
        warn("could not send the query", PQerrorMessage(connection));
        return false;
    }
    for (;;) {
        const int flushed = PQflush(connection);
        if (flushed == 0) break;
        if (flushed < 0 || !wait_for(WL_SOCKET_WRITEABLE | WL_SOCKET_READABLE, deadline)) {
            warn("could not send the query", PQerrorMessage(connection));
            return false;
        }
        PQconsumeInput(connection);
    }
    bool ok = true;
    for (;;) {
        while (PQisBusy(connection)) {
            if (!wait_for(WL_SOCKET_READABLE, deadline) || PQconsumeInput(connection) == 0) {
                warn("no answer from the primary", PQerrorMessage(connection));
                return false;
            }
        }
        PGresult *result = PQgetResult(connection);
        if (result == nullptr) return ok;
        if (PQresultStatus(result) != PGRES_TUPLES_OK) {
            warn("the primary refused them", PQresultErrorMessage(result));
            ok = false;
        } else if (refused != nullptr && PQntuples(result) > 0) {
            const int rows = PQntuples(result);
            *refused = static_cast<pg_uuid_t *>(palloc(rows * sizeof(pg_uuid_t)));
            *refused_count = 0;
            for (int i = 0; i < rows; i++) {
                if (PQgetisnull(result, i, 0)) continue;
                const Datum id = DirectFunctionCall1(uuid_in, CStringGetDatum(PQgetvalue(result, i, 0)));
                (*refused)[(*refused_count)++] = *DatumGetUUIDP(id);
            }
        }
        PQclear(result);
    }
}

}  // namespace

bool enabled() { return settings::primary_conninfo != nullptr && settings::primary_conninfo[0] != '\0'; }

bool send(const touch_queue::Touch *touches, std::size_t count, pg_uuid_t **refused,
          std::size_t *refused_count) {
    *refused = nullptr;
    *refused_count = 0;
    if (count == 0 || !enabled()) return count == 0;
    const TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
    if (!connect(deadline)) return false;
    const char *values[3] = {
        array_literal(touches, count,
                      [](const touch_queue::Touch &t) {
                          return DatumGetCString(DirectFunctionCall1(
                              uuid_out, UUIDPGetDatum(const_cast<pg_uuid_t *>(&t.session_id))));
                      }),
        // ISO 8601 with the offset, whatever DateStyle says.
        array_literal(touches, count, [](const touch_queue::Touch &t) { return timestamptz_to_str(t.at); }),
        array_literal(touches, count, [](const touch_queue::Touch &t) { return timestamptz_to_str(t.threshold); })};
    const bool ok = exchange(query, 3, values, deadline, refused, refused_count);
    // A connection left mid-exchange cannot carry the next batch.
    if (!ok) disconnect();
    return ok;
}

bool send_reuse_reports(const token::Hash *hashes, std::size_t count) {
    if (count == 0 || !enabled()) return count == 0;
    const TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
    if (!connect(deadline)) return false;
    StringInfoData array;
    initStringInfo(&array);
    appendStringInfoChar(&array, '{');
    for (std::size_t i = 0; i < count; i++) {
        appendStringInfoString(&array, i > 0 ? ",\"\\\\x" : "\"\\\\x");
        for (unsigned char b : hashes[i]) appendStringInfo(&array, "%02x", b);
        appendStringInfoChar(&array, '"');
    }
    appendStringInfoChar(&array, '}');
    const char *values[1] = {array.data};
    const bool ok = exchange(reuse_query, 1, values, deadline, nullptr, nullptr);
    if (!ok) disconnect();
    return ok;
}

void disconnect() {
    if (connection != nullptr) PQfinish(connection);
    connection = nullptr;
    if (connected_with != nullptr) pfree(connected_with);
    connected_with = nullptr;
}

}  // namespace sessrev::touch_forwarding
