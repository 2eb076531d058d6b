// End-to-end tests of the CLI around a mount (fixture: mount_fixture.h):
// unmount and mount again, isolation of builds, a killed daemon, `list`, and
// refused build names.
#include <fcntl.h>
#include <linux/fs.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "fs/common/fd.h"
#include "tests/integration/mount_fixture.h"

namespace buildfs::testing {
namespace {

// ------------------------------------------------------ mount and umount

TEST_F(MountTest, RemountShowsTheSameTree) {
  WriteFile(M("hello.txt"), "changed\n");
  ASSERT_EQ(unlink(M("root-file.txt").c_str()), 0);
  ASSERT_EQ(rename(M("sub").c_str(), M("moved").c_str()), 0);
  ASSERT_EQ(chmod(M("private.txt").c_str(), 0640), 0);
  ASSERT_EQ(chown(M("bin/tool").c_str(), 1000, 1000), 0);
  SetXattr(M("hello.txt"), "user.added", "1");
  ASSERT_EQ(lremovexattr(M("attrs.txt").c_str(), "user.color"), 0);
  ASSERT_EQ(link(M("hard-a").c_str(), M("hard-c").c_str()), 0);
  ASSERT_EQ(symlink("moved/file.txt", M("new-link").c_str()), 0);
  ASSERT_EQ(mkfifo(M("fifo").c_str(), 0600), 0);
  MakeDir(M("new"));
  MakeDir(M("new/nested"));
  MakeDir(M("new/nested/dir"));
  WriteFile(M("new/nested/dir/file"), "deep\n");
  ASSERT_EQ(truncate(M("big.bin").c_str(), 4096), 0);
  ASSERT_EQ(unlink(M("many/f010").c_str()), 0);
  ASSERT_EQ(rmdir(M("emptydir").c_str()), 0);
  ASSERT_EQ(mkdir(M("emptydir").c_str(), 0700), 0);
  const std::string snapshot = tmp("snapshot");
  CopyTree(root_, snapshot);
  const CompareOptions with_nlink{.compare_nlink = true};
  ASSERT_EQ(
      DiffSnapshots(ScanTree(snapshot, MountScan()), ScanTree(root_, MountScan()), with_nlink), "");

  ASSERT_TRUE(Umount("b"));
  ASSERT_TRUE(Mount("b"));
  EXPECT_EQ(
      DiffSnapshots(ScanTree(snapshot, MountScan()), ScanTree(root_, MountScan()), with_nlink), "");
}

TEST_F(MountTest, TwoBuildsOverTheSameBaseAreIsolated) {
  ASSERT_TRUE(NewBuild("c", src_));
  ASSERT_TRUE(Mount("c"));
  const std::string c = BuildDir("c");
  WriteFile(M("hello.txt"), "from b\n");
  WriteFile(c + "/hello.txt", "from c\n");
  ASSERT_EQ(unlink(M("root-file.txt").c_str()), 0);
  WriteFile(c + "/only-in-c", "c\n");
  WriteFile(M("cache/disks/shared.img"), "b's disk\n");
  EXPECT_EQ(ReadFile(M("hello.txt")), "from b\n");
  EXPECT_EQ(ReadFile(c + "/hello.txt"), "from c\n");
  EXPECT_EQ(LstatErrno(M("root-file.txt")), ENOENT);
  EXPECT_EQ(ReadFile(c + "/root-file.txt"), "owned by root\n");
  EXPECT_EQ(LstatErrno(M("only-in-c")), ENOENT);
  EXPECT_EQ(ReadFile(c + "/cache/disks/shared.img"), kCacheContent);
}

TEST_F(MountTest, MountingAMountedBuildFails) {
  CommandResult r = Buildfs({"mount", "b"});
  EXPECT_TRUE(IsOneLineError(r));
  auto points = MountPointsUnder(root_);
  EXPECT_EQ(std::count(points.begin(), points.end(), root_), 1);
  EXPECT_EQ(ReadFile(M("hello.txt")), "hello world\n");
}

TEST_F(MountTest, MountAfterDaemonWasKilledCleansUpAndSucceeds) {
  ASSERT_NO_FATAL_FAILURE(KillDaemon("b"));
  EXPECT_EQ(LstatErrno(M("hello.txt")), ENOTCONN) << "the dead mount should be disconnected";
  ASSERT_TRUE(Mount("b"));
  auto points = MountPointsUnder(root_);
  EXPECT_EQ(std::count(points.begin(), points.end(), root_), 1)
      << "the dead mount is still stacked below";
  EXPECT_EQ(DiffTrees(src_, root_, MountScan()), "");
}

TEST_F(MountTest, FsyncedChangesSurviveDaemonKill) {
  {
    UniqueFd fd(open(M("hello.txt").c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC));
    ASSERT_TRUE(fd.valid());
    ASSERT_EQ(write(fd.get(), "synced\n", 7), 7);
    ASSERT_EQ(fsync(fd.get()), 0) << strerror(errno);
    UniqueFd created(open(M("sub/created").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
    ASSERT_TRUE(created.valid());
    ASSERT_EQ(write(created.get(), "created\n", 8), 8);
    ASSERT_EQ(fsync(created.get()), 0) << strerror(errno);
  }
  ASSERT_NO_FATAL_FAILURE(KillDaemon("b"));
  ASSERT_TRUE(Mount("b"));
  EXPECT_EQ(ReadFile(M("hello.txt")), "synced\n");
  EXPECT_EQ(ReadFile(M("sub/created")), "created\n");
}

TEST_F(MountTest, UmountWithoutNameFromInsideBuildDirectory) {
  CommandResult r = RunBuildfs({"umount"}, root_);
  EXPECT_TRUE(r.ok()) << r.Describe();
  EXPECT_FALSE(IsMountPoint(root_));
}

TEST_F(MountTest, UmountWithoutNameFromSubdirectoryOfBuild) {
  CommandResult r = RunBuildfs({"umount"}, M("sub/deeper"));
  EXPECT_TRUE(r.ok()) << r.Describe();
  EXPECT_FALSE(IsMountPoint(root_));
}

TEST_F(MountTest, ChangesPersistAfterUmountOutsideTheMount) {
  WriteFile(M("hello.txt"), "kept\n");
  ASSERT_TRUE(Umount("b"));
  EXPECT_EQ(ListDir(root_).size(), 0u) << "the unmounted build directory should be empty";
  ASSERT_TRUE(Mount("b"));
  EXPECT_EQ(ReadFile(M("hello.txt")), "kept\n");
}

// ------------------------------------------------------------------- list

TEST_F(MountTest, ListJsonShowsBaseCommit) {
  CommandResult rev =
      RunCommand({kOstree, "--repo=" + ws() + "/repo", "rev-parse", "builds/b/base"});
  ASSERT_TRUE(rev.ok()) << rev.Describe();
  std::string checksum = rev.out.substr(0, rev.out.find('\n'));
  EXPECT_EQ(ListEntry("b").value("base", ""), checksum);
}

TEST_F(MountTest, ListJsonShowsFreshMountAsMountedAndClean) {
  nlohmann::json b = ListEntry("b");
  EXPECT_EQ(b.value("mounted", false), true) << b.dump();
  EXPECT_EQ(b.value("dirty", true), false) << b.dump();
}

TEST_F(MountTest, ListJsonShowsDirtyAfterWrite) {
  WriteFile(M("hello.txt"), "changed\n");
  nlohmann::json b = ListEntry("b");
  EXPECT_EQ(b.value("dirty", false), true) << b.dump();
}

TEST_F(MountTest, ListJsonShowsUnmountedBuildStaysDirty) {
  ASSERT_EQ(unlink(M("hello.txt").c_str()), 0);
  ASSERT_TRUE(Umount("b"));
  nlohmann::json b = ListEntry("b");
  EXPECT_EQ(b.value("mounted", true), false) << b.dump();
  EXPECT_EQ(b.value("dirty", false), true) << b.dump();
}

TEST_F(MountTest, ListJsonShowsNeverMountedBuild) {
  ASSERT_TRUE(NewBuild("never", src_));
  nlohmann::json e = ListEntry("never");
  EXPECT_EQ(e.value("mounted", true), false) << e.dump();
  EXPECT_EQ(e.value("dirty", true), false) << e.dump();
}

// ------------------------------------------------------------------ names

class BadNameTest : public WorkspaceTest, public ::testing::WithParamInterface<std::string> {};

TEST_P(BadNameTest, NewRefusesTheName) {
  CommandResult r = Buildfs({"new", "--", GetParam()});
  EXPECT_TRUE(IsOneLineError(r));
  CommandResult list = Buildfs({"list", "--json"});
  ASSERT_TRUE(list.ok()) << list.Describe();
  EXPECT_EQ(nlohmann::json::parse(list.out), nlohmann::json::array())
      << "a build was created anyway";
}

TEST_P(BadNameTest, MountRefusesTheName) {
  CommandResult r = Buildfs({"mount", "--", GetParam()});
  EXPECT_TRUE(IsOneLineError(r));
  EXPECT_TRUE(MountPointsUnder(ws()).empty());
}

INSTANTIATE_TEST_SUITE_P(Names, BadNameTest,
                         ::testing::Values("a/b", "..", "../x", ".", "", "a b", "tab\tname",
                                           "new\nline", "-x", "--help"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return "Case" + std::to_string(info.index);
                         });

TEST_F(WorkspaceTest, MountOfUnknownBuildFails) {
  EXPECT_TRUE(IsOneLineError(Buildfs({"mount", "nosuchbuild"})));
  EXPECT_TRUE(MountPointsUnder(ws()).empty());
}

}  // namespace
}  // namespace buildfs::testing
