// Checks made on a Citus worker, answered by the coordinator.
//
// In the coordinator layout (citus_placement.hpp) a worker's copies of
// sessrev's tables are empty. Applications that spread their connections over
// every node (Citus's "query from any node") still check sessions there: such
// a check is sent over libpq to the coordinator, as the current user (as Citus
// itself connects), and the coordinator answers it from its cache. The answer
// reads the latest committed state there, as a local check reads it here.
//
// A check in a statement that Citus sent to this worker from a transaction
// begun elsewhere is not forwarded but refused (citus_placement.hpp): that
// transaction may have revoked the session without committing yet, which a
// new connection would not see. Any failure to get an answer is an error:
// no failure answers "valid".
#pragma once

extern "C" {
#include "postgres.h"

#include "datatype/timestamp.h"
#include "utils/uuid.h"
}

#include "session_cache.hpp"
#include "token.hpp"

#include <cstddef>

namespace sessrev::check_forwarding {

// Preloaded: the count of this node's backends holding a connection to the
// coordinator (sessrev.max_forwarding_connections), so that clients of the
// workers cannot take all of the coordinator's connection slots.
void request_shmem();
void startup_shmem();

// Whether this backend's checks go to the coordinator. One test on a node
// that serves them itself.
bool applies();

// The check, asked of the node of group (0: the coordinator). There, a check
// forwarded in the distributed layout is answered from that node's own
// shards, and forwarded no further.
bool is_revoked(int32 group, const text *token);
bool is_revoked(int32 group, const pg_uuid_t *session_id);
bool is_jwt_revoked(int32 group, const text *jti, const text *user_id, TimestampTz issued_at);

// Distributed, on a node other than the coordinator: rotated-out tokens
// presented after sessrev.reuse_interval, sent to the coordinator's
// report_token_reuse, which revokes their sessions (the revocation writes the
// audit log, which is the coordinator's). Raises when it cannot.
void report_reuse(const token::Hash *hashes, std::size_t count);
// The same, for the worker: nullptr once sent, or why it failed (palloc'd),
// without raising (a failure's work is rolled back in a subtransaction).
char *try_report_reuse(const token::Hash *hashes, std::size_t count);

// validate_session_record on the node of group: true with the live session's
// profile, its user id and its metadata (a jsonb, palloc'd), or false.
bool validate(int32 group, const text *token, session_cache::Profile *profile, text **user_id, varlena **metadata);

}  // namespace sessrev::check_forwarding
