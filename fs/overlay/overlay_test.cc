// The merge rules of Overlay, called directly (no FUSE): lookups, reads,
// merged listings, lookup counts, xattrs and the shared cache/. The fixture
// (overlay_fixture.h) stacks a real OSTree commit, a real cache directory and
// real upper/work directories as fs/lifecycle/mounter.cc does.
#include "fs/overlay/overlay.h"

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
#include "fs/overlay/overlay_fixture.h"
#include "fs/testing/status_testing.h"
#include "fs/testing/temp_dir.h"

namespace buildfs {
namespace {

using testing::GetXattr;
using testing::ListDir;
using testing::MakeTree;
using testing::WriteFile;

// ------------------------------------------------------------ lookups and reads

TEST_F(OverlayTest, LookupFindsBaseFile) {
  auto e = overlay_->Lookup(kRootIno, "file");
  ASSERT_OK(e);
  EXPECT_NE(e->ino, 0u);
  EXPECT_NE(e->ino, kRootIno);
  EXPECT_EQ(e->st.st_ino, e->ino);
  EXPECT_EQ(e->st.st_mode, S_IFREG | 0644u);
  EXPECT_EQ(e->st.st_size, 10);
  EXPECT_TRUE(e->immutable);
}

TEST_F(OverlayTest, LookupOfMissingNameIsNegative) {
  auto e = overlay_->Lookup(kRootIno, "nothing");
  ASSERT_OK(e);
  EXPECT_EQ(e->ino, 0u);
  EXPECT_EQ(overlay_->node_count(), 1u);
}

TEST_F(OverlayTest, LookupInAFileIsENOTDIR) {
  uint64_t file = Lookup(kRootIno, "file");
  EXPECT_ERRNO(overlay_->Lookup(file, "x"), ENOTDIR);
}

TEST_F(OverlayTest, GetAttrOfUnknownInodeIsESTALE) {
  EXPECT_ERRNO(overlay_->GetAttr(123456789), ESTALE);
}

TEST_F(OverlayTest, RootIsADirectory) {
  struct stat st = Attr(kRootIno);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_ino, kRootIno);
}

TEST_F(OverlayTest, ReadOfBaseFileGivesItsContent) {
  EXPECT_EQ(Read(Walk("dir/sub/b.txt")), "b\n");
}

TEST_F(OverlayTest, CacheFilesAppearUnderCache) {
  uint64_t cache = Lookup(kRootIno, "cache");
  ASSERT_NE(cache, 0u);
  EXPECT_TRUE(S_ISDIR(Attr(cache).st_mode));
  EXPECT_EQ(Names(cache), std::vector<std::string>{"tool.bin"});
  EXPECT_EQ(Read(Lookup(cache, "tool.bin")), "tool\n");
}

TEST_F(OverlayTest, CacheFilesAreNotAtTheRoot) { EXPECT_EQ(Lookup(kRootIno, "tool.bin"), 0u); }

TEST_F(OverlayTest, ReadLinkOfBaseSymlinkGivesTarget) {
  uint64_t link = Lookup(kRootIno, "link");
  EXPECT_TRUE(S_ISLNK(Attr(link).st_mode));
  ASSERT_OK_AND_ASSIGN(std::string target, overlay_->ReadLink(link));
  EXPECT_EQ(target, "file");
}

TEST_F(OverlayTest, BaseFifoIsAFifo) {
  uint64_t fifo = Lookup(kRootIno, "fifo");
  EXPECT_EQ(Attr(fifo).st_mode, S_IFIFO | 0640u);
}

TEST_F(OverlayTest, InodeNumberIsStableAcrossLookups) {
  uint64_t first = Lookup(kRootIno, "file");
  overlay_->Forget(first, 1);
  ASSERT_EQ(overlay_->node_count(), 1u);
  EXPECT_EQ(Lookup(kRootIno, "file"), first);
  EXPECT_NE(Lookup(kRootIno, "other"), first);
}

TEST_F(OverlayTest, InodeNumberIsStableAcrossRemount) {
  uint64_t first = Walk("dir/a.txt");
  Mount();
  EXPECT_EQ(Walk("dir/a.txt"), first);
}

// ------------------------------------------------------------ directories

TEST_F(OverlayTest, ReaddirMergesAndDeduplicates) {
  uint64_t dir = Lookup(kRootIno, "dir");
  EntryOut entry;
  ASSERT_OK_AND_ASSIGN(auto fh, overlay_->Create(dir, "new.txt", 0644, O_RDWR, kRoot, &entry));
  overlay_->Release(std::move(fh));
  Write(Lookup(dir, "a.txt"), "A");  // now in the upper and the base
  ASSERT_OK(overlay_->Unlink(dir, "c.txt"));

  ASSERT_OK_AND_ASSIGN(auto h, overlay_->OpenDir(dir));
  std::vector<std::string> names;
  for (const auto& e : h->entries) names.push_back(e.name);
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{".", "..", "a.txt", "new.txt", "sub"}));
  std::map<std::string, DirEntryOut> by_name;
  for (const auto& e : h->entries) by_name.emplace(e.name, e);
  EXPECT_EQ(by_name.at("sub").type, static_cast<mode_t>(S_IFDIR));
  ASSERT_OK_AND_ASSIGN(DirEntryOut a, overlay_->ReadDirEntry(dir, "a.txt"));
  EXPECT_EQ(a.type, static_cast<mode_t>(S_IFREG));
  EXPECT_EQ(by_name.at(".").ino, dir);
  EXPECT_EQ(by_name.at("..").ino, kRootIno);
}

