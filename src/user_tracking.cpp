// The trigger that track_user_table installs on an application's users table:
// it revokes a user's sessions when the user row goes (DELETE, TRUNCATE), its
// id changes, or a credential or privilege column changes.
//
// It runs with the rights of whoever changed the table, and runs none of the
// table owner's code: columns are compared by their stored bytes (never with a
// type's operators or casts, which the table owner may define), and the id is
// turned into text by its type's output function, which only a superuser can
// write. Only then does it call revoke_user_sessions (and, for an id freed,
// release_user_id), SECURITY DEFINER, with plain text arguments.
#include "user_tracking.hpp"

#include "arguments.hpp"
#include "boundary.hpp"
#include "row_columns.hpp"
#include "current_session.hpp"
#include "session_lookup.hpp"

extern "C" {
#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_class_d.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type_d.h"
#include "commands/trigger.h"
#include "executor/tuptable.h"
#include "nodes/bitmapset.h"
#include "nodes/readfuncs.h"
#include "optimizer/optimizer.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
}

#include <cstdlib>
#include <cstring>

namespace {

constexpr int max_columns = 64;

struct Columns {
    AttrNumber id;
    int credentials;
    AttrNumber credential[max_columns];
    int privileges;
    AttrNumber privilege[max_columns];
};

AttrNumber attnum_of(const char *text, TupleDesc desc, Relation rel) {
    char *end;
    const long n = strtol(text, &end, 10);
    if (*end != '\0' || n < 1 || n > desc->natts || TupleDescAttr(desc, n - 1)->attisdropped)
        ereport(ERROR,
                (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                 errmsg("sessrev: the tracking trigger on %s names column \"%s\", which it cannot use",
                        RelationGetRelationName(rel), text),
                 errhint("Run sessrev.track_user_table for this table again.")));
    return static_cast<AttrNumber>(n);
}

// "{2,5}" -> {2, 5}
int parse_list(const char *text, TupleDesc desc, Relation rel, AttrNumber *out) {
    char buffer[512];
    strlcpy(buffer, text, sizeof buffer);
    int count = 0;
    char *inside = buffer[0] == '{' ? buffer + 1 : buffer;
    char *close = strchr(inside, '}');
    if (close != nullptr) *close = '\0';
    for (char *item = strtok(inside, ","); item != nullptr; item = strtok(nullptr, ",")) {
        if (count == max_columns) elog(ERROR, "sessrev: too many tracked columns");
        out[count++] = attnum_of(item, desc, rel);
    }
    return count;
}

// The arguments number the columns as the table did when it was tracked; the
// WHEN clause names the same columns, and a copy of the trigger on a rebuilt
// table (a dump restored, Citus's undistribute_table or a Citus local table's
// shell: the table made anew without its dropped columns) is made from the
// clause's column names, so it follows them while the numbers do not. They
// must agree, or the trigger would watch other columns than those tracked.
void check_numbers(const Trigger *trigger, const Columns &c, Relation rel) {
    if (trigger->tgqual == nullptr) return;  // not made by track_user_table
    Bitmapset *named = nullptr;
    pull_varattnos(static_cast<Node *>(stringToNode(trigger->tgqual)), PRS2_OLD_VARNO, &named);
    Bitmapset *numbered = bms_make_singleton(c.id - FirstLowInvalidHeapAttributeNumber);
    for (int i = 0; i < c.credentials; i++)
        numbered = bms_add_member(numbered, c.credential[i] - FirstLowInvalidHeapAttributeNumber);
    for (int i = 0; i < c.privileges; i++)
        numbered = bms_add_member(numbered, c.privilege[i] - FirstLowInvalidHeapAttributeNumber);
    if (!bms_equal(named, numbered))
        ereport(ERROR,
                (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                 errmsg("sessrev: the tracking trigger on %s numbers other columns than it watches",
                        RelationGetRelationName(rel)),
                 errdetail("The table was made anew with its columns renumbered (a restored dump, or a "
                           "table Citus rebuilt), and the trigger was copied from the old one."),
                 errhint("Run sessrev.track_user_table for this table again.")));
}

Columns columns_of(const Trigger *trigger, TupleDesc desc, Relation rel) {
    if (trigger->tgnargs != 3)
        ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
                        errmsg("sessrev: user_table_changed() takes three arguments")));
    Columns c;
    c.id = attnum_of(trigger->tgargs[0], desc, rel);
    c.credentials = parse_list(trigger->tgargs[1], desc, rel, c.credential);
    c.privileges = parse_list(trigger->tgargs[2], desc, rel, c.privilege);
    check_numbers(trigger, c, rel);
    return c;
}

