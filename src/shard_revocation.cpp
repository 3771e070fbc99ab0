// A user's revocation recorded in the shard held here, for a tracked users
// table distributed co-located with sessrev's sessions (user_tracking.cpp).
//
// Citus fires the table's triggers on its shards, in the transaction it runs
// on the shard's node for the coordinator's statement. The user's sessions
// are in the co-located shard of sessrev.sessions on the same node, where
// their revocations are recorded apart (pending_revocations) in that same
// transaction: checks read them at once, and the coordinator's worker folds
// them into the rows, with their audit rows (the audit log is the
// coordinator's). Recording apart never waits for a held row.
#include "arguments.hpp"
#include "boundary.hpp"
#include "session_lookup.hpp"
#include "shard_routing.hpp"

extern "C" {
#include "executor/spi.h"
#include "miscadmin.h"
#include "replication/logicalworker.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
}

#include <cstdio>

namespace {

// Citus lets a backend write a shard directly only with this set (its own
// connections excepted); set for this call alone.
void allow_shard_writes() {
    (void)set_config_option("citus.enable_manual_changes_to_shards", "on", PGC_USERSET, PGC_S_SESSION,
                            GUC_ACTION_SAVE, true, 0, false);
}

}  // namespace

// revoke_user_in_shard(user_id text, reason text) RETURNS bigint: how many
// sessions' revocations were recorded (the JWT cut-off is, always). SECURITY
// DEFINER, EXECUTE granted to no one: the tracking trigger calls it through
// fmgr, as whoever changed the users table.
SESSREV_FUNCTION(revoke_user_in_shard) {
    namespace lookup = sessrev::lookup;
    text *user = sessrev::arguments::user_id(fcinfo, 0);
    const Datum reason = PG_ARGISNULL(1) ? Datum(0) : PG_GETARG_DATUM(1);
    AcceptInvalidationMessages();
    if (!lookup::distributed())
        throw sessrev::SqlError(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                                "sessrev.revoke_user_in_shard() is for sessrev's distributed layout");
    const lookup::Layout l = lookup::layout();
    const int range = lookup::range_of(l.shards, sessrev::routing::user_hash(PointerGetDatum(user)));
    if (range < 0 || !lookup::held_here(l.shards, range)) {
        // A placement being filled by a shard move (Citus's logical
        // replication) is not this node's yet: the change was revoked where
        // it was made, and what that recorded apart moves with the shards.
        if (IsLogicalWorker()) PG_RETURN_INT64(0);
        ereport(ERROR,
                (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                 errmsg("sessrev: the sessions of user \"%s\" are not on this node", text_to_cstring(user)),
                 errdetail("A tracked distributed users table revokes in the shard of sessrev.sessions on the "
                           "node of its own shard: the two are not co-located."),
                 errhint("Distribute the users table by its id with colocate_with => 'sessrev.sessions'.")));
    }
    const lookup::LocalShard &shard = l.shards.local[range];
    const char *pending_name = get_rel_name(shard.pending);
    const char *sessions_name = get_rel_name(shard.sessions);
    if (pending_name == nullptr || sessions_name == nullptr)
        elog(ERROR, "sessrev: the shards held here changed; run the statement again");
    // Each live session not yet recorded apart, and the user's JWT cut-off
    // (as revoke_user_sessions sets it): moved to now in a cut-off already
    // recorded apart, else recorded, so that repeated changes of a user do
    // not grow the table. The coordinator numbers the rows it records from 1
    // up, and so does each node's copy of the sequence: these are numbered
    // below 0, apart for each node (its group in bits 48 and up).
    char sql[2048];
    const char *pending = quote_identifier(pending_name);
    // Distributed by the user id as a bigint or a uuid: the rows carry it ($4).
    const bool keyed = OidIsValid(l.user_key_type);
    const char *key = keyed ? get_attname(lookup::layout_of_tables().sessions, l.user_key, true) : nullptr;
    if (keyed && key == nullptr) elog(ERROR, "sessrev: the shards held here changed; run the statement again");
    const char *key_column = keyed ? psprintf(", %s", quote_identifier(key)) : "";
    const char *id = "OPERATOR(pg_catalog.-) ((SELECT g.groupid FROM pg_catalog.pg_dist_local_group g)::pg_catalog.int8"
                     " OPERATOR(pg_catalog.<<) 48 OPERATOR(pg_catalog.|)"
                     " pg_catalog.nextval('sessrev.pending_revocations_id_seq'::pg_catalog.regclass))";
    const int length = snprintf(
        sql, sizeof sql,
        "WITH sessions AS ("
        " INSERT INTO sessrev.%s (id, session_id, user_id, reason, actor%s)"
        " SELECT %s, s.id, s.user_id, $2, $3%s FROM sessrev.%s s"
        " WHERE s.user_id OPERATOR(pg_catalog.=) $1 AND NOT s.revoked"
        " AND NOT EXISTS (SELECT FROM sessrev.%s p WHERE p.session_id OPERATOR(pg_catalog.=) s.id)"
        " RETURNING 1"
        "), moved AS ("
        " UPDATE sessrev.%s p SET not_before = GREATEST(p.not_before, pg_catalog.now())"
        " WHERE p.user_id OPERATOR(pg_catalog.=) $1 AND p.session_id IS NULL RETURNING 1"
        "), cutoff AS ("
        " INSERT INTO sessrev.%s (id, user_id, not_before, reason, actor%s)"
        " SELECT %s, $1, pg_catalog.now(), $2, $3%s WHERE NOT EXISTS (SELECT FROM moved)"
        ") SELECT pg_catalog.count(*) FROM sessions",
        pending, key_column, id, keyed ? psprintf(", s.%s", quote_identifier(key)) : "", quote_identifier(sessions_name), pending, pending,
        pending, key_column, id, keyed ? ", $4" : "");
    if (length < 0 || static_cast<size_t>(length) >= sizeof sql) elog(ERROR, "sessrev: shard names too long");
    const int nest = NewGUCNestLevel();
    allow_shard_writes();
    Oid types[4] = {TEXTOID, TEXTOID, TEXTOID, l.user_key_type};
    Datum values[4] = {PointerGetDatum(user), reason,
                       CStringGetTextDatum(GetUserNameFromId(GetSessionUserId(), false)),
                       keyed ? sessrev::routing::user_key(PointerGetDatum(user), l.user_key_type) : Datum(0)};
    char nulls[4] = {' ', PG_ARGISNULL(1) ? 'n' : ' ', ' ', ' '};
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "sessrev: SPI_connect failed");
    const int rc = SPI_execute_with_args(sql, keyed ? 4 : 3, types, values, nulls, false, 0);
    if (rc != SPI_OK_SELECT || SPI_processed != 1)
        elog(ERROR, "sessrev: recording the revocation failed: %s", SPI_result_code_string(rc));
    bool isnull;
    const int64 recorded = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
    SPI_finish();
    AtEOXact_GUC(true, nest);
    PG_RETURN_INT64(recorded);
}
