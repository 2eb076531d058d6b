// The mount tests' fixture and shared helpers; see mount_fixture.h.
#include "tests/integration/mount_fixture.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "fs/common/fd.h"

namespace buildfs::testing {

::testing::AssertionResult IsOneLineError(const CommandResult& r) {
  if (r.ok()) return ::testing::AssertionFailure() << "command succeeded: " << r.Describe();
  if (r.timed_out) return ::testing::AssertionFailure() << "command timed out: " << r.Describe();
  const bool one_line =
      !r.err.empty() && r.err.back() == '\n' && std::count(r.err.begin(), r.err.end(), '\n') == 1;
  if (r.err.rfind("buildfs: ", 0) != 0 || !one_line) {
    return ::testing::AssertionFailure()
           << "stderr is not one line 'buildfs: WHAT: WHY': " << r.Describe();
  }
  return ::testing::AssertionSuccess();
}

std::vector<std::string> ListDirInSmallBatches(
    const std::string& path,
    const std::function<void(const std::vector<std::string>&)>& after_batch) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) throw std::runtime_error("open " + path + ": " + strerror(errno));
  std::vector<std::string> names;
  alignas(8) char buf[256];
  for (;;) {
    long n = syscall(SYS_getdents64, fd.get(), buf, sizeof buf);
    if (n < 0) throw std::runtime_error("getdents64 " + path + ": " + strerror(errno));
    if (n == 0) break;
    std::vector<std::string> batch;
    for (long pos = 0; pos < n;) {
      // struct linux_dirent64: u64 ino, s64 off, u16 reclen, u8 type, name.
      unsigned short reclen;
      memcpy(&reclen, buf + pos + 16, sizeof reclen);
      std::string name(buf + pos + 19);
      if (name != "." && name != "..") batch.push_back(name);
      pos += reclen;
    }
    names.insert(names.end(), batch.begin(), batch.end());
    if (after_batch) after_batch(batch);
  }
  return names;
}

std::vector<std::string> Sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

std::string GetXattr(const std::string& path, const std::string& name, int* err) {
  std::string value(4096, '\0');
  ssize_t n = lgetxattr(path.c_str(), name.c_str(), value.data(), value.size());
  *err = n < 0 ? errno : 0;
  value.resize(n < 0 ? 0 : static_cast<size_t>(n));
  return value;
}

std::vector<std::string> ListXattrs(const std::string& path) {
  std::string names(4096, '\0');
  ssize_t n = llistxattr(path.c_str(), names.data(), names.size());
  if (n < 0) throw std::runtime_error("llistxattr " + path + ": " + strerror(errno));
  std::vector<std::string> result;
  for (size_t start = 0; start < static_cast<size_t>(n);) {
    size_t end = names.find('\0', start);
    result.push_back(names.substr(start, end - start));
    start = end + 1;
  }
  return result;
}

void MountTest::SetUp() {
  WorkspaceTest::SetUp();
  if (HasFatalFailure()) return;
  umask(022);
  src_ = tmp("src");
  MakeSampleTree(src_);
  // OSTree stores no fifos; buildfs commits them as marked empty files and
  // shows them as fifos again (README). Not in MakeSampleTree: an `ostree
  // checkout` of such a commit has a plain file there.
  ASSERT_EQ(mkfifo((src_ + "/base-fifo").c_str(), 0640), 0) << strerror(errno);
  MakeDir(ws() + "/cache/disks");
  WriteFile(ws() + "/cache/disks/shared.img", kCacheContent);
  ASSERT_TRUE(NewBuild("b", src_));
  ASSERT_TRUE(Mount("b"));
  root_ = BuildDir("b");
}

std::vector<pid_t> MountTest::DaemonPids(const std::string& name) {
  const std::string workspace = ws();
  return FindProcesses([&](const std::vector<std::string>& args) {
    const std::string& argv0 = args[0];
    if (argv0.substr(argv0.rfind('/') + 1).find("buildfs") == std::string::npos) return false;
    bool names_build = false, names_workspace = false;
    for (const auto& a : args) {
      names_build |= a == name || (a.size() > name.size() && a.ends_with("/" + name));
      names_workspace |= a.find(workspace) != std::string::npos;
    }
    return names_build && names_workspace;
  });
}

void MountTest::KillDaemon(const std::string& name) {
  auto pids = DaemonPids(name);
  ASSERT_FALSE(pids.empty()) << "no process with 'buildfs' and '" << name
                             << "' in its command line";
  for (pid_t pid : pids) ASSERT_EQ(kill(pid, SIGKILL), 0) << strerror(errno);
  for (pid_t pid : pids)
    ASSERT_TRUE(WaitForExit(pid, 10000)) << "daemon " << pid << " survived SIGKILL";
}

nlohmann::json MountTest::ListEntry(const std::string& name) {
  CommandResult r = Buildfs({"list", "--json"});
  EXPECT_TRUE(r.ok()) << r.Describe();
  nlohmann::json list = nlohmann::json::parse(r.out);
  EXPECT_TRUE(list.is_array()) << r.out;
  for (const auto& entry : list) {
    if (entry.value("name", "") == name) return entry;
  }
  ADD_FAILURE() << "list --json has no build " << name << ": " << r.out;
  return nlohmann::json::object();
}

std::string MountTest::OstreeCat(const std::string& ref, const std::string& path) {
  CommandResult r = RunCommand({kOstree, "--repo=" + ws() + "/repo", "cat", ref, path});
  EXPECT_TRUE(r.ok()) << r.Describe();
  return r.out;
}

}  // namespace buildfs::testing
