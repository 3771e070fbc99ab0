// Direct indexed lookup of a session in sessrev.sessions.
#pragma once

extern "C" {
#include "postgres.h"

#include "access/attnum.h"
}

#include "cache.hpp"
#include "citus_placement.hpp"

namespace sessrev::lookup {

// Which unique index a lookup goes through.
enum class Key { token_hash, session_id };

// The shard of the co-located tables (sessions, pending_revocations,
// retired_tokens, user_token_cutoffs) for one range of hash values, where
// this node holds it; sessions is invalid where another node does.
struct LocalShard {
    Oid sessions = InvalidOid;
    Oid token_index = InvalidOid;
    Oid id_index = InvalidOid;
    Oid pending = InvalidOid;
    Oid pending_session_index = InvalidOid;
    Oid pending_user_index = InvalidOid;
    Oid retired_tokens = InvalidOid;
    Oid retired_tokens_pkey = InvalidOid;
    Oid user_cutoffs = InvalidOid;
    Oid user_cutoffs_pkey = InvalidOid;
};

// In the distributed layout (sessrev.distribute()): the ranges of the user
// id's hash values, which node holds each, and the shards held here
// (TopMemoryContext, replaced at each new layout).
struct ShardMap {
    int n = 0;
    const placement::ShardRange *ranges = nullptr;
    const LocalShard *local = nullptr;
    // The reference tables themselves (the layout names their shards).
    Oid jwt_denylist = InvalidOid;
    Oid global_cutoff = InvalidOid;
};

// Where sessrev's tables are and how the session rows are laid out, resolved by
// name once per backend and again after any relcache invalidation of them.
struct Layout {
    Oid sessions = InvalidOid;
    Oid token_index = InvalidOid;
    Oid id_index = InvalidOid;
    AttrNumber id = InvalidAttrNumber;
    AttrNumber token_hash = InvalidAttrNumber;
    AttrNumber revoked = InvalidAttrNumber;
    AttrNumber expires_at = InvalidAttrNumber;
    AttrNumber last_active_at = InvalidAttrNumber;
    AttrNumber user_id = InvalidAttrNumber;
    AttrNumber metadata = InvalidAttrNumber;
    AttrNumber created_at = InvalidAttrNumber;
    // Revocations recorded apart from the rows they revoke (SQL 1.5; invalid
    // in a database not yet updated to it).
    Oid pending = InvalidOid;
    Oid pending_session_index = InvalidOid;
    Oid pending_user_index = InvalidOid;
    AttrNumber pending_not_before = InvalidAttrNumber;
    // Rotated-out tokens (rotate_token).
    Oid retired_tokens = InvalidOid;
    Oid retired_tokens_pkey = InvalidOid;
    AttrNumber retired_session_id = InvalidAttrNumber;
    AttrNumber retired_at = InvalidAttrNumber;
    // Stateless tokens.
    Oid jwt_denylist = InvalidOid;
    Oid jwt_denylist_pkey = InvalidOid;
    Oid user_cutoffs = InvalidOid;
    Oid user_cutoffs_pkey = InvalidOid;
    Oid global_cutoff = InvalidOid;
    Oid global_cutoff_pkey = InvalidOid;
    AttrNumber user_not_before = InvalidAttrNumber;
    AttrNumber global_not_before = InvalidAttrNumber;
    // Every trigger the cache relies on is enabled ALWAYS (trigger_arming.hpp).
    bool armed = false;
    // Distributed by the user id as a bigint or a uuid (user_id_bigint or
    // user_id_uuid, sessrev.distribute(user_id_type => ...)): that column of
    // sessions, and its type.
    AttrNumber user_key = InvalidAttrNumber;
    Oid user_key_type = InvalidOid;
    // Whether this node's tables hold the rows (citus_placement.hpp).
    placement::Placement placement;
    // The distributed layout's shards; the tables above are then the Citus
    // tables themselves, whose rows are in the shards, except the reference
    // tables' (jwt_denylist, global_token_cutoff), which are the shards held
    // here, as layout() hands them out.
    ShardMap shards;
};

// The layout, by value: opening a relation can run invalidation callbacks that
// reset the backend's copy. Raises an error if the extension is not installed,
// or if this node's tables do not hold sessrev's rows (citus_placement.hpp;
// except in sessrev's own extension script, which Citus runs on every node).
Layout layout();

// In the distributed layout, the reads that follow go to the shard of the
// co-located tables for the range i (held here); -1: to none, so that a read
// that did not choose a shard fails instead of reading an empty Citus table.
// Each check chooses its shard before its first read.
void at_shard(int i);
// The range of hash value hash in map.
int range_of(const ShardMap &map, int32 hash);
// Whether this node holds the shards of range i.
inline bool held_here(const ShardMap &map, int i) { return OidIsValid(map.local[i].sessions); }
// The range whose shard relid is (any of the co-located tables' shards), or -1.
int range_of_shard(const ShardMap &map, Oid relid);
// Whether this node answers for the shards it holds (sessrev.distribute()).
bool distributed();

// layout() as its tables are, whatever shard at_shard() chose.
Layout layout_of_tables();

void register_callbacks();

// Whether this backend holds a layout that serves (the fast path of the
// checks: nothing to forward).
bool serving();
// Where sessrev's rows are, without refusing (check_forwarding): judged now,
// or as last judged when that found them on the coordinator and nothing was
// invalidated since.
placement::Placement placement_now();
// Grows at each invalidation that may change the layout or the placement.
uint64 invalidation_count();

// The oid of function sessrev.name(types); raises an error if there is none,
// or, with missing_ok, returns InvalidOid.
Oid function_oid(const char *name, int nargs, const Oid *types, bool missing_ok = false);

// Where sessrev's tables are, read afresh without `armed`; false (and no
// error) when one is missing, as while an extension is restored piece by piece.
bool find_tables(Layout *tables);

// layout().armed without copying the layout (on every cached check).
bool triggers_armed();

// False only for a relation known not to be one of sessrev's tables.
bool may_be_sessrev_table(Oid relid);

// Reads the row of relid whose unique index indexid holds key (compared with
// equal), as a fresh snapshot sees it: the latest committed state plus this
// transaction's own changes. Copies the n attributes attnums into values and
// isnull (by-reference ones detoasted into the current memory context); false
// when there is no such row. Reads without table privileges: callers are gated
// by EXECUTE on their SQL function.
bool fetch_unique(Oid relid, Oid indexid, RegProcedure equal, Datum key, int n,
                  const AttrNumber *attnums, Datum *values, bool *isnull);

// Calls visit(values, isnull, arg) for each row of relid that the index
// indexid (of any kind) holds under key, as fetch_unique sees them, until it
// returns false.
void fetch_each(Oid relid, Oid indexid, RegProcedure equal, Datum key, int n, const AttrNumber *attnums,
                bool (*visit)(const Datum *values, const bool *isnull, void *arg), void *arg);

// Whether times describe a session that is live now (the transaction's
// start, as now() in SQL, so that every function agrees).
bool times_are_live(const cache::Times &times);
// Whether they describe a session live at the given time.
bool times_are_live_at(const cache::Times &times, TimestampTz now);

// Looks the session up with fetch_unique, so the answer is never older than the
// last commit. True and fills times when the row is a live session.
bool find_live_session(Key key, Datum value, cache::Times *times);

}  // namespace sessrev::lookup
