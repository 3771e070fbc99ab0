#include "citus_placement.hpp"

#include "boundary.hpp"
#include "user_tracking.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>

extern "C" {
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/xact.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_class.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_namespace.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "nodes/plannodes.h"
#include "nodes/primnodes.h"
#include "catalog/pg_type_d.h"
#include "common/hashfn.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
}

namespace sessrev::placement {
namespace {

// Their oids, once Citus is installed (0 before: nothing to watch).
Oid local_group_table = InvalidOid;
Oid partition_table = InvalidOid;
Oid node_table = InvalidOid;
Oid shard_table = InvalidOid;
Oid shard_placement_table = InvalidOid;

// Calls visit(tuple, descriptor) for pg_dist_node's rows of group until it
// returns true; whether one did.
template <typename Visit>
bool any_group_row(int32 group, Visit visit) {
    if (!OidIsValid(node_table)) return false;
    const AttrNumber groupid = get_attnum(node_table, "groupid");
    if (groupid == InvalidAttrNumber) return false;
    Relation rel = table_open(node_table, AccessShareLock);
    ScanKeyData key;
    ScanKeyInit(&key, groupid, BTEqualStrategyNumber, F_INT4EQ, Int32GetDatum(group));
    SysScanDesc scan = systable_beginscan(rel, InvalidOid, false, nullptr, 1, &key);
    bool found = false;
    for (HeapTuple tuple; !found && HeapTupleIsValid(tuple = systable_getnext(scan));)
        found = visit(tuple, RelationGetDescr(rel));
    systable_endscan(scan);
    table_close(rel, AccessShareLock);
    return found;
}

// Whether pg_dist_node lists a node of group 0: the coordinator, once
// citus_set_coordinator_host has run (a worker with metadata lists it too,
// but has a group of its own).
bool coordinator_listed() {
    return any_group_row(0, [](HeapTuple, TupleDesc) { return true; });
}

// pg_dist_local_group's one row: this node's group.
int32 local_group() {
    Relation rel = table_open(local_group_table, AccessShareLock);
    const AttrNumber groupid = get_attnum(local_group_table, "groupid");
    SysScanDesc scan = systable_beginscan(rel, InvalidOid, false, nullptr, 0, nullptr);
    HeapTuple tuple = systable_getnext(scan);
    int32 group = 0;
    if (HeapTupleIsValid(tuple) && groupid != InvalidAttrNumber) {
        bool isnull;
        Datum d = heap_getattr(tuple, groupid, RelationGetDescr(rel), &isnull);
        if (!isnull) group = DatumGetInt32(d);
    }
    systable_endscan(scan);
    table_close(rel, AccessShareLock);
    return group;
}

// pg_dist_partition's partmethod for relid, or '\0' when it is no Citus
// table; 'r' for a reference table (partmethod 'n', repmodel 't').
char citus_kind(Relation rel, AttrNumber logicalrelid, AttrNumber partmethod, AttrNumber repmodel, Oid relid) {
    ScanKeyData key;
    ScanKeyInit(&key, logicalrelid, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(relid));
    SysScanDesc scan = systable_beginscan(rel, InvalidOid, false, nullptr, 1, &key);
    HeapTuple tuple = systable_getnext(scan);
    char kind = '\0';
    if (HeapTupleIsValid(tuple)) {
        bool isnull;
        Datum d = heap_getattr(tuple, partmethod, RelationGetDescr(rel), &isnull);
        kind = isnull ? '?' : DatumGetChar(d);
        if (kind == 'n' && repmodel != InvalidAttrNumber) {
            d = heap_getattr(tuple, repmodel, RelationGetDescr(rel), &isnull);
            if (!isnull && DatumGetChar(d) == 't') kind = 'r';
        }
    }
    systable_endscan(scan);
    return kind;
}

// Calls visit(tuple, descriptor) for each row of catalog relid whose column
// equals value (compared with equal).
template <typename Visit>
void each_row(Oid relid, const char *column, RegProcedure equal, Datum value, Visit visit, Oid index = InvalidOid) {
    const AttrNumber attnum = get_attnum(relid, column);
    if (attnum == InvalidAttrNumber) return;
    Relation rel = table_open(relid, AccessShareLock);
    ScanKeyData key;
    ScanKeyInit(&key, attnum, BTEqualStrategyNumber, equal, value);
    SysScanDesc scan = systable_beginscan(rel, index, OidIsValid(index), nullptr, 1, &key);
    for (HeapTuple tuple; HeapTupleIsValid(tuple = systable_getnext(scan));) visit(tuple, RelationGetDescr(rel));
    systable_endscan(scan);
    table_close(rel, AccessShareLock);
}

// The group of shard's one active placement (shardstate 1); -1 when there
// is not exactly one.
int32 placement_group(int64 shard) {
    const AttrNumber groupid = get_attnum(shard_placement_table, "groupid");
    const AttrNumber shardstate = get_attnum(shard_placement_table, "shardstate");
    int32 group = -1;
    int active = 0;
    each_row(shard_placement_table, "shardid", F_INT8EQ, Int64GetDatum(shard), [&](HeapTuple tuple, TupleDesc desc) {
        bool null_group, null_state;
        const Datum g = heap_getattr(tuple, groupid, desc, &null_group);
        const Datum state = heap_getattr(tuple, shardstate, desc, &null_state);
        if (null_group || null_state || DatumGetInt32(state) != 1) return;
        group = DatumGetInt32(g);
        active++;
    });
    return active == 1 ? group : -1;
}

int32 parse_bound(const char *text, bool *ok) {
    char *end;
    errno = 0;
    const long value = strtol(text, &end, 10);
    if (errno != 0 || *end != '\0' || end == text || value < PG_INT32_MIN || value > PG_INT32_MAX) *ok = false;
    return static_cast<int32>(value);
}

object_access_hook_type previous_hook = nullptr;

// sessrev.distribute() runs in this transaction (allow_shards).
bool shards_allowed = false;

void forget_allowance(XactEvent event, void *) {
    if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT || event == XACT_EVENT_PREPARE ||
        event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT)
        shards_allowed = false;
}

// The tables whose rows sessrev reads directly.
constexpr const char *direct_tables[] = {"sessions",   "jwt_denylist",        "user_token_cutoffs",
                                         "global_token_cutoff", "pending_revocations", "retired_tokens"};

// The table relname is a shard of, or nullptr: Citus names a shard
// <table>_<shard id>.
const char *shard_of(const char *relname) {
    for (const char *table : direct_tables) {
        const std::size_t n = std::strlen(table);
        if (std::strncmp(relname, table, n) != 0 || relname[n] != '_' || relname[n + 1] == '\0') continue;
        const char *digits = relname + n + 1;
        while (std::isdigit(static_cast<unsigned char>(*digits))) digits++;
        if (*digits == '\0') return table;
    }
    return nullptr;
}

// The new relation's pg_class row is not visible to the syscache before the
// next command: read it as this command sees it.
void refuse_shard(Oid relid) {
    const Oid schema = get_namespace_oid("sessrev", true);
    if (!OidIsValid(schema)) return;
    Relation pg_class = table_open(RelationRelationId, AccessShareLock);
    ScanKeyData key;
    ScanKeyInit(&key, Anum_pg_class_oid, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(relid));
    SysScanDesc scan = systable_beginscan(pg_class, ClassOidIndexId, true, SnapshotSelf, 1, &key);
    HeapTuple tuple = systable_getnext(scan);
    const char *table = nullptr;
    if (HeapTupleIsValid(tuple)) {
        const Form_pg_class form = reinterpret_cast<Form_pg_class>(GETSTRUCT(tuple));
        if (form->relnamespace == schema &&
            (form->relkind == RELKIND_RELATION || form->relkind == RELKIND_PARTITIONED_TABLE))
            table = shard_of(NameStr(form->relname));
    }
    systable_endscan(scan);
    table_close(pg_class, AccessShareLock);
    if (table == nullptr) return;
    ereport(ERROR,
            (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
             errmsg("sessrev.%s cannot become a Citus table", table),
             errdetail("sessrev reads its tables directly: the rows of a shard of sessrev.%s would be "
                       "where no check reads them.",
                       table),
             errhint("sessrev's tables stay on the coordinator (see docs/SCALING.md).")));
}

// A shard is made by creating it, or (citus_add_local_table_to_metadata with
// no worker holding metadata) by renaming the table itself.
void on_object_access(ObjectAccessType access, Oid class_id, Oid object_id, int sub_id, void *arg) {
    if (previous_hook) previous_hook(access, class_id, object_id, sub_id, arg);
    // Citus's own connections make the shards of the tables distribute()
    // made (moves, new nodes): a conversion is refused where it is called
    // (refuse_conversions).
    if ((access == OAT_POST_CREATE || access == OAT_POST_ALTER) && class_id == RelationRelationId &&
        sub_id == 0 && !IsBinaryUpgrade && IsTransactionState() && !in_sessrev_script() && !shards_allowed &&
        !in_citus_connection())
        refuse_shard(object_id);
    // On every node, Citus's connections too: the coordinator refuses the
    // TRUNCATE of the whole table (user_tracking.cpp).
    if (access == OAT_TRUNCATE && class_id == RelationRelationId && IsTransactionState() && !IsBinaryUpgrade)
        tracking::refuse_truncate_of_tracked_shard(object_id);
    // A backend that judged before Citus was installed knows none of Citus's
    // metadata tables, whose changes would otherwise tell it that this node
    // became a worker: any extension created or dropped makes every backend
    // judge again (at this transaction's commit).
    if ((access == OAT_POST_CREATE || access == OAT_DROP) && class_id == ExtensionRelationId)
        CacheInvalidateRelcacheAll();
}

}  // namespace

