// DirLayer over real directories: plain, overlay format (whiteouts and
// markers) and prefix mode, and its refusal to follow symlinks.
#include "fs/layers/dir_layer.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>

#include "fs/layers/upper_format.h"
#include "fs/testing/status_testing.h"
#include "fs/testing/temp_dir.h"

namespace buildfs {
namespace {

using testing::MakeDirs;
using testing::MakeSymlink;
using testing::MakeTree;
using testing::MakeWhiteoutNode;
using testing::TempDir;
using testing::WriteFile;

class DirLayerTest : public ::testing::Test {
 protected:
  std::unique_ptr<DirLayer> OpenLayer(DirLayerOptions options) {
    auto layer = DirLayer::Open(root_, std::move(options));
    EXPECT_OK(layer);
    return layer.ok() ? std::move(layer).value() : nullptr;
  }

  static LayerEntry Lookup(DirLayer& layer, const std::string& path) {
    auto e = layer.Lookup(path);
    EXPECT_OK(e);
    return e.ok() ? e.value() : LayerEntry{};
  }

  static std::vector<std::string> Names(DirLayer& layer, const std::string& path) {
    std::vector<LayerDirent> entries;
    EXPECT_OK(layer.ReadDir(path, &entries));
    std::vector<std::string> names;
    for (const auto& e : entries) names.push_back(e.name);
    std::sort(names.begin(), names.end());
    return names;
  }

