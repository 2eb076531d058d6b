// OverlayTest: the fixture of the overlay_*_test.cc files. It stacks, as
// fs/lifecycle/mounter.cc OpenLayerStack does: a real upper and work
// directory, the cache directory at "cache" and a real OSTree commit of the
// tree below, and calls the Overlay directly (no FUSE).
//
//   file other owned(1000:1001 0640 user.color=blue) suid(04755) link->file fifo
//   dir/{a.txt,c.txt,sub/b.txt}  emptydir/  two/{s1/,s2/,f}    cache/tool.bin
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "fs/layers/dir_layer.h"
#include "fs/layers/ostree_layer.h"
#include "fs/overlay/overlay.h"
#include "fs/store/repo.h"
#include "fs/testing/status_testing.h"
#include "fs/testing/temp_dir.h"

namespace buildfs {

const Caller kRoot{0, 0};

// Freezes the upper of `overlay` (the directory `upper`) as a branch does:
// it is renamed to `frozen`, the topmost frozen layer, and a new, empty
// upper takes its place.
inline Status FreezeUpperAt(Overlay& overlay, const std::string& upper, const std::string& frozen) {
  return overlay.FreezeUpper([&](std::shared_ptr<DirLayer>* new_upper, StackLayer* layer) -> Status {
    if (rename(upper.c_str(), frozen.c_str()) != 0) return Status::FromErrno("freeze");
    if (mkdir(upper.c_str(), 0755) != 0) return Status::FromErrno("freeze");
    BUILDFS_ASSIGN_OR_RETURN(*new_upper, DirLayer::Open(upper, {"", true, false}));
    BUILDFS_ASSIGN_OR_RETURN(auto f, DirLayer::Open(frozen, {"", true, true, true}));
    *layer = {std::move(f), true};
    return Status::Ok();
  });
}

class OverlayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string src = tmp_.Path("src");
    testing::MakeTree(src, {{"file", "base file\n"},
                            {"other", "other file\n"},
                            {"dir/a.txt", "a\n"},
                            {"dir/c.txt", "c\n"},
                            {"dir/sub/b.txt", "b\n"},
                            {"emptydir/", ""},
                            {"two/s1/", ""},
                            {"two/s2/", ""},
                            {"two/f", "f"}});
    testing::WriteFile(src + "/owned", "owned\n", 0640);
    ASSERT_EQ(lchown((src + "/owned").c_str(), 1000, 1001), 0);
    ASSERT_EQ(chmod((src + "/owned").c_str(), 0640), 0);
    testing::SetXattr(src + "/owned", "user.color", "blue");
    testing::WriteFile(src + "/suid", "s", 0755);
    ASSERT_EQ(chmod((src + "/suid").c_str(), 04755), 0);
    testing::MakeSymlink("file", src + "/link");
    ASSERT_EQ(mkfifo((src + "/fifo").c_str(), 0640), 0);

    ASSERT_OK_AND_ASSIGN(auto repo, Repo::Create(tmp_.Path("repo")));
    ASSERT_OK_AND_ASSIGN(commit_, repo->CommitDirectory(src, "base", "base"));
    ASSERT_OK_AND_ASSIGN(ObjectReader reader, ObjectReader::Open(tmp_.Path("repo")));
    ASSERT_OK_AND_ASSIGN(CommitInfo info, reader.LoadCommit(commit_));
    commit_time_ = info.timestamp;

