// The workspace fixture; see harness.h.
#include "tests/integration/harness.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

namespace buildfs::testing {

void WorkspaceTest::SetUp() {
  tmp_ = std::make_unique<TempDir>();
  // Traversable by everyone: permission tests run children as uid 1000.
  ASSERT_EQ(chmod(tmp_->path().c_str(), 0755), 0) << strerror(errno);
  ws_ = tmp_->path() + "/ws";
  CommandResult r = RunBuildfs({"init", ws_});
  ASSERT_TRUE(r.ok()) << "buildfs init: " << r.Describe();
}

void WorkspaceTest::TearDown() {
  // Detaches whatever the test left mounted, then removes the tree, also
  // after a failure.
  tmp_.reset();
}

std::string WorkspaceTest::tmp(std::string_view name) const {
  return tmp_->path() + "/" + std::string(name);
}

std::string WorkspaceTest::BuildDir(std::string_view name) const {
  return ws_ + "/" + std::string(name);
}

CommandResult WorkspaceTest::Buildfs(const std::vector<std::string>& args) {
  std::vector<std::string> all{"-C", ws_};
  all.insert(all.end(), args.begin(), args.end());
  return RunBuildfs(all);
}

bool WorkspaceTest::NewBuild(const std::string& name, const std::string& from_dir) {
  std::vector<std::string> args{"new", name};
  if (!from_dir.empty()) {
    args.push_back("--from-dir");
    args.push_back(from_dir);
  }
  CommandResult r = Buildfs(args);
  EXPECT_TRUE(r.ok()) << "buildfs new " << name << ": " << r.Describe();
  return r.ok();
}

bool WorkspaceTest::Mount(const std::string& name) {
  CommandResult r = Buildfs({"mount", name});
  EXPECT_TRUE(r.ok()) << "buildfs mount " << name << ": " << r.Describe();
  if (!r.ok()) return false;
  EXPECT_TRUE(IsMountPoint(BuildDir(name)))
      << "buildfs mount returned, but " << BuildDir(name) << " is not a mount point";
  return IsMountPoint(BuildDir(name));
}

bool WorkspaceTest::Umount(const std::string& name) {
  CommandResult r = Buildfs({"umount", name});
  EXPECT_TRUE(r.ok()) << "buildfs umount " << name << ": " << r.Describe();
  if (!r.ok()) return false;
  EXPECT_FALSE(IsMountPoint(BuildDir(name)))
      << "buildfs umount returned, but " << BuildDir(name) << " is still mounted";
  return !IsMountPoint(BuildDir(name));
}

}  // namespace buildfs::testing
