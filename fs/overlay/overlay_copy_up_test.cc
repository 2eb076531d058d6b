// Overlay: copy-up on first modification, hard links and open files that
// outlive their names (fixture: overlay_fixture.h).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <future>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "fs/layers/upper_format.h"
#include "fs/overlay/overlay.h"
#include "fs/overlay/overlay_fixture.h"
#include "fs/testing/gated_layer.h"
#include "fs/testing/status_testing.h"
#include "fs/testing/temp_dir.h"

namespace buildfs {
namespace {

using testing::Exists;
using testing::GetXattr;
using testing::ListDir;
using testing::Lstat;

// ------------------------------------------------------------ copy-up

TEST_F(OverlayTest, CopyUpKeepsInodeNumber) {
  uint64_t ino = Lookup(kRootIno, "file");
  ASSERT_OK_AND_ASSIGN(auto fh, overlay_->Open(ino, O_RDWR));
  ASSERT_OK_AND_ASSIGN(size_t n, WriteAt(fh.get(), "BASE"));
  ASSERT_EQ(n, 4u);
  overlay_->Release(std::move(fh));

  EXPECT_EQ(Attr(ino).st_ino, ino);
  EXPECT_TRUE(S_ISREG(Lstat(Upper("file")).st_mode));
  overlay_->Forget(ino, 1);
  EXPECT_EQ(Lookup(kRootIno, "file"), ino);
}

TEST_F(OverlayTest, CopyUpInodeNumberSurvivesRemount) {
  uint64_t ino = Lookup(kRootIno, "file");
  Write(ino, "changed");
  Mount();
  EXPECT_EQ(Lookup(kRootIno, "file"), ino);
}

TEST_F(OverlayTest, WriteToLowerFileChangesOnlyTheCopy) {
  uint64_t ino = Lookup(kRootIno, "file");
  Write(ino, "BASE");
  EXPECT_EQ(Read(ino), "BASE file\n");
  EXPECT_EQ(testing::ReadFile(Upper("file")), "BASE file\n");
  ASSERT_OK_AND_ASSIGN(auto base, OstreeLayer::Open(tmp_.Path("repo"), commit_));
  ASSERT_OK_AND_ASSIGN(UniqueFd fd, base->Open("file", O_RDONLY));
  EXPECT_EQ(ReadFd(fd.get()), "base file\n");
}

TEST_F(OverlayTest, CopyUpKeepsModeOwnerXattrs) {
  uint64_t ino = Lookup(kRootIno, "owned");
  ASSERT_OK_AND_ASSIGN(auto fh, overlay_->Open(ino, O_RDWR));  // copies up, writes nothing
  overlay_->Release(std::move(fh));

  struct stat st = Lstat(Upper("owned"));
  EXPECT_EQ(st.st_mode, S_IFREG | 0640u);
  EXPECT_EQ(st.st_uid, 1000u);
  EXPECT_EQ(st.st_gid, 1001u);
  EXPECT_EQ(static_cast<uint64_t>(st.st_mtim.tv_sec), commit_time_);
  EXPECT_EQ(GetXattr(Upper("owned"), "user.color"), "blue");
  EXPECT_EQ(testing::ReadFile(Upper("owned")), "owned\n");
  struct stat attr = Attr(ino);
  EXPECT_EQ(attr.st_uid, 1000u);
  EXPECT_EQ(attr.st_mode, S_IFREG | 0640u);
}

TEST_F(OverlayTest, CopyUpKeepsSetuidBit) {
  uint64_t ino = Lookup(kRootIno, "suid");
  ASSERT_OK_AND_ASSIGN(auto fh, overlay_->Open(ino, O_RDWR));
  overlay_->Release(std::move(fh));
  EXPECT_EQ(Lstat(Upper("suid")).st_mode, S_IFREG | 04755u);
}

TEST_F(OverlayTest, CopyUpOfFileCopiesUpItsParents) {
  uint64_t b = Walk("dir/sub/b.txt");
  Write(b, "B");
  EXPECT_EQ(testing::ReadFile(Upper("dir/sub/b.txt")), "B\n");
  EXPECT_EQ(ListDir(Upper("dir")), std::vector<std::string>{"sub"});
  EXPECT_FALSE(GetXattr(Upper("dir"), kOpaqueXattr).has_value());
  EXPECT_EQ(Names(Walk("dir")), (std::vector<std::string>{"a.txt", "c.txt", "sub"}));
}

TEST_F(OverlayTest, CopyUpOfFifoMakesAFifo) {
  uint64_t fifo = Lookup(kRootIno, "fifo");
  SetAttrIn in;
  in.set_mode = true;
  in.mode = 0600;
  ASSERT_OK_AND_ASSIGN(EntryOut out, overlay_->SetAttr(fifo, in, nullptr));
  EXPECT_EQ(out.st.st_mode, S_IFIFO | 0600u);
  EXPECT_EQ(Lstat(Upper("fifo")).st_mode, S_IFIFO | 0600u);
  EXPECT_FALSE(GetXattr(Upper("fifo"), "user.buildfs.special").has_value());
}

TEST_F(OverlayTest, CopyUpOfSymlinkKeepsTarget) {
  uint64_t link = Lookup(kRootIno, "link");
  SetAttrIn in;
  in.set_uid = true;
  in.uid = 1000;
  ASSERT_OK(overlay_->SetAttr(link, in, nullptr));
  struct stat st = Lstat(Upper("link"));
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  EXPECT_EQ(st.st_uid, 1000u);
  ASSERT_OK_AND_ASSIGN(std::string target, overlay_->ReadLink(link));
  EXPECT_EQ(target, "file");
}

TEST_F(OverlayTest, SetAttrTruncatesLowerFile) {
  uint64_t ino = Lookup(kRootIno, "file");
  SetAttrIn in;
  in.set_size = true;
  in.size = 4;
  ASSERT_OK_AND_ASSIGN(EntryOut out, overlay_->SetAttr(ino, in, nullptr));
  EXPECT_EQ(out.st.st_size, 4);
  EXPECT_EQ(Read(ino), "base");
}

TEST_F(OverlayTest, OpenWithTruncEmptiesLowerFile) {
  uint64_t ino = Lookup(kRootIno, "file");
  ASSERT_OK_AND_ASSIGN(auto fh, overlay_->Open(ino, O_WRONLY | O_TRUNC));
  overlay_->Release(std::move(fh));
  EXPECT_EQ(Attr(ino).st_size, 0);
  EXPECT_EQ(Read(ino), "");
}

TEST_F(OverlayTest, ReadOnlyHandleSeesWritesAfterCopyUp) {
  uint64_t ino = Lookup(kRootIno, "file");
  ASSERT_OK_AND_ASSIGN(auto reader, overlay_->Open(ino, O_RDONLY));
  ASSERT_OK_AND_ASSIGN(int before, overlay_->ReadFd(reader.get()));
  EXPECT_EQ(ReadFd(before), "base file\n");

  Write(ino, "BASE");

  ASSERT_OK_AND_ASSIGN(int after, overlay_->ReadFd(reader.get()));
  EXPECT_EQ(ReadFd(after), "BASE file\n");
  overlay_->Release(std::move(reader));
}

TEST_F(OverlayTest, WriteThroughReadOnlyHandleIsEBADF) {
  uint64_t ino = Lookup(kRootIno, "file");
  ASSERT_OK_AND_ASSIGN(auto fh, overlay_->Open(ino, O_RDONLY));
  EXPECT_ERRNO(WriteAt(fh.get(), "x"), EBADF);
  overlay_->Release(std::move(fh));
  EXPECT_FALSE(Exists(Upper("file")));
}

TEST_F(OverlayTest, OpenOfDirectoryIsEISDIR) {
  EXPECT_ERRNO(overlay_->Open(Lookup(kRootIno, "dir"), O_RDONLY), EISDIR);
}

// ------------------------------------------------------------ hard links

TEST_F(OverlayTest, HardLinkSharesInode) {
  uint64_t ino = Lookup(kRootIno, "file");
  ASSERT_OK_AND_ASSIGN(EntryOut linked, overlay_->Link(ino, kRootIno, "hard"));
  EXPECT_EQ(linked.ino, ino);
  EXPECT_EQ(linked.st.st_nlink, 2u);
  EXPECT_EQ(Lookup(kRootIno, "hard"), ino);
  EXPECT_EQ(Attr(ino).st_nlink, 2u);
  EXPECT_EQ(Read(ino), "base file\n");
  EXPECT_EQ(Lstat(Upper("file")).st_ino, Lstat(Upper("hard")).st_ino);
}

TEST_F(OverlayTest, HardLinkOfNewFileSharesInode) {
  EntryOut entry;
  ASSERT_OK_AND_ASSIGN(auto fh, overlay_->Create(kRootIno, "new", 0644, O_RDWR, kRoot, &entry));
  overlay_->Release(std::move(fh));
  ASSERT_OK_AND_ASSIGN(EntryOut linked, overlay_->Link(entry.ino, kRootIno, "hard"));
  EXPECT_EQ(linked.ino, entry.ino);
  EXPECT_EQ(linked.st.st_nlink, 2u);
  overlay_->Forget(entry.ino, 2);
  Mount();
  EXPECT_EQ(Lookup(kRootIno, "hard"), Lookup(kRootIno, "new"));
}

TEST_F(OverlayTest, WriteThroughOneLinkIsSeenThroughTheOther) {
  uint64_t ino = Lookup(kRootIno, "file");
  ASSERT_OK(overlay_->Link(ino, kRootIno, "hard"));
  Write(ino, "BASE");
  EXPECT_EQ(testing::ReadFile(Upper("hard")), "BASE file\n");
}

TEST_F(OverlayTest, UnlinkOfOneHardLinkKeepsTheOther) {
  uint64_t ino = Lookup(kRootIno, "file");
  ASSERT_OK(overlay_->Link(ino, kRootIno, "hard"));
  ASSERT_OK(overlay_->Unlink(kRootIno, "file"));
  EXPECT_EQ(Lookup(kRootIno, "file"), 0u);
  EXPECT_EQ(Lookup(kRootIno, "hard"), ino);
  EXPECT_EQ(Attr(ino).st_nlink, 1u);
  EXPECT_EQ(Read(ino), "base file\n");
}

TEST_F(OverlayTest, LinkOfDirectoryIsEPERM) {
  EXPECT_ERRNO(overlay_->Link(Lookup(kRootIno, "dir"), kRootIno, "dir2"), EPERM);
}

TEST_F(OverlayTest, LinkOverWhiteout) {
  uint64_t ino = Lookup(kRootIno, "file");
  ASSERT_OK(overlay_->Unlink(kRootIno, "other"));
  ASSERT_OK_AND_ASSIGN(EntryOut linked, overlay_->Link(ino, kRootIno, "other"));
  EXPECT_EQ(linked.ino, ino);
  EXPECT_EQ(Read(Lookup(kRootIno, "other")), "base file\n");
  EXPECT_EQ(ListDir(work_), std::vector<std::string>{});
}

// ------------------------------------------------------------ open files

TEST_F(OverlayTest, OpenFileSurvivesUnlink) {
  uint64_t ino = Lookup(kRootIno, "file");
  ASSERT_OK_AND_ASSIGN(auto fh, overlay_->Open(ino, O_RDWR));
  ASSERT_OK_AND_ASSIGN(size_t n, WriteAt(fh.get(), "BASE"));
  ASSERT_EQ(n, 4u);

  ASSERT_OK(overlay_->Unlink(kRootIno, "file"));

  EXPECT_EQ(Lookup(kRootIno, "file"), 0u);
  ASSERT_OK_AND_ASSIGN(int rfd, overlay_->ReadFd(fh.get()));
  EXPECT_EQ(ReadFd(rfd), "BASE file\n");
  struct stat st = Attr(ino);
  EXPECT_EQ(st.st_nlink, 0u);
  EXPECT_EQ(st.st_size, 10);
  EXPECT_TRUE(IsWhiteout(Upper("file")));

  overlay_->Forget(ino, 1);
  overlay_->Release(std::move(fh));
  EXPECT_EQ(ListDir(work_), std::vector<std::string>{});
  EXPECT_EQ(overlay_->node_count(), 1u);
}

TEST_F(OverlayTest, ReadOnlyOpenLowerFileSurvivesUnlink) {
  uint64_t ino = Lookup(kRootIno, "file");
  ASSERT_OK_AND_ASSIGN(auto fh, overlay_->Open(ino, O_RDONLY));

  ASSERT_OK(overlay_->Unlink(kRootIno, "file"));

  EXPECT_EQ(Lookup(kRootIno, "file"), 0u);
  ASSERT_OK_AND_ASSIGN(int fd, overlay_->ReadFd(fh.get()));
  EXPECT_EQ(ReadFd(fd), "base file\n");
  // fstat(2) on the open file asks for its attributes.
  auto attr = overlay_->GetAttr(ino);
  ASSERT_OK(attr);
  EXPECT_EQ(attr->st.st_nlink, 0u);
  EXPECT_EQ(attr->st.st_size, 10);
  overlay_->Forget(ino, 1);
  overlay_->Release(std::move(fh));
  EXPECT_EQ(overlay_->node_count(), 1u);
}

TEST_F(OverlayTest, OrphanIsDeletedWhenForgottenAfterRelease) {
  EntryOut entry;
  ASSERT_OK_AND_ASSIGN(auto fh, overlay_->Create(kRootIno, "new", 0644, O_RDWR, kRoot, &entry));
  ASSERT_OK(overlay_->Unlink(kRootIno, "new"));
  EXPECT_FALSE(Exists(Upper("new")));
  overlay_->Release(std::move(fh));
  EXPECT_EQ(Attr(entry.ino).st_nlink, 0u);  // still looked up
  overlay_->Forget(entry.ino, 1);
  EXPECT_EQ(ListDir(work_), std::vector<std::string>{});
  EXPECT_EQ(overlay_->node_count(), 1u);
}

TEST_F(OverlayTest, RenameOverOpenFileKeepsItReadable) {
  uint64_t other = Lookup(kRootIno, "other");
  ASSERT_OK_AND_ASSIGN(auto fh, overlay_->Open(other, O_RDWR));  // copies up
  ASSERT_OK(overlay_->Rename(kRootIno, "file", kRootIno, "other", 0));
  ASSERT_OK_AND_ASSIGN(int fd, overlay_->ReadFd(fh.get()));
  EXPECT_EQ(ReadFd(fd), "other file\n");
  EXPECT_EQ(Read(Lookup(kRootIno, "other")), "base file\n");
  overlay_->Forget(other, 1);
  overlay_->Release(std::move(fh));
  EXPECT_EQ(ListDir(work_), std::vector<std::string>{});
}

// ------------------------------------------------------------ copy-up

TEST_F(OverlayTest, OpenReadOnlyWithTruncEmptiesTheFile) {
  // Linux truncates on open(O_RDONLY | O_TRUNC) when the file is writable,
  // and with atomic_o_trunc the kernel passes the flag through to open.
  uint64_t ino = Lookup(kRootIno, "file");
  auto fh = overlay_->Open(ino, O_RDONLY | O_TRUNC);
  ASSERT_OK(fh);
  overlay_->Release(std::move(fh.value()));
  EXPECT_EQ(Attr(ino).st_size, 0);
}

// ------------------------------------------ copying while others work

// One thread opens d/big for writing and its copy-up stops in the middle of
// the data; the test does other work on the overlay meanwhile (which would
// wait forever if the copy held the overlay's lock), then lets it finish.
class CopyUpWhileOthersWorkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::MakeTree(lower_, {{"d/big", std::string(1 << 20, 'x')}, {"other", "other\n"}});
    testing::MakeDirs(upper_);
    testing::MakeDirs(work_);
    LayerStack stack;
    ASSERT_OK_AND_ASSIGN(stack.upper, DirLayer::Open(upper_, {"", true, false}));
    ASSERT_OK_AND_ASSIGN(stack.work, DirLayer::Open(work_, {"", false, false}));
    ASSERT_OK_AND_ASSIGN(auto lower, DirLayer::Open(lower_, {"", false, true}));
    gate_ = std::make_shared<testing::GatedLayer>(std::move(lower), "d/big",
                                                  testing::GatedLayer::At::kOpen);
    stack.lowers.push_back({gate_, false});
    overlay_ = std::make_unique<Overlay>(std::move(stack));
    ASSERT_OK(overlay_->Prepare());
    ASSERT_OK_AND_ASSIGN(EntryOut d, overlay_->Lookup(kRootIno, "d"));
    dir_ = d.ino;
    ASSERT_OK_AND_ASSIGN(EntryOut big, overlay_->Lookup(dir_, "big"));
    big_ = big.ino;
    work_before_ = testing::ListDir(work_);
  }
  void TearDown() override {
    gate_->gate.Release();
    if (opener_.joinable()) opener_.join();
  }

