// OstreeLayer over a real commit of a real tree.
#include "fs/layers/ostree_layer.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "fs/store/repo.h"
#include "fs/testing/status_testing.h"
#include "fs/testing/temp_dir.h"

namespace buildfs {
namespace {

using testing::MakeDirs;
using testing::MakeSymlink;
using testing::MakeTree;
using testing::TempDir;
using testing::WriteFile;

class OstreeLayerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string src = tmp_.Path("src");
    MakeTree(src, {{"dir/a.txt", "a"}, {"dir/sub1/", ""}, {"dir/sub2/x", "x"}, {"empty/", ""}});
    ASSERT_EQ(chmod((src + "/dir").c_str(), 0750), 0);
    testing::SetXattr(src + "/dir", "user.dir", "d");
    WriteFile(src + "/file.txt", "hello\n", 0640);
    ASSERT_EQ(lchown((src + "/file.txt").c_str(), 1000, 1001), 0);
    WriteFile(src + "/exec.sh", "#!/bin/sh\n", 0755);
    MakeSymlink("file.txt", src + "/link");
    ASSERT_EQ(mkfifo((src + "/fifo").c_str(), 0600), 0);
    ASSERT_EQ(chmod((src + "/fifo").c_str(), 0620), 0);  // past the umask
    WriteFile(src + "/xattr.txt", "x", 0644);
    testing::SetXattr(src + "/xattr.txt", "user.color", "blue");

    ASSERT_OK_AND_ASSIGN(auto repo, Repo::Create(tmp_.Path("repo")));
    ASSERT_OK_AND_ASSIGN(commit_, repo->CommitDirectory(src, "base", "base"));
    ASSERT_OK_AND_ASSIGN(layer_, OstreeLayer::Open(tmp_.Path("repo"), commit_));
    ASSERT_OK_AND_ASSIGN(ObjectReader reader, ObjectReader::Open(tmp_.Path("repo")));
    ASSERT_OK_AND_ASSIGN(info_, reader.LoadCommit(commit_));
  }

  LayerEntry Lookup(const std::string& path) {
    auto e = layer_->Lookup(path);
    EXPECT_OK(e);
    return e.ok() ? e.value() : LayerEntry{};
  }

  TempDir tmp_;
  std::string commit_;
  CommitInfo info_;
  std::unique_ptr<OstreeLayer> layer_;
};

// One key for every commit: numbers derived from paths survive a commit.
TEST_F(OstreeLayerTest, KeyIsTheSameForEveryCommitAndLayerIsImmutable) {
  EXPECT_EQ(layer_->key(), "ostree");
  EXPECT_EQ(layer_->commit(), commit_);
  EXPECT_TRUE(layer_->immutable());
}

TEST_F(OstreeLayerTest, OpenOfUnknownCommitFails) {
  EXPECT_ERRNO(OstreeLayer::Open(tmp_.Path("repo"), std::string(64, '0')), ENOENT);
}

TEST_F(OstreeLayerTest, RootIsADirectory) {
  LayerEntry e = Lookup("");
  EXPECT_EQ(e.kind, LayerEntry::kPresent);
  EXPECT_TRUE(S_ISDIR(e.st.st_mode));
}

TEST_F(OstreeLayerTest, FileHasCommittedAttributes) {
  LayerEntry e = Lookup("file.txt");
  ASSERT_EQ(e.kind, LayerEntry::kPresent);
  EXPECT_EQ(e.st.st_mode, S_IFREG | 0640u);
  EXPECT_EQ(e.st.st_uid, 1000u);
  EXPECT_EQ(e.st.st_gid, 1001u);
  EXPECT_EQ(e.st.st_size, 6);
  EXPECT_EQ(e.st.st_nlink, 1u);
}