void allow_shards() { shards_allowed = true; }

namespace {

// Whether funcid is one of Citus's functions that make a table a Citus table
// (the last answer kept: a check repeats the same function).
bool converts(Oid funcid) {
    static Oid last = InvalidOid;
    static bool last_converts = false;
    if (funcid == last) return last_converts;
    static constexpr const char *names[] = {"create_distributed_table", "create_distributed_table_concurrently",
                                            "create_reference_table", "citus_add_local_table_to_metadata",
                                            "alter_distributed_table"};
    bool found = false;
    if (get_func_namespace(funcid) == PG_CATALOG_NAMESPACE) {
        const char *name = get_func_name(funcid);
        for (const char *n : names) found = found || (name != nullptr && strcmp(name, n) == 0);
    }
    last = funcid;
    last_converts = found;
    return found;
}

// The sessrev table a conversion's first argument names, or nullptr.
const char *converted_table(const FuncExpr *call) {
    if (call->args == NIL || !IsA(linitial(call->args), Const)) return nullptr;
    const Const *arg = static_cast<const Const *>(linitial(call->args));
    if (arg->constisnull || arg->consttype != REGCLASSOID) return nullptr;
    const Oid relid = DatumGetObjectId(arg->constvalue);
    const Oid schema = get_namespace_oid("sessrev", true);
    if (!OidIsValid(schema) || get_rel_namespace(relid) != schema) return nullptr;
    const char *relname = get_rel_name(relid);
    for (const char *table : direct_tables)
        if (relname != nullptr && strcmp(relname, table) == 0) return table;
    return nullptr;
}

bool find_conversion(Node *node, void *) {
    if (node == nullptr) return false;
    if (IsA(node, FuncExpr)) {
        const FuncExpr *call = reinterpret_cast<const FuncExpr *>(node);
        const char *table;
        if (converts(call->funcid) && (table = converted_table(call)) != nullptr)
            ereport(ERROR,
                    (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                     errmsg("sessrev.%s cannot become a Citus table", table),
                     errdetail("sessrev reads its tables directly: only sessrev.distribute() makes Citus tables "
                               "of them, all together, as its lookups read them."),
                     errhint("Run SELECT sessrev.distribute(); on the coordinator (see docs/SCALING.md).")));
    }
    return expression_tree_walker(node, (bool (*)())(void *)find_conversion, nullptr);
}

}  // namespace

