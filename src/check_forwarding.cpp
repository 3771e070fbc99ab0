#include "check_forwarding.hpp"

#include "citus_placement.hpp"
#include "remote_connection.hpp"
#include "session_lookup.hpp"
#include "settings.hpp"
#include "token.hpp"

extern "C" {
#include "access/xact.h"
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
#include "utils/resowner.h"
#include "utils/timestamp.h"
}

#include <cstring>

namespace sessrev::check_forwarding {
namespace {

// A check waits this long at most for the coordinator (statement_timeout and
// cancels interrupt it sooner).
constexpr long timeout_ms = 30000;

// One connection per node asked (group), kept for the next check: the
// coordinator in the coordinator layout, any node holding shards in the
// distributed one.
constexpr int max_nodes = 64;
struct Target {
    int32 group = -1;
    remote::Connection connection;
    char *conninfo = nullptr;  // TopMemoryContext
    char *made_with = nullptr;  // citus.node_conninfo then
    uint64 made_at = 0;
    Oid made_for = InvalidOid;
    bool made_again = false;  // for a check forwarded here (its second hop)
};
Target targets[max_nodes];

Target *target_of(int32 group) {
    Target *free_slot = nullptr;
    for (Target &t : targets) {
        if (t.group == group) return &t;
        if (free_slot == nullptr && t.group < 0) free_slot = &t;
    }
    if (free_slot == nullptr)
        ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                        errmsg("sessrev: a backend forwards checks to at most %d nodes", max_nodes)));
    free_slot->group = group;
    return free_slot;
}

bool any_connection() {
    for (const Target &t : targets)
        if (t.connection.conn != nullptr) return true;
    return false;
}

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
    for (Target &t : targets) remote::disconnect(&t.connection);
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

// Where the node of group is (0: the coordinator), with Citus's own
// connection settings for nodes (citus.node_conninfo: sslmode and the like),
// as the current user; made again after an invalidation of Citus's metadata,
// a change of role or of citus.node_conninfo. The settings given at
// connection start override the node's role and database settings: this
// side's encoding (so that a jti or a user id means the same bytes there),
// formats this side parses, and no read-only default to make a check fail.
// An idle_session_timeout there may close a kept connection: the next check
// reconnects.
const char *conninfo_of(Target *t) {
    const char *node_conninfo = GetConfigOption("citus.node_conninfo", true, false);
    if (node_conninfo == nullptr) node_conninfo = "";
    // A check forwarded here goes on once more, named so (placement::forwarded_again).
    const bool again = placement::in_forwarded_check();
    if (t->conninfo != nullptr && t->made_at == lookup::invalidation_count() && t->made_for == GetUserId() &&
        t->made_again == again && strcmp(t->made_with, node_conninfo) == 0)
        return t->conninfo;
    const uint64 count = lookup::invalidation_count();
    char *host = nullptr;
    int32 port = 0;
    if (!placement::node_address(t->group, &host, &port)) {
        if (t->group == 0)
            ereport(ERROR,
                    (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                     errmsg("sessrev's sessions are on the coordinator, which this node's metadata does not list"),
                     errhint("On the coordinator, run SELECT citus_set_coordinator_host('<its host>', <its port>);")));
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("sessrev: no active primary of group %d is listed in pg_dist_node", t->group),
                        errdetail("Citus's metadata places shards of sessrev's tables in that group.")));
    }
    StringInfoData buf;
    initStringInfo(&buf);
    appendStringInfoString(&buf, node_conninfo);
    append_value(&buf, "host", host);
    appendStringInfo(&buf, " port=%d", port);
    append_value(&buf, "dbname", get_database_name(MyDatabaseId));
    append_value(&buf, "user", GetUserNameFromId(GetUserId(), false));
    append_value(&buf, "client_encoding", GetDatabaseEncodingName());
    appendStringInfoString(&buf, again ? " application_name=sessrev_check_forwarding_again"
                                       : " application_name=sessrev_check_forwarding");
    appendStringInfoString(&buf, " options='-c DateStyle=ISO -c TimeZone=UTC -c default_transaction_read_only=off'");
    if (t->conninfo != nullptr) pfree(t->conninfo);
    if (t->made_with != nullptr) pfree(t->made_with);
    t->conninfo = MemoryContextStrdup(TopMemoryContext, buf.data);
    t->made_with = MemoryContextStrdup(TopMemoryContext, node_conninfo);
    pfree(buf.data);
    t->made_at = count;
    t->made_for = GetUserId();
    t->made_again = again;
    return t->conninfo;
}

