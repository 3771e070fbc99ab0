#include "cleanup.hpp"

#include "session_lookup.hpp"
#include "settings.hpp"

extern "C" {
#include "catalog/pg_extension_d.h"
#include "catalog/pg_type_d.h"
#include "commands/extension.h"
#include "storage/lock.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/fmgrprotos.h"
#include "utils/timestamp.h"
}

namespace sessrev::cleanup {
namespace {

// What a target deletes: rows of `table` whose `time_column` is older than
// the cut-off (and that meet `also`), walked through the index on that column.
struct Source {
    const char *table;
    const char *time_column;
    const char *also;
};

Source source_of(Target target) {
    switch (target) {
        case Target::expired_sessions: return {"sessions", "expires_at", "true"};
        case Target::revoked_sessions: return {"sessions", "revoked_at", "revoked"};
        case Target::retired_tokens: return {"retired_tokens", "expires_at", "true"};
        case Target::expired_jwts: return {"jwt_denylist", "expires_at", "true"};
        case Target::old_audit_rows: return {"session_audit_log", "created_at", "true"};
    }
    pg_unreachable();
}

// The batch query deletes up to $3 rows older than the cut-off $1, walking the
// index from $2 onwards (keyset order, so a batch never re-reads what earlier
// batches deleted), and returns how many it deleted and where to resume. The
// rows are deleted by their ctids (a TID scan): a join on the key let the
// planner hash the batch and scan the whole table for it, once per batch. A
// row another transaction holds is skipped, never waited for (no role can
// hold the cleanup up by locking a row): a later cleanup takes it. The DELETE
// repeats the conditions, so that a row changed meanwhile is re-checked.
// Every operator is qualified: the worker may run under a search_path that
// the database owner chose (it pins its own, too).
constexpr const char *batch_template = R"SQL(
WITH victims AS (
    SELECT ctid FROM sessrev.%1$s
     WHERE %3$s AND %2$s OPERATOR(pg_catalog.<) $1 AND %2$s OPERATOR(pg_catalog.>=) $2
     ORDER BY %2$s LIMIT $3
       FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM sessrev.%1$s t
     WHERE t.ctid OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT v.ctid FROM victims v))
       AND %3$s AND t.%2$s OPERATOR(pg_catalog.<) $1
    RETURNING t.%2$s
)
SELECT pg_catalog.count(*), pg_catalog.max(%2$s) FROM gone
)SQL";

constexpr const char *audit_query = R"SQL(
INSERT INTO sessrev.session_audit_log (action, actor, details)
VALUES ('CLEANUP', $5,
        pg_catalog.jsonb_build_object('expired_deleted', $1, 'revoked_deleted', $2,
                                      'jwt_deleted', $3, 'audit_deleted', $4,
                                      'retired_deleted', $6))
)SQL";

TimestampTz now_minus(Datum interval) {
    Datum now = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
    return DatumGetTimestampTz(DirectFunctionCall2(timestamptz_mi_interval, now, interval));
}

}  // namespace

int64 &Counts::of(Target t) {
    switch (t) {
        case Target::expired_sessions: return expired;
        case Target::revoked_sessions: return revoked;
        case Target::retired_tokens: return retired;
        case Target::expired_jwts: return jwts;
        case Target::old_audit_rows: return audit;
    }
    pg_unreachable();
}

TimestampTz Cutoffs::of(Target t) const {
    switch (t) {
        case Target::expired_sessions: return expired_sessions;
        case Target::revoked_sessions: return revoked_sessions;
        case Target::retired_tokens: return retired_tokens;
        case Target::expired_jwts: return expired_jwts;
        case Target::old_audit_rows: return old_audit_rows;
    }
    pg_unreachable();
}

Cutoffs cutoffs(Datum expired_retention, Datum revoked_retention) {
    const TimestampTz now = GetCurrentTransactionStartTimestamp();
    Cutoffs c;
    c.expired_sessions = now_minus(expired_retention);
    c.revoked_sessions = now_minus(revoked_retention);
    // A retired token or a denylisted JWT is useless once it has expired by itself.
    c.retired_tokens = now;
    c.expired_jwts = now;
    c.old_audit_rows = settings::audit_retention > 0
                           ? now - static_cast<int64>(settings::audit_retention) * USECS_PER_SEC
                           : DT_NOBEGIN;
    return c;
}

Walk::Walk(const Step &step, TimestampTz cutoff)
    : shard_(step.shard[0] != '\0'), cutoff_(cutoff), resume_(TimestampTzGetDatum(DT_NOBEGIN)) {
    done_ = cutoff == DT_NOBEGIN;
    const Source src = source_of(step.target);
    const int length =
        snprintf(sql_, sizeof sql_, batch_template, shard_ ? step.shard : src.table, src.time_column, src.also);
    if (length < 0 || static_cast<size_t>(length) >= sizeof sql_) elog(ERROR, "sessrev: cleanup query does not fit");
}