void refuse_conversions(const PlannedStmt *statement) {
    // The top target list: where SELECT create_reference_table(...) calls it.
    if (shards_allowed || statement->commandType != CMD_SELECT || statement->planTree == nullptr) return;
    find_conversion(reinterpret_cast<Node *>(statement->planTree->targetlist), nullptr);
}

bool distributing() { return shards_allowed; }

void register_hooks() {
    RegisterXactCallback(forget_allowance, nullptr);
    previous_hook = object_access_hook;
    object_access_hook = on_object_access;
}

Placement judge(const Oid *relids, const char *distributed_kinds, int n) {
    Placement p;
    if (!OidIsValid(get_extension_oid("citus", true))) {
        // Citus dropped: none of its tables' oids is kept.
        local_group_table = partition_table = node_table = shard_table = shard_placement_table = InvalidOid;
        return p;
    }
    local_group_table = get_relname_relid("pg_dist_local_group", PG_CATALOG_NAMESPACE);
    partition_table = get_relname_relid("pg_dist_partition", PG_CATALOG_NAMESPACE);
    node_table = get_relname_relid("pg_dist_node", PG_CATALOG_NAMESPACE);
    shard_table = get_relname_relid("pg_dist_shard", PG_CATALOG_NAMESPACE);
    shard_placement_table = get_relname_relid("pg_dist_placement", PG_CATALOG_NAMESPACE);
    // How many tables are Citus tables, and how many of them as
    // sessrev.distribute() makes them.
    int citus_tables = 0, as_distributed = 0, tables = 0;
    if (OidIsValid(partition_table)) {
        const AttrNumber logicalrelid = get_attnum(partition_table, "logicalrelid");
        const AttrNumber partmethod = get_attnum(partition_table, "partmethod");
        const AttrNumber repmodel = get_attnum(partition_table, "repmodel");
        if (logicalrelid != InvalidAttrNumber && partmethod != InvalidAttrNumber) {
            Relation rel = table_open(partition_table, AccessShareLock);
            for (int i = 0; i < n; i++) {
                if (!OidIsValid(relids[i])) continue;
                tables++;
                const char kind = citus_kind(rel, logicalrelid, partmethod, repmodel, relids[i]);
                if (kind == '\0') continue;
                citus_tables++;
                if (kind == distributed_kinds[i]) as_distributed++;
                if (p.where == Where::here) p = Placement{Where::citus_table, 0, relids[i], kind};
            }
            table_close(rel, AccessShareLock);
        }
    }
    if (OidIsValid(local_group_table)) p.group = local_group();
    if (citus_tables > 0) {
        if (as_distributed == tables && OidIsValid(shard_table) && OidIsValid(shard_placement_table))
            p = Placement{Where::distributed, p.group, InvalidOid, '\0'};
        return p;
    }
    // Group 0 is also what a worker falls back to when its metadata is
    // removed (stop_metadata_sync_to_node), while it still holds shards:
    // only a node that Citus's metadata shows to be the coordinator answers.
    if (p.group != 0)
        p.where = Where::on_coordinator;
    else if (!coordinator_listed())
        p.where = Where::unconfirmed;
    return p;
}

