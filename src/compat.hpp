// Differences between PostgreSQL releases, keyed on PG_VERSION_NUM. Every
// version test of sessrev lives here; the rest of the code calls these.
#pragma once

extern "C" {
#include "postgres.h"

#include "access/genam.h"
#include "utils/acl.h"
#include "utils/guc_tables.h"
#include "utils/snapshot.h"
#if PG_VERSION_NUM >= 160000
#include "catalog/pg_proc.h"
#endif
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

// 16 replaced pg_proc_aclcheck by object_aclcheck.
inline bool may_execute(Oid function, Oid role) {
#if PG_VERSION_NUM >= 160000
    return object_aclcheck(ProcedureRelationId, function, role, ACL_EXECUTE) == ACLCHECK_OK;
#else
    return pg_proc_aclcheck(function, role, ACL_EXECUTE) == ACLCHECK_OK;
#endif
}

// Every setting's entry; 16 made the count an output of the call.
inline config_generic **guc_variables(int *count) {
#if PG_VERSION_NUM >= 160000
    return get_guc_variables(count);
#else
    *count = GetNumConfigOptions();
    return get_guc_variables();
#endif
}

}  // namespace sessrev::compat
