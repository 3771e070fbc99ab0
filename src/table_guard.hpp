// Statements that read or write sessrev's tables where their copies do not
// hold the rows (a Citus worker, citus_placement.hpp) are refused, so that no
// listing, view, SQL function or direct statement there answers from the
// empty copies ("no sessions", "no such session", an update of nothing).
// Checks are forwarded before they read anything (check_forwarding.hpp).
#pragma once

extern "C" {
#include "postgres.h"

#include "nodes/pg_list.h"
}

namespace sessrev::table_guard {

// Whether rtable (a statement's range table) names a relation in schema
// sessrev.
bool names_sessrev_relation(const List *rtable);

// From _PG_init: the executor hook, in every backend that loads sessrev.
void register_hooks();

}  // namespace sessrev::table_guard