  // Starts the open of d/big for writing and returns once its copy is under way.
  void StartOpen() {
    opener_ = std::thread([this] { opened_ = overlay_->Open(big_, O_WRONLY); });
    gate_->gate.WaitEntered();
  }
  // Lets the copy finish; the result of the open.
  Result<std::unique_ptr<FileHandle>>& FinishOpen() {
    gate_->gate.Release();
    opener_.join();
    return opened_;
  }
  // Writes through the finished open and releases it.
  void WriteAndRelease(const std::string& data) {
    auto& fh = opened_;
    ASSERT_OK(fh);
    auto fd = overlay_->ReadFd(fh->get());
    ASSERT_OK(fd);
    auto n = overlay_->WriteAt(fh->get(), 0, data.size(), [&](int to, off_t at) -> ssize_t {
      ssize_t w = pwrite(to, data.data(), data.size(), at);
      return w < 0 ? -errno : w;
    });
    ASSERT_OK(n);
    overlay_->Release(std::move(fh.value()));
  }
  std::string ReadWhole(const std::string& path) { return testing::ReadFile(upper_ + "/" + path); }

  testing::TempDir tmp_;
  std::string lower_ = tmp_.Path("lower"), upper_ = tmp_.Path("upper"), work_ = tmp_.Path("work");
  std::shared_ptr<testing::GatedLayer> gate_;
  std::unique_ptr<Overlay> overlay_;
  uint64_t dir_ = 0, big_ = 0;
  std::vector<std::string> work_before_;  // what work/ holds when idle
  std::thread opener_;
  Result<std::unique_ptr<FileHandle>> opened_{Status::Error(EINPROGRESS, "not opened")};
};

