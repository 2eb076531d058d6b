// End-to-end tests of a mounted build (fixture: mount_fixture.h): the tree a
// base commit shows, and writing and changing metadata of its files.
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

// ------------------------------------------------------- the committed tree

TEST_F(MountTest, MountedTreeMatchesCommittedTree) {
  EXPECT_EQ(DiffTrees(src_, root_, MountScan()), "");
}

TEST_F(MountTest, FifoOfTheBaseIsAFifoWithItsMode) {
  struct stat st = Lstat(M("base-fifo"));
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  // The marker that carries it through the repo is never shown.
  char names[256];
  EXPECT_EQ(llistxattr(M("base-fifo").c_str(), names, sizeof names), 0);
}

TEST_F(MountTest, SymlinksKeepTheirTargets) {
  EXPECT_TRUE(S_ISLNK(Lstat(M("link-to-hello")).st_mode));
  EXPECT_EQ(ReadFile(M("link-to-hello")), "hello world\n");
  EXPECT_EQ(ReadFile(M("dir-link/file.txt")), "in sub\n");
  EXPECT_EQ(ReadFile(M("sub/deeper/deepest/up-link")), "in sub\n");
  char target[256];
  ssize_t n = readlink(M("dangling-link").c_str(), target, sizeof target);
  ASSERT_GT(n, 0) << strerror(errno);
  EXPECT_EQ(std::string(target, static_cast<size_t>(n)), "does/not/exist");
}

TEST_F(MountTest, OwnersAndOddModesArePreserved) {
  EXPECT_EQ(Lstat(M("user-file.txt")).st_uid, 1000u);
  EXPECT_EQ(Lstat(M("user-file.txt")).st_gid, 1000u);
  EXPECT_EQ(Lstat(M("user-dir")).st_uid, 1000u);
  EXPECT_EQ(Lstat(M("setuid-tool")).st_mode & 07777, 04755u);
  EXPECT_EQ(Lstat(M("private.txt")).st_mode & 07777, 0600u);
  EXPECT_EQ(Lstat(M("bin/tool")).st_mode & 07777, 0755u);
  EXPECT_EQ(Lstat(M("sticky")).st_mode & 07777, 01777u);
  EXPECT_EQ(Lstat(M("readonly-dir")).st_mode & 07777, 0444u);
  EXPECT_EQ(Lstat(M("exec-only-dir")).st_mode & 07777, 0711u);
  EXPECT_EQ(Lstat(M("mode-0711")).st_mode & 07777, 0711u);
}

TEST_F(MountTest, UserXattrsOfBaseArePreserved) {
  int err;
  EXPECT_EQ(GetXattr(M("attrs.txt"), "user.color", &err), "blue");
  EXPECT_EQ(err, 0);
  EXPECT_EQ(GetXattr(M("attrs.txt"), "user.binary", &err), std::string("a\0b\xff", 4));
  EXPECT_EQ(GetXattr(M("attrdir"), "user.kind", &err), "directory");
  EXPECT_EQ(err, 0);
}

