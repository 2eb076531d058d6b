// Overlay: rename and RENAME_NOREPLACE / RENAME_EXCHANGE, and the
// redirects that let a lower directory move without copying its contents
// (fixture: overlay_fixture.h).
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

// ------------------------------------------------------------ rename

TEST_F(OverlayTest, RenameOfLowerDirectoryKeepsChildren) {
  ASSERT_OK(overlay_->Rename(kRootIno, "dir", kRootIno, "moved", 0));

  EXPECT_EQ(Lookup(kRootIno, "dir"), 0u);
  uint64_t moved = Lookup(kRootIno, "moved");
  ASSERT_NE(moved, 0u);
  EXPECT_EQ(Names(moved), (std::vector<std::string>{"a.txt", "c.txt", "sub"}));
  EXPECT_EQ(Read(Walk("moved/sub/b.txt")), "b\n");
  // Through a redirect: no child was copied.
  EXPECT_EQ(GetXattr(Upper("moved"), kRedirectXattr), "/dir");
  EXPECT_EQ(ListDir(Upper("moved")), std::vector<std::string>{});
  EXPECT_TRUE(IsWhiteout(Upper("dir")));
}

TEST_F(OverlayTest, RenameOfLowerDirectoryKeepsInodeNumbers) {
  uint64_t dir = Lookup(kRootIno, "dir");
  uint64_t child = Lookup(dir, "a.txt");
  ASSERT_OK(overlay_->Rename(kRootIno, "dir", kRootIno, "moved", 0));
  Mount();
  uint64_t moved = Lookup(kRootIno, "moved");
  EXPECT_EQ(moved, dir);
  EXPECT_EQ(Lookup(moved, "a.txt"), child);
}

TEST_F(OverlayTest, RenamedLowerDirectorySurvivesRemount) {
  ASSERT_OK(overlay_->Rename(kRootIno, "dir", kRootIno, "moved", 0));
  Mount();
  EXPECT_EQ(Lookup(kRootIno, "dir"), 0u);
  EXPECT_EQ(Read(Walk("moved/a.txt")), "a\n");
}

TEST_F(OverlayTest, RenameOfLowerDirectoryIntoAnotherDirectory) {
  uint64_t two = Lookup(kRootIno, "two");
  ASSERT_OK(overlay_->Rename(kRootIno, "dir", two, "inner", 0));
  EXPECT_EQ(Read(Walk("two/inner/sub/b.txt")), "b\n");
  EXPECT_EQ(GetXattr(Upper("two/inner"), kRedirectXattr), "/dir");
  EXPECT_EQ(Lookup(kRootIno, "dir"), 0u);
}

TEST_F(OverlayTest, UnlinkInRenamedDirectoryHidesLowerChild) {
  ASSERT_OK(overlay_->Rename(kRootIno, "dir", kRootIno, "moved", 0));
  uint64_t moved = Lookup(kRootIno, "moved");
  ASSERT_OK(overlay_->Unlink(moved, "a.txt"));
  EXPECT_EQ(Lookup(moved, "a.txt"), 0u);
  EXPECT_EQ(Names(moved), (std::vector<std::string>{"c.txt", "sub"}));
  EXPECT_TRUE(IsWhiteout(Upper("moved/a.txt")));
}

TEST_F(OverlayTest, RenameOfLowerFileMovesItAndLeavesWhiteout) {
  uint64_t dir = Lookup(kRootIno, "dir");
  uint64_t ino = Lookup(dir, "a.txt");
  ASSERT_OK(overlay_->Rename(dir, "a.txt", kRootIno, "moved.txt", 0));
  EXPECT_EQ(Lookup(dir, "a.txt"), 0u);
  EXPECT_TRUE(IsWhiteout(Upper("dir/a.txt")));
  uint64_t moved = Lookup(kRootIno, "moved.txt");
  EXPECT_EQ(moved, ino);
  EXPECT_EQ(Read(moved), "a\n");
}

TEST_F(OverlayTest, RenameOverExistingFileReplacesIt) {
  uint64_t file = Lookup(kRootIno, "file");
  ASSERT_OK(overlay_->Rename(kRootIno, "file", kRootIno, "other", 0));
  EXPECT_EQ(Lookup(kRootIno, "file"), 0u);
  uint64_t other = Lookup(kRootIno, "other");
  EXPECT_EQ(other, file);
  EXPECT_EQ(Read(other), "base file\n");
  auto names = Names(kRootIno);
  EXPECT_EQ(std::count(names.begin(), names.end(), "other"), 1);
}

