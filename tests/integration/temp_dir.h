// Temporary directories that take their mounts with them, and the mount
// table scans behind that. Not thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace buildfs::testing {

// ----------------------------------------------------------------- mounts

// Mount points at or below `dir`, from /proc/self/mountinfo.
std::vector<std::string> MountPointsUnder(const std::string& dir);
bool IsMountPoint(const std::string& path);
// Lazily detaches every mount at or below `dir`, deepest first. A detached
// FUSE mount loses its connection once unused, and its daemon exits.
void DetachMountsUnder(const std::string& dir);

// A directory made with mkdtemp under /var/tmp (a real disk filesystem with
// user xattrs, unlike some /tmp). The destructor detaches mounts below it and
// removes it; it never crosses into a mount that could not be detached.
class TempDir {
 public:
  explicit TempDir(std::string_view prefix = "buildfs-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Removes a tree without following symlinks or crossing into other
// filesystems. Throws on failure.
void RemoveTree(const std::string& path);

}  // namespace buildfs::testing
