// End-to-end tests of a mounted build (fixture: mount_fixture.h): names,
// links, renames, directories, listings and inode numbers.
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

// -------------------------------------------------------- names and links

TEST_F(MountTest, UnlinkOfBaseFileHidesIt) {
  ASSERT_EQ(unlink(M("hello.txt").c_str()), 0) << strerror(errno);
  EXPECT_EQ(LstatErrno(M("hello.txt")), ENOENT);
  auto names = ListDir(root_);
  EXPECT_EQ(std::count(names.begin(), names.end(), "hello.txt"), 0);
  EXPECT_EQ(ReadFile(M("copy-of-hello.txt")), "hello world\n");  // same object, other path
}

TEST_F(MountTest, RecreatedBaseFileShowsOnlyNewContentAndAttributes) {
  ASSERT_EQ(unlink(M("attrs.txt").c_str()), 0) << strerror(errno);
  WriteFile(M("attrs.txt"), "new", 0600);
  EXPECT_EQ(ReadFile(M("attrs.txt")), "new");
  EXPECT_EQ(Lstat(M("attrs.txt")).st_mode & 07777, 0600u);
  EXPECT_EQ(ListXattrs(M("attrs.txt")), std::vector<std::string>{});
}

TEST_F(MountTest, SymlinkCreatedInMountIsReadBack) {
  ASSERT_EQ(symlink("sub/file.txt", M("new-link").c_str()), 0) << strerror(errno);
  EXPECT_EQ(ReadFile(M("new-link")), "in sub\n");
  char target[64];
  ssize_t n = readlink(M("new-link").c_str(), target, sizeof target);
  ASSERT_EQ(n, 12);
  EXPECT_EQ(std::string(target, 12), "sub/file.txt");
}

TEST_F(MountTest, HardLinkToBaseFileSharesInodeAndContent) {
  ASSERT_EQ(link(M("hello.txt").c_str(), M("sub/hello-link").c_str()), 0) << strerror(errno);
  struct stat a = Lstat(M("hello.txt"));
  struct stat b = Lstat(M("sub/hello-link"));
  EXPECT_EQ(a.st_ino, b.st_ino);
  EXPECT_EQ(a.st_nlink, 2u);
  EXPECT_EQ(b.st_nlink, 2u);
  WriteFile(M("sub/hello-link"), "written through the link\n");
  EXPECT_EQ(ReadFile(M("hello.txt")), "written through the link\n");
}

TEST_F(MountTest, HardLinkToNewFileSharesInode) {
  WriteFile(M("fresh"), "fresh\n");
  ASSERT_EQ(link(M("fresh").c_str(), M("fresh2").c_str()), 0) << strerror(errno);
  EXPECT_EQ(Lstat(M("fresh")).st_ino, Lstat(M("fresh2")).st_ino);
  EXPECT_EQ(Lstat(M("fresh2")).st_nlink, 2u);
}

TEST_F(MountTest, RemovingOneHardLinkLeavesTheOther) {
  ASSERT_EQ(link(M("hello.txt").c_str(), M("hello-link").c_str()), 0) << strerror(errno);
  ASSERT_EQ(unlink(M("hello.txt").c_str()), 0) << strerror(errno);
  EXPECT_EQ(Lstat(M("hello-link")).st_nlink, 1u);
  EXPECT_EQ(ReadFile(M("hello-link")), "hello world\n");
}

// An inode lives until its last user is gone (lookup counts, forget), not
// until its last name is: builds unlink files that compilers still have open.
TEST_F(MountTest, OpenBaseFileStaysUsableAfterUnlink) {
  UniqueFd fd(open(M("hello.txt").c_str(), O_RDWR | O_CLOEXEC));
  ASSERT_TRUE(fd.valid()) << strerror(errno);
  ASSERT_EQ(unlink(M("hello.txt").c_str()), 0) << strerror(errno);
  EXPECT_EQ(LstatErrno(M("hello.txt")), ENOENT);
  char buf[32];
  ASSERT_EQ(pread(fd.get(), buf, sizeof buf, 0), 12) << strerror(errno);
  EXPECT_EQ(std::string(buf, 12), "hello world\n");
  ASSERT_EQ(pwrite(fd.get(), "J", 1, 0), 1) << strerror(errno);
  ASSERT_EQ(pread(fd.get(), buf, sizeof buf, 0), 12);
  EXPECT_EQ(std::string(buf, 12), "Jello world\n");
}

