// FileLock: an exclusive flock(2) on a file, held for the object's life.
//
// A build's daemon holds `.buildfs/builds/NAME/lock` while it serves the
// mount, so "is NAME mounted" is "is its lock held", and a dead daemon's lock
// is released by the kernel. The lock belongs to the open file description,
// so a child process forked while holding it keeps holding it.
#pragma once

#include <string>

#include "fs/common/fd.h"
#include "fs/common/status.h"

namespace buildfs {

class FileLock {
 public:
  // EWOULDBLOCK when another process holds it.
  static Result<FileLock> TryAcquire(const std::string& path);
  // Waits up to `timeout_ms` for the lock.
  static Result<FileLock> Acquire(const std::string& path, int timeout_ms);
  // Waits for the lock as long as it takes (work one holder does for all).
  static Result<FileLock> Wait(const std::string& path);
  // True when some process holds the lock at `path`.
  static bool IsHeld(const std::string& path);

  int fd() const { return fd_.get(); }

 private:
  explicit FileLock(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

}  // namespace buildfs