TEST_F(CopyUpWhileOthersWorkTest, OtherRequestsGoOnWhileABigFileIsCopied) {
  StartOpen();
  // Lookups, attributes, listings and new entries, all while the copy waits.
  ASSERT_OK_AND_ASSIGN(EntryOut other, overlay_->Lookup(kRootIno, "other"));
  EXPECT_OK(overlay_->GetAttr(big_));
  EXPECT_OK(overlay_->OpenDir(kRootIno));
  EXPECT_OK(overlay_->MakeDir(kRootIno, "new", 0755, kRoot));
  auto reader = overlay_->Open(big_, O_RDONLY);  // reads the lower file meanwhile
  ASSERT_OK(reader);
  EXPECT_FALSE(testing::Exists(upper_ + "/d/big")) << "installed before the copy finished";
  ASSERT_OK(FinishOpen());
  WriteAndRelease("yy");
  EXPECT_EQ(ReadWhole("d/big"), "yy" + std::string((1 << 20) - 2, 'x'));
  EXPECT_EQ(testing::ListDir(work_), work_before_);
  overlay_->Release(std::move(reader.value()));
  (void)other;
}

TEST_F(CopyUpWhileOthersWorkTest, ACopyFinishesAtTheNewPathWhenItsDirectoryMoves) {
  StartOpen();
  ASSERT_OK(overlay_->Rename(kRootIno, "d", kRootIno, "e", 0));
  ASSERT_OK(FinishOpen());
  WriteAndRelease("zz");
  EXPECT_EQ(ReadWhole("e/big"), "zz" + std::string((1 << 20) - 2, 'x'));
  EXPECT_FALSE(testing::Exists(upper_ + "/d/big"));
  EXPECT_EQ(testing::ListDir(work_), work_before_);
}

