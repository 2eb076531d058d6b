// Gate: holds a thread at a point of the code under test until the test lets
// it go, so that the test can act while that thread is in the middle of
// something (a copy, a lookup).
#pragma once

#include <condition_variable>
#include <mutex>

namespace buildfs::testing {

class Gate {
 public:
  // Called by the held thread: waits until Release().
  void Wait() {
    std::unique_lock lock(mu_);
    entered_ = true;
    cv_.notify_all();
    cv_.wait(lock, [&] { return released_; });
  }
  // Called by the test: returns once a thread waits at the gate.
  void WaitEntered() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return entered_; });
  }
  void Release() {
    std::lock_guard lock(mu_);
    released_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool entered_ = false, released_ = false;
};

}  // namespace buildfs::testing
