#include "touch_queue.hpp"

#include "shmem_ring.hpp"
#include "touch_forwarding.hpp"

#include "worker.hpp"

extern "C" {
#include "access/xlog.h"
#include "miscadmin.h"
}

namespace sessrev::touch_queue {
namespace {

// 2.5 MiB: a minute of touches at 1,000 per second, which the worker drains
// every second.
constexpr std::size_t capacity = 65536;
using Ring = ShmemRing<Touch, capacity>;
constexpr const char *tranche = "sessrev_touch_queue";

Ring *shared = nullptr;
shmem_startup_hook_type prev_shmem_startup = nullptr;

void startup() {
    if (prev_shmem_startup) prev_shmem_startup();
    shared = Ring::attach("sessrev touch queue", tranche);
}

}  // namespace

void request_shmem() { Ring::request(tranche); }

void startup_shmem() {
    prev_shmem_startup = shmem_startup_hook;
    shmem_startup_hook = startup;
}

bool push(const Touch &touch) {
    // A standby's worker forwards them to the primary, if it is told how.
    if (shared == nullptr || (RecoveryInProgress() && !touch_forwarding::enabled()) ||
        !worker::serves(MyDatabaseId))
        return false;
    std::size_t waiting;
    const bool room = shared->push(touch, [](const Ring &) { return true; }, &waiting);
    // The worker drains every second anyway; a crowded queue wakes it sooner.
    if (room && waiting == capacity / 4) worker::nudge();
    return room;
}

std::size_t take(Touch *out, std::size_t max) { return shared == nullptr ? 0 : shared->take(out, max); }

std::size_t waiting() { return shared == nullptr ? 0 : shared->waiting(); }

}  // namespace sessrev::touch_queue