TEST_F(MountTest, WriteThroughHandleOpenedBeforeRenameLandsInRenamedFile) {
  UniqueFd fd(open(M("hello.txt").c_str(), O_WRONLY | O_APPEND | O_CLOEXEC));
  ASSERT_TRUE(fd.valid()) << strerror(errno);
  ASSERT_EQ(rename(M("hello.txt").c_str(), M("sub/renamed.txt").c_str()), 0) << strerror(errno);
  ASSERT_EQ(write(fd.get(), "more\n", 5), 5) << strerror(errno);
  fd.reset();
  EXPECT_EQ(ReadFile(M("sub/renamed.txt")), "hello world\nmore\n");
  EXPECT_EQ(LstatErrno(M("hello.txt")), ENOENT);
}

TEST_F(MountTest, MknodFifoMakesAWorkingFifo) {
  ASSERT_EQ(mknod(M("sub/pipe").c_str(), S_IFIFO | 0640, 0), 0) << strerror(errno);
  struct stat st = Lstat(M("sub/pipe"));
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  UniqueFd fd(open(M("sub/pipe").c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC));
  ASSERT_TRUE(fd.valid()) << strerror(errno);
  ASSERT_EQ(write(fd.get(), "ping", 4), 4);
  char buf[8];
  ASSERT_EQ(read(fd.get(), buf, sizeof buf), 4);
  EXPECT_EQ(std::string(buf, 4), "ping");
}

// ---------------------------------------------------------------- renames

TEST_F(MountTest, RenameOfBaseFileKeepsContentModeAndInode) {
  struct stat before = Lstat(M("private.txt"));
  ASSERT_EQ(rename(M("private.txt").c_str(), M("sub/renamed.txt").c_str()), 0) << strerror(errno);
  EXPECT_EQ(LstatErrno(M("private.txt")), ENOENT);
  struct stat after = Lstat(M("sub/renamed.txt"));
  EXPECT_EQ(after.st_ino, before.st_ino);
  EXPECT_EQ(after.st_mode, before.st_mode);
  EXPECT_EQ(ReadFile(M("sub/renamed.txt")), "root only\n");
}

TEST_F(MountTest, RenameOfBaseDirectoryKeepsChildren) {
  ASSERT_EQ(rename(M("sub").c_str(), M("moved").c_str()), 0) << strerror(errno);
  EXPECT_EQ(LstatErrno(M("sub")), ENOENT);
  EXPECT_EQ(LstatErrno(M("sub/file.txt")), ENOENT);
  EXPECT_EQ(DiffTrees(src_ + "/sub", M("moved")), "");
}

TEST_F(MountTest, RenameMovesBaseDirectoryIntoAnotherDirectory) {
  ASSERT_EQ(rename(M("sub").c_str(), M("emptydir/sub2").c_str()), 0) << strerror(errno);
  EXPECT_EQ(DiffTrees(src_ + "/sub", M("emptydir/sub2")), "");
  EXPECT_EQ(Sorted(ListDir(M("emptydir"))), std::vector<std::string>{"sub2"});
}

TEST_F(MountTest, ChangesInsideRenamedBaseDirectoryAreKept) {
  WriteFile(M("sub/deeper/new.txt"), "new\n");
  ASSERT_EQ(unlink(M("sub/file.txt").c_str()), 0);
  ASSERT_EQ(rename(M("sub").c_str(), M("moved").c_str()), 0) << strerror(errno);
  EXPECT_EQ(ReadFile(M("moved/deeper/new.txt")), "new\n");
  EXPECT_EQ(LstatErrno(M("moved/file.txt")), ENOENT);
  EXPECT_EQ(ReadFile(M("moved/deeper/deepest/leaf.txt")), "leaf\n");
}

TEST_F(MountTest, MkdirAtOldNameOfRenamedBaseDirectoryIsEmpty) {
  ASSERT_EQ(rename(M("sub").c_str(), M("moved").c_str()), 0) << strerror(errno);
  ASSERT_EQ(mkdir(M("sub").c_str(), 0755), 0) << strerror(errno);
  EXPECT_EQ(ListDir(M("sub")), std::vector<std::string>{});
  EXPECT_EQ(LstatErrno(M("sub/file.txt")), ENOENT);
}

TEST_F(MountTest, RenameOverExistingFileReplacesIt) {
  ASSERT_EQ(rename(M("hello.txt").c_str(), M("root-file.txt").c_str()), 0) << strerror(errno);
  EXPECT_EQ(ReadFile(M("root-file.txt")), "hello world\n");
  EXPECT_EQ(LstatErrno(M("hello.txt")), ENOENT);
  auto names = ListDir(root_);
  EXPECT_EQ(std::count(names.begin(), names.end(), "root-file.txt"), 1);
}

TEST_F(MountTest, RenameOfDirectoryOverEmptyBaseDirectoryReplacesIt) {
  ASSERT_EQ(rename(M("bin").c_str(), M("emptydir").c_str()), 0) << strerror(errno);
  EXPECT_EQ(ReadFile(M("emptydir/tool")), "#!/bin/sh\necho tool\n");
  EXPECT_EQ(LstatErrno(M("bin")), ENOENT);
}