TEST_F(OverlayTest, ReaddirInodesMatchLookups) {
  ASSERT_OK_AND_ASSIGN(auto h, overlay_->OpenDir(kRootIno));
  for (const auto& e : h->entries) {
    if (e.name == "." || e.name == "..") continue;
    ASSERT_OK_AND_ASSIGN(DirEntryOut read, overlay_->ReadDirEntry(kRootIno, e.name));
    EXPECT_EQ(read.ino, Lookup(kRootIno, e.name)) << e.name;
  }
}

TEST_F(OverlayTest, RootListsBaseAndCacheOnce) {
  EXPECT_EQ(Names(kRootIno), (std::vector<std::string>{"cache", "dir", "emptydir", "fifo", "file",
                                                       "link", "other", "owned", "suid", "two"}));
}

TEST_F(OverlayTest, ForgetReleasesNodes) {
  ASSERT_EQ(overlay_->node_count(), 1u);
  uint64_t dir = Lookup(kRootIno, "dir");
  uint64_t sub = Lookup(dir, "sub");
  uint64_t b = Lookup(sub, "b.txt");
  uint64_t b_again = Lookup(sub, "b.txt");
  ASSERT_EQ(b, b_again);
  EXPECT_EQ(overlay_->node_count(), 4u);

  overlay_->Forget(dir, 1);  // still named as a parent: kept
  EXPECT_EQ(overlay_->node_count(), 4u);
  overlay_->Forget(b, 1);
  EXPECT_EQ(overlay_->node_count(), 4u);  // one lookup left
  overlay_->Forget(b, 1);
  overlay_->Forget(sub, 1);
  EXPECT_EQ(overlay_->node_count(), 1u);
}

TEST_F(OverlayTest, ForgetOfRootKeepsIt) {
  overlay_->Forget(kRootIno, 1);
  EXPECT_EQ(overlay_->node_count(), 1u);
  EXPECT_OK(overlay_->GetAttr(kRootIno));
}

TEST_F(OverlayTest, MergedDirNlinkCountsSubdirs) {
  uint64_t two = Lookup(kRootIno, "two");
  EXPECT_EQ(Attr(two).st_nlink, 4u);  // s1, s2
  ASSERT_OK(overlay_->MakeDir(two, "s3", 0755, kRoot));
  EXPECT_EQ(Attr(two).st_nlink, 5u);
  ASSERT_OK(overlay_->RmDir(two, "s1"));
  EXPECT_EQ(Attr(two).st_nlink, 4u);
}

