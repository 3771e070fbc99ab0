#include "touch_writer.hpp"

#include "session_lookup.hpp"
#include "touch_promises.hpp"
#include "touch_queue.hpp"

extern "C" {
#include "utils/lsyscache.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/timestamp.h"
}

#include <cstdio>

namespace sessrev::touch_writer {
namespace {

constexpr std::size_t batch = 1024;

// Runs as the worker, a superuser: every operator is pg_catalog's, and rows
// locked by another transaction (a revocation in progress) are skipped rather
// than waited for, so that the worker never deadlocks with revocations (which
// lock in id order too). A touch only moves last_active_at forward, only on a
// live row (a dead one is final: sessions_final_state), and only if no other
// touch has moved it past the threshold its request saw. The touches it did
// not write come back, so that their cached promises are forgotten. %1$s is
// the table (in the distributed layout, a shard of it held here); %2$s is
// the rest of the rule for "live": sessrev.session_revoked_apart, which a
// database still at SQL 1.4 does not have.
constexpr const char *query_template = R"(
WITH t AS (
    SELECT DISTINCT ON (u.id) u.id, u.at, u.threshold
      FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3))
           AS u(id, at, threshold)
     ORDER BY u.id, u.at DESC),
locked AS (
    SELECT s.id, t.at
      FROM sessrev.%1$s s JOIN t ON s.id OPERATOR(pg_catalog.=) t.id
     WHERE s.last_active_at OPERATOR(pg_catalog.<=) t.threshold
       AND s.last_active_at OPERATOR(pg_catalog.<) t.at
       AND sessrev.session_is_live(s.revoked, s.expires_at, s.last_active_at)
       %2$s
     ORDER BY s.id
       FOR UPDATE OF s SKIP LOCKED),
written AS (
    UPDATE sessrev.%1$s s SET last_active_at = locked.at
      FROM locked WHERE s.id OPERATOR(pg_catalog.=) locked.id
    RETURNING s.id)
SELECT s.id, s.token_hash
  FROM sessrev.%1$s s JOIN t ON s.id OPERATOR(pg_catalog.=) t.id
 WHERE NOT EXISTS (SELECT FROM written w WHERE w.id OPERATOR(pg_catalog.=) s.id))";

}  // namespace

std::size_t write_batch() {
    touch_queue::Touch touches[batch];
    const std::size_t n = touch_queue::take(touches, batch);
    // Without the extension (dropped meanwhile) the touches have no table.
    if (n == 0 || !OidIsValid(get_extension_oid("sessrev", true))) return n;
    Datum *ids = static_cast<Datum *>(palloc(n * sizeof(Datum)));
    Datum *ats = static_cast<Datum *>(palloc(n * sizeof(Datum)));
    Datum *thresholds = static_cast<Datum *>(palloc(n * sizeof(Datum)));
    for (std::size_t i = 0; i < n; i++) {
        ids[i] = UUIDPGetDatum(&touches[i].session_id);
        ats[i] = TimestampTzGetDatum(touches[i].at);
        thresholds[i] = TimestampTzGetDatum(touches[i].threshold);
    }
    Oid types[3] = {UUIDARRAYOID, TIMESTAMPTZARRAYOID, TIMESTAMPTZARRAYOID};
    Datum values[3] = {
        PointerGetDatum(construct_array(ids, static_cast<int>(n), UUIDOID, UUID_LEN, false, TYPALIGN_CHAR)),
        PointerGetDatum(construct_array(ats, static_cast<int>(n), TIMESTAMPTZOID, sizeof(TimestampTz),
                                        FLOAT8PASSBYVAL, TYPALIGN_DOUBLE)),
        PointerGetDatum(construct_array(thresholds, static_cast<int>(n), TIMESTAMPTZOID,
                                        sizeof(TimestampTz), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE))};
    // Distributed: the sessions of touches made here are in the shards held
    // here (a check answers only for those), each written as Citus lets its
    // own connections write a shard.
    const bool distributed = lookup::distributed();
    const lookup::Layout l = lookup::layout();
    const int shards = distributed ? l.shards.n : 1;
    for (int shard = 0; shard < shards; shard++) {
        const char *table = "sessions";
        if (distributed) {
            if (!lookup::held_here(l.shards, shard)) continue;
            table = get_rel_name(l.shards.local[shard].sessions);
            if (table == nullptr) continue;
            if (SPI_execute("SELECT pg_catalog.set_config('citus.enable_manual_changes_to_shards', 'on', true)",
                            false, 0) != SPI_OK_SELECT)
                elog(ERROR, "sessrev: could not allow the touches of this node's shards");
        }
        char query[2048];
        snprintf(query, sizeof query, query_template, table,
                 distributed || OidIsValid(l.pending) ? "AND NOT sessrev.session_revoked_apart(s.id, s.created_at)" : "");
        const int rc = SPI_execute_with_args(query, 3, types, values, nullptr, false, 0);
        if (rc != SPI_OK_SELECT) elog(ERROR, "sessrev: could not write queued touches (SPI %d)", rc);
        for (uint64 i = 0; i < SPI_processed; i++) {
            bool id_null, hash_null;
            const Datum id = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &id_null);
            const Datum hash = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &hash_null);
            if (!id_null && !hash_null) touch_promises::forget(*DatumGetUUIDP(id), DatumGetByteaPP(hash));
        }
    }
    return n;
}

}  // namespace sessrev::touch_writer
