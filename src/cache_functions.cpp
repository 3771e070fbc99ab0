// SQL-callable cache_stats(), session_cache_stats() and cache_reset().
#include "boundary.hpp"
#include "cache.hpp"
#include "jwt_cache.hpp"
#include "session_cache.hpp"

extern "C" {
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

// session_cache_stats() RETURNS TABLE(enabled boolean, capacity bigint,
//     entries bigint, hits bigint, misses bigint, evictions bigint, too_large bigint)
SESSREV_FUNCTION(session_cache_stats) {
    InitMaterializedSRF(fcinfo, 0);
    ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    const sessrev::session_cache::Stats s = sessrev::session_cache::stats();
    Datum values[7] = {BoolGetDatum(s.enabled),  Int64GetDatum(s.capacity),
                       Int64GetDatum(s.entries), Int64GetDatum(s.hits),
                       Int64GetDatum(s.misses),  Int64GetDatum(s.evictions),
                       Int64GetDatum(s.too_large)};
    bool nulls[7] = {false, false, false, false, false, false, false};
    tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    return (Datum) 0;
}

// cache_reset() RETURNS void: empties the cache, zeroes its counters and
// rebuilds the JWT filters (dropping bits of rows cleaned up since).
SESSREV_FUNCTION(cache_reset) {
    namespace jwt_cache = sessrev::jwt_cache;
    if (!sessrev::cache::enabled()) PG_RETURN_VOID();
    jwt_cache::rebuild();
    jwt_cache::invalidate_global();
    sessrev::cache::flush();
    sessrev::session_cache::clear();
    sessrev::cache::reset_stats();
    sessrev::session_cache::reset_stats();
    PG_RETURN_VOID();
}
