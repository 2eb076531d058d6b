#include "fs/lifecycle/build_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fs/common/path.h"

namespace buildfs {
namespace {

// "PID COMMAND" of the holder, as it wrote it.
std::string Holder(const std::string& path) {
  auto text = ReadFile(path);
  if (!text.ok()) return "";
  std::string holder = text.value();
  while (!holder.empty() && (holder.back() == '\n' || holder.back() == '\0')) holder.pop_back();
  return holder;
}

bool SameFile(int fd, const std::string& path) {
  struct stat a, b;
  return fstat(fd, &a) == 0 && stat(path.c_str(), &b) == 0 && a.st_dev == b.st_dev &&
         a.st_ino == b.st_ino;
}

}  // namespace

Result<BuildLock> BuildLock::Acquire(const Workspace& ws, const std::string& name,
                                     const std::string& what, int wait_ms) {
  BUILDFS_RETURN_IF_ERROR(ValidateBuildName(name));
  const std::string dir = ws.state_path() + "/locks";
  if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return Status::FromErrno(dir);
  const std::string path = dir + "/" + name;
  int waited = 0;
  for (int pause_ms = 5;;) {
    UniqueFd fd(open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
    if (!fd.valid()) return Status::FromErrno(path);
    if (flock(fd.get(), LOCK_EX | LOCK_NB) == 0) {
      // rm deletes the file while holding it: a lock on a deleted file is no lock.
      if (!SameFile(fd.get(), path)) continue;
      std::string holder = std::to_string(getpid()) + " " + what + "\n";
      if (ftruncate(fd.get(), 0) == 0 && pwrite(fd.get(), holder.data(), holder.size(), 0) < 0) {
        // Only for messages to others; a full disk must not stop the command.
      }
      return BuildLock(std::move(fd), path, name);
    }
    if (errno != EWOULDBLOCK) return Status::FromErrno(path);
    if (waited >= wait_ms) {
      std::string holder = Holder(path);
      return Status::Error(EBUSY, "build '" + name + "' is busy: another buildfs command is working on it" +
                                      (holder.empty() ? "" : " (pid " + holder + ")") +
                                      "; hint: try again when it has finished");
    }
    struct timespec ts = {0, pause_ms * 1000L * 1000L};
    nanosleep(&ts, nullptr);
    waited += pause_ms;
    if (pause_ms < 100) pause_ms *= 2;
  }
}

Result<std::pair<BuildLock, BuildLock>> BuildLock::AcquireTwo(const Workspace& ws,
                                                              const std::string& a,
                                                              const std::string& b,
                                                              const std::string& what) {
  const bool a_first = a < b;
  BUILDFS_ASSIGN_OR_RETURN(BuildLock first, Acquire(ws, a_first ? a : b, what));
  BUILDFS_ASSIGN_OR_RETURN(BuildLock second, Acquire(ws, a_first ? b : a, what));
  if (a_first) return std::make_pair(std::move(first), std::move(second));
  return std::make_pair(std::move(second), std::move(first));
}

void BuildLock::RemoveFile() { unlink(path_.c_str()); }

}  // namespace buildfs
