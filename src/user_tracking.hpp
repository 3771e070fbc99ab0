// The trigger that track_user_table installs (user_tracking.cpp).
#pragma once

extern "C" {
#include "postgres.h"
}

namespace sessrev::tracking {

// Refuses (0A000) a TRUNCATE of relid when it is a shard of a tracked users
// table: Citus fires no trigger on a shard for a TRUNCATE, so the users'
// sessions would stay live. Called for each relation a TRUNCATE empties.
void refuse_truncate_of_tracked_shard(Oid relid);

}  // namespace sessrev::tracking
