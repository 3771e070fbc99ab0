#include "reuse_reports.hpp"

#include "touch_forwarding.hpp"
#include "worker.hpp"

extern "C" {
#include "access/xlog.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
}

namespace sessrev::reuse_reports {
namespace {

// Reuse is rare (a stolen token, or a client that lost a rotation's answer):
// a full queue falls back to the caller's own transaction.
constexpr std::size_t capacity = 1024;

constexpr const char *tranche = "sessrev_reuse_reports";

struct Shared {
    LWLock *lock;
    std::size_t head;
    std::size_t count;
    token::Hash ring[capacity];
};

Shared *shared = nullptr;
shmem_startup_hook_type prev_shmem_startup = nullptr;

void startup() {
    if (prev_shmem_startup) prev_shmem_startup();
    LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
    bool found;
    shared = static_cast<Shared *>(ShmemInitStruct("sessrev reuse reports", sizeof(Shared), &found));
    if (!found) {
        shared->head = 0;
        shared->count = 0;
    }
    shared->lock = &GetNamedLWLockTranche(tranche)->lock;
    LWLockRelease(AddinShmemInitLock);
}

}  // namespace

void request_shmem() {
    RequestAddinShmemSpace(sizeof(Shared));
    RequestNamedLWLockTranche(tranche, 1);
}

void startup_shmem() {
    prev_shmem_startup = shmem_startup_hook;
    shmem_startup_hook = startup;
}

bool push(const token::Hash &hash) {
    if (shared == nullptr || (RecoveryInProgress() && !touch_forwarding::enabled()) ||
        !worker::serves(MyDatabaseId))
        return false;
    LWLockAcquire(shared->lock, LW_EXCLUSIVE);
    // A token presented again before the worker took it is reported once: a
    // flood of one stolen token cannot fill the queue.
    bool queued = false;
    for (std::size_t i = 0; i < shared->count && !queued; i++)
        queued = shared->ring[(shared->head + i) % capacity] == hash;
    const bool room = queued || shared->count < capacity;
    if (room && !queued) {
        shared->ring[(shared->head + shared->count) % capacity] = hash;
        shared->count++;
    }
    LWLockRelease(shared->lock);
    if (room && !queued) worker::nudge();
    return room;
}

std::size_t take(token::Hash *out, std::size_t max) {
    if (shared == nullptr) return 0;
    LWLockAcquire(shared->lock, LW_EXCLUSIVE);
    const std::size_t n = Min(max, shared->count);
    for (std::size_t i = 0; i < n; i++) out[i] = shared->ring[(shared->head + i) % capacity];
    shared->head = (shared->head + n) % capacity;
    shared->count -= n;
    LWLockRelease(shared->lock);
    return n;
}

std::size_t waiting() {
    if (shared == nullptr) return 0;
    LWLockAcquire(shared->lock, LW_EXCLUSIVE);
    const std::size_t n = shared->count;
    LWLockRelease(shared->lock);
    return n;
}

}  // namespace sessrev::reuse_reports