TEST_F(OverlayTest, RootNlinkCountsCacheAndBaseSubdirs) {
  EXPECT_EQ(Attr(kRootIno).st_nlink, 6u);  // cache, dir, emptydir, two
}

TEST_F(OverlayTest, RenameOfSubdirUpdatesBothParentsNlink) {
  uint64_t two = Lookup(kRootIno, "two");
  uint64_t dir = Lookup(kRootIno, "dir");
  ASSERT_OK(overlay_->MakeDir(two, "s3", 0755, kRoot));  // make `two` merged
  ASSERT_OK(overlay_->MakeDir(dir, "extra", 0755, kRoot));
  EXPECT_EQ(Attr(two).st_nlink, 5u);
  EXPECT_EQ(Attr(dir).st_nlink, 4u);  // sub, extra
  ASSERT_OK(overlay_->Rename(two, "s1", dir, "s1", 0));
  EXPECT_EQ(Attr(two).st_nlink, 4u);
  EXPECT_EQ(Attr(dir).st_nlink, 5u);
}

TEST_F(OverlayTest, PrepareClearsWork) {
  WriteFile(work_ + "/leftover", "x");
  MakeTree(work_, {{"copyup-1-1/deep/file", "x"}});
  ASSERT_OK(overlay_->Prepare());
  EXPECT_EQ(ListDir(work_), std::vector<std::string>{});
}

// ------------------------------------------------------------ xattrs

TEST_F(OverlayTest, GetXattrOfBaseFile) {
  uint64_t ino = Lookup(kRootIno, "owned");
  ASSERT_OK_AND_ASSIGN(std::string value, overlay_->GetXattr(ino, "user.color"));
  EXPECT_EQ(value, "blue");
  EXPECT_ERRNO(overlay_->GetXattr(ino, "user.none"), ENODATA);
}

TEST_F(OverlayTest, SetXattrOnLowerFileCopiesUp) {
  uint64_t ino = Lookup(kRootIno, "owned");
  ASSERT_OK(overlay_->SetXattr(ino, "user.size", "large", 0));
  EXPECT_EQ(GetXattr(Upper("owned"), "user.size"), "large");
  EXPECT_EQ(GetXattr(Upper("owned"), "user.color"), "blue");
  ASSERT_OK_AND_ASSIGN(std::string value, overlay_->GetXattr(ino, "user.size"));
  EXPECT_EQ(value, "large");
  EXPECT_EQ(XattrNames(ino), (std::vector<std::string>{"user.color", "user.size"}));
  EXPECT_EQ(Attr(ino).st_ino, ino);
}

TEST_F(OverlayTest, RemoveXattrOfLowerFileCopiesUp) {
  uint64_t ino = Lookup(kRootIno, "owned");
  ASSERT_OK(overlay_->RemoveXattr(ino, "user.color"));
  EXPECT_FALSE(GetXattr(Upper("owned"), "user.color").has_value());
  EXPECT_EQ(XattrNames(ino), std::vector<std::string>{});
  EXPECT_ERRNO(overlay_->RemoveXattr(ino, "user.color"), ENODATA);
}