int steps(Step *out, int max) {
    int n = 0;
    auto add = [&](Target target, const char *shard) {
        if (n == max) elog(ERROR, "sessrev: more than %d cleanup walks on this node", max);
        out[n].target = target;
        strlcpy(out[n].shard, shard, sizeof out[n].shard);
        n++;
    };
    if (!lookup::distributed()) {
        for (Target t : targets) add(t, "");
        return n;
    }
    const lookup::Layout l = lookup::layout();
    for (int i = 0; i < l.shards.n; i++) {
        if (!lookup::held_here(l.shards, i)) continue;
        const char *sessions = get_rel_name(l.shards.local[i].sessions);
        const char *retired = get_rel_name(l.shards.local[i].retired_tokens);
        if (sessions == nullptr || retired == nullptr) continue;  // dropped meanwhile
        add(Target::expired_sessions, sessions);
        add(Target::revoked_sessions, sessions);
        add(Target::retired_tokens, retired);
    }
    // The JWT denylist's copy held here (a reference table's): an expired
    // entry answers for a JWT past its own exp, wherever it is still kept, so
    // each node cleans its copy without waiting for, or holding up, the
    // others (Citus would serialize a DELETE through it with every revoke_jwt).
    const char *denylist = get_rel_name(l.jwt_denylist);
    if (denylist != nullptr) add(Target::expired_jwts, denylist);
    if (l.placement.group == 0) add(Target::old_audit_rows, "");
    return n;
}

bool folds_pending() { return !lookup::distributed() || lookup::layout().placement.group == 0; }

int64 Walk::next_batch() {
    if (done_) return 0;
    CHECK_FOR_INTERRUPTS();
    // A shard held here is cleaned here, as Citus lets its own connections.
    if (shard_ && SPI_execute("SELECT pg_catalog.set_config('citus.enable_manual_changes_to_shards', 'on', true)",
                              false, 0) != SPI_OK_SELECT)
        elog(ERROR, "sessrev: could not allow the cleanup of this node's shards");
    Oid types[3] = {TIMESTAMPTZOID, TIMESTAMPTZOID, INT4OID};
    Datum values[3] = {TimestampTzGetDatum(cutoff_), resume_,
                       Int32GetDatum(settings::cleanup_batch_size)};
    int rc = SPI_execute_with_args(sql_, 3, types, values, nullptr, false, 0);
    if (rc != SPI_OK_SELECT || SPI_processed != 1)
        elog(ERROR, "sessrev: cleanup query failed: %s", SPI_result_code_string(rc));
    bool isnull;
    const int64 deleted =
        DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
    const Datum resume = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
    if (deleted < settings::cleanup_batch_size || isnull)
        done_ = true;
    else
        resume_ = resume;  // a timestamptz is passed by value: safe across transactions
    return deleted;
}

namespace {

constexpr uint16 cleanup_lock_subid = 0x7373;  // "ss"

LOCKTAG cleanup_lock_tag() {
    LOCKTAG tag;
    SET_LOCKTAG_OBJECT(tag, MyDatabaseId, ExtensionRelationId, get_extension_oid("sessrev", false),
                       cleanup_lock_subid);
    return tag;
}

}  // namespace

bool try_lock(bool session_level) {
    const LOCKTAG tag = cleanup_lock_tag();
    return LockAcquire(&tag, ExclusiveLock, session_level, true) != LOCKACQUIRE_NOT_AVAIL;
}

void unlock_session_level() {
    const LOCKTAG tag = cleanup_lock_tag();
    LockRelease(&tag, ExclusiveLock, true);
}

void write_audit(const Counts &counts, const char *actor) {
    // Distributed: the audit log is the coordinator's; another node's
    // cleanup says what it did in worker_status() and its return value.
    if (lookup::distributed() && lookup::layout().placement.group != 0) return;
    Oid types[6] = {INT8OID, INT8OID, INT8OID, INT8OID, TEXTOID, INT8OID};
    Datum values[6] = {Int64GetDatum(counts.expired), Int64GetDatum(counts.revoked),
                       Int64GetDatum(counts.jwts),    Int64GetDatum(counts.audit),
                       CStringGetTextDatum(actor),    Int64GetDatum(counts.retired)};
    int rc = SPI_execute_with_args(audit_query, 6, types, values, nullptr, false, 0);
    if (rc != SPI_OK_INSERT) elog(ERROR, "sessrev: could not write the CLEANUP audit row");
}

void apply_pending() {
    if (!lookup::distributed() && !OidIsValid(lookup::layout().pending)) return;
    if (SPI_execute("SELECT sessrev.apply_pending_revocations()", false, 0) != SPI_OK_SELECT)
        elog(ERROR, "sessrev: could not apply pending revocations");
}

}  // namespace sessrev::cleanup