// The row's user id as text; nullptr when NULL, empty, or too long to have
// sessions (create_session refuses such ids).
char *user_id_of(HeapTuple row, TupleDesc desc, AttrNumber id) {
    bool isnull;
    const Datum value = heap_getattr(row, id, desc, &isnull);
    if (isnull) return nullptr;
    Oid output;
    bool varlena;
    getTypeOutputInfo(TupleDescAttr(desc, id - 1)->atttypid, &output, &varlena);
    char *text = OidOutputFunctionCall(output, value);
    const size_t length = strlen(text);
    if (length == 0 || length > static_cast<size_t>(sessrev::arguments::max_user_id_bytes))
        return nullptr;
    return text;
}

// Columns compare by their stored bytes (row_columns.hpp): two values that a
// type's own equality would call equal may differ, which revokes, the safe
// side.
using sessrev::row_columns::same_bytes;

bool any_changed(HeapTuple a, HeapTuple b, TupleDesc desc, const AttrNumber *attnums, int n) {
    for (int i = 0; i < n; i++)
        if (!same_bytes(a, b, desc, attnums[i])) return true;
    return false;
}

// Where the trigger fired. Distributed (sessrev.distribute()), a tracked
// table co-located with the sessions fires it on its shards, on the nodes
// that hold the users' sessions too: revoke_user_in_shard records the
// revocations there, in this transaction (shard_revocation.cpp). Every
// session of the user goes: the session a user changed their credentials
// from is known to the coordinator's backend, not to the shard's.
enum class Fired : uint8 { on_table, on_shard };

// Calls sessrev.revoke_user_sessions(user_id, reason, revoked_by, exclude),
// or on a shard sessrev.revoke_user_in_shard(user_id, reason): through fmgr,
// which applies their SECURITY DEFINER and pinned search_path.
void revoke_user(Fired fired, const char *user_id, const char *reason, const char *actor,
                 const pg_uuid_t *exclude) {
    if (fired == Fired::on_shard) {
        Oid types[2] = {TEXTOID, TEXTOID};
        OidFunctionCall2(sessrev::lookup::function_oid("revoke_user_in_shard", 2, types),
                         CStringGetTextDatum(user_id), CStringGetTextDatum(reason));
        return;
    }
    Oid types[4] = {TEXTOID, TEXTOID, TEXTOID, UUIDOID};
    FmgrInfo flinfo;
    fmgr_info(sessrev::lookup::function_oid("revoke_user_sessions", 4, types), &flinfo);
    LOCAL_FCINFO(call, 4);
    InitFunctionCallInfoData(*call, &flinfo, 4, InvalidOid, nullptr, nullptr);
    call->args[0] = {CStringGetTextDatum(user_id), false};
    call->args[1] = {CStringGetTextDatum(reason), false};
    call->args[2] = {actor != nullptr ? CStringGetTextDatum(actor) : Datum(0), actor == nullptr};
    call->args[3] = {UUIDPGetDatum(const_cast<pg_uuid_t *>(exclude)), exclude == nullptr};
    FunctionCallInvoke(call);
}

// The id is free for someone else: sessrev.release_user_id(user_id) marks it
// in the audit log, so that its next holder's my_security_events starts
// there. Through fmgr (SECURITY DEFINER, pinned search_path); not in a
// database still at SQL 1.5, which lacks it, nor on a shard's node, which has
// no audit log.
void release_user(Fired fired, const char *user_id) {
    if (fired == Fired::on_shard) return;
    Oid types[1] = {TEXTOID};
    const Oid fn = sessrev::lookup::function_oid("release_user_id", 1, types, true);
    if (!OidIsValid(fn)) return;
    OidFunctionCall1(fn, CStringGetTextDatum(user_id));
}

// The user row is gone, or its id changed: the sessions go, and the id is free.
void revoke_released(Fired fired, const char *user_id, const char *reason) {
    revoke_user(fired, user_id, reason, nullptr, nullptr);
    release_user(fired, user_id);
}

// TRUNCATE: every user of the table goes. BEFORE TRUNCATE still sees the rows.
void revoke_every_user(Relation rel, AttrNumber id) {
    // track_user_table accepts plain tables only; a partitioned one has no rows
    // of its own to scan.
    if (rel->rd_rel->relkind != RELKIND_RELATION)
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                        errmsg("sessrev: cannot track %s: not a plain table",
                               RelationGetRelationName(rel))));
    // A distributed table's TRUNCATE fires no trigger on its shards (Citus
    // copies row triggers only) but this one on the coordinator's shell,
    // where the rows are not; its users' sessions would have to be revoked
    // through Citus in a transaction that Citus then refuses to TRUNCATE in
    // (DDL on a placement read over another role's connection).
    if (sessrev::lookup::distributed() && (sessrev::placement::is_citus_table(RelationGetRelid(rel)) ||
                                           sessrev::placement::is_citus_shard(RelationGetRelid(rel))))
        ereport(ERROR,
                (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                 errmsg("sessrev: TRUNCATE of %s, a tracked distributed table, is refused",
                        RelationGetRelationName(rel)),
                 errdetail("Citus fires no trigger on its shards for a TRUNCATE: its users' sessions would stay live."),
                 errhint("DELETE its rows, which revokes each user's sessions, or run "
                         "sessrev.untrack_user_table first.")));
    TupleDesc desc = RelationGetDescr(rel);
    TableScanDesc scan = table_beginscan(rel, GetActiveSnapshot(), 0, nullptr);
    HeapTuple row;
    while ((row = heap_getnext(scan, ForwardScanDirection)) != nullptr) {
        if (char *user = user_id_of(row, desc, id)) revoke_released(Fired::on_table, user, "User deleted");
    }
    table_endscan(scan);
}

}  // namespace

