// Latency of one dependent memory read, by working-set size: how long a random
// read costs once the data no longer fits this machine's caches. bench/run
// prints it next to the scaling figures, which it explains.
//
//   memory_latency            prints "<MiB> <ns with huge pages> <ns with 4 KiB pages>" lines
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <numeric>
#include <random>
#include <vector>

namespace {

constexpr std::size_t line = 64;
constexpr std::size_t reads = 20'000'000;
volatile std::size_t sink;

// A random cycle through every cache line of a working set of `bytes`: each
// read names the next, so the reads cannot overlap.
double ns_per_read(std::size_t bytes, bool huge) {
    const std::size_t lines = bytes / line;
    auto *memory = static_cast<std::size_t *>(
        mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (memory == MAP_FAILED) return -1;
    // With huge pages (where the kernel allows) the figure is the cache miss
    // alone; with 4 KiB pages it includes the TLB misses of so large a set.
    madvise(memory, bytes, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
    std::vector<std::size_t> order(lines);
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), std::mt19937_64(42));
    constexpr std::size_t stride = line / sizeof(std::size_t);
    for (std::size_t i = 0; i < lines; i++)
        memory[order[i] * stride] = order[(i + 1) % lines] * stride;

    std::size_t at = 0;
    for (std::size_t i = 0; i < lines; i++) at = memory[at];  // warm up
    const auto start = std::chrono::steady_clock::now();
    for (std::size_t i = 0; i < reads; i++) at = memory[at];
    const std::chrono::duration<double, std::nano> took = std::chrono::steady_clock::now() - start;
    munmap(memory, bytes);
    sink = at;  // keeps the chain from being optimised away
    return took.count() / reads;
}

}  // namespace

int main() {
    for (std::size_t mib : {1, 2, 4, 8, 12, 16, 64, 256, 512, 1024})
        std::printf("%zu %.0f %.0f\n", mib, ns_per_read(mib << 20, true), ns_per_read(mib << 20, false));
}
