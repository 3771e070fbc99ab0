#include "session_lookup.hpp"
#include "compat.hpp"

#include "pending_revocations.hpp"
#include "settings.hpp"
#include "trigger_arming.hpp"

#include <cstdio>
#include <initializer_list>

extern "C" {
#include "access/genam.h"
#include "access/relscan.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/namespace.h"
#include "catalog/pg_proc.h"
#include "executor/tuptable.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"
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
// The shard the reads of this check go to (at_shard).
int current_shard = -1;
// The shard maps read so far (TopMemoryContext), never freed: a caller's
// copy of a layout may point into one after an invalidation made the next.
// A map read again unchanged is the one kept, so only a change of Citus's
// placements (a move, a new node) makes another.
ShardMap kept_map;

bool is_table_of(const Layout &l, Oid relid) {
    if (OidIsValid(relid) && (relid == l.shards.jwt_denylist || relid == l.shards.global_cutoff)) return true;
    // Distributed: the shards held here, whose triggers the cache relies on.
    for (int i = 0; OidIsValid(relid) && i < l.shards.n; i++) {
        const LocalShard &s = l.shards.local[i];
        if (relid == s.sessions || relid == s.pending || relid == s.retired_tokens || relid == s.user_cutoffs)
            return true;
    }
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

// From the catalog, not by name resolution, which requires USAGE on schema
// sessrev: a role that changes a tracked users table may have none, and
// these are sessrev's own functions, called through fmgr.
Oid function_oid(const char *name, int nargs, const Oid *types, bool missing_ok) {
    const Oid schema = get_namespace_oid("sessrev", true);
    Oid fn = InvalidOid;
    if (OidIsValid(schema))
        fn = GetSysCacheOid3(PROCNAMEARGSNSP, Anum_pg_proc_oid, CStringGetDatum(name),
                             PointerGetDatum(buildoidvector(types, nargs)), ObjectIdGetDatum(schema));
    if (!OidIsValid(fn) && !missing_ok)
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_FUNCTION), errmsg("function sessrev.%s does not exist", name)));
    return fn;
}

bool may_be_sessrev_table(Oid relid) {
    return relid == InvalidOid || !OidIsValid(known.sessions) || is_table_of(known, relid);
}

