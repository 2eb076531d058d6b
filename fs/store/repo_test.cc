// Repo (create, open, commit, refs, prune) and ObjectReader, over real
// bare-user repositories in temporary directories.
#include "fs/store/repo.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <optional>

#include "fs/store/objects.h"
#include "fs/testing/status_testing.h"
#include "fs/testing/temp_dir.h"

namespace buildfs {
namespace {

using testing::MakeDirs;
using testing::MakeSymlink;
using testing::MakeTree;
using testing::TempDir;
using testing::WriteFile;

class RepoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(repo_, Repo::Create(tmp_.Path("repo")));
    ASSERT_OK_AND_ASSIGN(ObjectReader reader, ObjectReader::Open(tmp_.Path("repo")));
    reader_ = std::make_unique<ObjectReader>(std::move(reader));
  }

  // The entry `name` of the root of `commit`: its content checksum ("" when absent).
  std::string RootFile(const std::string& commit, const std::string& name) {
    auto info = reader_->LoadCommit(commit);
    if (!info.ok()) return "";
    auto tree = reader_->LoadDirTree(info->root_tree);
    if (!tree.ok()) return "";
    for (const auto& f : tree->files) {
      if (f.name == name) return f.checksum;
    }
    return "";
  }

  std::optional<DirTree::Dir> RootDir(const std::string& commit, const std::string& name) {
    auto info = reader_->LoadCommit(commit);
    if (!info.ok()) return std::nullopt;
    auto tree = reader_->LoadDirTree(info->root_tree);
    if (!tree.ok()) return std::nullopt;
    for (const auto& d : tree->dirs) {
      if (d.name == name) return d;
    }
    return std::nullopt;
  }

  // Commits a tree holding just `entries` (MakeTree form) as `ref`.
  std::string CommitTree(const std::string& dir,
                         const std::vector<std::pair<std::string, std::string>>& entries,
                         const std::string& ref) {
    MakeTree(tmp_.Path(dir), entries);
    auto commit = repo_->CommitDirectory(tmp_.Path(dir), ref, "test");
    EXPECT_OK(commit);
    return commit.ok() ? commit.value() : "";
  }

  bool ObjectExists(const std::string& checksum, const char* ext) {
    return testing::Exists(tmp_.Path("repo/objects/" + ObjectReader::ObjectPath(checksum, ext)));
  }

  TempDir tmp_;
  std::unique_ptr<Repo> repo_;
  std::unique_ptr<ObjectReader> reader_;
};

// ------------------------------------------------------------ create/open

TEST_F(RepoTest, CreateMakesBareUserRepo) {
  std::string config = testing::ReadFile(tmp_.Path("repo/config"));
  EXPECT_NE(config.find("mode=bare-user"), std::string::npos) << config;
  EXPECT_TRUE(testing::Exists(tmp_.Path("repo/objects")));
}

TEST_F(RepoTest, OpenOfCreatedRepoSucceeds) {
  ASSERT_OK_AND_ASSIGN(auto opened, Repo::Open(tmp_.Path("repo")));
  EXPECT_EQ(opened->path(), tmp_.Path("repo"));
}

TEST_F(RepoTest, OpenOfPlainDirectoryFails) {
  MakeDirs(tmp_.Path("not-a-repo"));
  auto opened = Repo::Open(tmp_.Path("not-a-repo"));
  EXPECT_FALSE(opened.ok());
}

TEST_F(RepoTest, OpenOfMissingDirectoryFails) {
  auto opened = Repo::Open(tmp_.Path("nowhere"));
  EXPECT_FALSE(opened.ok());
}

TEST_F(RepoTest, OpenRefusesRepoInAnotherMode) {
  std::string out;
  ASSERT_EQ(
      testing::RunProgram({"ostree", "--repo=" + tmp_.Path("bare"), "init", "--mode=bare"}, &out),
      0)
      << out;
  EXPECT_ERRNO(Repo::Open(tmp_.Path("bare")), EINVAL);
}