TEST_F(OverlayTest, InternalXattrsAreHidden) {
  uint64_t file = Lookup(kRootIno, "owned");
  Write(file, "x");  // the upper copy carries trusted.buildfs.ino
  ASSERT_OK(overlay_->Rename(kRootIno, "dir", kRootIno, "moved", 0));  // redirect
  ASSERT_OK_AND_ASSIGN(EntryOut fresh,
                       overlay_->MakeDir(kRootIno, "fresh", 0755, kRoot));  // opaque
  uint64_t moved = Lookup(kRootIno, "moved");
  uint64_t fifo = Lookup(kRootIno, "fifo");  // user.buildfs.special in the repo
  ASSERT_TRUE(GetXattr(Upper("owned"), kInoXattr).has_value());
  ASSERT_TRUE(GetXattr(Upper("moved"), kRedirectXattr).has_value());

  EXPECT_EQ(XattrNames(file), std::vector<std::string>{"user.color"});
  EXPECT_EQ(XattrNames(moved), std::vector<std::string>{});
  EXPECT_EQ(XattrNames(fresh.ino), std::vector<std::string>{});
  EXPECT_EQ(XattrNames(fifo), std::vector<std::string>{});
  EXPECT_ERRNO(overlay_->GetXattr(file, kInoXattr), ENODATA);
  EXPECT_ERRNO(overlay_->GetXattr(moved, kRedirectXattr), ENODATA);
  EXPECT_ERRNO(overlay_->GetXattr(fresh.ino, kOpaqueXattr), ENODATA);
  EXPECT_ERRNO(overlay_->GetXattr(fifo, "user.buildfs.special"), ENODATA);
}

TEST_F(OverlayTest, SetXattrOfInternalNameIsEPERM) {
  uint64_t file = Lookup(kRootIno, "file");
  uint64_t dir = Lookup(kRootIno, "dir");
  EXPECT_ERRNO(overlay_->SetXattr(dir, kOpaqueXattr, "y", 0), EPERM);
  EXPECT_ERRNO(overlay_->SetXattr(dir, kRedirectXattr, "/etc", 0), EPERM);
  EXPECT_ERRNO(overlay_->SetXattr(file, kInoXattr, "1", 0), EPERM);
  EXPECT_ERRNO(overlay_->SetXattr(file, "user.buildfs.special", "fifo", 0), EPERM);
  EXPECT_EQ(ListDir(upper_), std::vector<std::string>{});  // nothing copied up
}

TEST_F(OverlayTest, RemoveXattrOfInternalNameLeavesTheMarker) {
  uint64_t file = Lookup(kRootIno, "file");
  Write(file, "x");
  EXPECT_FALSE(overlay_->RemoveXattr(file, kInoXattr).ok());
  EXPECT_TRUE(GetXattr(Upper("file"), kInoXattr).has_value());
}

// ------------------------------------------------------------ names

TEST_F(OverlayTest, LookupRefusesDotAndDotDot) {
  // "." and ".." are not names a directory holds: they must not resolve to
  // the directory itself, nor to whatever lies above a layer's root.
  for (const char* name : {".", ".."}) {
    auto e = overlay_->Lookup(kRootIno, name);
    EXPECT_TRUE(!e.ok() || e->ino == 0) << name << " resolved to inode " << e->ino;
  }
  EXPECT_EQ(overlay_->node_count(), 1u);
}

// ------------------------------------------------------------ inode numbers in use

TEST_F(OverlayTest, NewFileDoesNotTakeOverInodeOfUnlinkedFileStillLookedUp) {
  EntryOut x;
  ASSERT_OK_AND_ASSIGN(auto fh, overlay_->Create(kRootIno, "x", 0644, O_RDWR, kRoot, &x));
  overlay_->Release(std::move(fh));
  ASSERT_OK(overlay_->Unlink(kRootIno, "x"));  // the kernel still holds x's lookup

  EntryOut y;
  ASSERT_OK_AND_ASSIGN(auto fh2, overlay_->Create(kRootIno, "y", 0644, O_RDWR, kRoot, &y));
  overlay_->Release(std::move(fh2));

  EXPECT_NE(y.ino, x.ino);
  EXPECT_ERRNO(overlay_->GetAttr(x.ino), ENOENT);
}