TEST_F(MountTest, RenameOfDirectoryOverNonEmptyDirectoryFailsWithEnotempty) {
  EXPECT_EQ(ErrnoOf(rename(M("bin").c_str(), M("sub").c_str())), ENOTEMPTY);
  EXPECT_EQ(ReadFile(M("sub/file.txt")), "in sub\n");
}

TEST_F(MountTest, RenameNoreplaceFailsWithEexistWhenTargetExists) {
  EXPECT_EQ(ErrnoOf(renameat2(AT_FDCWD, M("hello.txt").c_str(), AT_FDCWD,
                              M("root-file.txt").c_str(), RENAME_NOREPLACE)),
            EEXIST);
  EXPECT_EQ(ReadFile(M("hello.txt")), "hello world\n");
  EXPECT_EQ(ReadFile(M("root-file.txt")), "owned by root\n");
}

TEST_F(MountTest, RenameNoreplaceMovesWhenTargetIsMissing) {
  ASSERT_EQ(renameat2(AT_FDCWD, M("hello.txt").c_str(), AT_FDCWD, M("fresh.txt").c_str(),
                      RENAME_NOREPLACE),
            0)
      << strerror(errno);
  EXPECT_EQ(ReadFile(M("fresh.txt")), "hello world\n");
  EXPECT_EQ(LstatErrno(M("hello.txt")), ENOENT);
}

TEST_F(MountTest, RenameExchangeSwapsFileAndBaseDirectory) {
  ASSERT_EQ(
      renameat2(AT_FDCWD, M("hello.txt").c_str(), AT_FDCWD, M("sub").c_str(), RENAME_EXCHANGE), 0)
      << strerror(errno);
  EXPECT_EQ(ReadFile(M("sub")), "hello world\n");
  EXPECT_EQ(DiffTrees(src_ + "/sub", M("hello.txt")), "");
}

TEST_F(MountTest, RenameExchangeOfTwoBaseFilesSwapsContent) {
  ASSERT_EQ(renameat2(AT_FDCWD, M("hello.txt").c_str(), AT_FDCWD, M("private.txt").c_str(),
                      RENAME_EXCHANGE),
            0)
      << strerror(errno);
  EXPECT_EQ(ReadFile(M("hello.txt")), "root only\n");
  EXPECT_EQ(Lstat(M("hello.txt")).st_mode & 07777, 0600u);
  EXPECT_EQ(ReadFile(M("private.txt")), "hello world\n");
}

TEST_F(MountTest, RenameExchangeWithMissingTargetFailsWithEnoent) {
  EXPECT_EQ(ErrnoOf(renameat2(AT_FDCWD, M("hello.txt").c_str(), AT_FDCWD, M("nothing").c_str(),
                              RENAME_EXCHANGE)),
            ENOENT);
  EXPECT_EQ(ReadFile(M("hello.txt")), "hello world\n");
}

// ------------------------------------------------------------ directories

TEST_F(MountTest, RmdirOfNonEmptyBaseDirectoryFailsWithEnotempty) {
  EXPECT_EQ(ErrnoOf(rmdir(M("sub/deeper/deepest").c_str())), ENOTEMPTY);
  EXPECT_EQ(ReadFile(M("sub/deeper/deepest/leaf.txt")), "leaf\n");
}

TEST_F(MountTest, RmdirOfEmptiedBaseDirectorySucceeds) {
  ASSERT_EQ(unlink(M("sub/deeper/deepest/leaf.txt").c_str()), 0);
  ASSERT_EQ(unlink(M("sub/deeper/deepest/up-link").c_str()), 0);
  ASSERT_EQ(rmdir(M("sub/deeper/deepest").c_str()), 0) << strerror(errno);
  EXPECT_EQ(LstatErrno(M("sub/deeper/deepest")), ENOENT);
  EXPECT_EQ(ListDir(M("sub/deeper")), std::vector<std::string>{});
}

TEST_F(MountTest, MkdirAfterRmdirOfBaseDirectoryShowsEmptyDirectory) {
  ASSERT_EQ(unlink(M("bin/tool").c_str()), 0);
  ASSERT_EQ(rmdir(M("bin").c_str()), 0) << strerror(errno);
  ASSERT_EQ(mkdir(M("bin").c_str(), 0700), 0) << strerror(errno);
  EXPECT_EQ(ListDir(M("bin")), std::vector<std::string>{});
  EXPECT_EQ(LstatErrno(M("bin/tool")), ENOENT);
  EXPECT_EQ(Lstat(M("bin")).st_mode & 07777, 0700u);
}

