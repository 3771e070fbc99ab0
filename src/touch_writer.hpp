// The worker's side of the touch queue (touch_queue.hpp): writes queued
// touches to sessrev.sessions.
#pragma once

#include <cstddef>

namespace sessrev::touch_writer {

// Writes one batch of queued touches; call inside a transaction with SPI
// connected and a snapshot set, in the worker (search_path pinned). Returns
// how many touches it took from the queue (0 when it was empty).
std::size_t write_batch();

}  // namespace sessrev::touch_writer
