// Rotated-out tokens presented after sessrev.reuse_interval (stolen, by the
// rule of rotate_token), reported to the worker instead of revoked in the
// caller's transaction: the session's revocation and its TOKEN_REUSE audit
// row then commit whatever the caller's transaction does (a PostgREST
// pre-request function that raises rolls its transaction back), also from a
// READ ONLY transaction and, through the touch forwarder, from a hot
// standby; and the request does not wait. The worker takes them within
// milliseconds: it is woken at once.
#pragma once

extern "C" {
#include "postgres.h"
}

#include "token.hpp"

#include <cstddef>

namespace sessrev::reuse_reports {

void request_shmem();  // shmem_request_hook
void startup_shmem();  // shmem_startup_hook

// Reports the retired token's hash to the worker serving this database (on a
// standby, one that forwards to its primary) and wakes it; false when there is
// none, or the queue is full: the caller revokes in its own transaction.
bool push(const token::Hash &retired_token_hash);

// The worker's side: takes up to max reports of its database into out.
std::size_t take(token::Hash *out, std::size_t max);
std::size_t waiting();

}  // namespace sessrev::reuse_reports