TEST_F(MountTest, ReaddirListsEachEntryOnceAfterChanges) {
  WriteFile(M("many/f000"), "modified\n");                               // copied up
  ASSERT_EQ(unlink(M("many/f001").c_str()), 0);                          // deleted
  ASSERT_EQ(unlink(M("many/f002").c_str()), 0);                          // deleted, then
  WriteFile(M("many/f002"), "recreated\n");                              // recreated
  ASSERT_EQ(rename(M("many/f003").c_str(), M("many/g003").c_str()), 0);  // renamed
  ASSERT_EQ(chmod(M("many/f004").c_str(), 0600), 0);                     // metadata only
  SetXattr(M("many/f005"), "user.x", "1");                               // xattr only
  ASSERT_EQ(rename(M("many/f006").c_str(), M("many/f007").c_str()), 0);  // over a base file
  WriteFile(M("many/new"), "new\n");                                     // upper only
  std::vector<std::string> want;
  for (int i = 0; i < 150; ++i) {
    char name[8];
    snprintf(name, sizeof name, "f%03d", i);
    if (i != 1 && i != 3 && i != 6) want.push_back(name);
  }
  want.push_back("g003");
  want.push_back("new");
  std::sort(want.begin(), want.end());
  EXPECT_EQ(Sorted(ListDirInSmallBatches(M("many"))), want);
  EXPECT_EQ(Sorted(ListDir(M("many"))), want);
}

TEST_F(MountTest, ReaddirWhileRemovingEntriesVisitsEachOnce) {
  // What `rm -r` does: read a batch, unlink it, read on from the same handle.
  std::vector<std::string> seen =
      ListDirInSmallBatches(M("many"), [&](const std::vector<std::string>& batch) {
        for (const auto& name : batch)
          ASSERT_EQ(unlink(M("many/" + name).c_str()), 0) << name << ": " << strerror(errno);
      });
  std::vector<std::string> want = Sorted(ListDir(src_ + "/many"));
  EXPECT_EQ(Sorted(seen), want);
  EXPECT_EQ(ListDir(M("many")), std::vector<std::string>{});
  EXPECT_EQ(rmdir(M("many").c_str()), 0) << strerror(errno);
}

TEST_F(MountTest, RootListingShowsCacheOnce) {
  auto names = ListDirInSmallBatches(root_);
  EXPECT_EQ(std::count(names.begin(), names.end(), "cache"), 1);
  auto want = ListDir(src_);
  want.push_back("cache");
  EXPECT_EQ(Sorted(names), Sorted(want));
}

// ----------------------------------------------------------------- inodes

TEST_F(MountTest, InodeNumberIsUnchangedByCopyUp) {
  const ino_t file = Lstat(M("hello.txt")).st_ino;
  const ino_t meta_only = Lstat(M("private.txt")).st_ino;
  const ino_t dir = Lstat(M("sub")).st_ino;
  WriteFile(M("hello.txt"), "changed\n");
  ASSERT_EQ(chmod(M("private.txt").c_str(), 0640), 0);
  WriteFile(M("sub/new.txt"), "makes sub exist in the upper layer\n");
  EXPECT_EQ(Lstat(M("hello.txt")).st_ino, file);
  EXPECT_EQ(Lstat(M("private.txt")).st_ino, meta_only);
  EXPECT_EQ(Lstat(M("sub")).st_ino, dir);
}

TEST_F(MountTest, InodeNumberOfOpenFileMatchesAfterCopyUp) {
  UniqueFd reader(open(M("hello.txt").c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(reader.valid());
  struct stat before;
  ASSERT_EQ(fstat(reader.get(), &before), 0);
  WriteFile(M("hello.txt"), "changed\n");
  struct stat after;
  ASSERT_EQ(fstat(reader.get(), &after), 0);
  EXPECT_EQ(after.st_ino, before.st_ino);
  EXPECT_EQ(Lstat(M("hello.txt")).st_ino, before.st_ino);
}

TEST_F(MountTest, InodeNumbersAreDistinctAcrossEntries) {
  // copy-of-hello.txt and hello.txt share one OSTree object, and so do all
  // empty files: they must still be different inodes, or cp -a and tar link them.
  Snapshot snap = ScanTree(root_, MountScan());
  std::map<ino_t, std::string> seen;
  for (const auto& [path, e] : snap.entries) {
    auto [it, inserted] = seen.emplace(e.ino, path);
    if (!inserted) {
      const Entry& other = snap.entries.at(it->second);
      EXPECT_TRUE(e.nlink > 1 && other.nlink > 1)
          << path << " and " << it->second << " share inode " << e.ino;
    }
  }
}

}  // namespace
}  // namespace buildfs::testing
