#include "session_lookup.hpp"
#include "compat.hpp"

#include "pending_revocations.hpp"
#include "settings.hpp"
#include "trigger_arming.hpp"

extern "C" {
#include "access/genam.h"
#include "access/relscan.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/namespace.h"
#include "executor/tuptable.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
}

namespace sessrev::lookup {
namespace {

Layout cached_layout;
// The tables of the last layout computed, kept when cached_layout is reset.
Layout known;
uint64 invalidations = 0;
// A worker's judgement that the coordinator holds the rows (check_forwarding),
// kept as cached_layout is: until an invalidation of sessrev's tables or of
// Citus's metadata (Citus invalidates its tables' relcache entries when their
// rows change).
bool forwarding = false;
placement::Placement forwarding_placement;

bool is_table_of(const Layout &l, Oid relid) {
    return relid == l.sessions || relid == l.jwt_denylist || relid == l.user_cutoffs ||
           relid == l.global_cutoff || relid == l.retired_tokens || (OidIsValid(l.pending) && relid == l.pending);
}

// A change to a table's triggers also arrives here: the layout is read anew.
void forget_layout(Datum, Oid relid) {
    // known holds cached_layout's tables whenever that is set, and a worker's.
    if (relid == InvalidOid || is_table_of(known, relid) || placement::is_metadata_table(relid)) {
        cached_layout = Layout{};
        forwarding = false;
        invalidations++;
    }
}

}  // namespace

void register_callbacks() { CacheRegisterRelcacheCallback(forget_layout, 0); }

Oid function_oid(const char *name, int nargs, const Oid *types, bool missing_ok) {
    List *qualified = list_make2(makeString(pstrdup("sessrev")), makeString(pstrdup(name)));
    return LookupFuncName(qualified, nargs, types, missing_ok);
}

bool may_be_sessrev_table(Oid relid) {
    return relid == InvalidOid || !OidIsValid(known.sessions) || is_table_of(known, relid);
}

namespace {

// Reads the tables' place; with missing_ok, a missing one (an extension being
// restored piece by piece) leaves sessions invalid instead of raising.
Layout read_layout(bool missing_ok) {
    Layout fresh;
    Oid schema = get_namespace_oid("sessrev", true);
    if (!OidIsValid(schema)) {
        if (missing_ok) return fresh;
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_SCHEMA), errmsg("schema sessrev does not exist"),
                        errhint("Run CREATE EXTENSION sessrev.")));
    }
    struct Named {
        Oid *relid;
        const char *name;
    };
    const Named relations[] = {
        {&fresh.sessions, "sessions"},
        {&fresh.token_index, "sessions_token_hash_key"},
        {&fresh.id_index, "sessions_pkey"},
        {&fresh.jwt_denylist, "jwt_denylist"},
        {&fresh.jwt_denylist_pkey, "jwt_denylist_pkey"},
        {&fresh.user_cutoffs, "user_token_cutoffs"},
        {&fresh.user_cutoffs_pkey, "user_token_cutoffs_pkey"},
        {&fresh.global_cutoff, "global_token_cutoff"},
        {&fresh.global_cutoff_pkey, "global_token_cutoff_pkey"},
        {&fresh.retired_tokens, "retired_tokens"},
        {&fresh.retired_tokens_pkey, "retired_tokens_pkey"},
    };
    for (const Named &r : relations) {
        *r.relid = get_relname_relid(r.name, schema);
        if (OidIsValid(*r.relid)) continue;
        if (missing_ok) return Layout{};
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_TABLE),
                        errmsg("relation sessrev.%s does not exist", r.name),
                        errhint("Is the sessrev extension installed in this database?")));
    }
    fresh.id = get_attnum(fresh.sessions, "id");
    fresh.token_hash = get_attnum(fresh.sessions, "token_hash");
    fresh.revoked = get_attnum(fresh.sessions, "revoked");
    fresh.expires_at = get_attnum(fresh.sessions, "expires_at");
    fresh.last_active_at = get_attnum(fresh.sessions, "last_active_at");
    fresh.user_id = get_attnum(fresh.sessions, "user_id");
    fresh.metadata = get_attnum(fresh.sessions, "metadata");
    fresh.created_at = get_attnum(fresh.sessions, "created_at");
    fresh.pending = get_relname_relid("pending_revocations", schema);
    if (OidIsValid(fresh.pending)) {
        fresh.pending_session_index = get_relname_relid("pending_revocations_session_idx", schema);
        fresh.pending_user_index = get_relname_relid("pending_revocations_user_idx", schema);
        fresh.pending_not_before = get_attnum(fresh.pending, "not_before");
        if (!OidIsValid(fresh.pending_session_index) || !OidIsValid(fresh.pending_user_index)) {
            if (missing_ok) return Layout{};
            ereport(ERROR, (errcode(ERRCODE_UNDEFINED_TABLE),
                            errmsg("the indexes of sessrev.pending_revocations do not exist")));
        }
    }
    fresh.retired_session_id = get_attnum(fresh.retired_tokens, "session_id");
    fresh.retired_at = get_attnum(fresh.retired_tokens, "retired_at");
    fresh.user_not_before = get_attnum(fresh.user_cutoffs, "not_before");
    fresh.global_not_before = get_attnum(fresh.global_cutoff, "not_before");
    const Oid read_directly[] = {fresh.sessions, fresh.jwt_denylist, fresh.user_cutoffs,
                                 fresh.global_cutoff, fresh.pending, fresh.retired_tokens};
    fresh.placement = placement::judge(read_directly, lengthof(read_directly));
    return fresh;
}

}  // namespace

