#include "table_guard.hpp"

#include "citus_placement.hpp"
#include "shard_routing.hpp"
#include "session_lookup.hpp"

extern "C" {
#include "postgres.h"

#include "catalog/namespace.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "parser/parsetree.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
}

namespace sessrev::table_guard {
namespace {

ExecutorStart_hook_type previous_hook = nullptr;

// Schema sessrev's oid, looked up once per backend and again after a change
// to any schema (none: no sessrev in this database).
bool schema_known = false;
Oid schema = InvalidOid;

void forget_schema(Datum, int, uint32) { schema_known = false; }


}  // namespace

bool names_sessrev_relation(const List *rtable) {
    const ListCell *cell;
    foreach (cell, rtable) {
        const RangeTblEntry *rte = static_cast<const RangeTblEntry *>(lfirst(cell));
        if (rte->rtekind != RTE_RELATION) continue;
        if (!schema_known) {
            schema = get_namespace_oid("sessrev", true);
            schema_known = true;
        }
        if (!OidIsValid(schema)) return false;
        if (get_rel_namespace(rte->relid) == schema) return true;
    }
    return false;
}

namespace {

// Whether the statement writes sessrev.session_audit_log.
bool writes_audit_log(const PlannedStmt *statement) {
    const ListCell *cell;
    foreach (cell, statement->resultRelations) {
        const RangeTblEntry *rte = rt_fetch(lfirst_int(cell), statement->rtable);
        const char *name = get_rel_name(rte->relid);
        if (get_rel_namespace(rte->relid) == schema && name != nullptr && strcmp(name, "session_audit_log") == 0)
            return true;
    }
    return false;
}

void on_executor_start(QueryDesc *query, int eflags) {
    // A backend that serves checks here (the coordinator, a single server)
    // pays one test; sessrev's own script runs on every node.
    if (!lookup::serving() && (eflags & EXEC_FLAG_EXPLAIN_ONLY) == 0 && !IsBinaryUpgrade &&
        !placement::in_sessrev_script() && !placement::distributing() &&
        names_sessrev_relation(query->plannedstmt->rtable)) {
        // An extension restored piece by piece has tables missing: nothing
        // to judge yet (and nothing served from them).
        lookup::Layout tables;
        if (lookup::find_tables(&tables)) {
            if (!placement::serves(tables.placement)) placement::refuse(tables.placement);
            // Cached as the checks cache it: the next statement pays one test.
            (void)lookup::layout();
        }
    }
    placement::refuse_conversions(query->plannedstmt);
    // Distributed: a transaction that changes sessrev's tables through Citus
    // must not then ask another node about them (shard_routing.hpp).
    if (lookup::serving() && query->operation != CMD_SELECT && lookup::distributed() &&
        names_sessrev_relation(query->plannedstmt->rtable)) {
        routing::note_write();
        // Every write of sessrev's functions records itself in the audit
        // log, which is the coordinator's alone: made elsewhere, its rows
        // would be where no one reads them, under ids of their own.
        if (lookup::layout().placement.group != 0 && writes_audit_log(query->plannedstmt))
            ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                            errmsg("sessrev's writes are made on the coordinator"),
                            errdetail("sessrev's sessions are distributed; its audit log is the coordinator's."),
                            errhint("Call create_session, the revocations, rotate_token and extend_session "
                                    "on the coordinator; checks answer on every node.")));
    }
    if (previous_hook)
        previous_hook(query, eflags);
    else
        standard_ExecutorStart(query, eflags);
}

}  // namespace

void register_hooks() {
    CacheRegisterSyscacheCallback(NAMESPACEOID, forget_schema, 0);
    previous_hook = ExecutorStart_hook;
    ExecutorStart_hook = on_executor_start;
}

}  // namespace sessrev::table_guard
