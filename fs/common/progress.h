// Progress: how a long operation reports how far it got, and how it is
// stopped. The library never prints; the CLI turns reports into a line on a
// terminal and sets `cancel` from its SIGINT handler.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>

namespace buildfs {

struct Progress {
  // Entries done so far, and the total when known (else 0). Called often:
  // the receiver throttles its output.
  std::function<void(uint64_t done, uint64_t total)> report;
  // Set to stop the operation: it then fails with ECANCELED and leaves
  // everything as it was.
  const std::atomic<bool>* cancel = nullptr;

  bool cancelled() const { return cancel && cancel->load(std::memory_order_relaxed); }
  void Report(uint64_t done, uint64_t total = 0) const {
    if (report) report(done, total);
  }
};

}  // namespace buildfs