TEST_F(RepoTest, CreateOverExistingRepoKeepsItsRefs) {
  std::string commit = CommitTree("src", {{"f", "x"}}, "keep");
  ASSERT_OK_AND_ASSIGN(auto again, Repo::Create(tmp_.Path("repo")));
  ASSERT_OK_AND_ASSIGN(std::string resolved, again->ResolveRef("keep"));
  EXPECT_EQ(resolved, commit);
}

// ------------------------------------------------------------ commits

class CommitTest : public RepoTest {
 protected:
  void SetUp() override {
    RepoTest::SetUp();
    std::string src = tmp_.Path("src");
    MakeDirs(src);
    WriteFile(src + "/file.txt", "hello\n", 0644);
    WriteFile(src + "/exec.sh", "#!/bin/sh\necho hi\n", 0755);
    MakeSymlink("file.txt", src + "/link");
    ASSERT_EQ(mkfifo((src + "/fifo").c_str(), 0640), 0);
    MakeDirs(src + "/empty", 0700);
    WriteFile(src + "/xattr.txt", "x", 0644);
    testing::SetXattr(src + "/xattr.txt", "user.color", "blue");
    WriteFile(src + "/owned.txt", "mine", 0600);
    ASSERT_EQ(lchown((src + "/owned.txt").c_str(), 1000, 1001), 0);
    WriteFile(src + "/suid", "s", 0755);
    ASSERT_EQ(chmod((src + "/suid").c_str(), 04755), 0);
    MakeTree(src, {{"dir/nested.txt", "nested"}});
    ASSERT_OK_AND_ASSIGN(commit_, repo_->CommitDirectory(src, "main", "first commit"));
  }

  FileObject Stat(const std::string& name) {
    std::string checksum = RootFile(commit_, name);
    EXPECT_FALSE(checksum.empty()) << name << " missing from the commit";
    auto obj = reader_->StatFile(checksum);
    EXPECT_OK(obj);
    return obj.ok() ? obj.value() : FileObject{};
  }

  std::string commit_;
};

TEST_F(CommitTest, CommitRecordsSubjectAndNoParent) {
  ASSERT_OK_AND_ASSIGN(CommitInfo info, reader_->LoadCommit(commit_));
  EXPECT_EQ(info.subject, "first commit");
  EXPECT_EQ(info.parent, "");
  EXPECT_GT(info.timestamp, 0u);
}

TEST_F(CommitTest, CommitPointsTheRefAtIt) {
  ASSERT_OK_AND_ASSIGN(std::string resolved, repo_->ResolveRef("main"));
  EXPECT_EQ(resolved, commit_);
}

TEST_F(CommitTest, RootTreeListsEveryEntrySortedByName) {
  ASSERT_OK_AND_ASSIGN(CommitInfo info, reader_->LoadCommit(commit_));
  ASSERT_OK_AND_ASSIGN(DirTree tree, reader_->LoadDirTree(info.root_tree));
  std::vector<std::string> files, dirs;
  for (const auto& f : tree.files) files.push_back(f.name);
  for (const auto& d : tree.dirs) dirs.push_back(d.name);
  EXPECT_EQ(files, (std::vector<std::string>{"exec.sh", "fifo", "file.txt", "link", "owned.txt",
                                             "suid", "xattr.txt"}));
  EXPECT_EQ(dirs, (std::vector<std::string>{"dir", "empty"}));
}

TEST_F(CommitTest, RootDirMetaKeepsSourceDirectoryMode) {
  ASSERT_OK_AND_ASSIGN(CommitInfo info, reader_->LoadCommit(commit_));
  ASSERT_OK_AND_ASSIGN(ObjectMeta meta, reader_->LoadDirMeta(info.root_meta));
  struct stat st = testing::Lstat(tmp_.Path("src"));
  EXPECT_EQ(meta.mode, st.st_mode);
  EXPECT_EQ(meta.uid, 0u);
}

