// The one revoke-and-audit path. Every revocation (one session, one user's,
// all) runs the same statement: it locks the target rows in id order, so that
// concurrent revocations of any mix never deadlock, revokes every one not yet
// revoked (expired and idle ones too: an administrator's revocation is always
// recorded, and final; one that another transaction holds by a pending
// revocation, pending_revocations.hpp), and writes one
// SESSION_REVOKED audit row per session it revoked. A user's revocations first
// take the user's lock; revoking all first waits out every other writer of
// sessrev.sessions, so no mix of revocations, even several in one
// transaction, can deadlock.
#pragma once

extern "C" {
#include "postgres.h"
}

namespace sessrev::revocation {

enum class Scope { session, user, all };

struct Request {
    Scope scope;
    Datum session_id;  // uuid: Scope::session
    Datum user_id;     // text: Scope::user
    Datum exclude;     // uuid: Scope::user, may be null
    bool exclude_null;
    Datum reason;      // text
    bool reason_null;
    Datum actor;       // text
    bool actor_null;
};

// Serialises the revocations and session limits of one user within the
// database (a transaction lock no SQL role can take).
void lock_user(Datum user_id);

// Whether this database's revocations never wait (SQL 1.5: pending_revocations
// exists); the emergency logout is then a cut-off alone.
bool never_waits();

// Revokes what request names; returns the number of sessions revoked. SPI must
// be connected, inside a function whose search_path is pinned.
int64 revoke(const Request &request);

}  // namespace sessrev::revocation
