// UpperLayer over a real upper and work/: every change leaves the on-disk
// format of upper_format.h, in one step, and work/ empty once done.
#include "fs/layers/upper_layer.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs/common/fd.h"
#include "fs/layers/upper_format.h"
#include "fs/testing/status_testing.h"
#include "fs/testing/temp_dir.h"

namespace buildfs {
namespace {

using testing::Exists;
using testing::GetXattr;
using testing::ListDir;
using testing::Lstat;
using testing::MakeDirs;
using testing::MakeWhiteoutNode;
using testing::ReadFile;
using testing::TempDir;
using testing::WriteFile;

bool IsWhiteout(const std::string& path) {
  struct stat st = Lstat(path);
  return S_ISCHR(st.st_mode) && st.st_rdev == 0;
}

class UpperLayerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MakeDirs(upper_path_ + "/dir");
    MakeDirs(work_path_);
    auto upper = DirLayer::Open(upper_path_, {"", true, false, true});
    auto work = DirLayer::Open(work_path_, {"", false, false});
    ASSERT_OK(upper);
    ASSERT_OK(work);
    upper_ = std::make_unique<UpperLayer>(std::move(upper).value(), std::move(work).value());
  }

  UpperLayer::Parent At(const std::string& path) {
    auto at = upper_->OpenParent(path);
    EXPECT_OK(at);
    return at.ok() ? at.value() : UpperLayer::Parent{};
  }

  // A file built in work/ with `content`, as a copy-up or a create makes one.
  UpperLayer::Parent Built(const std::string& content) {
    auto tmp = upper_->NewWorkEntry("test", 7);
    EXPECT_OK(tmp);
    WriteFile(work_path_ + "/" + tmp->name, content);
    return tmp.value();
  }

  TempDir tmp_;
  std::string upper_path_ = tmp_.Path("upper");
  std::string work_path_ = tmp_.Path("work");
  std::unique_ptr<UpperLayer> upper_;
};

TEST_F(UpperLayerTest, InstallMovesABuiltEntryToAFreeName) {
  ASSERT_OK(upper_->Install(Built("new\n"), "dir/file", /*over_whiteout=*/false));
  EXPECT_EQ(ReadFile(upper_path_ + "/dir/file"), "new\n");
  EXPECT_EQ(ListDir(work_path_), std::vector<std::string>{});
}

TEST_F(UpperLayerTest, InstallNeverReplacesAnEntryAndDropsWhatWasBuilt) {
  WriteFile(upper_path_ + "/dir/file", "old\n");
  EXPECT_ERRNO(upper_->Install(Built("new\n"), "dir/file", false), EEXIST);
  EXPECT_EQ(ReadFile(upper_path_ + "/dir/file"), "old\n");
  EXPECT_EQ(ListDir(work_path_), std::vector<std::string>{});
}

TEST_F(UpperLayerTest, InstallOverAWhiteoutReplacesItWhole) {
  MakeWhiteoutNode(upper_path_ + "/dir/gone");
  auto tmp = upper_->NewWorkEntry("dir", 8);
  ASSERT_OK(tmp);
  MakeDirs(work_path_ + "/" + tmp->name);
  ASSERT_OK(upper_->Install(tmp.value(), "dir/gone", /*over_whiteout=*/true));
  EXPECT_TRUE(S_ISDIR(Lstat(upper_path_ + "/dir/gone").st_mode));
  EXPECT_EQ(ListDir(work_path_), std::vector<std::string>{});
}

TEST_F(UpperLayerTest, ReplaceWithWhiteoutLeavesOnlyTheWhiteout) {
  WriteFile(upper_path_ + "/dir/file", "x");
  ASSERT_OK(upper_->ReplaceWithWhiteout(At("dir/file"), 9));
  EXPECT_TRUE(IsWhiteout(upper_path_ + "/dir/file"));
  EXPECT_EQ(ListDir(work_path_), std::vector<std::string>{});
}

