// Overlay: creating and removing entries: whiteouts, opaque directories,
// new files, directories, symlinks and nodes (fixture: overlay_fixture.h).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "fs/layers/upper_format.h"
#include "fs/overlay/overlay.h"
#include "fs/overlay/overlay_fixture.h"
#include "fs/testing/status_testing.h"
#include "fs/testing/temp_dir.h"

namespace buildfs {
namespace {

using testing::Exists;
using testing::GetXattr;
using testing::ListDir;
using testing::Lstat;

// ------------------------------------------------------------ whiteouts

TEST_F(OverlayTest, WhiteoutHidesLowerFile) {
  ASSERT_OK(overlay_->Unlink(kRootIno, "file"));
  EXPECT_EQ(Lookup(kRootIno, "file"), 0u);
  EXPECT_TRUE(IsWhiteout(Upper("file")));
  auto names = Names(kRootIno);
  EXPECT_EQ(std::count(names.begin(), names.end(), "file"), 0);
}

TEST_F(OverlayTest, WhiteoutHidesLowerFileAfterRemount) {
  ASSERT_OK(overlay_->Unlink(kRootIno, "file"));
  Mount();
  EXPECT_EQ(Lookup(kRootIno, "file"), 0u);
}

TEST_F(OverlayTest, UnlinkOfLookedUpFileMakesItsInodeStale) {
  uint64_t ino = Lookup(kRootIno, "file");
  ASSERT_OK(overlay_->Unlink(kRootIno, "file"));
  EXPECT_ERRNO(overlay_->GetAttr(ino), ENOENT);
  overlay_->Forget(ino, 1);
  EXPECT_EQ(overlay_->node_count(), 1u);
}

TEST_F(OverlayTest, UnlinkOfUpperOnlyFileLeavesNoWhiteout) {
  EntryOut entry;
  ASSERT_OK_AND_ASSIGN(auto fh, overlay_->Create(kRootIno, "new", 0644, O_RDWR, kRoot, &entry));
  overlay_->Release(std::move(fh));
  ASSERT_TRUE(Exists(Upper("new")));
  ASSERT_OK(overlay_->Unlink(kRootIno, "new"));
  EXPECT_FALSE(Exists(Upper("new")));
  EXPECT_EQ(Lookup(kRootIno, "new"), 0u);
}

TEST_F(OverlayTest, UnlinkOfMissingNameIsENOENT) {
  EXPECT_ERRNO(overlay_->Unlink(kRootIno, "nothing"), ENOENT);
}

TEST_F(OverlayTest, UnlinkOfDirectoryIsEISDIR) {
  EXPECT_ERRNO(overlay_->Unlink(kRootIno, "emptydir"), EISDIR);
}

TEST_F(OverlayTest, RmdirOfFileIsENOTDIR) {
  EXPECT_ERRNO(overlay_->RmDir(kRootIno, "file"), ENOTDIR);
}

TEST_F(OverlayTest, RmdirOfNonEmptyLowerDirIsENOTEMPTY) {
  EXPECT_ERRNO(overlay_->RmDir(kRootIno, "dir"), ENOTEMPTY);
  EXPECT_NE(Lookup(kRootIno, "dir"), 0u);
}

TEST_F(OverlayTest, RmdirOfEmptyLowerDirLeavesWhiteout) {
  ASSERT_OK(overlay_->RmDir(kRootIno, "emptydir"));
  EXPECT_EQ(Lookup(kRootIno, "emptydir"), 0u);
  EXPECT_TRUE(IsWhiteout(Upper("emptydir")));
}

TEST_F(OverlayTest, RmdirOfDirEmptiedByWhiteoutsSucceeds) {
  uint64_t two = Lookup(kRootIno, "two");
  ASSERT_OK(overlay_->RmDir(two, "s1"));
  ASSERT_OK(overlay_->RmDir(two, "s2"));
  ASSERT_OK(overlay_->Unlink(two, "f"));
  ASSERT_OK(overlay_->RmDir(kRootIno, "two"));
  EXPECT_EQ(Lookup(kRootIno, "two"), 0u);
  EXPECT_TRUE(IsWhiteout(Upper("two")));
  EXPECT_EQ(ListDir(work_), std::vector<std::string>{});
}

TEST_F(OverlayTest, RmdirThenMkdirGivesEmptyOpaqueDir) {
  uint64_t two = Lookup(kRootIno, "two");
  ASSERT_OK(overlay_->RmDir(two, "s1"));
  ASSERT_OK(overlay_->RmDir(two, "s2"));
  ASSERT_OK(overlay_->Unlink(two, "f"));
  ASSERT_OK(overlay_->RmDir(kRootIno, "two"));

  ASSERT_OK_AND_ASSIGN(EntryOut made, overlay_->MakeDir(kRootIno, "two", 0755, kRoot));

  EXPECT_TRUE(S_ISDIR(made.st.st_mode));
  EXPECT_EQ(Names(made.ino), std::vector<std::string>{});
  EXPECT_EQ(Lookup(made.ino, "f"), 0u);
  EXPECT_TRUE(S_ISDIR(Lstat(Upper("two")).st_mode));
  EXPECT_EQ(GetXattr(Upper("two"), kOpaqueXattr), "y");
  EXPECT_EQ(ListDir(Upper("two")), std::vector<std::string>{});
}

TEST_F(OverlayTest, MkdirAfterLowerDirRemovedHidesOldChildren) {
  uint64_t two = Lookup(kRootIno, "two");
  ASSERT_OK(overlay_->RmDir(two, "s1"));
  ASSERT_OK(overlay_->RmDir(two, "s2"));
  ASSERT_OK(overlay_->Unlink(two, "f"));
  ASSERT_OK(overlay_->RmDir(kRootIno, "two"));
  ASSERT_OK(overlay_->MakeDir(kRootIno, "two", 0755, kRoot));
  Mount();  // forget everything cached

  uint64_t again = Lookup(kRootIno, "two");
  ASSERT_NE(again, 0u);
  EXPECT_EQ(Lookup(again, "f"), 0u);
  EXPECT_EQ(Lookup(again, "s1"), 0u);
  EXPECT_EQ(Names(again), std::vector<std::string>{});
  EXPECT_EQ(Attr(again).st_nlink, 2u);
}

TEST_F(OverlayTest, MkdirOverWhiteoutOfFileHidesNothingBelow) {
  ASSERT_OK(overlay_->Unlink(kRootIno, "file"));
  ASSERT_OK_AND_ASSIGN(EntryOut made, overlay_->MakeDir(kRootIno, "file", 0700, kRoot));
  EXPECT_EQ(made.st.st_mode, S_IFDIR | 0700u);
  EXPECT_EQ(Names(made.ino), std::vector<std::string>{});
  EXPECT_TRUE(S_ISDIR(Lstat(Upper("file")).st_mode));
  EXPECT_EQ(ListDir(work_), std::vector<std::string>{});
}

TEST_F(OverlayTest, CreateOverWhiteout) {
  ASSERT_OK(overlay_->Unlink(kRootIno, "file"));
  EntryOut entry;
  ASSERT_OK_AND_ASSIGN(auto fh, overlay_->Create(kRootIno, "file", 0600, O_RDWR, kRoot, &entry));
  ASSERT_OK_AND_ASSIGN(size_t n, WriteAt(fh.get(), "new"));
  ASSERT_EQ(n, 3u);
  overlay_->Release(std::move(fh));

  EXPECT_NE(entry.ino, 0u);
  EXPECT_EQ(entry.st.st_mode, S_IFREG | 0600u);
  uint64_t ino = Lookup(kRootIno, "file");
  EXPECT_EQ(ino, entry.ino);
  EXPECT_EQ(Read(ino), "new");
  struct stat st = Lstat(Upper("file"));
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(ListDir(work_), std::vector<std::string>{});
}

TEST_F(OverlayTest, CreateOfExistingNameIsEEXIST) {
  EntryOut entry;
  EXPECT_ERRNO(overlay_->Create(kRootIno, "file", 0644, O_RDWR, kRoot, &entry), EEXIST);
  EXPECT_ERRNO(overlay_->MakeDir(kRootIno, "dir", 0755, kRoot), EEXIST);
  EXPECT_EQ(ListDir(upper_), std::vector<std::string>{});
}

TEST_F(OverlayTest, CreateGivesCallerOwnership) {
  EntryOut entry;
  ASSERT_OK_AND_ASSIGN(auto fh,
                       overlay_->Create(kRootIno, "mine", 0640, O_RDWR, {1000, 1001}, &entry));
  overlay_->Release(std::move(fh));
  EXPECT_EQ(entry.st.st_uid, 1000u);
  EXPECT_EQ(entry.st.st_gid, 1001u);
  struct stat st = Lstat(Upper("mine"));
  EXPECT_EQ(st.st_uid, 1000u);
  EXPECT_EQ(st.st_mode, S_IFREG | 0640u);
}

// A name no layer holds gets a plain directory, made in place: no marker,
// no trip through work/ (only a whiteout's name needs an opaque one, above).
TEST_F(OverlayTest, MkdirMakesAPlainDirOwnedByCaller) {
  ASSERT_OK_AND_ASSIGN(EntryOut made, overlay_->MakeDir(kRootIno, "fresh", 0750, {1000, 1001}));
  EXPECT_EQ(made.st.st_mode, S_IFDIR | 0750u);
  EXPECT_EQ(made.st.st_uid, 1000u);
  EXPECT_EQ(GetXattr(Upper("fresh"), kOpaqueXattr), std::nullopt);
  EXPECT_EQ(GetXattr(Upper("fresh"), kInoXattr), std::nullopt);
  EXPECT_EQ(Lstat(Upper("fresh")).st_gid, 1001u);
}

TEST_F(OverlayTest, MkdirInLowerDirCopiesUpOnlyTheParent) {
  uint64_t dir = Lookup(kRootIno, "dir");
  ASSERT_OK(overlay_->MakeDir(dir, "new", 0755, kRoot));
  EXPECT_EQ(ListDir(Upper("dir")), std::vector<std::string>{"new"});
  EXPECT_EQ(Names(dir), (std::vector<std::string>{"a.txt", "c.txt", "new", "sub"}));
}

TEST_F(OverlayTest, SymlinkCreatesUpperSymlink) {
  ASSERT_OK_AND_ASSIGN(EntryOut made, overlay_->Symlink(kRootIno, "sl", "some/target", kRoot));
  EXPECT_TRUE(S_ISLNK(made.st.st_mode));
  ASSERT_OK_AND_ASSIGN(std::string target, overlay_->ReadLink(made.ino));
  EXPECT_EQ(target, "some/target");
  char buf[64];
  ssize_t n = readlink(Upper("sl").c_str(), buf, sizeof(buf));
  EXPECT_EQ(std::string(buf, n > 0 ? n : 0), "some/target");
}

TEST_F(OverlayTest, MakeNodeOfWhiteoutDeviceIsEPERM) {
  EXPECT_ERRNO(overlay_->MakeNode(kRootIno, "dev", S_IFCHR | 0600, makedev(0, 0), kRoot), EPERM);
  EXPECT_FALSE(Exists(Upper("dev")));
}

TEST_F(OverlayTest, MakeNodeCreatesFifo) {
  ASSERT_OK_AND_ASSIGN(EntryOut made,
                       overlay_->MakeNode(kRootIno, "pipe", S_IFIFO | 0600, 0, kRoot));
  EXPECT_EQ(made.st.st_mode, S_IFIFO | 0600u);
  EXPECT_TRUE(S_ISFIFO(Lstat(Upper("pipe")).st_mode));
}

}  // namespace
}  // namespace buildfs