TEST_F(OverlayTest, RenameNoReplaceFailsWithEEXIST) {
  EXPECT_ERRNO(overlay_->Rename(kRootIno, "file", kRootIno, "other", RENAME_NOREPLACE), EEXIST);
  EXPECT_EQ(Read(Lookup(kRootIno, "file")), "base file\n");
  EXPECT_EQ(Read(Lookup(kRootIno, "other")), "other file\n");
  EXPECT_EQ(ListDir(upper_), std::vector<std::string>{});
}

TEST_F(OverlayTest, RenameNoReplaceToFreeNameSucceeds) {
  ASSERT_OK(overlay_->Rename(kRootIno, "file", kRootIno, "free", RENAME_NOREPLACE));
  EXPECT_EQ(Read(Lookup(kRootIno, "free")), "base file\n");
}

TEST_F(OverlayTest, RenameExchangeSwaps) {
  uint64_t file = Lookup(kRootIno, "file");
  uint64_t other = Lookup(kRootIno, "other");
  ASSERT_OK(overlay_->Rename(kRootIno, "file", kRootIno, "other", RENAME_EXCHANGE));
  Mount();
  uint64_t now_file = Lookup(kRootIno, "file");
  uint64_t now_other = Lookup(kRootIno, "other");
  EXPECT_EQ(Read(now_file), "other file\n");
  EXPECT_EQ(Read(now_other), "base file\n");
  EXPECT_EQ(now_file, other);
  EXPECT_EQ(now_other, file);
}

TEST_F(OverlayTest, RenameExchangeWithMissingNameIsENOENT) {
  EXPECT_ERRNO(overlay_->Rename(kRootIno, "file", kRootIno, "nothing", RENAME_EXCHANGE), ENOENT);
}

TEST_F(OverlayTest, RenameOfDirectoryOverNonEmptyDirectoryIsENOTEMPTY) {
  EXPECT_ERRNO(overlay_->Rename(kRootIno, "emptydir", kRootIno, "dir", 0), ENOTEMPTY);
}

TEST_F(OverlayTest, RenameOfDirectoryOverFileIsENOTDIR) {
  EXPECT_ERRNO(overlay_->Rename(kRootIno, "dir", kRootIno, "file", 0), ENOTDIR);
}

TEST_F(OverlayTest, RenameOfDirectoryOverWhiteoutSucceeds) {
  // `rm file; mv emptydir file`
  ASSERT_OK(overlay_->Unlink(kRootIno, "file"));
  ASSERT_OK(overlay_->Rename(kRootIno, "emptydir", kRootIno, "file", 0));
  uint64_t moved = Lookup(kRootIno, "file");
  ASSERT_NE(moved, 0u);
  EXPECT_TRUE(S_ISDIR(Attr(moved).st_mode));
  EXPECT_EQ(Lookup(kRootIno, "emptydir"), 0u);
}

TEST_F(OverlayTest, RenameOfDirectoryBackToItsOriginalName) {
  // `mv dir moved; mv moved dir`
  ASSERT_OK(overlay_->Rename(kRootIno, "dir", kRootIno, "moved", 0));
  ASSERT_OK(overlay_->Rename(kRootIno, "moved", kRootIno, "dir", 0));
  EXPECT_EQ(Lookup(kRootIno, "moved"), 0u);
  EXPECT_EQ(Read(Walk("dir/a.txt")), "a\n");
}

TEST_F(OverlayTest, RenameOfNewDirectoryMakesItOpaque) {
  ASSERT_OK(overlay_->MakeDir(kRootIno, "fresh", 0755, kRoot));
  ASSERT_OK(overlay_->RmDir(kRootIno, "emptydir"));
  ASSERT_OK(overlay_->Rename(kRootIno, "fresh", kRootIno, "renamed", 0));
  EXPECT_EQ(Lookup(kRootIno, "fresh"), 0u);
  EXPECT_FALSE(Exists(Upper("fresh")));  // nothing below to hide: no whiteout
  EXPECT_EQ(GetXattr(Upper("renamed"), kOpaqueXattr), "y");
}

TEST_F(OverlayTest, RenameOfDirectoryOverEmptyLowerDirectory) {
  ASSERT_OK(overlay_->Rename(kRootIno, "dir", kRootIno, "emptydir", 0));
  uint64_t moved = Lookup(kRootIno, "emptydir");
  EXPECT_EQ(Names(moved), (std::vector<std::string>{"a.txt", "c.txt", "sub"}));
  EXPECT_EQ(Lookup(kRootIno, "dir"), 0u);
}