TEST_F(CopyUpWhileOthersWorkTest, AFileRemovedDuringItsCopyIsNotOpened) {
  StartOpen();
  ASSERT_OK(overlay_->Unlink(dir_, "big"));
  auto& fh = FinishOpen();
  EXPECT_EQ(fh.status().code(), ENOENT);
  EXPECT_FALSE(S_ISREG(testing::Lstat(upper_ + "/d/big").st_mode));
  EXPECT_EQ(testing::ListDir(work_), work_before_);
  auto gone = overlay_->Lookup(dir_, "big");
  ASSERT_OK(gone);
  EXPECT_EQ(gone->ino, 0u);
}

// A commit folds the layer a copy reads from into a new one and deletes it
// while the copy runs (the copy holds no lock): the copy starts over from
// where the data is now.
TEST_F(CopyUpWhileOthersWorkTest, ACopyWhoseLayerIsFoldedAwayStartsOverFromTheNewOne) {
  const std::string folded = tmp_.Path("folded");
  testing::MakeTree(folded, {{"d/big", std::string(1 << 20, 'x')}, {"other", "other\n"}});
  StartOpen();
  auto replaced = std::async(std::launch::async, [&]() -> Status {
    BUILDFS_ASSIGN_OR_RETURN(auto layer, DirLayer::Open(folded, {"", false, true}));
    return overlay_->ReplaceLowers({{std::shared_ptr<Layer>(std::move(layer)), false}});
  });
  const bool switched = replaced.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
  if (!switched) gate_->gate.Release();
  ASSERT_TRUE(switched) << "the stack switch waited for the copy";
  ASSERT_OK(replaced.get());
  ASSERT_EQ(unlink((lower_ + "/d/big").c_str()), 0);  // the old layer is deleted
  ASSERT_OK(FinishOpen());
  WriteAndRelease("qq");
  EXPECT_EQ(ReadWhole("d/big"), "qq" + std::string((1 << 20) - 2, 'x'));
  EXPECT_EQ(testing::ListDir(work_), work_before_);
}

