#include "check_forwarding.hpp"

#include "citus_placement.hpp"
#include "remote_connection.hpp"
#include "session_lookup.hpp"
#include "settings.hpp"

extern "C" {
#include "commands/dbcommands.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
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

// Preloaded only; without it, no cap.
struct Shared {
    pg_atomic_uint32 connections;
};
Shared *shared = nullptr;
shmem_startup_hook_type prev_shmem_startup = nullptr;
// Whether this backend counts in shared->connections: from before it
// connects until it has no connection (checked at each use, and at exit).
bool counted = false;

void startup() {
    if (prev_shmem_startup) prev_shmem_startup();
    LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
    bool found;
    shared = static_cast<Shared *>(ShmemInitStruct("sessrev check forwarding", sizeof(Shared), &found));
    if (!found) pg_atomic_init_u32(&shared->connections, 0);
    LWLockRelease(AddinShmemInitLock);
}

void uncount() {
    if (!counted) return;
    pg_atomic_fetch_sub_u32(&shared->connections, 1);
    counted = false;
}

void at_exit(int, Datum) {
    remote::disconnect(&connection);
    uncount();
}

// Counts this backend before it connects; refuses past the cap.
void count() {
    if (shared == nullptr || counted) return;
    static bool exit_registered = false;
    if (!exit_registered) {
        before_shmem_exit(at_exit, 0);
        exit_registered = true;
    }
    const uint32 before = pg_atomic_fetch_add_u32(&shared->connections, 1);
    counted = true;
    if (before >= static_cast<uint32>(settings::max_forwarding_connections)) {
        uncount();
        ereport(ERROR, (errcode(ERRCODE_TOO_MANY_CONNECTIONS),
                        errmsg("sessrev: %d backends of this node already hold a connection to the coordinator "
                               "for their checks",
                               settings::max_forwarding_connections),
                        errhint("Raise sessrev.max_forwarding_connections, or check on the coordinator.")));
    }
}

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
// again after an invalidation of Citus's metadata, a change of role or of
// citus.node_conninfo. The settings given at connection start override the
// coordinator's role and database settings: this side's encoding (so that a
// jti or a user id means the same bytes there), formats this side parses, and
// no read-only default to make a check fail. An idle_session_timeout there
// may close a kept connection: the next check reconnects.
char *coordinator_conninfo() {
    static char *conninfo = nullptr;
    static char *made_with = nullptr;  // citus.node_conninfo then
    static uint64 made_at = 0;
    static Oid made_for = InvalidOid;
    const char *node_conninfo = GetConfigOption("citus.node_conninfo", true, false);
    if (node_conninfo == nullptr) node_conninfo = "";
    if (conninfo != nullptr && made_at == lookup::invalidation_count() && made_for == GetUserId() &&
        strcmp(made_with, node_conninfo) == 0)
        return conninfo;
    const uint64 count = lookup::invalidation_count();
    char *host = nullptr;
    int32 port = 0;
    if (!placement::coordinator_address(&host, &port))
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("sessrev's sessions are on the coordinator, which this node's metadata does not list"),
                        errhint("On the coordinator, run SELECT citus_set_coordinator_host('<its host>', <its port>);")));
    StringInfoData buf;
    initStringInfo(&buf);
    appendStringInfoString(&buf, node_conninfo);
    append_value(&buf, "host", host);
    appendStringInfo(&buf, " port=%d", port);
    append_value(&buf, "dbname", get_database_name(MyDatabaseId));
    append_value(&buf, "user", GetUserNameFromId(GetUserId(), false));
    append_value(&buf, "client_encoding", GetDatabaseEncodingName());
    appendStringInfoString(&buf, " application_name=sessrev_check_forwarding"
                                 " options='-c DateStyle=ISO -c TimeZone=UTC -c default_transaction_read_only=off'");
    if (conninfo != nullptr) pfree(conninfo);
    if (made_with != nullptr) pfree(made_with);
    conninfo = MemoryContextStrdup(TopMemoryContext, buf.data);
    made_with = MemoryContextStrdup(TopMemoryContext, node_conninfo);
    pfree(buf.data);
    made_at = count;
    made_for = GetUserId();
    return conninfo;
}

// One statement on the coordinator, its one row's result; raises with the
// coordinator's SQLSTATE when it refused, 08006 when it could not be asked.
PGresult *ask(const remote::Statement &statement, const char *const *values) {
    const TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
    for (int attempt = 0;; attempt++) {
        char *error = nullptr;
        bool reused = false;
        const char *conninfo = coordinator_conninfo();
        count();
        if (!remote::connect(&connection, conninfo, deadline, &error, &reused)) {
            uncount();
            ereport(ERROR, (errcode(ERRCODE_CONNECTION_FAILURE),
                            errmsg("sessrev could not ask the coordinator: %s", error),
                            errdetail("This node is a Citus worker: its checks are answered by the coordinator, "
                                      "which holds sessrev's sessions."),
                            errhint("The current role must be able to connect to the coordinator, as for "
                                    "Citus's own connections between nodes.")));
        }
        char sqlstate[6];
        PGresult *result = remote::exchange(&connection, statement, values, deadline, &error, sqlstate);
        if (connection.conn == nullptr) uncount();
        // A kept connection that the coordinator closed meanwhile (a restart,
        // a terminated backend, its idle_session_timeout) is tried once more
        // on a new one; a timeout is not.
        const bool timed_out = strcmp(sqlstate, "57014") == 0;
        if (result == nullptr && connection.conn == nullptr && reused && attempt == 0 && !timed_out) continue;
        if (result == nullptr) {
            // The connection's end (57P.., 08...) is a failure to ask, here:
            // not this session's own.
            const bool lost = sqlstate[0] == '\0' || strncmp(sqlstate, "57P", 3) == 0 || strncmp(sqlstate, "08", 2) == 0;
            ereport(ERROR,
                    (errcode(lost ? ERRCODE_CONNECTION_FAILURE
                                  : MAKE_SQLSTATE(sqlstate[0], sqlstate[1], sqlstate[2], sqlstate[3], sqlstate[4])),
                     errmsg("sessrev's check on the coordinator failed: %s", error)));
        }
        if (PQntuples(result) != 1 || PQnfields(result) < 1) {
            PQclear(result);
            ereport(ERROR,
                    (errcode(ERRCODE_PROTOCOL_VIOLATION), errmsg("sessrev: the coordinator's answer has no row")));
        }
        return result;
    }
}

bool ask_boolean(const remote::Statement &statement, const char *const *values) {
    PGresult *result = ask(statement, values);
    // A NULL or anything but "f" answers revoked: fail closed.
    const bool answer = PQgetisnull(result, 0, 0) || strcmp(PQgetvalue(result, 0, 0), "f") != 0;
    PQclear(result);
    return answer;
}

}  // namespace

void request_shmem() { RequestAddinShmemSpace(sizeof(Shared)); }

void startup_shmem() {
    prev_shmem_startup = shmem_startup_hook;
    shmem_startup_hook = startup;
}

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
    // Copied out and the result freed first: a conversion's error would
    // leave it behind (libpq's memory is no memory context's).
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
