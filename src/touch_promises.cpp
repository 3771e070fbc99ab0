#include "touch_promises.hpp"

#include "cache.hpp"
#include "session_lookup.hpp"

extern "C" {
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
}

#include <cstring>

namespace sessrev::touch_promises {

namespace {

// The two keys of the session in the cache of relation sessions: the same
// two an update of the row invalidates (cache_invalidation.cpp).
void forget_in(Oid sessions, const pg_uuid_t &session_id, const bytea *token_hash) {
    cache::Key key{MyDatabaseId, sessions, cache::Kind::token_hash, {}};
    memcpy(key.bytes, VARDATA_ANY(token_hash),
           Min(VARSIZE_ANY_EXHDR(token_hash), static_cast<Size>(sizeof key.bytes)));
    cache::invalidate_bucket(cache::bucket_of(key));
    key.kind = cache::Kind::session_id;
    memset(key.bytes, 0, sizeof key.bytes);
    memcpy(key.bytes, session_id.data, UUID_LEN);
    cache::invalidate_bucket(cache::bucket_of(key));
}

}  // namespace

void forget(const pg_uuid_t &session_id, const bytea *token_hash) {
    if (!cache::enabled()) return;
    if (!lookup::distributed()) {
        forget_in(lookup::layout().sessions, session_id, token_hash);
        return;
    }
    // Distributed: the cache keys the session by its shard's relation; it is
    // in one of those held here, if in any.
    const lookup::ShardMap map = lookup::layout().shards;
    for (int i = 0; i < map.n; i++)
        if (lookup::held_here(map, i)) forget_in(map.local[i].sessions, session_id, token_hash);
}

void forget(const pg_uuid_t *session_ids, std::size_t count) {
    if (count == 0 || !cache::enabled()) return;
    Datum *ids = static_cast<Datum *>(palloc(count * sizeof(Datum)));
    for (std::size_t i = 0; i < count; i++) ids[i] = UUIDPGetDatum(const_cast<pg_uuid_t *>(&session_ids[i]));
    Oid types[1] = {UUIDARRAYOID};
    Datum values[1] = {PointerGetDatum(
        construct_array(ids, static_cast<int>(count), UUIDOID, UUID_LEN, false, TYPALIGN_CHAR))};
    const int rc = SPI_execute_with_args(
        "SELECT s.id, s.token_hash FROM sessrev.sessions s "
        "WHERE s.id OPERATOR(pg_catalog.=) ANY ($1)",
        1, types, values, nullptr, true, 0);
    if (rc != SPI_OK_SELECT) elog(ERROR, "sessrev: could not read the sessions of dropped touches (SPI %d)", rc);
    for (uint64 i = 0; i < SPI_processed; i++) {
        bool id_null, hash_null;
        const Datum id = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &id_null);
        const Datum hash = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &hash_null);
        if (!id_null && !hash_null) forget(*DatumGetUUIDP(id), DatumGetByteaPP(hash));
    }
}

}  // namespace sessrev::touch_promises
