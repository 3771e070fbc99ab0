// Deletion of expired and long-revoked sessions, expired JWT denylist entries
// and old audit rows, batch by batch so that no statement touches more than
// sessrev.cleanup_batch_size rows. Callers run it in one transaction
// (cleanup_expired_sessions) or one transaction per batch (the worker).
#pragma once

extern "C" {
#include "postgres.h"

#include "datatype/timestamp.h"
}

namespace sessrev::cleanup {


enum class Target { expired_sessions, revoked_sessions, retired_tokens, expired_jwts, old_audit_rows };
inline constexpr Target targets[] = {Target::expired_sessions, Target::revoked_sessions,
                                     Target::retired_tokens, Target::expired_jwts,
                                     Target::old_audit_rows};

struct Counts {
    int64 expired = 0;  // sessions expired longer than the expired retention
    int64 revoked = 0;  // sessions revoked longer than the revoked retention
    int64 retired = 0;  // rotated-out token hashes whose session has expired
    int64 jwts = 0;     // denylisted JWTs past their own expiry
    int64 audit = 0;    // audit rows older than sessrev.audit_retention
    int64 sessions() const { return expired + revoked; }
    int64 &of(Target t);
};

// What is old enough to delete, per target (DT_NOBEGIN: nothing).
struct Cutoffs {
    TimestampTz expired_sessions;
    TimestampTz revoked_sessions;
    TimestampTz retired_tokens;
    TimestampTz expired_jwts;
    TimestampTz old_audit_rows;
    TimestampTz of(Target t) const;
};

Cutoffs cutoffs(Datum expired_retention, Datum revoked_retention);

// One walk: a target, in sessrev's table of that target or, in the
// distributed layout, in a shard of it held here (shard: its relation name).
struct Step {
    Target target;
    char shard[NAMEDATALEN];  // "" for the table itself
};

// The walks of this node's cleanup, in order: every target on a single
// server; in the distributed layout (sessrev.distribute()) the shards held
// here and this node's copy of the JWT denylist, and on the coordinator the
// audit log. Their count (at most max).
int steps(Step *out, int max);
inline constexpr int max_steps = 512;

// Whether pending revocations are folded in by this node's cleanup: on a
// single server, and on the coordinator of the distributed layout (through
// Citus, for every node).
bool folds_pending();

// A walk through one target's index in key order; next_batch deletes up to
// cleanup_batch_size rows and returns how many. SPI must be connected.
class Walk {
public:
    Walk(const Step &step, TimestampTz cutoff);
    int64 next_batch();
    bool done() const { return done_; }

private:
    char sql_[1024];
    bool shard_ = false;
    TimestampTz cutoff_;
    Datum resume_;
    bool done_ = false;
};

// Manual cleanups and the worker share one lock, so two never overlap. It is a
// lock on the extension object under a sub-id of sessrev's own, which no SQL
// command takes: unlike an advisory lock, no other role can hold it to stop
// cleanup. False if a cleanup holds it already. The session-level lock lasts
// across the worker's per-batch transactions until unlock_session_level().
bool try_lock(bool session_level);
void unlock_session_level();

// Writes the CLEANUP audit row (in the distributed layout, on the
// coordinator only: the audit log is its alone). SPI must be connected.
void write_audit(const Counts &counts, const char *actor);

// Folds pending revocations into their rows (pending_revocations.hpp), where
// the database has them (SQL 1.5); SPI connected, in a transaction.
void apply_pending();

}  // namespace sessrev::cleanup