AttrNumber distribution_column(Oid relid) {
    if (!OidIsValid(partition_table)) return InvalidAttrNumber;
    const AttrNumber partkey = get_attnum(partition_table, "partkey");
    if (partkey == InvalidAttrNumber) return InvalidAttrNumber;
    AttrNumber column = InvalidAttrNumber;
    each_row(partition_table, "logicalrelid", F_OIDEQ, ObjectIdGetDatum(relid), [&](HeapTuple tuple, TupleDesc desc) {
        bool isnull;
        const Datum key = heap_getattr(tuple, partkey, desc, &isnull);
        if (isnull) return;
        // A Var, as nodeToString wrote it.
        const Node *node = static_cast<const Node *>(stringToNode(TextDatumGetCString(key)));
        if (node != nullptr && IsA(node, Var)) column = reinterpret_cast<const Var *>(node)->varattno;
    });
    return column;
}

int shard_ranges(Oid relid, ShardRange **ranges) {
    if (!OidIsValid(shard_table) || !OidIsValid(shard_placement_table)) return -1;
    const AttrNumber shardid = get_attnum(shard_table, "shardid");
    const AttrNumber minvalue = get_attnum(shard_table, "shardminvalue");
    const AttrNumber maxvalue = get_attnum(shard_table, "shardmaxvalue");
    if (shardid == InvalidAttrNumber || minvalue == InvalidAttrNumber || maxvalue == InvalidAttrNumber) return -1;
    int n = 0, size = 16;
    // Zeroed, padding too: the maps are compared bytewise (session_lookup.cpp).
    ShardRange *found = static_cast<ShardRange *>(palloc0(size * sizeof(ShardRange)));
    bool ok = true;
    each_row(shard_table, "logicalrelid", F_OIDEQ, ObjectIdGetDatum(relid), [&](HeapTuple tuple, TupleDesc desc) {
        bool null_id, null_min, null_max;
        const Datum id = heap_getattr(tuple, shardid, desc, &null_id);
        const Datum lo = heap_getattr(tuple, minvalue, desc, &null_min);
        const Datum hi = heap_getattr(tuple, maxvalue, desc, &null_max);
        if (null_id || null_min || null_max) {
            ok = false;
            return;
        }
        if (n == size) {
            found = static_cast<ShardRange *>(repalloc(found, 2 * size * sizeof(ShardRange)));
            memset(found + size, 0, size * sizeof(ShardRange));
            size *= 2;
        }
        ShardRange &r = found[n++];
        r.shard = DatumGetInt64(id);
        r.min = parse_bound(TextDatumGetCString(lo), &ok);
        r.max = parse_bound(TextDatumGetCString(hi), &ok);
    });
    for (int i = 0; ok && i < n; i++) {
        found[i].group = placement_group(found[i].shard);
        if (found[i].group < 0) ok = false;
    }
    if (!ok || n == 0) return -1;
    std::sort(found, found + n, [](const ShardRange &a, const ShardRange &b) { return a.min < b.min; });
    // The ranges must cover every hash value once.
    if (found[0].min != PG_INT32_MIN || found[n - 1].max != PG_INT32_MAX) return -1;
    for (int i = 1; i < n; i++)
        if (static_cast<int64>(found[i - 1].max) + 1 != found[i].min) return -1;
    *ranges = found;
    return n;
}

