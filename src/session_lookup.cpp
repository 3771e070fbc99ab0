#include "session_lookup.hpp"

#include "settings.hpp"

extern "C" {
#include "access/genam.h"
#include "access/relscan.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/namespace.h"
#include "executor/tuptable.h"
#include "storage/lmgr.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
}

namespace sessrev::lookup {
namespace {

// The relation and the attributes a liveness check reads, resolved by name
// once per backend and again whenever the extension is re-created.
struct Layout {
    Oid sessions = InvalidOid;
    Oid token_index = InvalidOid;
    Oid id_index = InvalidOid;
    AttrNumber revoked = InvalidAttrNumber;
    AttrNumber expires_at = InvalidAttrNumber;
    AttrNumber last_active_at = InvalidAttrNumber;
};

Layout cached_layout;

Oid relation_in_schema(Oid schema, const char *name) {
    Oid relid = get_relname_relid(name, schema);
    if (!OidIsValid(relid))
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_TABLE),
                        errmsg("relation sessrev.%s does not exist", name),
                        errhint("Is the sessrev extension installed in this database?")));
    return relid;
}

const Layout &layout() {
    Oid schema = get_namespace_oid("sessrev", true);
    if (!OidIsValid(schema))
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_SCHEMA), errmsg("schema sessrev does not exist"),
                        errhint("Run CREATE EXTENSION sessrev.")));
    Oid sessions = relation_in_schema(schema, "sessions");
    if (sessions != cached_layout.sessions) {
        Layout fresh;
        fresh.token_index = relation_in_schema(schema, "sessions_token_hash_key");
        fresh.id_index = relation_in_schema(schema, "sessions_pkey");
        fresh.revoked = get_attnum(sessions, "revoked");
        fresh.expires_at = get_attnum(sessions, "expires_at");
        fresh.last_active_at = get_attnum(sessions, "last_active_at");
        fresh.sessions = sessions;
        cached_layout = fresh;
    }
    return cached_layout;
}

bool row_is_live(TupleTableSlot *slot, const Layout &l) {
    bool isnull;
    Datum revoked = slot_getattr(slot, l.revoked, &isnull);
    if (isnull || DatumGetBool(revoked)) return false;
    // now() in SQL: the transaction's start, so every function agrees.
    TimestampTz now = GetCurrentTransactionStartTimestamp();
    Datum expires_at = slot_getattr(slot, l.expires_at, &isnull);
    if (isnull || DatumGetTimestampTz(expires_at) <= now) return false;
    if (settings::idle_timeout > 0) {
        Datum last_active_at = slot_getattr(slot, l.last_active_at, &isnull);
        TimestampTz idle_limit = DatumGetTimestampTz(last_active_at) +
                                 static_cast<int64>(settings::idle_timeout) * USECS_PER_SEC;
        if (isnull || idle_limit <= now) return false;
    }
    return true;
}

}  // namespace

bool session_is_live(Key key, Datum value) {
    const Layout &l = layout();
    Relation sessions = table_open(l.sessions, AccessShareLock);
    Relation index =
        index_open(key == Key::token_hash ? l.token_index : l.id_index, AccessShareLock);
    Snapshot snapshot = ActiveSnapshotSet() ? GetActiveSnapshot() : GetTransactionSnapshot();

    ScanKeyData scan_key;
    ScanKeyInit(&scan_key, 1, BTEqualStrategyNumber,
                key == Key::token_hash ? F_BYTEAEQ : F_UUID_EQ, value);
    IndexScanDesc scan = index_beginscan(sessions, index, snapshot, 1, 0);
    index_rescan(scan, &scan_key, 1, nullptr, 0);
    TupleTableSlot *slot = table_slot_create(sessions, nullptr);

    bool live = index_getnext_slot(scan, ForwardScanDirection, slot) && row_is_live(slot, l);

    ExecDropSingleTupleTableSlot(slot);
    index_endscan(scan);
    index_close(index, NoLock);
    table_close(sessions, NoLock);
    return live;
}

}  // namespace sessrev::lookup