    testing::MakeDirs(upper_);
    testing::MakeDirs(work_);
    testing::MakeTree(cache_, {{"tool.bin", "tool\n"}});
    Mount();
  }

  // (Re)creates the overlay over the same directories, as a new mount would.
  void Mount() {
    overlay_.reset();
    overlay_ = OpenOverlay(upper_, work_);
  }

  // An overlay over the fixture's lower layers with its own upper and work
  // directories (another build branched from the same layers).
  std::unique_ptr<Overlay> OpenOverlay(const std::string& upper, const std::string& work) {
    std::unique_ptr<Overlay> overlay;
    Open(upper, work, &overlay);
    return overlay;
  }
  void Open(const std::string& upper, const std::string& work, std::unique_ptr<Overlay>* out) {
    LayerStack stack;
    ASSERT_OK_AND_ASSIGN(stack.upper, DirLayer::Open(upper, {"", true, false}));
    ASSERT_OK_AND_ASSIGN(stack.work, DirLayer::Open(work, {"", false, false}));
    for (const auto& frozen : frozen_) {
      ASSERT_OK_AND_ASSIGN(auto layer, DirLayer::Open(frozen, {"", true, true, true}));
      stack.lowers.push_back({std::move(layer), true});
    }
    ASSERT_OK_AND_ASSIGN(auto cache, DirLayer::Open(cache_, {"cache", false, false}));
    stack.lowers.push_back({std::move(cache), false});
    ASSERT_OK_AND_ASSIGN(auto base, OstreeLayer::Open(tmp_.Path("repo"), commit_));
    stack.lowers.push_back({std::move(base), false});
    stack.chunked_copy_min = chunked_copy_min_;
    stack.chunk_shift = chunk_shift_;
    auto overlay = std::make_unique<Overlay>(std::move(stack));
    ASSERT_OK(overlay->Prepare());
    *out = std::move(overlay);
  }

  // Freezes the upper, as a branch does: it becomes the topmost frozen
  // layer (kept by the next Mount), and a new, empty upper takes its place.
  void Freeze() {
    std::string frozen = tmp_.Path("frozen" + std::to_string(frozen_.size() + 1));
    ASSERT_OK(FreezeUpperAt(*overlay_, upper_, frozen));
    frozen_.insert(frozen_.begin(), frozen);
  }

  // The inode of `name` in `parent` (0 when absent); counts one lookup.
  uint64_t Lookup(uint64_t parent, const std::string& name) {
    auto e = overlay_->Lookup(parent, name);
    EXPECT_OK(e);
    return e.ok() ? e->ino : 0;
  }

  // Looks up every component of `path` from the root.
  uint64_t Walk(const std::string& path) {
    uint64_t ino = kRootIno;
    size_t pos = 0;
    while (ino != 0 && pos <= path.size()) {
      size_t slash = path.find('/', pos);
      if (slash == std::string::npos) slash = path.size();
      ino = Lookup(ino, path.substr(pos, slash - pos));
      pos = slash + 1;
    }
    return ino;
  }

  struct stat Attr(uint64_t ino) {
    auto e = overlay_->GetAttr(ino);
    EXPECT_OK(e);
    struct stat none {};
    return e.ok() ? e->st : none;
  }

  std::string ReadFd(int fd) {
    std::string out;
    char buf[4096];
    for (off_t off = 0;;) {
      ssize_t n = pread(fd, buf, sizeof(buf), off);
      EXPECT_GE(n, 0) << strerror(errno);
      if (n <= 0) break;
      out.append(buf, static_cast<size_t>(n));
      off += n;
    }
    return out;
  }

  // The content of the file `ino`, read through a handle.
  std::string Read(uint64_t ino) {
    auto fh = overlay_->Open(ino, O_RDONLY);
    EXPECT_OK(fh);
    if (!fh.ok()) return "<open failed>";
    auto content = overlay_->Content(fh->get());
    EXPECT_OK(content);
    auto data = content.ok() ? ReadAll(*content.value()) : Result<std::string>(content.status());
    EXPECT_OK(data);
    overlay_->Release(std::move(fh.value()));
    return data.ok() ? data.value() : "<read failed>";
  }

  // Writes `data` at `offset` through the open handle `fh`.
  Result<size_t> WriteAt(FileHandle* fh, const std::string& data, off_t offset = 0) {
    return overlay_->WriteAt(fh, offset, data.size(), [&](int fd, off_t at) -> ssize_t {
      ssize_t n = pwrite(fd, data.data(), data.size(), at);
      return n < 0 ? -errno : n;
    });
  }

  // Writes `data` at `offset` of the file `ino` through an O_RDWR handle.
  void Write(uint64_t ino, const std::string& data, off_t offset = 0) {
    auto fh = overlay_->Open(ino, O_RDWR);
    ASSERT_OK(fh);
    auto written = WriteAt(fh->get(), data, offset);
    ASSERT_OK(written);
    EXPECT_EQ(written.value(), data.size());
    overlay_->Release(std::move(fh.value()));
  }

  // The names OpenDir lists (without "." and ".."), sorted.
  std::vector<std::string> Names(uint64_t dir) {
    auto h = overlay_->OpenDir(dir);
    EXPECT_OK(h);
    std::vector<std::string> names;
    if (!h.ok()) return names;
    for (const auto& e : h.value()->entries) {
      if (e.name != "." && e.name != "..") names.push_back(e.name);
    }
    std::sort(names.begin(), names.end());
    return names;
  }

  std::vector<std::string> XattrNames(uint64_t ino) {
    auto names = overlay_->ListXattr(ino);
    EXPECT_OK(names);
    return names.ok() ? names.value() : std::vector<std::string>{};
  }

  static bool IsWhiteout(const std::string& path) {
    if (!testing::Exists(path)) return false;
    struct stat st = testing::Lstat(path);
    return S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0);
  }

  std::string Upper(const std::string& rel) const { return upper_ + "/" + rel; }

  testing::TempDir tmp_;
  std::string upper_ = tmp_.Path("upper");
  std::string work_ = tmp_.Path("work");
  std::string cache_ = tmp_.Path("cache");
  std::string commit_;
  uint64_t commit_time_ = 0;
  std::vector<std::string> frozen_;  // frozen layers, topmost first
  uint64_t chunked_copy_min_ = kChunkedCopyMin;
  uint8_t chunk_shift_ = 0;
  std::unique_ptr<Overlay> overlay_;
};

}  // namespace buildfs