int64 reference_shard(Oid relid, int32 group, bool *placed_here) {
    *placed_here = false;
    if (!OidIsValid(shard_table) || !OidIsValid(shard_placement_table)) return 0;
    const AttrNumber shardid = get_attnum(shard_table, "shardid");
    int64 shard = 0;
    int shards = 0;
    each_row(shard_table, "logicalrelid", F_OIDEQ, ObjectIdGetDatum(relid), [&](HeapTuple tuple, TupleDesc desc) {
        bool isnull;
        const Datum id = heap_getattr(tuple, shardid, desc, &isnull);
        if (!isnull) shard = DatumGetInt64(id);
        shards++;
    });
    if (shards != 1) return 0;
    const AttrNumber groupid = get_attnum(shard_placement_table, "groupid");
    each_row(shard_placement_table, "shardid", F_INT8EQ, Int64GetDatum(shard), [&](HeapTuple tuple, TupleDesc desc) {
        bool isnull;
        const Datum g = heap_getattr(tuple, groupid, desc, &isnull);
        if (!isnull && DatumGetInt32(g) == group) *placed_here = true;
    });
    return shard;
}

bool names_a_shard(Oid relid) {
    const Oid schema = get_namespace_oid("sessrev", true);
    if (!OidIsValid(schema) || get_rel_namespace(relid) != schema) return false;
    const char *relname = get_rel_name(relid);
    return relname != nullptr && shard_of(relname) != nullptr;
}