namespace {

// The column numbers of the relations a layout reads (a shard's may differ
// from its table's: Citus creates it without the dropped columns).
void number_columns(Layout *l, Oid sessions, Oid pending, Oid retired_tokens, Oid user_cutoffs, Oid global_cutoff) {
    l->id = get_attnum(sessions, "id");
    l->token_hash = get_attnum(sessions, "token_hash");
    l->revoked = get_attnum(sessions, "revoked");
    l->expires_at = get_attnum(sessions, "expires_at");
    l->last_active_at = get_attnum(sessions, "last_active_at");
    l->user_id = get_attnum(sessions, "user_id");
    l->metadata = get_attnum(sessions, "metadata");
    l->created_at = get_attnum(sessions, "created_at");
    if (OidIsValid(pending)) l->pending_not_before = get_attnum(pending, "not_before");
    l->retired_session_id = get_attnum(retired_tokens, "session_id");
    l->retired_at = get_attnum(retired_tokens, "retired_at");
    l->user_not_before = get_attnum(user_cutoffs, "not_before");
    l->global_not_before = get_attnum(global_cutoff, "not_before");
}

Oid shard_relid(const char *name, int64 shard, Oid schema) {
    char relname[NAMEDATALEN * 2];
    snprintf(relname, sizeof relname, "%s_" INT64_FORMAT, name, shard);
    return get_relname_relid(relname, schema);
}

// The map as kept: the same one when it did not change.
ShardMap keep(const ShardMap &map) {
    const bool same = kept_map.n == map.n && kept_map.jwt_denylist == map.jwt_denylist &&
                      kept_map.global_cutoff == map.global_cutoff &&
                      memcmp(kept_map.ranges, map.ranges, map.n * sizeof(placement::ShardRange)) == 0 &&
                      memcmp(kept_map.local, map.local, map.n * sizeof(LocalShard)) == 0;
    if (same) return kept_map;
    ShardMap copy = map;
    placement::ShardRange *ranges =
        static_cast<placement::ShardRange *>(MemoryContextAlloc(TopMemoryContext, map.n * sizeof *ranges));
    LocalShard *local = static_cast<LocalShard *>(MemoryContextAlloc(TopMemoryContext, map.n * sizeof *local));
    memcpy(ranges, map.ranges, map.n * sizeof *ranges);
    memcpy(local, map.local, map.n * sizeof *local);
    copy.ranges = ranges;
    copy.local = local;
    kept_map = copy;
    return copy;
}

// The distributed layout's shards (sessrev.distribute()): the co-located
// tables' ranges, and the relations of those held here; the reference
// tables' shards held here in place of the tables. False when the metadata
// or the relations are not as distribute() makes them.
bool read_shards(Layout *l, Oid schema) {
    // The user_token_cutoffs are distributed too, with the sessions.
    const Oid tables[4] = {l->sessions, l->pending, l->retired_tokens, l->user_cutoffs};
    placement::ShardRange *ranges[4];
    int n = -1;
    bool ok = true;
    for (int t = 0; ok && t < 4; t++) {
        const int count = placement::shard_ranges(tables[t], &ranges[t]);
        if (count < 0 || (t > 0 && count != n)) ok = false;
        n = count;
        for (int i = 0; ok && t > 0 && i < n; i++)
            if (ranges[t][i].min != ranges[0][i].min || ranges[t][i].max != ranges[0][i].max ||
                ranges[t][i].group != ranges[0][i].group)
                ok = false;
    }
    if (!ok) return false;
    LocalShard *local = static_cast<LocalShard *>(palloc0(n * sizeof(LocalShard)));
    const int32 here = l->placement.group;
    int first_local = -1;
    for (int i = 0; i < n; i++) {
        if (ranges[0][i].group != here) continue;
        LocalShard &s = local[i];
        s.sessions = shard_relid("sessions", ranges[0][i].shard, schema);
        s.token_index = shard_relid("sessions_token_hash_key", ranges[0][i].shard, schema);
        s.id_index = shard_relid("sessions_pkey", ranges[0][i].shard, schema);
        s.pending = shard_relid("pending_revocations", ranges[1][i].shard, schema);
        s.pending_session_index = shard_relid("pending_revocations_session_idx", ranges[1][i].shard, schema);
        s.pending_user_index = shard_relid("pending_revocations_user_idx", ranges[1][i].shard, schema);
        s.retired_tokens = shard_relid("retired_tokens", ranges[2][i].shard, schema);
        s.retired_tokens_pkey = shard_relid("retired_tokens_pkey", ranges[2][i].shard, schema);
        s.user_cutoffs = shard_relid("user_token_cutoffs", ranges[3][i].shard, schema);
        s.user_cutoffs_pkey = shard_relid("user_token_cutoffs_pkey", ranges[3][i].shard, schema);
        for (Oid relid : {s.sessions, s.token_index, s.id_index, s.pending, s.pending_session_index,
                          s.pending_user_index, s.retired_tokens, s.retired_tokens_pkey, s.user_cutoffs,
                          s.user_cutoffs_pkey})
            if (!OidIsValid(relid)) return false;
        if (first_local < 0) first_local = i;
    }
    // The reference tables: read in their shards held here.
    struct Reference {
        Oid *table;
        Oid *index;
        const char *table_name;
        const char *index_name;
    };
    const Reference references[] = {
        {&l->jwt_denylist, &l->jwt_denylist_pkey, "jwt_denylist", "jwt_denylist_pkey"},
        {&l->global_cutoff, &l->global_cutoff_pkey, "global_token_cutoff", "global_token_cutoff_pkey"},
    };
    const Oid jwt_denylist = l->jwt_denylist, global_cutoff = l->global_cutoff;
    for (const Reference &r : references) {
        bool placed_here;
        const int64 shard = placement::reference_shard(*r.table, here, &placed_here);
        if (shard == 0 || !placed_here) return false;
        *r.table = shard_relid(r.table_name, shard, schema);
        *r.index = shard_relid(r.index_name, shard, schema);
        if (!OidIsValid(*r.table) || !OidIsValid(*r.index)) return false;
    }
    // A shard's columns are numbered as Citus created it.
    if (first_local >= 0) {
        const LocalShard &s = local[first_local];
        number_columns(l, s.sessions, s.pending, s.retired_tokens, s.user_cutoffs, l->global_cutoff);
    }
    l->global_not_before = get_attnum(l->global_cutoff, "not_before");
    l->shards = keep(ShardMap{n, ranges[0], local, jwt_denylist, global_cutoff});
    return true;
}

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
    fresh.pending = get_relname_relid("pending_revocations", schema);
    if (OidIsValid(fresh.pending)) {
        fresh.pending_session_index = get_relname_relid("pending_revocations_session_idx", schema);
        fresh.pending_user_index = get_relname_relid("pending_revocations_user_idx", schema);
        if (!OidIsValid(fresh.pending_session_index) || !OidIsValid(fresh.pending_user_index)) {
            if (missing_ok) return Layout{};
            ereport(ERROR, (errcode(ERRCODE_UNDEFINED_TABLE),
                            errmsg("the indexes of sessrev.pending_revocations do not exist")));
        }
    }
    number_columns(&fresh, fresh.sessions, fresh.pending, fresh.retired_tokens, fresh.user_cutoffs,
                   fresh.global_cutoff);
    const Oid read_directly[] = {fresh.sessions, fresh.jwt_denylist, fresh.user_cutoffs,
                                 fresh.global_cutoff, fresh.pending, fresh.retired_tokens};
    const char distributed_kinds[] = {'h', 'r', 'h', 'r', 'h', 'h'};
    static_assert(lengthof(distributed_kinds) == lengthof(read_directly));
    fresh.placement = placement::judge(read_directly, distributed_kinds, lengthof(read_directly));
    if (fresh.placement.where == placement::Where::distributed) {
        const AttrNumber key = placement::distribution_column(fresh.sessions);
        if (key == InvalidAttrNumber) {
            if (missing_ok) return Layout{};
            elog(ERROR, "sessrev: Citus's metadata names no distribution column of sessrev.sessions");
        }
        if (key != fresh.user_id) {
            fresh.user_key = key;
            fresh.user_key_type = get_atttype(fresh.sessions, key);
        }
    }
    if (fresh.placement.where == placement::Where::distributed && !read_shards(&fresh, schema)) {
        if (missing_ok) return Layout{};
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("sessrev's shards are not where Citus's metadata says"),
                        errdetail("sessrev's distributed tables must be co-located, with one active placement "
                                  "of each shard, and this node must hold the shards that the metadata places "
                                  "here and a placement of each reference table."),
                        errhint("Distribute sessrev's tables with SELECT sessrev.distribute(); only.")));
    }
    return fresh;
}

}  // namespace

