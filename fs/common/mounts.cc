#include "fs/common/mounts.h"

#include <dirent.h>
#include <limits.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <vector>

namespace buildfs {
namespace {

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string Unescape(const std::string& field) {
  std::string out;
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size()) {
      out += static_cast<char>(std::strtol(field.substr(i + 1, 3).c_str(), nullptr, 8));
      i += 3;
    } else {
      out += field[i];
    }
  }
  return out;
}

}  // namespace

std::optional<MountEntry> MountAt(const std::string& path) {
  std::ifstream in("/proc/self/mountinfo");
  std::optional<MountEntry> found;
  std::string line;
  while (std::getline(in, line)) {
    // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS
    std::istringstream fields(line);
    std::vector<std::string> f;
    for (std::string x; fields >> x;) f.push_back(x);
    if (f.size() < 7 || Unescape(f[4]) != path) continue;
    size_t dash = 6;
    while (dash < f.size() && f[dash] != "-") ++dash;
    if (dash + 2 >= f.size()) continue;
    found = MountEntry{Unescape(f[dash + 1]), Unescape(f[dash + 2])};  // later lines are on top
  }
  return found;
}

std::optional<DirUser> ProcessWorkingIn(const std::string& dir) {
  DIR* proc = opendir("/proc");
  if (!proc) return std::nullopt;
  std::optional<DirUser> found;
  while (struct dirent* e = readdir(proc)) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (*end != '\0' || pid <= 0 || pid == getpid()) continue;
    char cwd[PATH_MAX];
    std::string link = std::string("/proc/") + e->d_name + "/cwd";
    ssize_t n = readlink(link.c_str(), cwd, sizeof(cwd) - 1);
    if (n <= 0) continue;
    std::string where(cwd, static_cast<size_t>(n));
    if (where != dir && where.rfind(dir + "/", 0) != 0) continue;
    DirUser user{static_cast<pid_t>(pid), ""};
    std::ifstream comm(std::string("/proc/") + e->d_name + "/comm");
    std::getline(comm, user.command);
    found = user;
    if (pid == getppid()) break;  // the caller's own shell is the answer to give
  }
  closedir(proc);
  return found;
}

}  // namespace buildfs
