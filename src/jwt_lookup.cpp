#include "jwt_lookup.hpp"

#include "session_lookup.hpp"

extern "C" {
#include "access/genam.h"
#include "access/relscan.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "executor/tuptable.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
}

namespace sessrev::jwt {
namespace {

// Fetches attribute `column` (by name) of the row whose unique index key equals
// key; false when there is no such row.
bool fetch(Oid relid, Oid indexid, RegProcedure equal, Datum key, const char *column,
           Datum *value) {
    Relation rel = table_open(relid, AccessShareLock);
    Relation index = index_open(indexid, AccessShareLock);
    Snapshot snapshot = RegisterSnapshot(GetLatestSnapshot());
    ScanKeyData scan_key;
    ScanKeyEntryInitialize(&scan_key, 0, 1, BTEqualStrategyNumber, InvalidOid,
                           index->rd_indcollation[0], equal, key);
    IndexScanDesc scan = index_beginscan(rel, index, snapshot, 1, 0);
    index_rescan(scan, &scan_key, 1, nullptr, 0);
    TupleTableSlot *slot = table_slot_create(rel, nullptr);
    bool found = index_getnext_slot(scan, ForwardScanDirection, slot);
    if (found && column != nullptr) {
        bool isnull;
        *value = slot_getattr(slot, get_attnum(relid, column), &isnull);
        found = !isnull;
    }
    ExecDropSingleTupleTableSlot(slot);
    index_endscan(scan);
    UnregisterSnapshot(snapshot);
    index_close(index, NoLock);
    table_close(rel, NoLock);
    return found;
}

}  // namespace

bool jti_denylisted(Datum jti) {
    const lookup::Layout l = lookup::layout();
    return fetch(l.jwt_denylist, l.jwt_denylist_pkey, F_TEXTEQ, jti, nullptr, nullptr);
}

bool user_cutoff(Datum user_id, TimestampTz *not_before) {
    const lookup::Layout l = lookup::layout();
    Datum value;
    if (!fetch(l.user_cutoffs, l.user_cutoffs_pkey, F_TEXTEQ, user_id, "not_before", &value))
        return false;
    *not_before = DatumGetTimestampTz(value);
    return true;
}

bool global_cutoff(TimestampTz *not_before) {
    const lookup::Layout l = lookup::layout();
    Datum value;
    if (!fetch(l.global_cutoff, l.global_cutoff_pkey, F_BOOLEQ, BoolGetDatum(true), "not_before",
               &value))
        return false;
    *not_before = DatumGetTimestampTz(value);
    return true;
}

}  // namespace sessrev::jwt