bool is_citus_table(Oid relid) {
    const Oid partitions = get_relname_relid("pg_dist_partition", PG_CATALOG_NAMESPACE);
    if (!OidIsValid(partitions)) return false;
    bool found = false;
    each_row(partitions, "logicalrelid", F_OIDEQ, ObjectIdGetDatum(relid), [&](HeapTuple, TupleDesc) { found = true; });
    return found;
}

namespace {

// The name Citus gives shard of table name (its AppendShardIdToName), into
// out: the name and _<shard id>, or, when that is too long, the name
// clipped, the hash of the whole name in 8 hex digits, and _<shard id>.
void shard_name(const char *name, int64 shard, char (&out)[NAMEDATALEN]) {
    char suffix[32];
    const int suffix_length = snprintf(suffix, sizeof suffix, "_" INT64_FORMAT, shard);
    const int length = static_cast<int>(std::strlen(name));
    int at = length;
    if (length < NAMEDATALEN - suffix_length) {
        memcpy(out, name, length);
    } else {
        const int clip = pg_mbcliplen(name, length, NAMEDATALEN - suffix_length - 10);
        char hash[16];
        const uint32 whole = DatumGetUInt32(hash_any(reinterpret_cast<const unsigned char *>(name), length));
        snprintf(hash, sizeof hash, "_%.8x", whole);
        memcpy(out, name, clip);
        memcpy(out + clip, hash, 9);
        at = clip + 9;
    }
    memcpy(out + at, suffix, suffix_length + 1);
}

}  // namespace

bool is_citus_shard(Oid relid) {
    const char *relname = get_rel_name(relid);
    if (relname == nullptr) return false;
    // Every shard's name ends in _<shard id>.
    const char *suffix = std::strrchr(relname, '_');
    if (suffix == nullptr || suffix == relname || suffix[1] == '\0') return false;
    for (const char *c = suffix + 1; *c != '\0'; c++)
        if (!std::isdigit(static_cast<unsigned char>(*c))) return false;
    errno = 0;
    const long long shard = std::strtoll(suffix + 1, nullptr, 10);
    if (errno != 0) return false;
    // Resolved each time: Citus may have been dropped or created since.
    const Oid shards = get_relname_relid("pg_dist_shard", PG_CATALOG_NAMESPACE);
    const Oid by_shardid = get_relname_relid("pg_dist_shard_shardid_index", PG_CATALOG_NAMESPACE);
    if (!OidIsValid(shards)) return false;
    const AttrNumber logicalrelid = get_attnum(shards, "logicalrelid");
    if (logicalrelid == InvalidAttrNumber) return false;
    bool found = false;
    each_row(shards, "shardid", F_INT8EQ, Int64GetDatum(shard), [&](HeapTuple tuple, TupleDesc desc) {
        bool isnull;
        const Oid table = DatumGetObjectId(heap_getattr(tuple, logicalrelid, desc, &isnull));
        if (isnull || get_rel_namespace(table) != get_rel_namespace(relid)) return;
        const char *name = get_rel_name(table);
        if (name == nullptr) return;
        char expected[NAMEDATALEN];
        shard_name(name, shard, expected);
        found = found || strcmp(expected, relname) == 0;
    }, by_shardid);
    return found;
}

bool in_forwarded_check() {
    return application_name != nullptr && (strcmp(application_name, "sessrev_check_forwarding") == 0 ||
                                           strcmp(application_name, "sessrev_check_forwarding_again") == 0);
}

bool forwarded_again() {
    return application_name != nullptr && strcmp(application_name, "sessrev_check_forwarding_again") == 0;
}

