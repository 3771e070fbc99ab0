// Which node answers a check in the distributed layout (sessrev.distribute()).
//
// Sessions, pending revocations, retired tokens and JWT cut-offs are
// distributed by user id, co-located: every row of a user is in the shard of
// the user id's hash (as Citus hashes it). A token made once the tables are
// distributed carries that hash in front ("<8 hex digits>.<random>"), so that
// any node finds the shard of a token without reading anything; the node
// holding the shard answers from its own cache. A token made before carries
// none: each node holding shards is asked. A forged hash leads to a shard
// where the token's hash is not: the token is answered revoked.
#pragma once

#include "cache.hpp"
#include "citus_placement.hpp"
#include "session_lookup.hpp"

extern "C" {
#include "postgres.h"
}

namespace sessrev::routing {

enum class Goes : uint8 {
    here,        // not the distributed layout: as on a single server
    local,       // the shard of range is held here
    remote,      // the node of group holds it
    everywhere,  // no hint: every node holding shards
};

struct Route {
    Goes goes;
    int range;
    int32 group;
};

// Where the session of token is.
Route of_token(const char *token, std::size_t length);
// Where the rows of user_id (text) are.
Route of_user(Datum user_id);

// A check without a shard to go to (a session id): every node holding shards.
Route everywhere();

// The hash of user_id, as Citus hashes the distribution column: user_id
// itself, or its user key (lookup::Layout::user_key_type).
int32 user_hash(Datum user_id);

// user_id (text) in key type type (its input function).
Datum user_key(Datum user_id, Oid type);

// user_id (text) as sessrev's tables hold it, into *stored: distributed by
// a bigint or uuid user key, the key's own text (' 042' and 42 are one
// user, stored as '42'); else user_id itself. False for an id that cannot be
// a key ('bob' for a bigint), of which no row can exist: a revocation of it
// has nothing to do, rather than failing the statement that made it (a
// tracked table's change).
bool stored_user_id(Datum user_id, Datum *stored);

// The groups other than this node's holding shards (at most max, distinct);
// their count.
int other_groups(int32 *groups, int max);

// Refuses (55000) a check that would have to ask another node where the
// answer would be wrong: in a transaction that changed sessrev's tables
// (another connection would not see those changes), or one forwarded here
// twice (placement::forwarded_again). A check in a statement Citus sent here from
// another node's transaction is refused by the routing itself.
void refuse_remote_if_unsafe();

// A check with no shard to go to (a token without the prefix, a session id):
// here(), at each shard held here, then there(group), at each other node
// holding shards (not from a check forwarded here, which asked them all);
// true at the first that answers live.
template <typename Here, typename There>
bool live_anywhere(Here here, There there) {
    const lookup::Layout l = lookup::layout();
    for (int i = 0; i < l.shards.n; i++) {
        if (!lookup::held_here(l.shards, i)) continue;
        lookup::at_shard(i);
        if (here()) return true;
    }
    lookup::at_shard(-1);
    if (placement::in_forwarded_check()) return false;
    int32 groups[64];
    const int n = other_groups(groups, lengthof(groups));
    if (n > 0) refuse_remote_if_unsafe();
    for (int i = 0; i < n; i++)
        if (there(groups[i])) return true;
    return false;
}

// Distributed: whether a prepared transaction not yet ended changed key's
// bucket here, or the global cut-off (in_doubt): the check then answers
// revoked. Citus tells its client COMMIT once the coordinator committed,
// even when a worker's COMMIT PREPARED then failed. Kept with the cache's
// memory: false where the cache is off. One test where not distributed.
bool prepared_change(const cache::Key &key);
// Likewise for is_jwt_revoked: a prepared change of the global cut-off.
bool prepared_global_change();

// This transaction changed one of sessrev's tables (table_guard.hpp).
void note_write();

}  // namespace sessrev::routing
