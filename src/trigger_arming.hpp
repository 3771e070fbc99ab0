// The cache's backstop: it learns of changes only through sessrev's triggers,
// so it serves a database only while every one of them is enabled ALWAYS
// (firing under session_replication_role = replica too, as logical
// replication's apply does). Disabling one (ALTER TABLE ... DISABLE TRIGGER,
// pg_restore --disable-triggers) or turning it into an ordinary trigger
// (ENABLE TRIGGER ALL) suspends the cache for the database before that change
// commits; re-arming them flushes everything that was cached (rows may have
// changed unseen meanwhile) and only then resumes it.
#pragma once

#include "session_lookup.hpp"

namespace sessrev::arming {

struct State {
    bool armed;          // every sessrev trigger present and enabled ALWAYS
    bool changed_here;   // one of them, on a table older than this transaction, was changed by it
};

// Reads pg_trigger for the tables of l (catalog access: inside a transaction).
State scan(const lookup::Layout &l);

void register_callbacks();

// True when the cache may answer for this database: the triggers were armed
// when this backend last read them, and no transaction has suspended it.
bool cache_may_serve();

}  // namespace sessrev::arming