bool SameTime(const struct timespec& a, const struct timespec& b) {
  return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

// Times as the tree had them on disk, nanoseconds included; ctime shows the mtime.
TEST_F(OstreeLayerTest, TimesAreTheImportedTreesOwn) {
  for (const char* rel : {"file.txt", "dir", "dir/sub2/x", "link", "fifo", ""}) {
    SCOPED_TRACE(rel);
    struct stat on_disk;
    ASSERT_EQ(lstat((tmp_.Path("src") + "/" + rel).c_str(), &on_disk), 0);
    LayerEntry e = Lookup(rel);
    EXPECT_TRUE(SameTime(e.st.st_mtim, on_disk.st_mtim));
    EXPECT_TRUE(SameTime(e.st.st_ctim, on_disk.st_mtim));
  }
  struct stat file;
  ASSERT_EQ(lstat(tmp_.Path("src/file.txt").c_str(), &file), 0);
  EXPECT_TRUE(SameTime(Lookup("file.txt").st.st_atim, file.st_atim));
}

class OstreeLayerTimesTest : public ::testing::Test {
 protected:
  TempDir tmp_;
};

TEST_F(OstreeLayerTimesTest, ABigDirectoryKeepsItsTimesInAFileNobodySees) {
  const std::string src = tmp_.Path("src");
  MakeDirs(src + "/big");
  for (int i = 0; i < 300; ++i) {
    std::string f = src + "/big/f" + std::to_string(i);
    WriteFile(f, std::to_string(i));
    struct timespec t[2] = {{1500000000 + i * 7919, i * 1000003}, {1400000000 + i * 104729, i * 999983}};
    ASSERT_EQ(utimensat(AT_FDCWD, f.c_str(), t, 0), 0);
  }
  ASSERT_OK_AND_ASSIGN(auto repo, Repo::Create(tmp_.Path("repo")));
  ASSERT_OK_AND_ASSIGN(std::string commit, repo->CommitDirectory(src, "base", "base"));
  ASSERT_OK_AND_ASSIGN(auto layer, OstreeLayer::Open(tmp_.Path("repo"), commit));
  std::vector<LayerDirent> names;
  ASSERT_OK(layer->ReadDir("big", &names));
  EXPECT_EQ(names.size(), 300u);
  for (const auto& n : names) EXPECT_NE(n.name, kTimesFile);
  ASSERT_OK_AND_ASSIGN(LayerEntry hidden, layer->Lookup(std::string("big/") + kTimesFile));
  EXPECT_EQ(hidden.kind, LayerEntry::kAbsent);
  for (int i : {0, 1, 150, 299}) {
    ASSERT_OK_AND_ASSIGN(LayerEntry e, layer->Lookup("big/f" + std::to_string(i)));
    EXPECT_EQ(e.st.st_mtim.tv_sec, 1400000000 + i * 104729) << i;
    EXPECT_EQ(e.st.st_mtim.tv_nsec, i * 999983) << i;
    EXPECT_EQ(e.st.st_atim.tv_sec, 1500000000 + i * 7919) << i;
    EXPECT_EQ(e.st.st_atim.tv_nsec, i * 1000003) << i;
  }
}

// Times are no part of a file's object: equal content, mode and owner share
// one object whatever their times.
TEST_F(OstreeLayerTimesTest, FilesDifferingOnlyInTimesShareOneObject) {
  const std::string src = tmp_.Path("src");
  MakeDirs(src);
  WriteFile(src + "/a", "same\n");
  WriteFile(src + "/b", "same\n");
  struct timespec t[2] = {{1000000000, 1}, {1000000000, 2}};
  ASSERT_EQ(utimensat(AT_FDCWD, (src + "/a").c_str(), t, 0), 0);
  ASSERT_OK_AND_ASSIGN(auto repo, Repo::Create(tmp_.Path("repo")));
  ASSERT_OK_AND_ASSIGN(std::string commit, repo->CommitDirectory(src, "base", "base"));
  ASSERT_OK_AND_ASSIGN(auto layer, OstreeLayer::Open(tmp_.Path("repo"), commit));
  auto a = layer->ObjectAt("a"), b = layer->ObjectAt("b");
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->checksum, b->checksum);
  ASSERT_OK_AND_ASSIGN(LayerEntry ea, layer->Lookup("a"));
  ASSERT_OK_AND_ASSIGN(LayerEntry eb, layer->Lookup("b"));
  EXPECT_NE(ea.st.st_mtim.tv_sec, eb.st.st_mtim.tv_sec);
}

TEST_F(OstreeLayerTest, ExecutableKeepsItsMode) {
  EXPECT_EQ(Lookup("exec.sh").st.st_mode, S_IFREG | 0755u);
}