  TempDir tmp_;
  std::string root_ = tmp_.Path("layer");
};

// ------------------------------------------------------------ plain

TEST_F(DirLayerTest, OpenOfMissingDirectoryFails) {
  EXPECT_ERRNO(DirLayer::Open(tmp_.Path("nowhere"), DirLayerOptions{}), ENOENT);
}

TEST_F(DirLayerTest, KeyNamesTheDirectory) {
  MakeDirs(root_);
  auto layer = OpenLayer({"", false, true});
  EXPECT_EQ(layer->key(), "dir:" + root_);
  EXPECT_TRUE(layer->immutable());
  EXPECT_FALSE(OpenLayer({"", false, false})->immutable());
}

TEST_F(DirLayerTest, LookupReportsRealAttributes) {
  MakeTree(root_, {{"f", "12345"}});
  ASSERT_EQ(lchown((root_ + "/f").c_str(), 1000, 1001), 0);
  ASSERT_EQ(chmod((root_ + "/f").c_str(), 0604), 0);
  auto layer = OpenLayer({});
  LayerEntry e = Lookup(*layer, "f");
  struct stat real = testing::Lstat(root_ + "/f");
  EXPECT_EQ(e.kind, LayerEntry::kPresent);
  EXPECT_EQ(e.st.st_mode, S_IFREG | 0604u);
  EXPECT_EQ(e.st.st_uid, 1000u);
  EXPECT_EQ(e.st.st_gid, 1001u);
  EXPECT_EQ(e.st.st_size, 5);
  EXPECT_EQ(e.st.st_ino, real.st_ino);
  EXPECT_EQ(e.st.st_dev, real.st_dev);
}

TEST_F(DirLayerTest, LookupOfMissingIsAbsent) {
  MakeTree(root_, {{"f", ""}});
  auto layer = OpenLayer({});
  EXPECT_EQ(Lookup(*layer, "nothing").kind, LayerEntry::kAbsent);
  EXPECT_EQ(Lookup(*layer, "no/such/dir").kind, LayerEntry::kAbsent);
  EXPECT_EQ(Lookup(*layer, "f/below-a-file").kind, LayerEntry::kAbsent);
}

TEST_F(DirLayerTest, OpenReadsContent) {
  MakeTree(root_, {{"d/f", "content"}});
  auto layer = OpenLayer({});
  ASSERT_OK_AND_ASSIGN(UniqueFd fd, layer->Open("d/f", O_RDONLY));
  char buf[32];
  ssize_t n = pread(fd.get(), buf, sizeof(buf), 0);
  EXPECT_EQ(std::string(buf, n > 0 ? n : 0), "content");
}

TEST_F(DirLayerTest, ReadLinkGivesTarget) {
  MakeDirs(root_);
  MakeSymlink("some/target", root_ + "/l");
  auto layer = OpenLayer({});
  ASSERT_OK_AND_ASSIGN(std::string target, layer->ReadLink("l"));
  EXPECT_EQ(target, "some/target");
}

TEST_F(DirLayerTest, ReadDirMarksDirectories) {
  MakeTree(root_, {{"d/", ""}, {"f", ""}});
  auto layer = OpenLayer({});
  std::vector<LayerDirent> entries;
  ASSERT_OK(layer->ReadDir("", &entries));
  ASSERT_EQ(entries.size(), 2u);
  for (const auto& e : entries) EXPECT_EQ(e.is_dir, e.name == "d") << e.name;
}

TEST_F(DirLayerTest, ListXattrsShowsUserXattrsAndHidesInternalOnes) {
  MakeTree(root_, {{"f", ""}});
  testing::SetXattr(root_ + "/f", "user.color", "blue");
  testing::SetXattr(root_ + "/f", "trusted.buildfs.ino", "7");
  testing::SetXattr(root_ + "/f", "trusted.overlay.redirect", "/x");
  testing::SetXattr(root_ + "/f", "user.buildfs.special", "fifo");
  auto layer = OpenLayer({"", true, false});
  ASSERT_OK_AND_ASSIGN(Xattrs xattrs, layer->ListXattrs("f"));
  EXPECT_EQ(xattrs, (Xattrs{{"user.color", "blue"}}));
}

// ------------------------------------------------------------ overlay format

TEST_F(DirLayerTest, WhiteoutIsReportedInOverlayFormat) {
  MakeDirs(root_);
  MakeWhiteoutNode(root_ + "/gone");
  auto layer = OpenLayer({"", true, false});
  EXPECT_EQ(Lookup(*layer, "gone").kind, LayerEntry::kWhiteout);
}

TEST_F(DirLayerTest, WhiteoutIsAPlainDeviceOutsideOverlayFormat) {
  MakeDirs(root_);
  MakeWhiteoutNode(root_ + "/gone");
  auto layer = OpenLayer({"", false, false});
  LayerEntry e = Lookup(*layer, "gone");
  EXPECT_EQ(e.kind, LayerEntry::kPresent);
  EXPECT_TRUE(S_ISCHR(e.st.st_mode));
}

TEST_F(DirLayerTest, OtherCharacterDeviceIsNotAWhiteout) {
  MakeDirs(root_);
  ASSERT_EQ(mknod((root_ + "/null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
  auto layer = OpenLayer({"", true, false});
  EXPECT_EQ(Lookup(*layer, "null").kind, LayerEntry::kPresent);
}

TEST_F(DirLayerTest, ReadDirMarksWhiteouts) {
  MakeTree(root_, {{"f", ""}});
  MakeWhiteoutNode(root_ + "/gone");
  auto layer = OpenLayer({"", true, false});
  std::vector<LayerDirent> entries;
  ASSERT_OK(layer->ReadDir("", &entries));
  ASSERT_EQ(entries.size(), 2u);
  for (const auto& e : entries) EXPECT_EQ(e.whiteout, e.name == "gone") << e.name;
}

TEST_F(DirLayerTest, OpaqueMarkerIsRead) {
  MakeTree(root_, {{"d/", ""}});
  testing::SetXattr(root_ + "/d", kOpaqueXattr, "y");
  auto layer = OpenLayer({"", true, false});
  LayerEntry e = Lookup(*layer, "d");
  EXPECT_TRUE(e.opaque);
  EXPECT_EQ(e.redirect, "");
}

TEST_F(DirLayerTest, RedirectMarkerIsReadAsRelativePath) {
  MakeTree(root_, {{"d/", ""}});
  testing::SetXattr(root_ + "/d", kRedirectXattr, "/x");
  auto layer = OpenLayer({"", true, false});
  LayerEntry e = Lookup(*layer, "d");
  EXPECT_EQ(e.redirect, "x");
  EXPECT_FALSE(e.opaque);
}

TEST_F(DirLayerTest, InoMarkerIsRead) {
  MakeTree(root_, {{"f", ""}});
  testing::SetXattr(root_ + "/f", kInoXattr, "123");
  auto layer = OpenLayer({"", true, false});
  EXPECT_EQ(Lookup(*layer, "f").ino, 123u);
}

TEST_F(DirLayerTest, MarkersAreIgnoredOutsideOverlayFormat) {
  MakeTree(root_, {{"d/", ""}});
  testing::SetXattr(root_ + "/d", kOpaqueXattr, "y");
  testing::SetXattr(root_ + "/d", kRedirectXattr, "/x");
  testing::SetXattr(root_ + "/d", kInoXattr, "123");
  auto layer = OpenLayer({"", false, false});
  LayerEntry e = Lookup(*layer, "d");
  EXPECT_FALSE(e.opaque);
  EXPECT_EQ(e.redirect, "");
  EXPECT_EQ(e.ino, 0u);
}

TEST_F(DirLayerTest, MarkersWrittenByUpperFormatAreRead) {
  MakeTree(root_, {{"d/", ""}, {"r/", ""}, {"f", ""}});
  UniqueFd dir(open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_OK(SetOpaque(dir.get(), "d"));
  ASSERT_OK(SetRedirect(dir.get(), "r", "a/b"));
  ASSERT_OK(SetIno(dir.get(), "f", 99));
  ASSERT_OK(MakeWhiteout(dir.get(), "w"));
  auto layer = OpenLayer({"", true, false});
  EXPECT_TRUE(Lookup(*layer, "d").opaque);
  EXPECT_EQ(Lookup(*layer, "r").redirect, "a/b");
  EXPECT_EQ(Lookup(*layer, "f").ino, 99u);
  EXPECT_EQ(Lookup(*layer, "w").kind, LayerEntry::kWhiteout);
  EXPECT_EQ(testing::GetXattr(root_ + "/r", kRedirectXattr), "/a/b");
}

// ------------------------------------------------------------ prefix

TEST_F(DirLayerTest, PrefixMapsPathsInsideIt) {
  MakeTree(root_, {{"x", "cached"}});
  auto layer = OpenLayer({"cache", false, false});
  LayerEntry e = Lookup(*layer, "cache/x");
  EXPECT_EQ(e.kind, LayerEntry::kPresent);
  EXPECT_EQ(e.st.st_size, 6);
  ASSERT_OK_AND_ASSIGN(UniqueFd fd, layer->Open("cache/x", O_RDONLY));
  char buf[16];
  ssize_t n = pread(fd.get(), buf, sizeof(buf), 0);
  EXPECT_EQ(std::string(buf, n > 0 ? n : 0), "cached");
}

TEST_F(DirLayerTest, PrefixItselfIsTheLayerRoot) {
  MakeTree(root_, {{"x", ""}});
  auto layer = OpenLayer({"cache", false, false});
  LayerEntry e = Lookup(*layer, "cache");
  EXPECT_EQ(e.kind, LayerEntry::kPresent);
  EXPECT_EQ(e.st.st_ino, testing::Lstat(root_).st_ino);
  EXPECT_EQ(Names(*layer, "cache"), std::vector<std::string>{"x"});
}

TEST_F(DirLayerTest, PrefixSynthesizesTheRootEntry) {
  MakeTree(root_, {{"x", ""}});
  auto layer = OpenLayer({"cache", false, false});
  LayerEntry e = Lookup(*layer, "");
  EXPECT_EQ(e.kind, LayerEntry::kPresent);
  EXPECT_TRUE(S_ISDIR(e.st.st_mode));
  std::vector<LayerDirent> entries;
  ASSERT_OK(layer->ReadDir("", &entries));
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].name, "cache");
  EXPECT_TRUE(entries[0].is_dir);
  EXPECT_FALSE(entries[0].whiteout);
}

TEST_F(DirLayerTest, PrefixHidesPathsOutsideIt) {
  MakeTree(root_, {{"x", ""}});
  auto layer = OpenLayer({"cache", false, false});
  EXPECT_EQ(Lookup(*layer, "x").kind, LayerEntry::kAbsent);
  EXPECT_EQ(Lookup(*layer, "cachex").kind, LayerEntry::kAbsent);
  EXPECT_EQ(Lookup(*layer, "other/x").kind, LayerEntry::kAbsent);
  EXPECT_ERRNO(layer->Open("x", O_RDONLY), ENOENT);
}

TEST_F(DirLayerTest, NestedPrefixSynthesizesEveryAncestor) {
  MakeTree(root_, {{"x", ""}});
  auto layer = OpenLayer({"a/b", false, false});
  EXPECT_EQ(Names(*layer, ""), std::vector<std::string>{"a"});
  EXPECT_EQ(Names(*layer, "a"), std::vector<std::string>{"b"});
  EXPECT_TRUE(S_ISDIR(Lookup(*layer, "a").st.st_mode));
  EXPECT_EQ(Names(*layer, "a/b"), std::vector<std::string>{"x"});
  EXPECT_EQ(Lookup(*layer, "a/b/x").kind, LayerEntry::kPresent);
}

// ------------------------------------------------------------ symlinks

class DirLayerSymlinkTest : public DirLayerTest {
 protected:
  void SetUp() override {
    MakeTree(root_, {{"real/x", "inside"}});
    MakeSymlink("/etc", root_ + "/link");
    MakeSymlink("..", root_ + "/up");
    MakeSymlink("real", root_ + "/rel");
    layer_ = OpenLayer({"", true, false});
  }
  std::unique_ptr<DirLayer> layer_;
};

TEST_F(DirLayerSymlinkTest, SymlinkItselfIsPresent) {
  LayerEntry e = Lookup(*layer_, "link");
  EXPECT_EQ(e.kind, LayerEntry::kPresent);
  EXPECT_TRUE(S_ISLNK(e.st.st_mode));
}

TEST_F(DirLayerSymlinkTest, LookupThroughAbsoluteSymlinkIsAbsent) {
  EXPECT_EQ(Lookup(*layer_, "link/passwd").kind, LayerEntry::kAbsent);
  EXPECT_EQ(Lookup(*layer_, "link/x").kind, LayerEntry::kAbsent);
}

TEST_F(DirLayerSymlinkTest, LookupThroughRelativeSymlinkIsAbsent) {
  EXPECT_EQ(Lookup(*layer_, "rel/x").kind, LayerEntry::kAbsent);
  EXPECT_EQ(Lookup(*layer_, "up/layer").kind, LayerEntry::kAbsent);
}

TEST_F(DirLayerSymlinkTest, OpenThroughSymlinkFails) {
  EXPECT_FALSE(layer_->Open("link/passwd", O_RDONLY).ok());
  EXPECT_FALSE(layer_->Open("rel/x", O_RDONLY).ok());
}

TEST_F(DirLayerSymlinkTest, OpenOfSymlinkItselfFails) {
  EXPECT_FALSE(layer_->Open("rel", O_RDONLY).ok());
}

TEST_F(DirLayerSymlinkTest, ReadDirThroughSymlinkFails) {
  std::vector<LayerDirent> entries;
  EXPECT_FALSE(layer_->ReadDir("link", &entries).ok());
  EXPECT_TRUE(entries.empty());
}

TEST_F(DirLayerSymlinkTest, ListXattrsThroughSymlinkFails) {
  EXPECT_FALSE(layer_->ListXattrs("link/passwd").ok());
}

TEST_F(DirLayerSymlinkTest, ReadLinkThroughSymlinkFails) {
  EXPECT_FALSE(layer_->ReadLink("up/layer/link").ok());
}

}  // namespace
}  // namespace buildfs
