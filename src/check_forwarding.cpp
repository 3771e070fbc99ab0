#include "check_forwarding.hpp"

#include "citus_placement.hpp"
#include "remote_connection.hpp"
#include "session_lookup.hpp"

extern "C" {
#include "commands/dbcommands.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
}

#include <cstring>

namespace sessrev::check_forwarding {
namespace {

// A check waits this long at most for the coordinator (statement_timeout and
// cancels interrupt it sooner).
constexpr long timeout_ms = 30000;

remote::Connection connection;

// conninfo's quoting of a value.
void append_value(StringInfo buf, const char *key, const char *value) {
    appendStringInfo(buf, " %s='", key);
    for (const char *c = value; *c != '\0'; c++) {
        if (*c == '\'' || *c == '\\') appendStringInfoChar(buf, '\\');
        appendStringInfoChar(buf, *c);
    }
    appendStringInfoChar(buf, '\'');
}

// Where the coordinator is, with Citus's own connection settings for nodes
// (citus.node_conninfo: sslmode and the like), as the current user; made
// again after an invalidation of Citus's metadata or a change of role.
char *coordinator_conninfo() {
    static char *conninfo = nullptr;
    static uint64 made_at = 0;
    static Oid made_for = InvalidOid;
    if (conninfo != nullptr && made_at == lookup::invalidation_count() && made_for == GetUserId()) return conninfo;
    const uint64 count = lookup::invalidation_count();
    char *host = nullptr;
    int32 port = 0;
    if (!placement::coordinator_address(&host, &port))
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("sessrev's sessions are on the coordinator, which this node's metadata does not list"),
                        errhint("On the coordinator, run SELECT citus_set_coordinator_host('<its host>', <its port>);")));
    StringInfoData buf;
    initStringInfo(&buf);
    const char *node_conninfo = GetConfigOption("citus.node_conninfo", true, false);
    if (node_conninfo != nullptr) appendStringInfoString(&buf, node_conninfo);
    append_value(&buf, "host", host);
    appendStringInfo(&buf, " port=%d", port);
    append_value(&buf, "dbname", get_database_name(MyDatabaseId));
    append_value(&buf, "user", GetUserNameFromId(GetUserId(), false));
    // Answers read back in formats this side parses, whatever the role's settings.
    appendStringInfoString(&buf, " application_name=sessrev_check_forwarding options='-c DateStyle=ISO -c TimeZone=UTC'");
    if (conninfo != nullptr) pfree(conninfo);
    conninfo = MemoryContextStrdup(TopMemoryContext, buf.data);
    pfree(buf.data);
    made_at = count;
    made_for = GetUserId();
    return conninfo;
}

// One statement on the coordinator, its one row's result; raises with the
// coordinator's SQLSTATE when it refused, 08006 when it could not be asked.
PGresult *ask(const remote::Statement &statement, const char *const *values) {
    const TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
    char *error = nullptr;
    if (!remote::connect(&connection, coordinator_conninfo(), deadline, &error))
        ereport(ERROR, (errcode(ERRCODE_CONNECTION_FAILURE),
                        errmsg("sessrev could not ask the coordinator: %s", error),
                        errdetail("This node is a Citus worker: its checks are answered by the coordinator, "
                                  "which holds sessrev's sessions."),
                        errhint("The current role must be able to connect to the coordinator, as for Citus's "
                                "own connections between nodes.")));
    char sqlstate[6];
    PGresult *result = remote::exchange(&connection, statement, values, deadline, &error, sqlstate);
    if (result == nullptr)
        ereport(ERROR, (errcode(sqlstate[0] != '\0' ? MAKE_SQLSTATE(sqlstate[0], sqlstate[1], sqlstate[2], sqlstate[3],
                                                                  sqlstate[4])
                                                    : ERRCODE_CONNECTION_FAILURE),
                        errmsg("sessrev's check on the coordinator failed: %s", error)));
    if (PQntuples(result) != 1 || PQnfields(result) < 1) {
        PQclear(result);
        ereport(ERROR, (errcode(ERRCODE_PROTOCOL_VIOLATION), errmsg("sessrev: the coordinator's answer has no row")));
    }
    return result;
}