TEST_F(OstreeLayerTest, DirectoryHasCommittedModeAndNlinkOfTwoPlusSubdirs) {
  LayerEntry e = Lookup("dir");
  ASSERT_EQ(e.kind, LayerEntry::kPresent);
  EXPECT_EQ(e.st.st_mode, S_IFDIR | 0750u);
  EXPECT_EQ(e.st.st_nlink, 4u);  // sub1, sub2
  EXPECT_EQ(Lookup("empty").st.st_nlink, 2u);
  EXPECT_EQ(Lookup("").st.st_nlink, 4u);  // dir, empty
}

TEST_F(OstreeLayerTest, NestedFileIsFound) {
  LayerEntry e = Lookup("dir/sub2/x");
  EXPECT_EQ(e.kind, LayerEntry::kPresent);
  EXPECT_EQ(e.st.st_size, 1);
}

TEST_F(OstreeLayerTest, MissingNameIsAbsent) {
  EXPECT_EQ(Lookup("nothing").kind, LayerEntry::kAbsent);
  EXPECT_EQ(Lookup("dir/nothing").kind, LayerEntry::kAbsent);
}

TEST_F(OstreeLayerTest, PathThroughAFileIsAbsent) {
  EXPECT_EQ(Lookup("file.txt/x").kind, LayerEntry::kAbsent);
  EXPECT_EQ(Lookup("dir/a.txt/x/y").kind, LayerEntry::kAbsent);
}

TEST_F(OstreeLayerTest, SymlinkIsReportedWithTargetLength) {
  LayerEntry e = Lookup("link");
  EXPECT_TRUE(S_ISLNK(e.st.st_mode));
  EXPECT_EQ(e.st.st_size, 8);  // "file.txt"
}

TEST_F(OstreeLayerTest, ReadLinkGivesTarget) {
  ASSERT_OK_AND_ASSIGN(std::string target, layer_->ReadLink("link"));
  EXPECT_EQ(target, "file.txt");
}

TEST_F(OstreeLayerTest, ReadLinkOfRegularFileIsEINVAL) {
  EXPECT_ERRNO(layer_->ReadLink("file.txt"), EINVAL);
  EXPECT_ERRNO(layer_->ReadLink("dir"), EINVAL);
}

TEST_F(OstreeLayerTest, FifoIsReportedAsFifo) {
  LayerEntry e = Lookup("fifo");
  EXPECT_EQ(e.st.st_mode, S_IFIFO | 0620u);
  EXPECT_EQ(e.st.st_size, 0);
  EXPECT_EQ(e.st.st_rdev, 0u);
}

TEST_F(OstreeLayerTest, ReadDirListsNamesAndMarksDirectories) {
  std::vector<LayerDirent> entries;
  ASSERT_OK(layer_->ReadDir("", &entries));
  std::vector<std::pair<std::string, bool>> got;
  for (const auto& e : entries) {
    EXPECT_FALSE(e.whiteout) << e.name;
    got.emplace_back(e.name, e.is_dir);
  }
  std::sort(got.begin(), got.end());
  std::vector<std::pair<std::string, bool>> expected = {
      {"dir", true},       {"empty", true}, {"exec.sh", false},  {"fifo", false},
      {"file.txt", false}, {"link", false}, {"xattr.txt", false}};
  EXPECT_EQ(got, expected);
}

TEST_F(OstreeLayerTest, ReadDirOfSubdirectory) {
  std::vector<LayerDirent> entries;
  ASSERT_OK(layer_->ReadDir("dir", &entries));
  std::vector<std::string> names;
  for (const auto& e : entries) names.push_back(e.name);
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"a.txt", "sub1", "sub2"}));
}

TEST_F(OstreeLayerTest, ReadDirOfFileIsENOTDIR) {
  std::vector<LayerDirent> entries;
  EXPECT_ERRNO(layer_->ReadDir("file.txt", &entries), ENOTDIR);
}

TEST_F(OstreeLayerTest, ReadDirOfMissingIsENOENT) {
  std::vector<LayerDirent> entries;
  EXPECT_ERRNO(layer_->ReadDir("nothing", &entries), ENOENT);
}

