#include "fs/store/lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <time.h>

namespace buildfs {

Result<FileLock> FileLock::TryAcquire(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!fd.valid()) return Status::FromErrno(path);
  if (flock(fd.get(), LOCK_EX | LOCK_NB) != 0) return Status::FromErrno(path);
  return FileLock(std::move(fd));
}

Result<FileLock> FileLock::Acquire(const std::string& path, int timeout_ms) {
  for (int waited = 0;; waited += 20) {
    auto lock = TryAcquire(path);
    if (lock.ok() || lock.code() != EWOULDBLOCK || waited >= timeout_ms) return lock;
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, nullptr);
  }
}

Result<FileLock> FileLock::Wait(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!fd.valid()) return Status::FromErrno(path);
  while (flock(fd.get(), LOCK_EX) != 0) {
    if (errno != EINTR) return Status::FromErrno(path);
  }
  return FileLock(std::move(fd));
}

bool FileLock::IsHeld(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return false;
  if (flock(fd.get(), LOCK_SH | LOCK_NB) != 0) return errno == EWOULDBLOCK;
  flock(fd.get(), LOCK_UN);
  return false;
}

}  // namespace buildfs
