// SQL-callable revoke_session, revoke_user_sessions and revoke_all_sessions:
// argument checks, then the one revoke-and-audit path (revocation.hpp), then
// what each scope adds (summary audit row, JWT cut-off); and the guard of the
// revocations written in SQL.
#include "arguments.hpp"
#include "boundary.hpp"
#include "compat.hpp"
#include "revocation.hpp"
#include "shard_routing.hpp"
#include "session_lookup.hpp"

extern "C" {
#include "catalog/pg_type_d.h"
#include "executor/spi.h"
#include "miscadmin.h"
}

namespace {

namespace arguments = sessrev::arguments;
using sessrev::revocation::Request;
using sessrev::revocation::Scope;

Request request_of(FunctionCallInfo fcinfo, Scope scope, int reason_arg, int actor_arg) {
    Request r{};
    r.scope = scope;
    r.exclude_null = true;
    text *reason = arguments::reason(fcinfo, reason_arg);
    r.reason_null = reason == nullptr;
    r.reason = PointerGetDatum(reason);
    r.actor = arguments::actor(fcinfo, actor_arg, &r.actor_null);
    return r;
}

void run(const char *query, int nargs, Oid *types, Datum *values, const char *nulls, int expect) {
    if (SPI_execute_with_args(query, nargs, types, values, nulls, false, 0) != expect)
        elog(ERROR, "sessrev: internal query failed: %s", query);
}

// The user's JWTs issued until now are revoked too; the summary follows the
// per-session audit rows in id order.
constexpr const char *user_summary = R"SQL(
INSERT INTO sessrev.session_audit_log (user_id, action, actor, details)
VALUES ($1, 'REVOKE_ALL_USER', $3,
        pg_catalog.jsonb_build_object('reason', $2, 'count', $5, 'excluded_session_id', $4))
)SQL";
constexpr const char *user_cutoff =
    "SELECT sessrev.revoke_user_tokens_before($1, pg_catalog.now())";

// updated_at from the row it would have inserted (now()): Citus refuses a
// non-IMMUTABLE function in DO UPDATE SET of a reference table.
// The statement's clock, not the transaction's start: logins that began
// after the transaction did and committed before this are before it too.
constexpr const char *global_cutoff = R"SQL(
INSERT INTO sessrev.global_token_cutoff AS g (not_before) VALUES (pg_catalog.clock_timestamp())
ON CONFLICT ON CONSTRAINT global_token_cutoff_pkey
DO UPDATE SET not_before = GREATEST(g.not_before, excluded.not_before),
              updated_at = excluded.updated_at
)SQL";
constexpr const char *all_summary = R"SQL(
INSERT INTO sessrev.session_audit_log (action, actor, details)
VALUES ('REVOKE_ALL', $2, pg_catalog.jsonb_build_object('reason', $1, 'count', $3))
)SQL";

}  // namespace

// revoke_session(session_id uuid, reason text, revoked_by text) RETURNS boolean:
// false when the session is unknown or already revoked.
SESSREV_FUNCTION(revoke_session) {
    Request r = request_of(fcinfo, Scope::session, 1, 2);
    if (PG_ARGISNULL(0)) PG_RETURN_BOOL(false);
    r.session_id = PG_GETARG_DATUM(0);
    SPI_connect();
    const int64 count = sessrev::revocation::revoke(r);
    SPI_finish();
    PG_RETURN_BOOL(count > 0);
}

// revoke_user_sessions(user_id text, reason text, revoked_by text,
//                      exclude_session_id uuid) RETURNS integer
SESSREV_FUNCTION(revoke_user_sessions) {
    Request r = request_of(fcinfo, Scope::user, 1, 2);
    // Distributed by a bigint or uuid key, an id that cannot be one has no session.
    if (!sessrev::routing::stored_user_id(PointerGetDatum(arguments::user_id(fcinfo, 0)), &r.user_id))
        PG_RETURN_INT32(0);
    r.exclude_null = PG_ARGISNULL(3);
    r.exclude = r.exclude_null ? Datum(0) : PG_GETARG_DATUM(3);
    SPI_connect();
    const int64 count = sessrev::revocation::revoke(r);
    Oid types[5] = {TEXTOID, TEXTOID, TEXTOID, UUIDOID, INT8OID};
    Datum values[5] = {r.user_id, r.reason, r.actor, r.exclude, Int64GetDatum(count)};
    const char nulls[5] = {' ', r.reason_null ? 'n' : ' ', r.actor_null ? 'n' : ' ',
                           r.exclude_null ? 'n' : ' ', ' '};
    // No audit row for a revocation that changed nothing.
    if (count > 0) run(user_summary, 5, types, values, nulls, SPI_OK_INSERT);
    run(user_cutoff, 1, types, values, nulls, SPI_OK_SELECT);
    SPI_finish();
    PG_RETURN_INT32(static_cast<int32>(count));
}

// revoke_all_sessions(reason text, revoked_by text) RETURNS integer: the
// emergency global logout. Since SQL 1.5 it is the global cut-off alone: every
// session and JWT created at or before it is refused from its commit on, at a
// cost that does not grow with the sessions, touching no session row (so it
// waits for no one and no one waits for it); it returns NULL, since counting
// the sessions would. With SQL 1.4 it revokes each row and counts them.
SESSREV_FUNCTION(revoke_all_sessions) {
    const Request r = request_of(fcinfo, Scope::all, 0, 1);
    SPI_connect();
    const bool cutoff_only = sessrev::revocation::never_waits();
    const int64 count = cutoff_only ? 0 : sessrev::revocation::revoke(r);
    run(global_cutoff, 0, nullptr, nullptr, nullptr, SPI_OK_INSERT);
    Oid types[3] = {TEXTOID, TEXTOID, INT8OID};
    Datum values[3] = {r.reason, r.actor, Int64GetDatum(count)};
    const char nulls[3] = {r.reason_null ? 'n' : ' ', r.actor_null ? 'n' : ' ', cutoff_only ? 'n' : ' '};
    run(all_summary, 3, types, values, nulls, SPI_OK_INSERT);
    SPI_finish();
    if (cutoff_only) PG_RETURN_NULL();
    PG_RETURN_INT32(static_cast<int32>(count));
}

// outer_role_may_execute(function regprocedure) RETURNS boolean: whether the
// role the client runs as may execute the function. Inside a SECURITY
// DEFINER function the current user is the definer; the outer user is the
// session's (SET ROLE) role, which is who asked.
SESSREV_FUNCTION(outer_role_may_execute) {
    if (PG_ARGISNULL(0)) PG_RETURN_NULL();
    PG_RETURN_BOOL(sessrev::compat::may_execute(PG_GETARG_OID(0), GetOuterUserId()));
}

// require_sessions_here() RETURNS void: raises unless this node's tables hold
// sessrev's rows (citus_placement.hpp), for SQL functions whose answer "no
// such session" would otherwise come from a Citus worker's empty tables.
SESSREV_FUNCTION(require_sessions_here) {
    (void)sessrev::lookup::layout();
    PG_RETURN_VOID();
}