Layout layout() {
    if (OidIsValid(cached_layout.sessions)) return cached_layout;
    // Reading the catalogs may process invalidations: read again if one came.
    for (;;) {
        const uint64 before = invalidations;
        Layout fresh = read_layout(false);
        fresh.armed = arming::scan(fresh).armed;
        known = fresh;
        if (invalidations == before) {
            // A refusing layout is never cached: each call judges again, and
            // the fast path above stays one test.
            if (fresh.placement.where != placement::Where::here) {
                if (!placement::in_sessrev_script()) placement::refuse(fresh.placement);
                return fresh;
            }
            cached_layout = fresh;
            return fresh;
        }
    }
}

bool serving() { return OidIsValid(cached_layout.sessions); }

placement::Placement placement_now() {
    if (serving()) return cached_layout.placement;
    if (forwarding) return forwarding_placement;
    for (;;) {
        const uint64 before = invalidations;
        const Layout fresh = read_layout(false);
        if (invalidations != before) continue;
        known = fresh;
        if (fresh.placement.where == placement::Where::on_coordinator) {
            forwarding_placement = fresh.placement;
            forwarding = true;
        }
        // Here: cached as the checks cache it, so that the next call is one test.
        if (placement::serves(fresh.placement)) return layout().placement;
        return fresh.placement;
    }
}

uint64 invalidation_count() { return invalidations; }

bool find_tables(Layout *tables) {
    *tables = read_layout(true);
    return OidIsValid(tables->sessions);
}

bool triggers_armed() {
    return OidIsValid(cached_layout.sessions) ? cached_layout.armed : layout().armed;
}

bool times_are_live(const cache::Times &times) {
    // now() in SQL: the transaction's start, so every function agrees.
    return times_are_live_at(times, GetCurrentTransactionStartTimestamp());
}

bool times_are_live_at(const cache::Times &times, TimestampTz now) {
    if (times.expires_at <= now) return false;
    // As in validate_session: -infinity is idle, infinity never.
    if (settings::idle_timeout > 0 &&
        times.last_active_at <= now - static_cast<int64>(settings::idle_timeout) * USECS_PER_SEC)
        return false;
    return true;
}

