#include "revocation.hpp"
#include "compat.hpp"

#include "arguments.hpp"
#include "boundary.hpp"
#include "session_lookup.hpp"

extern "C" {
#include "catalog/pg_type_d.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "utils/builtins.h"
}

#include <cstdio>

namespace sessrev::revocation {
namespace {

// pg_advisory_lock() and its kin use the advisory lock spaces 1 and 2: a lock
// in this one can be taken only by sessrev's C++ code, so no role can hold a
// user's lock to stop their logins or revocations.
constexpr uint16 user_lock_space = 0x7373;

// Locking the targets in id order first gives every revocation the same lock
// order. Every row not yet revoked is revoked, live or not. The audit rows of one
// revocation follow each other by user, then session id. A database still at
// SQL 1.4 has no pending_revocations: there a revocation waits for the rows it
// revokes, as 1.4 did.
constexpr const char *revoke_waiting_template = R"SQL(
WITH target AS (
    SELECT id FROM sessrev.sessions
     WHERE %1$s AND NOT revoked
     ORDER BY id FOR UPDATE
), revoked AS (
    UPDATE sessrev.sessions s
       SET revoked = true, revoked_at = pg_catalog.now(), revoked_reason = $4,
           revoked_by = $6
      FROM target t
     WHERE s.id OPERATOR(pg_catalog.=) t.id AND NOT s.revoked
 RETURNING s.id, s.user_id
), audit AS (
    INSERT INTO sessrev.session_audit_log (session_id, user_id, action, actor, details)
    SELECT id, user_id, 'SESSION_REVOKED', $5, pg_catalog.jsonb_build_object('reason', $4)
      FROM revoked ORDER BY user_id, id
)
SELECT pg_catalog.count(*) FROM revoked
)SQL";

// SQL 1.5: never waits. A row that another transaction holds (SKIP LOCKED
// passes it by) is revoked by a pending revocation instead, an insert that
// waits for no one; the worker folds it into the row later.
constexpr const char *revoke_template = R"SQL(
WITH target AS (
    SELECT id FROM sessrev.sessions
     WHERE %1$s AND NOT revoked
     ORDER BY id FOR UPDATE SKIP LOCKED
), revoked AS (
    UPDATE sessrev.sessions s
       SET revoked = true, revoked_at = pg_catalog.now(), revoked_reason = $4,
           revoked_by = $6
      FROM target t
     WHERE s.id OPERATOR(pg_catalog.=) t.id AND NOT s.revoked
 RETURNING s.id, s.user_id
), held AS (
    SELECT id, user_id FROM sessrev.sessions h
     WHERE %1$s AND NOT h.revoked
       AND NOT EXISTS (SELECT FROM target t WHERE t.id OPERATOR(pg_catalog.=) h.id)
       AND NOT EXISTS (SELECT FROM sessrev.pending_revocations p
                        WHERE p.session_id OPERATOR(pg_catalog.=) h.id)
), recorded AS (
    INSERT INTO sessrev.pending_revocations (session_id, reason, actor)
    SELECT id, $4, $6 FROM held
), audit AS (
    INSERT INTO sessrev.session_audit_log (session_id, user_id, action, actor, details)
    SELECT id, user_id, 'SESSION_REVOKED', $5, pg_catalog.jsonb_build_object('reason', $4)
      FROM (SELECT id, user_id FROM revoked UNION ALL SELECT id, user_id FROM held) a
     ORDER BY user_id, id
)
SELECT (SELECT pg_catalog.count(*) FROM revoked) OPERATOR(pg_catalog.+) (SELECT pg_catalog.count(*) FROM held)
)SQL";

// The distributed layout's: the same, within one user's shard ($2; every
// join on the user id too, as Citus requires of co-located tables, and the
// UPDATE filtered by it, so that Citus writes that shard alone instead of
// every shard under a lock that would serialize all revocations), a
// revocation recorded apart kept with its user.
constexpr const char *revoke_distributed_template = R"SQL(
WITH target AS (
    SELECT id, user_id FROM sessrev.sessions
     WHERE %1$s AND NOT revoked
     ORDER BY id FOR UPDATE SKIP LOCKED
), revoked AS (
    UPDATE sessrev.sessions s
       SET revoked = true, revoked_at = pg_catalog.now(), revoked_reason = $4, revoked_by = $6
      FROM target t
     WHERE s.user_id OPERATOR(pg_catalog.=) $2 AND s.id OPERATOR(pg_catalog.=) t.id
       AND s.user_id OPERATOR(pg_catalog.=) t.user_id AND NOT s.revoked
 RETURNING s.id, s.user_id
), held AS (
    SELECT id, user_id FROM sessrev.sessions h
     WHERE %1$s AND NOT h.revoked
       AND NOT EXISTS (SELECT FROM target t
                        WHERE t.id OPERATOR(pg_catalog.=) h.id AND t.user_id OPERATOR(pg_catalog.=) h.user_id)
       AND NOT EXISTS (SELECT FROM sessrev.pending_revocations p
                        WHERE p.session_id OPERATOR(pg_catalog.=) h.id
                          AND p.user_id OPERATOR(pg_catalog.=) h.user_id)
), recorded AS (
    INSERT INTO sessrev.pending_revocations (session_id, user_id, reason, actor)
    SELECT id, user_id, $4, $6 FROM held
), audit AS (
    INSERT INTO sessrev.session_audit_log (session_id, user_id, action, actor, details)
    SELECT id, user_id, 'SESSION_REVOKED', $5, pg_catalog.jsonb_build_object('reason', $4)
      FROM (SELECT id, user_id FROM revoked UNION ALL SELECT id, user_id FROM held) a
     ORDER BY user_id, id
)
SELECT (SELECT pg_catalog.count(*) FROM revoked) OPERATOR(pg_catalog.+) (SELECT pg_catalog.count(*) FROM held)
)SQL";