TEST_F(OstreeLayerTest, OpenReadsTheContent) {
  ASSERT_OK_AND_ASSIGN(UniqueFd fd, layer_->Open("file.txt", O_RDONLY));
  char buf[64];
  ssize_t n = pread(fd.get(), buf, sizeof(buf), 0);
  ASSERT_GE(n, 0);
  EXPECT_EQ(std::string(buf, static_cast<size_t>(n)), "hello\n");
}

TEST_F(OstreeLayerTest, OpenIsReadOnly) {
  ASSERT_OK_AND_ASSIGN(UniqueFd fd, layer_->Open("file.txt", O_RDWR));
  EXPECT_LT(write(fd.get(), "x", 1), 0);
  EXPECT_EQ(errno, EBADF);
}

TEST_F(OstreeLayerTest, OpenOfDirectoryIsEISDIR) {
  EXPECT_ERRNO(layer_->Open("dir", O_RDONLY), EISDIR);
}

TEST_F(OstreeLayerTest, OpenOfMissingIsENOENT) {
  EXPECT_ERRNO(layer_->Open("nothing", O_RDONLY), ENOENT);
}

TEST_F(OstreeLayerTest, UserXattrIsVisible) {
  ASSERT_OK_AND_ASSIGN(Xattrs xattrs, layer_->ListXattrs("xattr.txt"));
  EXPECT_EQ(xattrs, (Xattrs{{"user.color", "blue"}}));
}

TEST_F(OstreeLayerTest, DirectoryXattrIsVisible) {
  ASSERT_OK_AND_ASSIGN(Xattrs xattrs, layer_->ListXattrs("dir"));
  EXPECT_EQ(xattrs, (Xattrs{{"user.dir", "d"}}));
}

TEST_F(OstreeLayerTest, SpecialFileXattrIsHidden) {
  ASSERT_OK_AND_ASSIGN(Xattrs xattrs, layer_->ListXattrs("fifo"));
  EXPECT_TRUE(xattrs.empty());
}

TEST_F(OstreeLayerTest, ObjectAtFileIsItsContentObject) {
  auto obj = layer_->ObjectAt("file.txt");
  ASSERT_TRUE(obj.has_value());
  EXPECT_FALSE(obj->is_dir);
  ASSERT_OK_AND_ASSIGN(ObjectReader reader, ObjectReader::Open(tmp_.Path("repo")));
  ASSERT_OK_AND_ASSIGN(DirTree root, reader.LoadDirTree(info_.root_tree));
  auto it = std::find_if(root.files.begin(), root.files.end(),
                         [](const DirTree::File& f) { return f.name == "file.txt"; });
  ASSERT_NE(it, root.files.end());
  EXPECT_EQ(obj->checksum, it->checksum);
}

TEST_F(OstreeLayerTest, ObjectAtDirectoryIsItsTreeAndMeta) {
  auto obj = layer_->ObjectAt("dir");
  ASSERT_TRUE(obj.has_value());
  EXPECT_TRUE(obj->is_dir);
  ASSERT_OK_AND_ASSIGN(ObjectReader reader, ObjectReader::Open(tmp_.Path("repo")));
  ASSERT_OK_AND_ASSIGN(DirTree root, reader.LoadDirTree(info_.root_tree));
  auto it = std::find_if(root.dirs.begin(), root.dirs.end(),
                         [](const DirTree::Dir& d) { return d.name == "dir"; });
  ASSERT_NE(it, root.dirs.end());
  EXPECT_EQ(obj->checksum, it->tree);
  EXPECT_EQ(obj->meta, it->meta);
}

TEST_F(OstreeLayerTest, ObjectAtRootIsTheRootTree) {
  auto obj = layer_->ObjectAt("");
  ASSERT_TRUE(obj.has_value());
  EXPECT_EQ(obj->checksum, info_.root_tree);
  EXPECT_EQ(obj->meta, info_.root_meta);
}

TEST_F(OstreeLayerTest, ObjectAtMissingIsNothing) {
  EXPECT_FALSE(layer_->ObjectAt("nothing").has_value());
}

}  // namespace
}  // namespace buildfs