TEST_F(OverlayTest, RedirectInsideRedirectedDirectoryResolves) {
  uint64_t two = Lookup(kRootIno, "two");
  ASSERT_OK(overlay_->Rename(kRootIno, "dir", two, "inner", 0));
  ASSERT_OK(overlay_->Rename(kRootIno, "two", kRootIno, "three", 0));
  Mount();
  EXPECT_EQ(Read(Walk("three/inner/sub/b.txt")), "b\n");
  EXPECT_EQ(Names(Walk("three")), (std::vector<std::string>{"f", "inner", "s1", "s2"}));
}

TEST_F(OverlayTest, WriteInRenamedDirectoryCopiesUpUnderTheNewName) {
  ASSERT_OK(overlay_->Rename(kRootIno, "dir", kRootIno, "moved", 0));
  uint64_t a = Walk("moved/a.txt");
  Write(a, "A");
  EXPECT_EQ(testing::ReadFile(Upper("moved/a.txt")), "A\n");
  EXPECT_EQ(Read(a), "A\n");
  EXPECT_EQ(ListDir(Upper("moved")), std::vector<std::string>{"a.txt"});
}

TEST_F(OverlayTest, OldNameOfRenamedDirectoryCanBeReused) {
  ASSERT_OK(overlay_->Rename(kRootIno, "dir", kRootIno, "moved", 0));
  ASSERT_OK_AND_ASSIGN(EntryOut made, overlay_->MakeDir(kRootIno, "dir", 0755, kRoot));
  EXPECT_EQ(Names(made.ino), std::vector<std::string>{});
  EXPECT_EQ(Names(Lookup(kRootIno, "moved")), (std::vector<std::string>{"a.txt", "c.txt", "sub"}));
}

TEST_F(OverlayTest, RmdirOfRenamedNonEmptyDirectoryIsENOTEMPTY) {
  ASSERT_OK(overlay_->Rename(kRootIno, "dir", kRootIno, "moved", 0));
  EXPECT_ERRNO(overlay_->RmDir(kRootIno, "moved"), ENOTEMPTY);
}

TEST_F(OverlayTest, RmdirOfRenamedEmptyDirectoryRemovesIt) {
  ASSERT_OK(overlay_->Rename(kRootIno, "emptydir", kRootIno, "moved", 0));
  ASSERT_OK(overlay_->RmDir(kRootIno, "moved"));
  EXPECT_EQ(Lookup(kRootIno, "moved"), 0u);
  EXPECT_EQ(Lookup(kRootIno, "emptydir"), 0u);
  EXPECT_FALSE(Exists(Upper("moved")));
  EXPECT_EQ(ListDir(work_), std::vector<std::string>{});
}

TEST_F(OverlayTest, NodeLookedUpBeforeParentRenameCopiesUpUnderTheNewName) {
  uint64_t a = Walk("dir/a.txt");
  ASSERT_OK(overlay_->Rename(kRootIno, "dir", kRootIno, "moved", 0));
  Write(a, "A");
  EXPECT_EQ(testing::ReadFile(Upper("moved/a.txt")), "A\n");
  EXPECT_FALSE(Exists(Upper("dir/a.txt")));
}

TEST_F(OverlayTest, RenameOfFileOntoItselfChangesNothing) {
  uint64_t ino = Lookup(kRootIno, "file");
  ASSERT_OK(overlay_->Rename(kRootIno, "file", kRootIno, "file", 0));
  EXPECT_EQ(Lookup(kRootIno, "file"), ino);
  EXPECT_EQ(ListDir(upper_), std::vector<std::string>{});
}

TEST_F(OverlayTest, RenameExchangeOfDirectoryAndFile) {
  ASSERT_OK(overlay_->Rename(kRootIno, "dir", kRootIno, "other", RENAME_EXCHANGE));
  Mount();
  EXPECT_EQ(Names(Lookup(kRootIno, "other")), (std::vector<std::string>{"a.txt", "c.txt", "sub"}));
  EXPECT_EQ(Read(Lookup(kRootIno, "dir")), "other file\n");
}

TEST_F(OverlayTest, RenameOfDirectoryOverEmptyUpperDirectory) {
  ASSERT_OK(overlay_->MakeDir(kRootIno, "target", 0755, kRoot));
  ASSERT_OK(overlay_->Rename(kRootIno, "dir", kRootIno, "target", 0));
  EXPECT_EQ(Names(Lookup(kRootIno, "target")), (std::vector<std::string>{"a.txt", "c.txt", "sub"}));
  EXPECT_EQ(ListDir(work_), std::vector<std::string>{});
}

}  // namespace
}  // namespace buildfs
