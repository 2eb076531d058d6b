// Mount table scans and temporary directories that clean up their mounts.
#include "tests/integration/temp_dir.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "fs/common/fd.h"
#include "tests/integration/process.h"
#include "tests/integration/throw_errno.h"

namespace buildfs::testing {
namespace {

// Decodes the octal escapes (\040 and friends) of /proc/self/mountinfo.
std::string UnescapeMountPath(const std::string& s) {
  std::string r;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      r.push_back(static_cast<char>(std::stoi(s.substr(i + 1, 3), nullptr, 8)));
      i += 3;
    } else {
      r.push_back(s[i]);
    }
  }
  return r;
}

std::vector<std::string> AllMountPoints() {
  std::ifstream in("/proc/self/mountinfo");
  std::vector<std::string> points;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, dev, root, point;
    fields >> id >> parent >> dev >> root >> point;
    points.push_back(UnescapeMountPath(point));
  }
  return points;
}

bool IsUnder(const std::string& path, const std::string& dir) {
  return path == dir || (path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 &&
                         path[dir.size()] == '/');
}

// Waits (without polling loops) for the processes behind `pids` to exit; kills
// those still alive after `timeout_ms`.
void WaitOrKill(const std::vector<pid_t>& pids, int timeout_ms) {
  for (pid_t pid : pids) {
    if (!WaitForExit(pid, timeout_ms)) {
      kill(pid, SIGKILL);
      WaitForExit(pid, timeout_ms);
    }
  }
}

void RemoveTreeAt(int parent_fd, const char* name, dev_t dev, const std::string& shown) {
  struct stat st;
  if (fstatat(parent_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return;
    ThrowErrno("stat", shown);
  }
  if (S_ISDIR(st.st_mode)) {
    if (st.st_dev != dev) throw std::runtime_error("refusing to cross into a mount at " + shown);
    UniqueFd fd(openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd.valid()) ThrowErrno("open", shown);
    std::vector<std::string> names;
    {
      DIR* d = fdopendir(dup(fd.get()));
      if (d == nullptr) ThrowErrno("opendir", shown);
      while (dirent* e = readdir(d)) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) names.push_back(e->d_name);
      }
      closedir(d);
    }
    for (const auto& child : names) RemoveTreeAt(fd.get(), child.c_str(), dev, shown + "/" + child);
    if (unlinkat(parent_fd, name, AT_REMOVEDIR) != 0 && errno != ENOENT) ThrowErrno("rmdir", shown);
  } else if (unlinkat(parent_fd, name, 0) != 0 && errno != ENOENT) {
    ThrowErrno("unlink", shown);
  }
}

}  // namespace

std::vector<std::string> MountPointsUnder(const std::string& dir) {
  std::vector<std::string> result;
  for (auto& point : AllMountPoints()) {
    if (IsUnder(point, dir)) result.push_back(point);
  }
  return result;
}

bool IsMountPoint(const std::string& path) {
  auto points = AllMountPoints();
  return std::find(points.begin(), points.end(), path) != points.end();
}

void DetachMountsUnder(const std::string& dir) {
  auto points = MountPointsUnder(dir);
  // Deepest first; a path mounted twice is detached once per mount.
  std::sort(points.begin(), points.end(),
            [](const auto& a, const auto& b) { return a.size() > b.size(); });
  for (const auto& point : points) umount2(point.c_str(), MNT_DETACH);
}

TempDir::TempDir(std::string_view prefix) {
  // A test run's own directory when tools/test.sh gave one (it cleans up
  // only below it), else /var/tmp.
  const char* run_dir = getenv("BUILDFS_TEST_TMPDIR");
  std::string templ = std::string(run_dir && *run_dir ? run_dir : "/var/tmp") + "/" + std::string(prefix) + "-XXXXXX";
  if (mkdtemp(templ.data()) == nullptr) ThrowErrno("mkdtemp", templ);
  path_ = templ;
}

TempDir::~TempDir() {
  DetachMountsUnder(path_);
  // Daemons serving the detached mounts exit once the kernel drops the
  // connection; wait for them so no test leaves a process behind.
  WaitOrKill(FindProcesses([this](const std::vector<std::string>& args) {
               for (const auto& a : args) {
                 if (a.find(path_) != std::string::npos) return true;
               }
               return false;
             }),
             10000);
  if (!MountPointsUnder(path_).empty()) {
    fprintf(stderr, "harness: mounts remain under %s, not removing it\n", path_.c_str());
    return;
  }
  try {
    RemoveTree(path_);
  } catch (const std::exception& e) {
    fprintf(stderr, "harness: %s\n", e.what());
  }
}

void RemoveTree(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return;
    ThrowErrno("stat", path);
  }
  RemoveTreeAt(AT_FDCWD, path.c_str(), st.st_dev, path);
}

}  // namespace buildfs::testing
