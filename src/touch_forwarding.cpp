#include "touch_forwarding.hpp"

#include "remote_connection.hpp"
#include "settings.hpp"

extern "C" {
#include "miscadmin.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"
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

remote::Connection connection;
TimestampTz last_warning = 0;

void warn(const char *what, const char *detail) {
    const TimestampTz now = GetCurrentTimestamp();
    if (last_warning != 0 && !TimestampDifferenceExceeds(last_warning, now, warn_every_ms)) return;
    last_warning = now;
    ereport(WARNING, (errmsg("sessrev: could not forward touches to the primary: %s", what),
                      detail != nullptr ? errdetail_internal("%s", detail) : 0,
                      errhint("Check sessrev.primary_conninfo; touches are dropped meanwhile.")));
}

bool connect(TimestampTz deadline) {
    char *error = nullptr;
    if (remote::connect(&connection, settings::primary_conninfo, deadline, &error)) return true;
    warn("could not connect", error);
    return false;
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

// Sends sql with its parameters; true when it succeeded, with the sessions
// its rows name in *refused (when asked for).
bool exchange(const char *sql, int nparams, const char *const *values, TimestampTz deadline,
              pg_uuid_t **refused, std::size_t *refused_count) {
    char *error = nullptr;
    PGresult *result = remote::exchange(&connection, sql, nparams, values, deadline, &error);
    if (result == nullptr) {
        warn("the primary did not take them", error);
        return false;
    }
    if (refused != nullptr && PQntuples(result) > 0) {
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
    return true;
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
    return exchange(query, 3, values, deadline, refused, refused_count);
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
    return exchange(reuse_query, 1, values, deadline, nullptr, nullptr);
}

void disconnect() { remote::disconnect(&connection); }

}  // namespace sessrev::touch_forwarding
