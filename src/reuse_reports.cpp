#include "reuse_reports.hpp"

#include "shmem_ring.hpp"
#include "touch_forwarding.hpp"
#include "worker.hpp"

extern "C" {
#include "access/xlog.h"
#include "miscadmin.h"
}

namespace sessrev::reuse_reports {
namespace {

// Reuse is rare (a stolen token, or a client that lost a rotation's answer):
// a full queue falls back to the caller's own transaction.
using Ring = ShmemRing<token::Hash, 1024>;
constexpr const char *tranche = "sessrev_reuse_reports";

Ring *shared = nullptr;
shmem_startup_hook_type prev_shmem_startup = nullptr;

void startup() {
    if (prev_shmem_startup) prev_shmem_startup();
    shared = Ring::attach("sessrev reuse reports", tranche);
}

}  // namespace

void request_shmem() { Ring::request(tranche); }

void startup_shmem() {
    prev_shmem_startup = shmem_startup_hook;
    shmem_startup_hook = startup;
}

bool push(const token::Hash &hash) {
    if (shared == nullptr || (RecoveryInProgress() && !touch_forwarding::enabled()) ||
        !worker::serves(MyDatabaseId))
        return false;
    // A token presented again before the worker took it is reported once: a
    // flood of one stolen token cannot fill the queue.
    bool queued = false;
    std::size_t waiting;
    const bool appended = shared->push(hash, [&](const Ring &ring) { return !(queued = ring.holds(hash)); }, &waiting);
    if (appended) worker::nudge();
    return appended || queued;
}

std::size_t take(token::Hash *out, std::size_t max) { return shared == nullptr ? 0 : shared->take(out, max); }

std::size_t waiting() { return shared == nullptr ? 0 : shared->waiting(); }

}  // namespace sessrev::reuse_reports
