#include "table_guard.hpp"

#include "citus_placement.hpp"
#include "session_lookup.hpp"

extern "C" {
#include "postgres.h"

#include "catalog/namespace.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "utils/lsyscache.h"
}

namespace sessrev::table_guard {
namespace {

ExecutorStart_hook_type previous_hook = nullptr;

// Whether the statement's range table names a relation in schema sessrev.
bool names_sessrev_relation(const List *rtable) {
    Oid schema = InvalidOid;
    const ListCell *cell;
    foreach (cell, rtable) {
        const RangeTblEntry *rte = static_cast<const RangeTblEntry *>(lfirst(cell));
        if (rte->rtekind != RTE_RELATION) continue;
        if (!OidIsValid(schema)) {
            schema = get_namespace_oid("sessrev", true);
            if (!OidIsValid(schema)) return false;
        }
        if (get_rel_namespace(rte->relid) == schema) return true;
    }
    return false;
}

void on_executor_start(QueryDesc *query, int eflags) {
    // A backend that serves checks here (the coordinator, a single server)
    // pays one test; sessrev's own script runs on every node.
    if (!lookup::serving() && !IsBinaryUpgrade && !placement::in_sessrev_script() &&
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
    if (previous_hook)
        previous_hook(query, eflags);
    else
        standard_ExecutorStart(query, eflags);
}

}  // namespace

void register_hooks() {
    previous_hook = ExecutorStart_hook;
    ExecutorStart_hook = on_executor_start;
}

}  // namespace sessrev::table_guard