TEST_F(CommitTest, RegularFileKeepsContentAndMode) {
  FileObject obj = Stat("file.txt");
  EXPECT_EQ(obj.meta.mode, S_IFREG | 0644u);
  EXPECT_EQ(obj.size, 6u);
  ASSERT_OK_AND_ASSIGN(UniqueFd fd, reader_->OpenFile(RootFile(commit_, "file.txt")));
  char buf[64];
  ssize_t n = pread(fd.get(), buf, sizeof(buf), 0);
  EXPECT_EQ(std::string(buf, n > 0 ? n : 0), "hello\n");
}

TEST_F(CommitTest, ExecutableKeepsExecuteBits) {
  EXPECT_EQ(Stat("exec.sh").meta.mode, S_IFREG | 0755u);
}

TEST_F(CommitTest, SymlinkKeepsTarget) {
  FileObject obj = Stat("link");
  EXPECT_TRUE(S_ISLNK(obj.meta.mode));
  EXPECT_EQ(obj.symlink_target, "file.txt");
  EXPECT_EQ(obj.size, 8u);
}

TEST_F(CommitTest, FifoIsStoredAsEmptyFileWithSpecialXattr) {
  FileObject obj = Stat("fifo");
  EXPECT_TRUE(S_ISREG(obj.meta.mode));
  EXPECT_EQ(obj.meta.mode & 07777, 0640u);
  EXPECT_EQ(obj.size, 0u);
  Xattrs expected = {{kSpecialXattr, "fifo"}};
  EXPECT_EQ(obj.meta.xattrs, expected);
}

TEST_F(CommitTest, EmptyDirectoryIsKeptWithItsMode) {
  auto dir = RootDir(commit_, "empty");
  ASSERT_TRUE(dir.has_value());
  ASSERT_OK_AND_ASSIGN(DirTree tree, reader_->LoadDirTree(dir->tree));
  EXPECT_TRUE(tree.files.empty());
  EXPECT_TRUE(tree.dirs.empty());
  ASSERT_OK_AND_ASSIGN(ObjectMeta meta, reader_->LoadDirMeta(dir->meta));
  EXPECT_EQ(meta.mode, S_IFDIR | 0700u);
}

TEST_F(CommitTest, NestedFileIsInItsDirectoryTree) {
  auto dir = RootDir(commit_, "dir");
  ASSERT_TRUE(dir.has_value());
  ASSERT_OK_AND_ASSIGN(DirTree tree, reader_->LoadDirTree(dir->tree));
  ASSERT_EQ(tree.files.size(), 1u);
  EXPECT_EQ(tree.files[0].name, "nested.txt");
  ASSERT_OK_AND_ASSIGN(FileObject obj, reader_->StatFile(tree.files[0].checksum));
  EXPECT_EQ(obj.size, 6u);
}

TEST_F(CommitTest, UserXattrIsKept) {
  Xattrs expected = {{"user.color", "blue"}};
  EXPECT_EQ(Stat("xattr.txt").meta.xattrs, expected);
}

TEST_F(CommitTest, OwnerIsKept) {
  FileObject obj = Stat("owned.txt");
  EXPECT_EQ(obj.meta.uid, 1000u);
  EXPECT_EQ(obj.meta.gid, 1001u);
  EXPECT_EQ(obj.meta.mode, S_IFREG | 0600u);
}

TEST_F(CommitTest, SetuidBitIsKept) { EXPECT_EQ(Stat("suid").meta.mode, S_IFREG | 04755u); }

TEST_F(CommitTest, OstreeFsckPasses) {
  std::string out;
  int rc = testing::RunProgram({"ostree", "--repo=" + tmp_.Path("repo"), "fsck"}, &out);
  EXPECT_EQ(rc, 0) << out;
}