const char *filter_of(Scope scope) {
    switch (scope) {
        case Scope::session: return "id OPERATOR(pg_catalog.=) $1";
        case Scope::user:
            return "user_id OPERATOR(pg_catalog.=) $2 AND id IS DISTINCT FROM $3";
        case Scope::all: return "true";
    }
    pg_unreachable();
}

}  // namespace

void lock_user(Datum user_id) {
    const text *id = DatumGetTextPP(user_id);
    const uint64 h = hash_bytes_extended(reinterpret_cast<const unsigned char *>(VARDATA_ANY(id)),
                                         static_cast<int>(VARSIZE_ANY_EXHDR(id)), 0);
    LOCKTAG tag;
    SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, static_cast<uint32>(h >> 32), static_cast<uint32>(h),
                         user_lock_space);
    LockAcquire(&tag, ExclusiveLock, false, false);
}

bool never_waits() { return lookup::distributed() || OidIsValid(lookup::layout().pending); }

namespace {

// Distributed: the user of session id, so that its revocation is one user's
// (Citus plans a row-locking write only within one shard); false when there
// is no such session.
bool user_of_session(Datum session_id, Datum *user_id) {
    Oid types[1] = {UUIDOID};
    Datum values[1] = {session_id};
    const int rc = SPI_execute_with_args("SELECT user_id FROM sessrev.sessions WHERE id OPERATOR(pg_catalog.=) $1",
                                         1, types, values, nullptr, true, 2);
    if (rc != SPI_OK_SELECT) elog(ERROR, "sessrev: the session's user could not be read: %s", SPI_result_code_string(rc));
    if (SPI_processed != 1) return false;
    bool isnull;
    const Datum user = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
    if (isnull) return false;
    *user_id = PointerGetDatum(DatumGetTextPCopy(user));
    return true;
}

}  // namespace

int64 revoke(const Request &request) {
    Request r = request;
    const bool distributed = lookup::distributed();
    if (distributed && r.scope == Scope::all)
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                        errmsg("sessrev: revoking every session row is not done in the distributed layout"),
                        errhint("revoke_all_sessions() revokes every session by the global cut-off.")));
    // The user's shard: the session's user is read first.
    bool of_one_user_session = false;
    if (distributed && r.scope == Scope::session) {
        if (!user_of_session(r.session_id, &r.user_id)) return 0;
        of_one_user_session = true;
    }
    const bool skip_held = never_waits();
    if (!skip_held) {
        // SQL 1.4: waits, in an order that cannot deadlock.
        if (r.scope == Scope::user) lock_user(r.user_id);
        if (r.scope == Scope::all) LockRelationOid(lookup::layout().sessions, ShareRowExclusiveLock);
    }
    char sql[4096];
    const char *filter = of_one_user_session
                             ? "id OPERATOR(pg_catalog.=) $1 AND user_id OPERATOR(pg_catalog.=) $2"
                             : filter_of(r.scope);
    const char *shape = distributed ? revoke_distributed_template : skip_held ? revoke_template : revoke_waiting_template;
    const int length = snprintf(sql, sizeof sql, shape, filter);
    if (length < 0 || static_cast<size_t>(length) >= sizeof sql)
        elog(ERROR, "sessrev: revocation query does not fit");
    // Who revoked: the caller's actor, else the session user; computed here,
    // as Citus refuses a COALESCE over SESSION_USER in a distributed write.
    const Datum revoked_by =
        r.actor_null ? CStringGetTextDatum(GetUserNameFromId(GetSessionUserId(), false)) : r.actor;
    Oid types[6] = {UUIDOID, TEXTOID, UUIDOID, TEXTOID, TEXTOID, TEXTOID};
    Datum values[6] = {r.session_id, r.user_id, r.exclude, r.reason, r.actor, revoked_by};
    char nulls[6] = {r.scope == Scope::session ? ' ' : 'n', r.scope == Scope::user || of_one_user_session ? ' ' : 'n',
                     r.scope == Scope::user && !r.exclude_null ? ' ' : 'n',
                     r.reason_null ? 'n' : ' ', r.actor_null ? 'n' : ' ', ' '};
    const int rc = SPI_execute_with_args(sql, 6, types, values, nulls, false, 0);
    if (rc != SPI_OK_SELECT || SPI_processed != 1)
        elog(ERROR, "sessrev: revocation failed: %s", SPI_result_code_string(rc));
    bool isnull;
    return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

}  // namespace sessrev::revocation

// lock_user_sessions(user_id text) RETURNS void: create_session takes it so
// that a user's logins count against the session limit one at a time.
SESSREV_FUNCTION(lock_user_sessions) {
    sessrev::revocation::lock_user(PointerGetDatum(sessrev::arguments::user_id(fcinfo, 0)));
    PG_RETURN_VOID();
}
