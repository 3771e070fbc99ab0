// Differences between PostgreSQL releases, keyed on PG_VERSION_NUM. Every
// version test of sessrev lives here; the rest of the code calls these.
#pragma once

extern "C" {
#include "postgres.h"

#include "access/genam.h"
#include "utils/snapshot.h"
// 16 moved the varlena macros (VARSIZE_ANY_EXHDR, VARDATA_ANY, SET_VARSIZE).
#if PG_VERSION_NUM >= 160000
#include "varatt.h"
#endif
}

namespace sessrev::compat {

// 18 added an instrumentation argument (NULL: none).
inline IndexScanDesc index_beginscan(Relation heap, Relation index, Snapshot snapshot, int nkeys,
                                     int norderbys) {
#if PG_VERSION_NUM >= 180000
    return ::index_beginscan(heap, index, snapshot, nullptr, nkeys, norderbys);
#else
    return ::index_beginscan(heap, index, snapshot, nkeys, norderbys);
#endif
}

}  // namespace sessrev::compat