namespace {

// The layout as the reads of this check see it: in the distributed layout,
// with the co-located tables' shard for the range chosen (at_shard), or none.
Layout at_current_shard(const Layout &l) {
    if (l.placement.where != placement::Where::distributed) return l;
    Layout p = l;
    const LocalShard none;
    const LocalShard &s = current_shard >= 0 && current_shard < l.shards.n ? l.shards.local[current_shard] : none;
    p.sessions = s.sessions;
    p.token_index = s.token_index;
    p.id_index = s.id_index;
    p.pending = s.pending;
    p.pending_session_index = s.pending_session_index;
    p.pending_user_index = s.pending_user_index;
    p.retired_tokens = s.retired_tokens;
    p.retired_tokens_pkey = s.retired_tokens_pkey;
    p.user_cutoffs = s.user_cutoffs;
    p.user_cutoffs_pkey = s.user_cutoffs_pkey;
    return p;
}

}  // namespace

void at_shard(int i) { current_shard = i; }

int range_of(const ShardMap &map, int32 hash) {
    int lo = 0, hi = map.n - 1;
    while (lo <= hi) {
        const int mid = (lo + hi) / 2;
        if (hash < map.ranges[mid].min)
            hi = mid - 1;
        else if (hash > map.ranges[mid].max)
            lo = mid + 1;
        else
            return mid;
    }
    return -1;
}

int range_of_shard(const ShardMap &map, Oid relid) {
    for (int i = 0; i < map.n; i++) {
        const LocalShard &s = map.local[i];
        if (relid == s.sessions || relid == s.pending || relid == s.retired_tokens || relid == s.user_cutoffs) return i;
    }
    return -1;
}

bool distributed() {
    if (OidIsValid(cached_layout.sessions)) return cached_layout.placement.where == placement::Where::distributed;
    Layout tables;
    return find_tables(&tables) && tables.placement.where == placement::Where::distributed &&
           layout().placement.where == placement::Where::distributed;
}

Layout layout() {
    if (OidIsValid(cached_layout.sessions)) return at_current_shard(cached_layout);
    // Reading the catalogs may process invalidations: read again if one came.
    for (;;) {
        const uint64 before = invalidations;
        Layout fresh = read_layout(false);
        fresh.armed = arming::scan(fresh).armed;
        known = fresh;
        if (invalidations == before) {
            // A refusing layout is never cached: each call judges again, and
            // the fast path above stays one test.
            if (!placement::serves(fresh.placement)) {
                if (!placement::in_sessrev_script()) placement::refuse(fresh.placement);
                return fresh;
            }
            cached_layout = fresh;
            return at_current_shard(fresh);
        }
    }
}

bool serving() { return OidIsValid(cached_layout.sessions); }

Layout layout_of_tables() {
    const Layout l = layout();
    return serving() ? cached_layout : l;
}

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