bool ask_boolean(const remote::Statement &statement, const char *const *values) {
    PGresult *result = ask(statement, values);
    // A NULL or anything but "f" answers revoked: fail closed.
    const bool answer = PQgetisnull(result, 0, 0) || strcmp(PQgetvalue(result, 0, 0), "f") != 0;
    PQclear(result);
    return answer;
}

}  // namespace

bool applies() {
    if (lookup::serving()) return false;
    return lookup::placement_now().where == placement::Where::on_coordinator && !placement::in_citus_connection();
}

bool is_revoked(const text *token) {
    const char *values[1] = {text_to_cstring(token)};
    return ask_boolean({0, "SELECT sessrev.is_revoked($1::pg_catalog.text)", 1}, values);
}

bool is_revoked(const pg_uuid_t *session_id) {
    const char *values[1] = {DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(session_id)))};
    return ask_boolean({1, "SELECT sessrev.is_revoked($1::pg_catalog.uuid)", 1}, values);
}

bool is_jwt_revoked(const text *jti, const text *user_id, TimestampTz issued_at) {
    // ISO 8601 with the offset, whatever DateStyle says.
    const char *values[3] = {jti != nullptr ? text_to_cstring(jti) : nullptr,
                             user_id != nullptr ? text_to_cstring(user_id) : nullptr,
                             timestamptz_to_str(issued_at)};
    return ask_boolean({2,
                        "SELECT sessrev.is_jwt_revoked($1::pg_catalog.text, $2::pg_catalog.text, "
                        "$3::pg_catalog.timestamptz)",
                        3},
                       values);
}

bool validate(const text *token, session_cache::Profile *profile, text **user_id, varlena **metadata) {
    const char *values[1] = {text_to_cstring(token)};
    PGresult *result = ask({3,
                            "SELECT r.session_id, r.user_id, r.expires_at, r.last_active_at, r.metadata "
                            "FROM sessrev.validate_session_record($1::pg_catalog.text) AS r",
                            1},
                           values);
    if (PQnfields(result) != 5) {
        PQclear(result);
        ereport(ERROR, (errcode(ERRCODE_PROTOCOL_VIOLATION), errmsg("sessrev: the coordinator's answer has no row")));
    }
    for (int column = 0; column < 5; column++)
        if (PQgetisnull(result, 0, column)) {
            PQclear(result);
            return false;
        }
    // Copied out before the result is freed; an error in a conversion frees
    // nothing but this call's memory (the result leaks only then).
    const char *id = pstrdup(PQgetvalue(result, 0, 0));
    const char *user = pstrdup(PQgetvalue(result, 0, 1));
    const char *expires = pstrdup(PQgetvalue(result, 0, 2));
    const char *active = pstrdup(PQgetvalue(result, 0, 3));
    const char *json = pstrdup(PQgetvalue(result, 0, 4));
    PQclear(result);
    *profile = session_cache::Profile{};
    profile->session_id = *DatumGetUUIDP(DirectFunctionCall1(uuid_in, CStringGetDatum(id)));
    profile->expires_at = DatumGetTimestampTz(DirectFunctionCall3(
        timestamptz_in, CStringGetDatum(expires), ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
    profile->last_active_at = DatumGetTimestampTz(DirectFunctionCall3(
        timestamptz_in, CStringGetDatum(active), ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
    *user_id = cstring_to_text(user);
    *metadata = reinterpret_cast<varlena *>(DatumGetPointer(DirectFunctionCall1(jsonb_in, CStringGetDatum(json))));
    return true;
}

}  // namespace sessrev::check_forwarding