TEST_F(CommitTest, OstreeCliReadsTheCommittedFile) {
  std::string out;
  int rc = testing::RunProgram(
      {"ostree", "--repo=" + tmp_.Path("repo"), "cat", "main", "/dir/nested.txt"}, &out);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(out, "nested");
}

TEST_F(RepoTest, DeviceNodeIsStoredWithItsNumbers) {
  MakeDirs(tmp_.Path("src"));
  ASSERT_EQ(mknod(tmp_.Path("src/null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
  ASSERT_EQ(chmod(tmp_.Path("src/null").c_str(), 0666), 0);
  ASSERT_OK_AND_ASSIGN(std::string commit, repo_->CommitDirectory(tmp_.Path("src"), "m", "s"));
  ASSERT_OK_AND_ASSIGN(FileObject obj, reader_->StatFile(RootFile(commit, "null")));
  EXPECT_EQ(obj.meta.mode, S_IFREG | 0666u);
  EXPECT_EQ(obj.meta.xattrs, (Xattrs{{kSpecialXattr, "chr 1 3"}}));
}

TEST_F(RepoTest, CommitOfNoDirectoryIsAnEmptyTree) {
  ASSERT_OK_AND_ASSIGN(std::string commit, repo_->CommitDirectory("", "empty", "nothing"));
  ASSERT_OK_AND_ASSIGN(CommitInfo info, reader_->LoadCommit(commit));
  ASSERT_OK_AND_ASSIGN(DirTree tree, reader_->LoadDirTree(info.root_tree));
  EXPECT_TRUE(tree.files.empty());
  EXPECT_TRUE(tree.dirs.empty());
  ASSERT_OK_AND_ASSIGN(ObjectMeta meta, reader_->LoadDirMeta(info.root_meta));
  EXPECT_EQ(meta.mode, S_IFDIR | 0755u);
}

TEST_F(RepoTest, CommitOfMissingDirectoryFailsWithENOENT) {
  EXPECT_ERRNO(repo_->CommitDirectory(tmp_.Path("nowhere"), "x", "s"), ENOENT);
  EXPECT_ERRNO(repo_->ResolveRef("x"), ENOENT);
}

TEST_F(RepoTest, CommitDoesNotStoreInternalXattrs) {
  MakeTree(tmp_.Path("src"), {{"f", "x"}});
  testing::SetXattr(tmp_.Path("src/f"), "trusted.overlay.opaque", "y");
  testing::SetXattr(tmp_.Path("src/f"), "trusted.buildfs.ino", "42");
  testing::SetXattr(tmp_.Path("src/f"), "user.keep", "1");
  ASSERT_OK_AND_ASSIGN(std::string commit, repo_->CommitDirectory(tmp_.Path("src"), "m", "s"));
  ASSERT_OK_AND_ASSIGN(FileObject obj, reader_->StatFile(RootFile(commit, "f")));
  Xattrs expected = {{"user.keep", "1"}};
  EXPECT_EQ(obj.meta.xattrs, expected);
}

TEST_F(RepoTest, IdenticalFilesShareOneObject) {
  std::string commit = CommitTree("src", {{"a", "same"}, {"b", "same"}}, "m");
  EXPECT_EQ(RootFile(commit, "a"), RootFile(commit, "b"));
}

// ------------------------------------------------------------ object reader

TEST_F(RepoTest, ObjectReaderRejectsMalformedChecksum) {
  EXPECT_ERRNO(reader_->StatFile("not-a-checksum"), EINVAL);
  EXPECT_ERRNO(reader_->LoadDirTree("../../etc/passwd"), EINVAL);
}

TEST_F(RepoTest, ObjectReaderGivesENOENTForMissingObject) {
  EXPECT_ERRNO(reader_->LoadCommit(std::string(64, 'a')), ENOENT);
}

TEST_F(RepoTest, ObjectReaderOpenOfPlainDirectoryFails) {
  MakeDirs(tmp_.Path("plain"));
  EXPECT_ERRNO(ObjectReader::Open(tmp_.Path("plain")), ENOENT);
}

TEST(SpecialEncodingTest, RoundTripsEveryKind) {
  struct Case {
    mode_t mode;
    dev_t rdev;
    std::string encoded;
  } cases[] = {
      {S_IFIFO | 0644, 0, "fifo"},
      {S_IFSOCK | 0755, 0, "socket"},
      {S_IFCHR | 0600, makedev(1, 3), "chr 1 3"},
      {S_IFBLK | 0660, makedev(8, 17), "blk 8 17"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(EncodeSpecial(c.mode, c.rdev), c.encoded);
    mode_t mode = c.mode & 07777;
    dev_t rdev = 123;
    ASSERT_TRUE(DecodeSpecial(c.encoded, &mode, &rdev)) << c.encoded;
    EXPECT_EQ(mode, c.mode) << c.encoded;
    EXPECT_EQ(rdev, c.rdev) << c.encoded;
  }
}

TEST(SpecialEncodingTest, DecodeRefusesUnknownValue) {
  mode_t mode = 0644;
  dev_t rdev = 0;
  EXPECT_FALSE(DecodeSpecial("door", &mode, &rdev));
  EXPECT_FALSE(DecodeSpecial("", &mode, &rdev));
}

// ------------------------------------------------------------ refs

TEST_F(RepoTest, ResolveOfMissingRefIsENOENT) {
  EXPECT_ERRNO(repo_->ResolveRef("no/such/ref"), ENOENT);
}

TEST_F(RepoTest, SetRefPointsRefAtCommit) {
  std::string commit = CommitTree("src", {{"f", "x"}}, "first");
  ASSERT_OK(repo_->SetRef("builds/demo/base", commit));
  ASSERT_OK_AND_ASSIGN(std::string resolved, repo_->ResolveRef("builds/demo/base"));
  EXPECT_EQ(resolved, commit);
}

TEST_F(RepoTest, SetRefMovesAnExistingRef) {
  std::string one = CommitTree("one", {{"f", "1"}}, "ref");
  std::string two = CommitTree("two", {{"f", "2"}}, "other");
  ASSERT_NE(one, two);
  ASSERT_OK(repo_->SetRef("ref", two));
  ASSERT_OK_AND_ASSIGN(std::string resolved, repo_->ResolveRef("ref"));
  EXPECT_EQ(resolved, two);
}

TEST_F(RepoTest, ListRefsAcceptsPrefixWithTrailingSlash) {
  // The form repo.h gives as its example: "builds/demo/".
  std::string commit = CommitTree("src", {{"f", "x"}}, "top");
  ASSERT_OK(repo_->SetRef("builds/demo/base", commit));
  ASSERT_OK(repo_->SetRef("builds/demo/layer/1", commit));
  ASSERT_OK(repo_->SetRef("builds/other/base", commit));
  ASSERT_OK_AND_ASSIGN(auto refs, repo_->ListRefs("builds/demo/"));
  EXPECT_EQ(refs, (std::vector<std::string>{"builds/demo/base", "builds/demo/layer/1"}));
}

TEST_F(RepoTest, ListRefsUnderBuildDirectoryGivesFullNames) {
  // The form lifecycle/builds.cc uses: "builds/" + name, no trailing slash.
  std::string commit = CommitTree("src", {{"f", "x"}}, "top");
  ASSERT_OK(repo_->SetRef("builds/demo/base", commit));
  ASSERT_OK(repo_->SetRef("builds/demo/layer/1", commit));
  ASSERT_OK(repo_->SetRef("builds/demo2/base", commit));
  ASSERT_OK_AND_ASSIGN(auto refs, repo_->ListRefs("builds/demo"));
  EXPECT_EQ(refs, (std::vector<std::string>{"builds/demo/base", "builds/demo/layer/1"}));
}

TEST_F(RepoTest, ListRefsWithoutPrefixGivesEveryRef) {
  std::string commit = CommitTree("src", {{"f", "x"}}, "top");
  ASSERT_OK(repo_->SetRef("builds/demo/base", commit));
  ASSERT_OK_AND_ASSIGN(auto refs, repo_->ListRefs(""));
  EXPECT_EQ(refs, (std::vector<std::string>{"builds/demo/base", "top"}));
}

TEST_F(RepoTest, ListRefsOfUnknownPrefixIsEmpty) {
  ASSERT_OK_AND_ASSIGN(auto refs, repo_->ListRefs("builds/nobody"));
  EXPECT_TRUE(refs.empty());
}

TEST_F(RepoTest, DeleteRefRemovesIt) {
  CommitTree("src", {{"f", "x"}}, "gone");
  ASSERT_OK(repo_->DeleteRef("gone"));
  EXPECT_ERRNO(repo_->ResolveRef("gone"), ENOENT);
  ASSERT_OK_AND_ASSIGN(auto refs, repo_->ListRefs(""));
  EXPECT_TRUE(refs.empty());
}

// ------------------------------------------------------------ prune

TEST_F(RepoTest, PruneRemovesUnreferencedCommitObjects) {
  CommitTree("kept", {{"kept.txt", "kept content"}}, "kept");
  std::string dropped = CommitTree("dropped", {{"dropped.txt", "dropped content"}}, "dropped");
  std::string file = RootFile(dropped, "dropped.txt");
  ASSERT_FALSE(file.empty());
  ASSERT_OK(repo_->DeleteRef("dropped"));

  ASSERT_OK_AND_ASSIGN(Repo::PruneStats stats, repo_->Prune());

  EXPECT_GE(stats.objects_pruned, 2);  // at least the commit and its one file
  EXPECT_FALSE(ObjectExists(dropped, "commit"));
  EXPECT_FALSE(ObjectExists(file, "file"));
}

TEST_F(RepoTest, PruneKeepsReferencedCommitObjects) {
  std::string kept = CommitTree("kept", {{"kept.txt", "kept content"}}, "kept");
  std::string dropped = CommitTree("dropped", {{"dropped.txt", "dropped content"}}, "dropped");
  std::string file = RootFile(kept, "kept.txt");
  ASSERT_OK(repo_->DeleteRef("dropped"));

  ASSERT_OK(repo_->Prune());

  EXPECT_TRUE(ObjectExists(kept, "commit"));
  EXPECT_TRUE(ObjectExists(file, "file"));
  ASSERT_OK_AND_ASSIGN(CommitInfo info, reader_->LoadCommit(kept));
  EXPECT_OK(reader_->LoadDirTree(info.root_tree));
  std::string out;
  EXPECT_EQ(testing::RunProgram({"ostree", "--repo=" + tmp_.Path("repo"), "fsck"}, &out), 0) << out;
}

TEST_F(RepoTest, PruneKeepsObjectsSharedWithReferencedCommit) {
  std::string kept = CommitTree("kept", {{"shared.txt", "shared"}}, "kept");
  CommitTree("dropped", {{"shared.txt", "shared"}, {"own.txt", "own"}}, "dropped");
  ASSERT_OK(repo_->DeleteRef("dropped"));
  ASSERT_OK(repo_->Prune());
  EXPECT_TRUE(ObjectExists(RootFile(kept, "shared.txt"), "file"));
}

TEST_F(RepoTest, PruneOfFullyReferencedRepoRemovesNothing) {
  CommitTree("src", {{"f", "x"}}, "m");
  ASSERT_OK_AND_ASSIGN(Repo::PruneStats stats, repo_->Prune());
  EXPECT_EQ(stats.objects_pruned, 0);
  EXPECT_GT(stats.objects_total, 0);
}

}  // namespace
}  // namespace buildfs
