// Exceptions never cross into libfuse, which is C: an exception unwinding
// through its loop would end the daemon, and with it the build's mount. The
// adapter runs every operation through RunGuarded.
#ifndef BUILDFS_FS_FUSE_GUARD_H_
#define BUILDFS_FS_FUSE_GUARD_H_

#include <cerrno>
#include <cstdio>
#include <exception>
#include <new>

namespace buildfs {

// The errno that answers the exception being handled: ENOMEM when memory
// ran out, EIO for anything else. What was thrown goes to stderr (for a
// daemon, the build's mount.log). REQUIRES: called inside a catch block.
inline int ErrnoOfCurrentException() noexcept {
  try {
    throw;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "buildfs: a request ran out of memory\n");
    return ENOMEM;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "buildfs: a request failed with an exception: %s\n", e.what());
    return EIO;
  } catch (...) {
    std::fprintf(stderr, "buildfs: a request failed with an unknown exception\n");
    return EIO;
  }
}

// Runs op(); if it throws, calls fail(errno) instead. Operations reply as
// their last step, so when op throws no reply went out yet and fail sends it.
template <typename Op, typename Fail>
void RunGuarded(Op&& op, Fail&& fail) noexcept {
  try {
    op();
  } catch (...) {
    fail(ErrnoOfCurrentException());
  }
}

}  // namespace buildfs

#endif  // BUILDFS_FS_FUSE_GUARD_H_