TEST_F(UpperLayerTest, MoveToWorkThenDiscardRemovesADirectoryWithItsContents) {
  MakeDirs(upper_path_ + "/dir/sub/deeper");
  MakeWhiteoutNode(upper_path_ + "/dir/sub/hidden");
  ASSERT_OK_AND_ASSIGN(UpperLayer::Parent gone, upper_->MoveToWork(At("dir/sub"), 10, /*leave_whiteout=*/true));
  EXPECT_TRUE(IsWhiteout(upper_path_ + "/dir/sub"));
  EXPECT_EQ(ListDir(work_path_).size(), 1u);
  upper_->Discard(gone);
  EXPECT_EQ(ListDir(work_path_), std::vector<std::string>{});
}

TEST_F(UpperLayerTest, MoveLeavesAWhiteoutWhenAskedTo) {
  WriteFile(upper_path_ + "/dir/a", "a");
  ASSERT_OK(upper_->Move(At("dir/a"), At("b"), /*leave_whiteout=*/true));
  EXPECT_TRUE(IsWhiteout(upper_path_ + "/dir/a"));
  EXPECT_EQ(ReadFile(upper_path_ + "/b"), "a");
  ASSERT_OK(upper_->Move(At("b"), At("c"), /*leave_whiteout=*/false));
  EXPECT_FALSE(Exists(upper_path_ + "/b"));
  EXPECT_EQ(ReadFile(upper_path_ + "/c"), "a");
}

TEST_F(UpperLayerTest, LinkOverAWhiteoutGivesTheFileASecondName) {
  WriteFile(upper_path_ + "/file", "f");
  MakeWhiteoutNode(upper_path_ + "/dir/name");
  ASSERT_OK(upper_->Link(At("file"), At("dir/name"), 11, /*over_whiteout=*/true));
  EXPECT_EQ(Lstat(upper_path_ + "/dir/name").st_ino, Lstat(upper_path_ + "/file").st_ino);
  EXPECT_EQ(Lstat(upper_path_ + "/file").st_nlink, 2u);
  EXPECT_EQ(ListDir(work_path_), std::vector<std::string>{});
  EXPECT_ERRNO(upper_->Link(At("file"), At("dir/name"), 11, /*over_whiteout=*/false), EEXIST);
}

TEST_F(UpperLayerTest, OrphanKeepsAnUnlinkedFileUntilDropped) {
  WriteFile(upper_path_ + "/dir/open", "still here");
  ASSERT_OK(upper_->MakeOrphan(At("dir/open"), 12, /*last_link=*/true));
  EXPECT_FALSE(Exists(upper_path_ + "/dir/open"));
  ASSERT_OK_AND_ASSIGN(LayerEntry e, upper_->LookupOrphan(12));
  EXPECT_EQ(e.st.st_size, 10);
  ASSERT_OK_AND_ASSIGN(UniqueFd fd, upper_->OpenOrphan(12, O_RDONLY));
  char buf[16] = {};
  EXPECT_EQ(pread(fd.get(), buf, sizeof(buf), 0), 10);
  upper_->DropOrphan(12);
  EXPECT_EQ(ListDir(work_path_), std::vector<std::string>{});
}

TEST_F(UpperLayerTest, OrphanOfAFileWithMoreNamesIsALinkOfItsOwn) {
  WriteFile(upper_path_ + "/dir/a", "a");
  ASSERT_EQ(link((upper_path_ + "/dir/a").c_str(), (upper_path_ + "/dir/b").c_str()), 0);
  ASSERT_OK(upper_->MakeOrphan(At("dir/a"), 13, /*last_link=*/false));
  EXPECT_TRUE(Exists(upper_path_ + "/dir/a"));
  EXPECT_EQ(Lstat(upper_path_ + "/dir/a").st_nlink, 3u);
}

TEST_F(UpperLayerTest, ClearWorkRemovesWhatAKilledDaemonLeft) {
  MakeDirs(work_path_ + "/copyup-1-1/deep");
  WriteFile(work_path_ + "/orphan-5", "x");
  ASSERT_OK(upper_->ClearWork());
  EXPECT_EQ(ListDir(work_path_), std::vector<std::string>{});
}

TEST_F(UpperLayerTest, OpenParentOfTheRootIsTheRootItself) {
  ASSERT_OK_AND_ASSIGN(UpperLayer::Parent root, upper_->OpenParent(""));
  EXPECT_EQ(root.name, ".");
  ASSERT_OK(SetOpaque(root.dir->get(), root.name));
  EXPECT_EQ(GetXattr(upper_path_, kOpaqueXattr), "y");
}

}  // namespace
}  // namespace buildfs