// One statement on the node of group, its one row's result; raises with the
// node's SQLSTATE when it refused, 08006 when it could not be asked.
PGresult *ask(int32 group, const remote::Statement &statement, const char *const *values) {
    const TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
    const char *whom = group == 0 ? "the coordinator" : "the node holding the session";
    Target *t = target_of(group);
    for (int attempt = 0;; attempt++) {
        char *error = nullptr;
        bool reused = false;
        const char *conninfo = conninfo_of(t);
        count();
        if (!remote::connect(&t->connection, conninfo, deadline, &error, &reused)) {
            if (!any_connection()) uncount();
            ereport(ERROR, (errcode(ERRCODE_CONNECTION_FAILURE),
                            errmsg("sessrev could not ask %s (group %d): %s", whom, group, error),
                            errdetail("This node is part of a Citus cluster: checks of sessions held by another "
                                      "node are answered by that node."),
                            errhint("The current role must be able to connect to the other nodes, as for "
                                    "Citus's own connections between nodes.")));
        }
        char sqlstate[6];
        PGresult *result = remote::exchange(&t->connection, statement, values, deadline, &error, sqlstate);
        if (!any_connection()) uncount();
        // A kept connection that the node closed meanwhile (a restart, a
        // terminated backend, its idle_session_timeout) is tried once more
        // on a new one; a timeout is not.
        const bool timed_out = strcmp(sqlstate, "57014") == 0;
        if (result == nullptr && t->connection.conn == nullptr && reused && attempt == 0 && !timed_out) continue;
        if (result == nullptr) {
            // The connection's end (57P.., 08...) is a failure to ask, here:
            // not this session's own.
            const bool lost = sqlstate[0] == '\0' || strncmp(sqlstate, "57P", 3) == 0 || strncmp(sqlstate, "08", 2) == 0;
            ereport(ERROR,
                    (errcode(lost ? ERRCODE_CONNECTION_FAILURE
                                  : MAKE_SQLSTATE(sqlstate[0], sqlstate[1], sqlstate[2], sqlstate[3], sqlstate[4])),
                     errmsg("sessrev's check on %s (group %d) failed: %s", whom, group, error)));
        }
        if (PQntuples(result) != 1 || PQnfields(result) < 1) {
            PQclear(result);
            ereport(ERROR, (errcode(ERRCODE_PROTOCOL_VIOLATION), errmsg("sessrev: the answer of %s has no row", whom)));
        }
        return result;
    }
}

bool ask_boolean(int32 group, const remote::Statement &statement, const char *const *values) {
    PGresult *result = ask(group, statement, values);
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

bool is_revoked(int32 group, const text *token) {
    const char *values[1] = {text_to_cstring(token)};
    return ask_boolean(group, {0, "SELECT sessrev.is_revoked($1::pg_catalog.text)", 1}, values);
}

bool is_revoked(int32 group, const pg_uuid_t *session_id) {
    const char *values[1] = {DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(session_id)))};
    return ask_boolean(group, {1, "SELECT sessrev.is_revoked($1::pg_catalog.uuid)", 1}, values);
}

bool is_jwt_revoked(int32 group, const text *jti, const text *user_id, TimestampTz issued_at) {
    // ISO 8601 with the offset, whatever DateStyle says.
    const char *values[3] = {jti != nullptr ? text_to_cstring(jti) : nullptr,
                             user_id != nullptr ? text_to_cstring(user_id) : nullptr,
                             timestamptz_to_str(issued_at)};
    return ask_boolean(group, {2,
                        "SELECT sessrev.is_jwt_revoked($1::pg_catalog.text, $2::pg_catalog.text, "
                        "$3::pg_catalog.timestamptz)",
                        3},
                       values);
}

void report_reuse(const token::Hash *hashes, std::size_t count) {
    for (std::size_t i = 0; i < count; i++) {
        char hex[2 + 2 * token::hash_size + 1] = "\\x";
        for (std::size_t b = 0; b < token::hash_size; b++) snprintf(hex + 2 + 2 * b, 3, "%02x", hashes[i][b]);
        const char *values[1] = {hex};
        PGresult *result = ask(0, {4, "SELECT sessrev.report_token_reuse($1::pg_catalog.bytea)", 1}, values);
        PQclear(result);
    }
}

char *try_report_reuse(const token::Hash *hashes, std::size_t count) {
    // In a subtransaction of its own, so that a failure rolls back what it
    // began and the caller's transaction goes on.
    MemoryContext caller = CurrentMemoryContext;
    ResourceOwner owner = CurrentResourceOwner;
    char *volatile failure = nullptr;
    BeginInternalSubTransaction(nullptr);
    PG_TRY();
    {
        report_reuse(hashes, count);
        ReleaseCurrentSubTransaction();
    }
    PG_CATCH();
    {
        MemoryContextSwitchTo(caller);
        ErrorData *error = CopyErrorData();
        FlushErrorState();
        RollbackAndReleaseCurrentSubTransaction();
        failure = error->message != nullptr ? pstrdup(error->message) : pstrdup("unknown error");
        FreeErrorData(error);
    }
    PG_END_TRY();
    MemoryContextSwitchTo(caller);
    CurrentResourceOwner = owner;
    return failure;
}

bool validate(int32 group, const text *token, session_cache::Profile *profile, text **user_id, varlena **metadata) {
    const char *values[1] = {text_to_cstring(token)};
    PGresult *result = ask(group, {3,
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