TEST_F(MountTest, LargeBaseFileReadsAtAnyOffset) {
  const std::string want = ReadFile(src_ + "/big.bin");
  UniqueFd fd(open(M("big.bin").c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(fd.valid()) << strerror(errno);
  for (off_t offset : {off_t{0}, off_t{4095}, off_t{131072}, off_t{300 * 1024 - 10}}) {
    char buf[5000];
    ssize_t n = pread(fd.get(), buf, sizeof buf, offset);
    size_t expected = std::min<size_t>(sizeof buf, want.size() - static_cast<size_t>(offset));
    ASSERT_EQ(n, static_cast<ssize_t>(expected)) << "at offset " << offset;
    EXPECT_EQ(std::string(buf, expected), want.substr(static_cast<size_t>(offset), expected))
        << "at " << offset;
  }
}

TEST_F(MountTest, WorkspaceCacheIsVisibleAtCache) {
  EXPECT_EQ(ReadFile(M("cache/disks/shared.img")), kCacheContent);
}

TEST_F(MountTest, WriteToCacheFileStaysInTheBuild) {
  WriteFile(M("cache/disks/shared.img"), "written by build b\n");
  EXPECT_EQ(ReadFile(M("cache/disks/shared.img")), "written by build b\n");
  EXPECT_EQ(ReadFile(ws() + "/cache/disks/shared.img"), kCacheContent);
}

TEST_F(MountTest, NewBuildWithoutTreeHasOnlyTheCache) {
  ASSERT_TRUE(NewBuild("e"));
  ASSERT_TRUE(Mount("e"));
  EXPECT_EQ(Sorted(ListDir(BuildDir("e"))), std::vector<std::string>{"cache"});
}

// ---------------------------------------------------------------- writing

TEST_F(MountTest, OverwriteOfBaseFileIsReadBack) {
  WriteFile(M("hello.txt"), "changed\n");
  EXPECT_EQ(ReadFile(M("hello.txt")), "changed\n");
  EXPECT_EQ(Lstat(M("hello.txt")).st_size, 8);
}

TEST_F(MountTest, WriteDoesNotChangeTheBaseCommit) {
  WriteFile(M("hello.txt"), "changed\n");
  WriteFile(M("copy-of-hello.txt"), "changed too\n");
  EXPECT_EQ(OstreeCat("builds/b/base", "/hello.txt"), "hello world\n");
  EXPECT_EQ(OstreeCat("builds/b/base", "/copy-of-hello.txt"), "hello world\n");
  CommandResult fsck = RunCommand({kOstree, "--repo=" + ws() + "/repo", "fsck", "--quiet"});
  EXPECT_TRUE(fsck.ok()) << fsck.Describe();
}

TEST_F(MountTest, PartialOverwriteKeepsTheRestOfTheBaseContent) {
  std::string want = ReadFile(src_ + "/big.bin");
  UniqueFd fd(open(M("big.bin").c_str(), O_WRONLY | O_CLOEXEC));
  ASSERT_TRUE(fd.valid()) << strerror(errno);
  ASSERT_EQ(pwrite(fd.get(), "0123456789", 10, 150000), 10) << strerror(errno);
  fd.reset();
  want.replace(150000, 10, "0123456789");
  EXPECT_EQ(ReadFile(M("big.bin")), want);
}

TEST_F(MountTest, WritePastEndLeavesZeroFilledHole) {
  UniqueFd fd(open(M("hello.txt").c_str(), O_WRONLY | O_CLOEXEC));
  ASSERT_TRUE(fd.valid()) << strerror(errno);
  ASSERT_EQ(pwrite(fd.get(), "X", 1, 100), 1) << strerror(errno);
  fd.reset();
  EXPECT_EQ(ReadFile(M("hello.txt")), "hello world\n" + std::string(88, '\0') + "X");
}

TEST_F(MountTest, AppendAddsToBaseContent) {
  UniqueFd fd(open(M("hello.txt").c_str(), O_WRONLY | O_APPEND | O_CLOEXEC));
  ASSERT_TRUE(fd.valid()) << strerror(errno);
  ASSERT_EQ(write(fd.get(), "more\n", 5), 5) << strerror(errno);
  fd.reset();
  EXPECT_EQ(ReadFile(M("hello.txt")), "hello world\nmore\n");
}

TEST_F(MountTest, CreatedFileHasRequestedModeAndCallersOwner) {
  UniqueFd fd(open(M("sub/new.txt").c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0664));
  ASSERT_TRUE(fd.valid()) << strerror(errno);
  ASSERT_EQ(write(fd.get(), "new", 3), 3);
  fd.reset();
  struct stat st = Lstat(M("sub/new.txt"));
  EXPECT_EQ(st.st_mode & 07777, 0644u);  // umask 022
  EXPECT_EQ(st.st_uid, 0u);
  EXPECT_EQ(st.st_gid, 0u);
  EXPECT_EQ(ReadFile(M("sub/new.txt")), "new");
}

TEST_F(MountTest, ExclusiveCreateOfBaseFileFailsWithEexist) {
  int fd = open(M("hello.txt").c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  EXPECT_EQ(fd, -1);
  EXPECT_EQ(errno, EEXIST);
  if (fd >= 0) close(fd);
}

TEST_F(MountTest, TruncateShrinksBaseFile) {
  ASSERT_EQ(truncate(M("hello.txt").c_str(), 5), 0) << strerror(errno);
  EXPECT_EQ(ReadFile(M("hello.txt")), "hello");
}

TEST_F(MountTest, TruncateExtendsBaseFileWithZeros) {
  ASSERT_EQ(truncate(M("hello.txt").c_str(), 20), 0) << strerror(errno);
  EXPECT_EQ(ReadFile(M("hello.txt")), "hello world\n" + std::string(8, '\0'));
}

TEST_F(MountTest, MmapSharedWriteIsKeptAfterMsyncAndRemount) {
  {
    UniqueFd fd(open(M("hello.txt").c_str(), O_RDWR | O_CLOEXEC));
    ASSERT_TRUE(fd.valid()) << strerror(errno);
    void* map = mmap(nullptr, 12, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
    ASSERT_NE(map, MAP_FAILED) << strerror(errno);
    memcpy(map, "HELLO", 5);
    EXPECT_EQ(msync(map, 12, MS_SYNC), 0) << strerror(errno);
    EXPECT_EQ(munmap(map, 12), 0);
  }
  EXPECT_EQ(ReadFile(M("hello.txt")), "HELLO world\n");
  ASSERT_TRUE(Umount("b"));
  ASSERT_TRUE(Mount("b"));
  EXPECT_EQ(ReadFile(M("hello.txt")), "HELLO world\n");
}

// ------------------------------------------------------------- metadata

TEST_F(MountTest, ChmodOfBaseFile) {
  ASSERT_EQ(chmod(M("hello.txt").c_str(), 0600), 0) << strerror(errno);
  EXPECT_EQ(Lstat(M("hello.txt")).st_mode & 07777, 0600u);
  EXPECT_EQ(ReadFile(M("hello.txt")), "hello world\n");
}

TEST_F(MountTest, ChmodOfBaseDirectoryKeepsItsChildren) {
  ASSERT_EQ(chmod(M("sub").c_str(), 0700), 0) << strerror(errno);
  EXPECT_EQ(Lstat(M("sub")).st_mode & 07777, 0700u);
  EXPECT_EQ(DiffTrees(src_ + "/sub", M("sub")), "");
}

TEST_F(MountTest, ChownOfBaseFile) {
  ASSERT_EQ(chown(M("hello.txt").c_str(), 1000, 1001), 0) << strerror(errno);
  struct stat st = Lstat(M("hello.txt"));
  EXPECT_EQ(st.st_uid, 1000u);
  EXPECT_EQ(st.st_gid, 1001u);
}

TEST_F(MountTest, ChownOfSymlinkChangesTheLinkItself) {
  ASSERT_EQ(lchown(M("link-to-hello").c_str(), 1000, 1000), 0) << strerror(errno);
  EXPECT_EQ(Lstat(M("link-to-hello")).st_uid, 1000u);
  EXPECT_EQ(Lstat(M("hello.txt")).st_uid, 0u);
}

TEST_F(MountTest, ChownClearsSetuidLikeALocalFilesystem) {
  const std::string local = tmp("local-setuid");
  WriteFile(local, "#!/bin/sh\n", 04755);
  ASSERT_EQ(chown(local.c_str(), 1000, 1000), 0);
  ASSERT_EQ(chown(M("setuid-tool").c_str(), 1000, 1000), 0) << strerror(errno);
  EXPECT_EQ(Lstat(M("setuid-tool")).st_mode & 07777, Lstat(local).st_mode & 07777);
}

TEST_F(MountTest, UtimensSetsExactTimes) {
  const timespec times[2] = {{1000000000, 123456789}, {1100000000, 987654321}};
  ASSERT_EQ(utimensat(AT_FDCWD, M("hello.txt").c_str(), times, AT_SYMLINK_NOFOLLOW), 0)
      << strerror(errno);
  struct stat st = Lstat(M("hello.txt"));
  EXPECT_EQ(st.st_atim.tv_sec, times[0].tv_sec);
  EXPECT_EQ(st.st_atim.tv_nsec, times[0].tv_nsec);
  EXPECT_EQ(st.st_mtim.tv_sec, times[1].tv_sec);
  EXPECT_EQ(st.st_mtim.tv_nsec, times[1].tv_nsec);
}

// chown(f, -1, -1) changes nothing but the ctime, as on ext4.
TEST_F(MountTest, ChownToTheSameOwnerUpdatesCtime) {
  WriteFile(M("own.txt"), "in the upper\n");
  struct stat before = Lstat(M("own.txt"));
  ASSERT_EQ(lchown(M("own.txt").c_str(), static_cast<uid_t>(-1), static_cast<gid_t>(-1)), 0) << strerror(errno);
  struct stat after = Lstat(M("own.txt"));
  EXPECT_TRUE(after.st_ctim.tv_sec > before.st_ctim.tv_sec ||
              (after.st_ctim.tv_sec == before.st_ctim.tv_sec && after.st_ctim.tv_nsec > before.st_ctim.tv_nsec));
  EXPECT_EQ(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
  EXPECT_EQ(after.st_uid, before.st_uid);
}

// Directories nested past PATH_MAX bytes from the mount's root (each step a
// short relative name, as a user goes down) work as on ext4: made, listed,
// written, removed.
TEST_F(MountTest, EntriesDeeperThanPathMaxWork) {
  const std::string name(200, 'd');
  std::string rel;
  int dir = open(M("").c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(dir, 0);
  std::vector<int> fds = {dir};
  for (int i = 0; i < 21; ++i) {
    ASSERT_EQ(mkdirat(fds.back(), name.c_str(), 0755), 0) << "level " << i << ": " << strerror(errno);
    int sub = openat(fds.back(), name.c_str(), O_RDONLY | O_DIRECTORY);
    ASSERT_GE(sub, 0) << "level " << i << ": " << strerror(errno);
    fds.push_back(sub);
  }
  int deep = fds.back();
  int f = openat(deep, "f", O_WRONLY | O_CREAT, 0644);
  ASSERT_GE(f, 0) << strerror(errno);
  ASSERT_EQ(write(f, "deep\n", 5), 5);
  close(f);
  ASSERT_EQ(mkdirat(deep, "sub", 0755), 0) << strerror(errno);
  f = openat(deep, "f", O_RDONLY);
  ASSERT_GE(f, 0) << strerror(errno);
  char buf[16] = {};
  EXPECT_EQ(read(f, buf, sizeof buf), 5);
  close(f);
  EXPECT_STREQ(buf, "deep\n");
  struct stat st;
  EXPECT_EQ(fstatat(deep, "f", &st, 0), 0) << strerror(errno);
  ASSERT_EQ(unlinkat(deep, "f", 0), 0) << strerror(errno);
  ASSERT_EQ(unlinkat(deep, "sub", AT_REMOVEDIR), 0) << strerror(errno);
  // And the whole tree can be removed, deepest first.
  for (size_t i = fds.size() - 1; i > 0; --i) {
    close(fds[i]);
    ASSERT_EQ(unlinkat(fds[i - 1], name.c_str(), AT_REMOVEDIR), 0) << "level " << i << ": " << strerror(errno);
  }
  close(dir);
}

TEST_F(MountTest, UtimensOfDirectorySetsMtime) {
  const timespec times[2] = {{UTIME_OMIT, 0}, {1200000000, 5}};
  ASSERT_EQ(utimensat(AT_FDCWD, M("sub").c_str(), times, 0), 0) << strerror(errno);
  EXPECT_EQ(Lstat(M("sub")).st_mtim.tv_sec, 1200000000);
  EXPECT_EQ(Lstat(M("sub")).st_mtim.tv_nsec, 5);
}

}  // namespace
}  // namespace buildfs::testing
