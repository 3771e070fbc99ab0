// WAL records that keep a hot standby's cache coherent (sessrev.standby_cache).
//
// Replay fires no triggers, and PostgreSQL's invalidation messages reach a
// standby's backends only after the commit is visible there. So a primary
// with the setting writes, before the commit record of each transaction that
// changed what the caches hold, a record of sessrev's own resource manager
// naming the transaction and what it changed; its replay puts that in doubt
// (in_doubt.hpp) while the commit cannot yet be visible.
//
// A standby must also know that its primary writes them: a primary started
// without the setting (or without sessrev) writes none. Every start of a
// primary, and every promotion, leaves a shutdown checkpoint or an
// end-of-recovery record in the WAL before its first commit; their replay
// puts everything in doubt until a record of ours arrives. The primary's
// worker writes one at start and every few seconds.
#pragma once

#include "cache.hpp"
#include "jwt_cache.hpp"
#include "token.hpp"

extern "C" {
#include "postgres.h"
}

namespace sessrev::standby_records {

// sessrev's resource manager. Not registered on the wiki's list yet; a clash
// stops the server at start with "resource manager ID ... already registered".
inline constexpr uint8 rmgr_id = 173;

// From _PG_init while preloading: the resource manager (always, so that this
// server can replay a primary's records) and, with sessrev.standby_cache, the
// watch on checkpoints that tells a standby its primary restarted.
void register_rmgr();

// Whether this server writes the records: a primary with sessrev.standby_cache
// and the cache.
bool writes();

// What a transaction changed: keys whose cached answers die (with all,
// anything: a TRUNCATE, or more than listed), the global JWT cut-off, and the
// hashes it added to this database's is_jwt_revoked filters (with
// all_filters, more than listed: the standby rebuilds them).
struct Addition {
    jwt_cache::Filter filter;
    token::Hash hash;
};
struct Changes {
    const cache::Key *keys;
    int key_count;
    bool all;
    bool global;
    const Addition *additions;
    int addition_count;
    bool all_filters;
};

// Before the commit (or PREPARE) of xid.
void write_changes(TransactionId xid, const Changes &changes);
// Before the commit of xid, which disarmed sessrev's triggers in database
// (the standby suspends its cache there) or changed or re-armed them (the
// standby flushes its cache and resumes database if xid commits).
void write_arming(TransactionId xid, Oid database, bool disarmed);
// From the worker: that this primary writes the records, at most every few
// seconds.
void announce();

}  // namespace sessrev::standby_records
