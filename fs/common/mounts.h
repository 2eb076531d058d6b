// The mount table (/proc/self/mountinfo): what is mounted where, and who
// keeps a directory busy. Thread-safe (reads the kernel's tables each call).
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

namespace buildfs {

// The mount that is visible at a mount point (the last one mounted there).
struct MountEntry {
  std::string fstype;  // e.g. "fuse.buildfs", "tmpfs"
  std::string source;  // e.g. "buildfs:NAME"
};

// The topmost mount whose mount point is exactly `path`, if any.
std::optional<MountEntry> MountAt(const std::string& path);

// A process whose working directory lies at or below `dir`, if any: the
// usual reason an unmount is refused.
struct DirUser {
  pid_t pid = 0;
  std::string command;  // its comm, e.g. "bash"
};
std::optional<DirUser> ProcessWorkingIn(const std::string& dir);

}  // namespace buildfs
