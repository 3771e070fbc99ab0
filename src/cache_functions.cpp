// SQL-callable cache_stats() and cache_reset().
#include "boundary.hpp"
#include "cache.hpp"
#include "jwt_cache.hpp"

extern "C" {
#include "executor/spi.h"
#include "funcapi.h"
#include "utils/tuplestore.h"
}

// cache_stats() RETURNS TABLE(enabled boolean, capacity bigint, entries bigint,
//     hits bigint, misses bigint, evictions bigint, invalidations bigint)
SESSREV_FUNCTION(cache_stats) {
    InitMaterializedSRF(fcinfo, 0);
    ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    const sessrev::cache::Stats s = sessrev::cache::stats();
    Datum values[7] = {BoolGetDatum(s.enabled),   Int64GetDatum(s.capacity),
                       Int64GetDatum(s.entries),  Int64GetDatum(s.hits),
                       Int64GetDatum(s.misses),   Int64GetDatum(s.evictions),
                       Int64GetDatum(s.invalidations)};
    bool nulls[7] = {false, false, false, false, false, false, false};
    tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    return (Datum) 0;
}

// cache_reset() RETURNS void: empties the cache, zeroes its counters and
// rebuilds the JWT filters (dropping bits of rows cleaned up since).
SESSREV_FUNCTION(cache_reset) {
    namespace jwt_cache = sessrev::jwt_cache;
    if (!sessrev::cache::enabled()) PG_RETURN_VOID();
    SPI_connect();
    // No insert may be in flight while the filters are rebuilt from the tables.
    if (SPI_execute("LOCK TABLE sessrev.jwt_denylist, sessrev.user_token_cutoffs IN SHARE MODE",
                    false, 0) != SPI_OK_UTILITY)
        elog(ERROR, "sessrev: could not lock the JWT tables");
    jwt_cache::rebuild();
    SPI_finish();
    jwt_cache::invalidate_global();
    sessrev::cache::flush();
    sessrev::cache::reset_stats();
    PG_RETURN_VOID();
}
