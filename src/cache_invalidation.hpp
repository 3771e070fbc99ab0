// Keeps the cache true to committed data: a trigger on sessrev.sessions records
// the sessions a transaction changes, and a transaction callback invalidates
// their entries (cache::invalidate) once the commit is visible, before COMMIT
// returns.
#pragma once

namespace sessrev::invalidation {

void register_callbacks();

// True once this transaction has changed a session in a way the cache must
// learn about: until it ends, this backend answers without the cache so that it
// sees its own uncommitted revocations.
bool pending_in_transaction();

// The caches (cache.hpp, session_cache.hpp) may answer this backend: they are
// on, the server is not a standby (replay fires no triggers), this
// transaction has no uncommitted changes to sessions of its own, and sessrev's
// triggers are all armed (trigger_arming.hpp).
bool cache_usable();

}  // namespace sessrev::invalidation
