// BuildLock: one lifecycle operation on a build at a time.
//
// Every command that changes a build or reads its layers (new, branch,
// commit, reset, rm, mount, umount, status, diff, export, log) holds the
// build's lock, an exclusive flock on .buildfs/locks/NAME, for its whole
// run: a second command on the same build waits for it, and is refused as
// busy only after a long wait. The holder writes "PID COMMAND" into the file
// so a refusal can say who holds it. `rm` deletes the file while holding it;
// a waiter that then gets the lock of the deleted file notices and retries,
// so two holders never coexist.
//
// Lock order: build locks (two at once: by name), then the workspace meta
// lock (stack.h), then OSTree's repository lock. The mount daemon never takes
// a build lock: commands holding one talk to it.
#pragma once

#include <string>
#include <utility>

#include "fs/common/fd.h"
#include "fs/common/status.h"
#include "fs/store/workspace.h"

namespace buildfs {

class BuildLock {
 public:
  // How long a command waits for another one on the same build.
  static constexpr int kDefaultWaitMs = 10 * 60 * 1000;

  // Waits for `name`'s lock; EBUSY (naming the holder) after `wait_ms`.
  // `what` describes the operation for others' messages ("commit").
  static Result<BuildLock> Acquire(const Workspace& ws, const std::string& name,
                                   const std::string& what, int wait_ms = kDefaultWaitMs);
  // The locks of two builds, taken in name order so two commands never wait
  // for each other. `a` and `b` must differ.
  static Result<std::pair<BuildLock, BuildLock>> AcquireTwo(const Workspace& ws,
                                                            const std::string& a,
                                                            const std::string& b,
                                                            const std::string& what);

  // Deletes the lock file (rm); the lock is still held until destruction.
  void RemoveFile();
  const std::string& name() const { return name_; }

 private:
  BuildLock(UniqueFd fd, std::string path, std::string name)
      : fd_(std::move(fd)), path_(std::move(path)), name_(std::move(name)) {}
  UniqueFd fd_;
  std::string path_;
  std::string name_;
};

}  // namespace buildfs