namespace sessrev::tracking {

void refuse_truncate_of_tracked_shard(Oid relid) {
    if (!placement::is_citus_shard(relid)) return;
    Oid none[1] = {InvalidOid};
    const Oid trigger_function = lookup::function_oid("user_table_changed", 0, none, true);
    if (!OidIsValid(trigger_function)) return;
    Relation triggers = table_open(TriggerRelationId, AccessShareLock);
    ScanKeyData key;
    ScanKeyInit(&key, Anum_pg_trigger_tgrelid, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(relid));
    SysScanDesc scan = systable_beginscan(triggers, TriggerRelidNameIndexId, true, nullptr, 1, &key);
    bool tracked = false;
    for (HeapTuple tuple; HeapTupleIsValid(tuple = systable_getnext(scan));)
        tracked = tracked || reinterpret_cast<Form_pg_trigger>(GETSTRUCT(tuple))->tgfoid == trigger_function;
    systable_endscan(scan);
    table_close(triggers, AccessShareLock);
    if (tracked)
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                        errmsg("sessrev: TRUNCATE of %s, a shard of a tracked distributed table, is refused",
                               get_rel_name(relid)),
                        errdetail("Citus fires no trigger on a shard for a TRUNCATE: its users' sessions would "
                                  "stay live."),
                        errhint("DELETE its rows, which revokes each user's sessions, or run "
                                "sessrev.untrack_user_table first.")));
}

}  // namespace sessrev::tracking

// user_table_changed(): AFTER UPDATE OR DELETE (per row)
// and BEFORE TRUNCATE trigger; arguments: the id column's number and the
// credential and privilege columns' numbers ('{2,5}').
SESSREV_FUNCTION(user_table_changed) {
    if (!CALLED_AS_TRIGGER(fcinfo))
        throw sessrev::SqlError(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED,
                                "user_table_changed() must be called as a trigger");
    TriggerData *trigger = reinterpret_cast<TriggerData *>(fcinfo->context);
    Relation rel = trigger->tg_relation;
    TupleDesc desc = RelationGetDescr(rel);
    const Columns c = columns_of(trigger->tg_trigger, desc, rel);
    const TriggerEvent event = trigger->tg_event;
    if (TRIGGER_FIRED_BY_TRUNCATE(event)) {
        revoke_every_user(rel, c.id);
        return PointerGetDatum(nullptr);
    }
    if (!TRIGGER_FIRED_FOR_ROW(event)) return PointerGetDatum(nullptr);
    const Fired fired = sessrev::lookup::distributed() && sessrev::placement::is_citus_shard(RelationGetRelid(rel))
                            ? Fired::on_shard
                            : Fired::on_table;
    HeapTuple old_row = trigger->tg_trigtuple;
    char *user = user_id_of(old_row, desc, c.id);
    if (user == nullptr) return PointerGetDatum(nullptr);
    if (TRIGGER_FIRED_BY_DELETE(event)) {
        revoke_released(fired, user, "User deleted");
        return PointerGetDatum(nullptr);
    }
    HeapTuple new_row = trigger->tg_newtuple;
    // Another user may register the old id: its sessions must not pass to them.
    if (!same_bytes(old_row, new_row, desc, c.id)) {
        revoke_released(fired, user, "User id changed");
    } else if (any_changed(old_row, new_row, desc, c.privilege, c.privileges)) {
        revoke_user(fired, user, "Privileges changed", nullptr, nullptr);
    } else if (any_changed(old_row, new_row, desc, c.credential, c.credentials)) {
        namespace cs = sessrev::current_session;
        // The user changed their own credentials: keep the session they did it from.
        if (fired == Fired::on_table && cs::user_id() != nullptr && strcmp(cs::user_id(), user) == 0)
            revoke_user(fired, user, "Credentials changed", user, cs::session_id());
        else
            revoke_user(fired, user, "Credentials reset", nullptr, nullptr);
    }
    return PointerGetDatum(nullptr);
}