bool node_address(int32 group, char **host, int32 *port) {
    if (!OidIsValid(node_table)) node_table = get_relname_relid("pg_dist_node", PG_CATALOG_NAMESPACE);
    if (!OidIsValid(node_table)) return false;
    const AttrNumber nodename = get_attnum(node_table, "nodename");
    const AttrNumber nodeport = get_attnum(node_table, "nodeport");
    const AttrNumber isactive = get_attnum(node_table, "isactive");
    const AttrNumber noderole = get_attnum(node_table, "noderole");
    if (nodename == InvalidAttrNumber || nodeport == InvalidAttrNumber || isactive == InvalidAttrNumber ||
        noderole == InvalidAttrNumber)
        return false;
    return any_group_row(group, [&](HeapTuple tuple, TupleDesc desc) {
        bool null_name, null_port, null_active, null_role;
        const Datum name = heap_getattr(tuple, nodename, desc, &null_name);
        const Datum p = heap_getattr(tuple, nodeport, desc, &null_port);
        const Datum active = heap_getattr(tuple, isactive, desc, &null_active);
        const Datum role = heap_getattr(tuple, noderole, desc, &null_role);
        if (null_name || null_port || null_active || null_role || !DatumGetBool(active)) return false;
        if (strcmp(DatumGetCString(DirectFunctionCall1(enum_out, role)), "primary") != 0) return false;
        *host = text_to_cstring(DatumGetTextPP(name));
        *port = DatumGetInt32(p);
        return true;
    });
}

namespace {

bool names_citus(const char *name) {
    static constexpr const char *prefixes[] = {"citus_internal", "citus_rebalancer", "citus_run_command"};
    if (name == nullptr) return false;
    for (const char *prefix : prefixes)
        if (strncmp(name, prefix, strlen(prefix)) == 0) return true;
    return false;
}

}  // namespace

bool in_citus_connection() {
    // The name given when the connection started, too: a statement Citus
    // sends may rename its connection (set_config), not its start.
    return names_citus(application_name) || names_citus(GetConfigOptionResetString("application_name"));
}

bool is_metadata_table(Oid relid) {
    return OidIsValid(relid) && (relid == local_group_table || relid == partition_table || relid == node_table ||
                                 relid == shard_table || relid == shard_placement_table);
}

bool in_sessrev_script() {
    return creating_extension && OidIsValid(CurrentExtensionObject) &&
           CurrentExtensionObject == get_extension_oid("sessrev", true);
}

void refuse(const Placement &p) {
    if (p.where == Where::on_coordinator)
        ereport(ERROR,
                (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                 errmsg("sessrev's sessions are not on this node"),
                 errdetail("This node is a worker of a Citus cluster (group %d): sessrev's sessions, "
                           "denylist and cut-offs are in the coordinator's tables, and this node's "
                           "copies of them are empty.",
                           p.group),
                 errhint("Run this on the coordinator. A check (is_revoked, validate_session, "
                         "is_jwt_revoked) in a statement of its own is answered here through the "
                         "coordinator; one in a statement that Citus sent here whole, with a "
                         "distributed table, is not.")));
    if (p.where == Where::unconfirmed)
        ereport(ERROR,
                (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                 errmsg("sessrev's sessions are not known to be on this node"),
                 errdetail("Citus is installed, but its metadata does not show this node to be the "
                           "coordinator: a worker whose metadata was removed looks the same, and its "
                           "copies of sessrev's tables are empty."),
                 errhint("On the coordinator, run SELECT citus_set_coordinator_host('<its host>', <its port>); "
                         "on a worker, call sessrev's functions on the coordinator instead.")));
    const char *relname = get_rel_name(p.table);
    const char *kind = p.kind == 'h' ? "distributed" : p.kind == 'r' ? "reference" : p.kind == 'n' ? "local" : "Citus";
    ereport(ERROR,
            (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
             errmsg("sessrev.%s is a Citus %s table", relname ? relname : "?", kind),
             errdetail("sessrev reads its tables directly; the rows of a Citus table are in its shards, "
                       "so no check is answered while its tables are Citus tables other than as "
                       "sessrev.distribute() makes them."),
             errhint("sessrev's tables stay local to the coordinator, or sessrev.distribute() makes Citus tables "
                     "of all of them (see docs/SCALING.md).")));
}

}  // namespace sessrev::placement

// allow_shards() RETURNS void: sessrev.distribute() makes Citus tables of
// sessrev's tables in this transaction; granted to no one.
SESSREV_FUNCTION(allow_shards) {
    sessrev::placement::allow_shards();
    PG_RETURN_VOID();
}