// A branch or commit freezes the upper while the copy runs: the directory
// the copy was to go into is in the frozen layer now, and the new upper is
// empty. The copy goes to the new upper, with its directory, and the frozen
// layer keeps what it held.
TEST_F(CopyUpWhileOthersWorkTest, ACopyDuringAFreezeGoesToTheNewUpper) {
  StartOpen();
  const std::string frozen = tmp_.Path("frozen");
  auto froze = std::async(std::launch::async, [&] { return FreezeUpperAt(*overlay_, upper_, frozen); });
  const bool switched = froze.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
  if (!switched) gate_->gate.Release();
  ASSERT_TRUE(switched) << "the freeze waited for the copy";
  ASSERT_OK(froze.get());
  ASSERT_OK(FinishOpen());
  WriteAndRelease("ff");
  EXPECT_EQ(ReadWhole("d/big"), "ff" + std::string((1 << 20) - 2, 'x'));
  EXPECT_FALSE(testing::Exists(frozen + "/d/big"));
  EXPECT_EQ(testing::ListDir(work_), work_before_);
}

TEST_F(CopyUpWhileOthersWorkTest, AFileCopiedUpMeanwhileKeepsThatCopy) {
  StartOpen();
  // chmod copies up on its own (not gated: only the first open waits).
  SetAttrIn chmod;
  chmod.set_mode = true;
  chmod.mode = 0600;
  ASSERT_OK(overlay_->SetAttr(big_, chmod, nullptr));
  ASSERT_OK(FinishOpen());
  WriteAndRelease("ww");
  EXPECT_EQ(ReadWhole("d/big"), "ww" + std::string((1 << 20) - 2, 'x'));
  EXPECT_EQ(testing::Lstat(upper_ + "/d/big").st_mode & 07777, 0600u);
  EXPECT_EQ(testing::ListDir(work_), work_before_);
}

}  // namespace
}  // namespace buildfs
