// A fixed-size FIFO in shared memory under one LWLock of its own: the queues
// that backends fill and the worker drains (touch_queue.hpp,
// reuse_reports.hpp). The policy (who may push, when to wake the worker)
// stays with each queue.
#pragma once

extern "C" {
#include "postgres.h"

#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
}

#include <cstddef>

namespace sessrev {

template <typename T, std::size_t capacity>
class ShmemRing {
  public:
    // shmem_request_hook
    static void request(const char *tranche) {
        RequestAddinShmemSpace(sizeof(ShmemRing));
        RequestNamedLWLockTranche(tranche, 1);
    }

    // shmem_startup_hook: the ring named name, created empty on first attach.
    static ShmemRing *attach(const char *name, const char *tranche) {
        LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
        bool found;
        ShmemRing *ring = static_cast<ShmemRing *>(ShmemInitStruct(name, sizeof(ShmemRing), &found));
        if (!found) {
            ring->head_ = 0;
            ring->count_ = 0;
        }
        ring->lock_ = &GetNamedLWLockTranche(tranche)->lock;
        LWLockRelease(AddinShmemInitLock);
        return ring;
    }

    // Appends item under the lock unless accept(*this) says no or the ring is
    // full; returns whether it was appended and, in *count, how many wait.
    template <typename Accept>
    bool push(const T &item, Accept accept, std::size_t *count) {
        LWLockAcquire(lock_, LW_EXCLUSIVE);
        const bool appended = count_ < capacity && accept(*this);
        if (appended) {
            ring_[(head_ + count_) % capacity] = item;
            count_++;
        }
        *count = count_;
        LWLockRelease(lock_);
        return appended;
    }

    // Whether an equal item waits; call only under the lock (from accept).
    bool holds(const T &item) const {
        for (std::size_t i = 0; i < count_; i++)
            if (ring_[(head_ + i) % capacity] == item) return true;
        return false;
    }

    std::size_t take(T *out, std::size_t max) {
        LWLockAcquire(lock_, LW_EXCLUSIVE);
        const std::size_t n = Min(max, count_);
        for (std::size_t i = 0; i < n; i++) out[i] = ring_[(head_ + i) % capacity];
        head_ = (head_ + n) % capacity;
        count_ -= n;
        LWLockRelease(lock_);
        return n;
    }

    std::size_t waiting() {
        LWLockAcquire(lock_, LW_EXCLUSIVE);
        const std::size_t n = count_;
        LWLockRelease(lock_);
        return n;
    }

  private:
    LWLock *lock_;
    std::size_t head_;   // next to take
    std::size_t count_;
    T ring_[capacity];
};

}  // namespace sessrev