namespace {

struct First {
    int n;
    Datum *values;
    bool *isnull;
};

bool keep_first(const Datum *values, const bool *isnull, void *arg) {
    First *first = static_cast<First *>(arg);
    for (int i = 0; i < first->n; i++) {
        first->values[i] = values[i];
        first->isnull[i] = isnull[i];
    }
    return false;
}

}  // namespace

bool fetch_unique(Oid relid, Oid indexid, RegProcedure equal, Datum key, int n,
                  const AttrNumber *attnums, Datum *values, bool *isnull) {
    bool found = false;
    First first{n, values, isnull};
    struct Both {
        bool *found;
        First *first;
    } both{&found, &first};
    fetch_each(relid, indexid, equal, key, n, attnums,
               [](const Datum *v, const bool *nulls, void *arg) {
                   Both *b = static_cast<Both *>(arg);
                   *b->found = true;
                   return keep_first(v, nulls, b->first);
               },
               &both);
    return found;
}

void fetch_each(Oid relid, Oid indexid, RegProcedure equal, Datum key, int n, const AttrNumber *attnums,
                bool (*visit)(const Datum *values, const bool *isnull, void *arg), void *arg) {
    Relation rel = table_open(relid, AccessShareLock);
    Relation index = index_open(indexid, AccessShareLock);
    Snapshot snapshot = RegisterSnapshot(GetLatestSnapshot());
    ScanKeyData scan_key;
    ScanKeyEntryInitialize(&scan_key, 0, 1, BTEqualStrategyNumber, InvalidOid,
                           index->rd_indcollation[0], equal, key);
    IndexScanDesc scan = compat::index_beginscan(rel, index, snapshot, 1, 0);
    index_rescan(scan, &scan_key, 1, nullptr, 0);
    TupleTableSlot *slot = table_slot_create(rel, nullptr);
    TupleDesc desc = RelationGetDescr(rel);
    Datum values[8];
    bool isnull[8];
    if (n > 8) elog(ERROR, "sessrev: fetch_each reads at most 8 columns");
    while (index_getnext_slot(scan, ForwardScanDirection, slot)) {
        for (int i = 0; i < n; i++) {
            values[i] = slot_getattr(slot, attnums[i], &isnull[i]);
            // The slot's buffer pin goes below: keep a copy of what it points to.
            if (!isnull[i] && !TupleDescAttr(desc, attnums[i] - 1)->attbyval)
                values[i] = TupleDescAttr(desc, attnums[i] - 1)->attlen == -1
                                ? PointerGetDatum(PG_DETOAST_DATUM_COPY(values[i]))
                                : datumCopy(values[i], false, TupleDescAttr(desc, attnums[i] - 1)->attlen);
        }
        if (!visit(values, isnull, arg)) break;
    }
    ExecDropSingleTupleTableSlot(slot);
    index_endscan(scan);
    UnregisterSnapshot(snapshot);
    index_close(index, NoLock);
    table_close(rel, NoLock);
}

bool find_live_session(Key key, Datum value, cache::Times *times) {
    const Layout l = layout();
    const AttrNumber attnums[5] = {l.revoked, l.expires_at, l.last_active_at, l.id, l.created_at};
    Datum values[5];
    bool isnull[5];
    if (!fetch_unique(l.sessions, key == Key::token_hash ? l.token_index : l.id_index,
                      key == Key::token_hash ? F_BYTEAEQ : F_UUID_EQ, value, 5, attnums, values,
                      isnull))
        return false;
    for (bool null : isnull)
        if (null) return false;
    if (DatumGetBool(values[0])) return false;
    times->expires_at = DatumGetTimestampTz(values[1]);
    times->last_active_at = DatumGetTimestampTz(values[2]);
    return times_are_live(*times) && !pending::session_revoked(values[3], DatumGetTimestampTz(values[4]));
}

}  // namespace sessrev::lookup