TEST_F(OverlayTest, NewDirectoryDoesNotTakeOverInodeOfRemovedDirectoryStillLookedUp) {
  // A process whose working directory was removed keeps the old inode.
  ASSERT_OK_AND_ASSIGN(EntryOut d1, overlay_->MakeDir(kRootIno, "d1", 0755, kRoot));
  ASSERT_OK(overlay_->RmDir(kRootIno, "d1"));

  ASSERT_OK_AND_ASSIGN(EntryOut d2, overlay_->MakeDir(kRootIno, "d2", 0755, kRoot));
  ASSERT_OK(overlay_->MakeDir(d2.ino, "inside", 0755, kRoot));

  EXPECT_NE(d2.ino, d1.ino);
  EXPECT_ERRNO(overlay_->GetAttr(d1.ino), ENOENT);
  EXPECT_ERRNO(overlay_->OpenDir(d1.ino), ENOENT);
}

// ------------------------------------------------------------ cache

TEST_F(OverlayTest, CacheEntriesAreNotImmutable) {
  uint64_t cache = Lookup(kRootIno, "cache");
  ASSERT_OK_AND_ASSIGN(EntryOut tool, overlay_->Lookup(cache, "tool.bin"));
  EXPECT_FALSE(tool.immutable);
  ASSERT_OK_AND_ASSIGN(EntryOut missing, overlay_->Lookup(cache, "nothing"));
  EXPECT_FALSE(missing.immutable);
}

TEST_F(OverlayTest, BaseEntriesAreImmutable) {
  uint64_t dir = Lookup(kRootIno, "dir");
  ASSERT_OK_AND_ASSIGN(EntryOut a, overlay_->Lookup(dir, "a.txt"));
  EXPECT_TRUE(a.immutable);
  ASSERT_OK_AND_ASSIGN(EntryOut missing, overlay_->Lookup(dir, "nothing"));
  EXPECT_TRUE(missing.immutable);
}

// The shared cache shows only cache/ at the root: the root's other names
// change only through the overlay, so their absence may be cached for long.
TEST_F(OverlayTest, NamesAtTheRootBesideCacheAreStable) {
  ASSERT_OK_AND_ASSIGN(EntryOut missing, overlay_->Lookup(kRootIno, "nothing"));
  EXPECT_TRUE(missing.immutable);
  testing::MakeDirs(cache_ + "/nothing");  // inside the cache dir: still only at cache/nothing
  ASSERT_OK_AND_ASSIGN(EntryOut still, overlay_->Lookup(kRootIno, "nothing"));
  EXPECT_EQ(still.ino, 0u);
  uint64_t cache = Lookup(kRootIno, "cache");
  EXPECT_NE(Lookup(cache, "nothing"), 0u);
}

TEST_F(OverlayTest, FilesAddedToCacheByOthersAppear) {
  uint64_t cache = Lookup(kRootIno, "cache");
  EXPECT_EQ(Lookup(cache, "later.bin"), 0u);
  WriteFile(cache_ + "/later.bin", "later");
  EXPECT_EQ(Read(Lookup(cache, "later.bin")), "later");
}

TEST_F(OverlayTest, UnlinkInCacheLeavesTheSharedCacheUntouched) {
  uint64_t cache = Lookup(kRootIno, "cache");
  ASSERT_OK(overlay_->Unlink(cache, "tool.bin"));
  EXPECT_EQ(Lookup(cache, "tool.bin"), 0u);
  EXPECT_EQ(testing::ReadFile(cache_ + "/tool.bin"), "tool\n");
  EXPECT_TRUE(IsWhiteout(Upper("cache/tool.bin")));
}

TEST_F(OverlayTest, WriteToCacheFileCopiesItUp) {
  uint64_t tool = Walk("cache/tool.bin");
  Write(tool, "TOOL");
  EXPECT_EQ(Read(tool), "TOOL\n");
  EXPECT_EQ(testing::ReadFile(cache_ + "/tool.bin"), "tool\n");
  EXPECT_EQ(testing::ReadFile(Upper("cache/tool.bin")), "TOOL\n");
}

}  // namespace
}  // namespace buildfs
