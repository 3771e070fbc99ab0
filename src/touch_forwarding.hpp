// Touches made on a hot standby, sent to the primary (sessrev.primary_conninfo).
// A standby cannot write last_active_at; without this, a session used only
// through standbys would look idle to the primary. validate_session on the
// standby queues a due touch as on a primary (touch_queue.hpp); the standby's
// worker sends the queued touches to the primary over libpq, a batch per
// round trip, to sessrev.forward_touch(), which moves last_active_at forward
// under the same rules as a local touch (never past the primary's now(),
// only forward, only a live session, never waiting for a row lock).
#pragma once

#include "token.hpp"
#include "touch_queue.hpp"

#include <cstddef>

namespace sessrev::touch_forwarding {

// Whether touches on this standby are forwarded (the setting is not empty).
bool enabled();

// From the standby's worker: sends the touches; false when the primary could
// not be reached or refused them (a WARNING says why, at most once a minute;
// the touches are dropped, as a full queue drops them). On success, *refused
// (palloc'd) and *refused_count name the sessions whose touch the primary did
// not write. Keeps the connection for the next batch. Never waits longer than
// 10 s, and stays interruptible.
bool send(const touch_queue::Touch *touches, std::size_t count, pg_uuid_t **refused,
          std::size_t *refused_count);

// From the standby's worker: reports rotated-out tokens presented after
// reuse_interval (reuse_reports.hpp) to the primary, which revokes their
// sessions; false as send.
bool send_reuse_reports(const token::Hash *hashes, std::size_t count);

// Closes the connection (the worker exits, or the setting changed).
void disconnect();

}  // namespace sessrev::touch_forwarding
