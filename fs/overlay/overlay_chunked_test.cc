// Big files in the overlay: copy-up by the chunk (chunked_file.h), from the
// cache, from a commit and from a frozen layer, with every way of changing a
// file's bytes, and the bases the upper pins.
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include <random>

#include "fs/overlay/overlay_fixture.h"

namespace buildfs {
namespace {

constexpr size_t kBig = 1 << 20;   // the test's "big file"
constexpr uint8_t kShift = 14;     // 16 KiB chunks
constexpr size_t kChunk = size_t{1} << kShift;

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string out(n, '\0');
  for (auto& c : out) c = static_cast<char>(rng());
  return out;
}

// Bytes a file holds on disk.
uint64_t Allocated(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
  return static_cast<uint64_t>(st.st_blocks) * 512;
}

class OverlayChunkedTest : public OverlayTest {
 protected:
  void SetUp() override {
    OverlayTest::SetUp();
    chunked_copy_min_ = kBig / 2;
    chunk_shift_ = kShift;
    image_ = RandomBytes(kBig, 1);
    testing::MakeDirs(cache_ + "/disks");
    testing::WriteFile(cache_ + "/disks/base.img", image_);
    Mount();
  }

  uint64_t Image() { return Walk("cache/disks/base.img"); }

  std::unique_ptr<FileHandle> OpenRw(uint64_t ino) {
    auto fh = overlay_->Open(ino, O_RDWR);
    EXPECT_OK(fh);
    return fh.ok() ? std::move(fh.value()) : nullptr;
  }

  // Writes `data` at `off` of the image and of the reference.
  void WriteBoth(FileHandle* fh, const std::string& data, size_t off) {
    ASSERT_OK_AND_ASSIGN(size_t n, WriteAt(fh, data, static_cast<off_t>(off)));
    ASSERT_EQ(n, data.size());
    if (image_.size() < off + data.size()) image_.resize(off + data.size(), '\0');
    image_.replace(off, data.size(), data);
  }

  std::string upper_image() const { return Upper("cache/disks/base.img"); }

  std::string image_;  // what the build's image holds
};

TEST_F(OverlayChunkedTest, AWriteIntoABigFileCopiesOneChunk) {
  auto fh = OpenRw(Image());
  WriteBoth(fh.get(), "hello", 3 * kChunk + 100);
  overlay_->Release(std::move(fh));
  EXPECT_LE(Allocated(upper_image()), kChunk + 4096);
  ASSERT_OK_AND_ASSIGN(ChunkMap map, ChunkMap::Decode(testing::GetXattr(upper_image(), kChunksXattr).value_or("")));
  EXPECT_EQ(map.chunk_size(), kChunk);
  EXPECT_TRUE(map.Has(3));
  EXPECT_FALSE(map.Has(2));
  EXPECT_EQ(Read(Image()), image_);
  // The shared file is untouched.
  EXPECT_EQ(testing::ReadFile(cache_ + "/disks/base.img"), RandomBytes(kBig, 1));
  Mount();
  EXPECT_EQ(Read(Image()), image_);
}

TEST_F(OverlayChunkedTest, ReadsGiveSegmentsOfBothPlaces) {
  auto fh = OpenRw(Image());
  WriteBoth(fh.get(), std::string(10, 'x'), 2 * kChunk - 5);  // chunks 1 and 2
  std::vector<Segment> segments;
  ASSERT_OK(overlay_->ReadAt(fh.get(), 0, 3 * kChunk, &segments));
  ASSERT_EQ(segments.size(), 2u);  // the base's first chunk, then the upper's two
  EXPECT_EQ(segments[0].len, kChunk);
  EXPECT_EQ(segments[1].len, 2 * kChunk);
  overlay_->Release(std::move(fh));
}

TEST_F(OverlayChunkedTest, SmallFilesStillCopyWhole) {
  Write(Lookup(kRootIno, "file"), "BASE");
  EXPECT_FALSE(testing::GetXattr(Upper("file"), kChunksXattr).has_value());
  EXPECT_EQ(testing::ReadFile(Upper("file")), "BASE file\n");
}

TEST_F(OverlayChunkedTest, TheBaseIsPinnedWhenTheSharedFileIsReplaced) {
  auto fh = OpenRw(Image());
  WriteBoth(fh.get(), "mine", 10);
  overlay_->Release(std::move(fh));
  // `disk put` from another build: a new file renamed over the old one.
  testing::WriteFile(cache_ + "/disks/new.tmp", RandomBytes(kBig, 2));
  ASSERT_EQ(rename((cache_ + "/disks/new.tmp").c_str(), (cache_ + "/disks/base.img").c_str()), 0);
  Mount();
  EXPECT_EQ(Read(Image()), image_);
}

TEST_F(OverlayChunkedTest, TheBasesDirectoryIsNoPartOfTheTree) {
  Write(Image(), "x", 0);
  ASSERT_TRUE(testing::Exists(Upper(kBasesDir)));
  auto names = Names(kRootIno);
  EXPECT_EQ(std::count(names.begin(), names.end(), kBasesDir), 0);
  EXPECT_ERRNO(overlay_->Lookup(kRootIno, kBasesDir), EPERM);
  EXPECT_ERRNO(overlay_->MakeDir(kRootIno, kBasesDir, 0755, kRoot), EPERM);
  EXPECT_ERRNO(overlay_->Rename(kRootIno, "file", kRootIno, kBasesDir, 0), EPERM);
  auto xattrs = XattrNames(Image());
  EXPECT_EQ(std::count(xattrs.begin(), xattrs.end(), kChunksXattr), 0);
  EXPECT_EQ(std::count(xattrs.begin(), xattrs.end(), kBaseXattr), 0);
}

TEST_F(OverlayChunkedTest, TruncateFallocateAndCopyRangeKeepTheBytesRight) {
  auto fh = OpenRw(Image());
  // Shrink into the middle of a chunk, then grow: the cut bytes read as zeros.
  SetAttrIn size;
  size.set_size = true;
  size.size = static_cast<off_t>(kBig / 2 + 123);
  ASSERT_OK(overlay_->SetAttr(Image(), size, fh.get()));
  image_.resize(kBig / 2 + 123);
  EXPECT_EQ(Read(Image()), image_);
  size.size = static_cast<off_t>(kBig);
  ASSERT_OK(overlay_->SetAttr(Image(), size, fh.get()));
  image_.resize(kBig, '\0');
  EXPECT_EQ(Read(Image()), image_);
  // Punch a hole across a chunk boundary and over a whole chunk.
  ASSERT_OK(overlay_->Fallocate(fh.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                static_cast<off_t>(kChunk / 2), static_cast<off_t>(2 * kChunk)));
  std::fill(image_.begin() + kChunk / 2, image_.begin() + kChunk / 2 + 2 * kChunk, '\0');
  EXPECT_EQ(Read(Image()), image_);
  // copy_file_range from the chunked file into a new file, and back into it.
  EntryOut entry;
  ASSERT_OK_AND_ASSIGN(auto copy, overlay_->Create(kRootIno, "copy", 0644, O_RDWR, kRoot, &entry));
  size_t done = 0;
  while (done < kBig) {
    ASSERT_OK_AND_ASSIGN(size_t n, overlay_->CopyRange(fh.get(), static_cast<off_t>(done), copy.get(),
                                                      static_cast<off_t>(done), kBig - done));
    ASSERT_GT(n, 0u);
    done += n;
  }
  EXPECT_EQ(Read(entry.ino), image_);
  WriteAt(copy.get(), "COPIED", 5 * kChunk + 7).value();
  ASSERT_OK_AND_ASSIGN(size_t n, overlay_->CopyRange(copy.get(), static_cast<off_t>(5 * kChunk), fh.get(),
                                                    static_cast<off_t>(9 * kChunk + 3), 100));
  EXPECT_EQ(n, 100u);
  std::string moved = image_.substr(5 * kChunk, 100);
  moved.replace(7, 6, "COPIED");
  image_.replace(9 * kChunk + 3, 100, moved);
  EXPECT_EQ(Read(Image()), image_);
  overlay_->Release(std::move(copy));
  overlay_->Release(std::move(fh));
  Mount();
  EXPECT_EQ(Read(Image()), image_);
}

TEST_F(OverlayChunkedTest, OTruncOfAChunkedFileEmptiesIt) {
  Write(Image(), "x", 0);
  ASSERT_OK_AND_ASSIGN(auto fh, overlay_->Open(Image(), O_RDWR | O_TRUNC));
  EXPECT_EQ(Attr(Image()).st_size, 0);
  WriteAt(fh.get(), "abc", 10).value();
  overlay_->Release(std::move(fh));
  EXPECT_EQ(Read(Image()), std::string(10, '\0') + "abc");
}

TEST_F(OverlayChunkedTest, AfterAFreezeTheNextCopyIsChunkedOverTheFrozenOne) {
  auto fh = OpenRw(Image());
  WriteBoth(fh.get(), std::string(3 * kChunk, 'a'), 0);
  Freeze();
  // The open handle writes on: the new upper gets a chunked copy of the
  // frozen chunked file, holding only the chunk written now.
  WriteBoth(fh.get(), "after the freeze", 10 * kChunk);
  EXPECT_LE(Allocated(upper_image()), kChunk + 4096);
  EXPECT_EQ(Read(Image()), image_);
  // The frozen layer is as it was at the freeze.
  EXPECT_EQ(testing::ReadFile(frozen_[0] + "/cache/disks/base.img").substr(0, 3 * kChunk),
            std::string(3 * kChunk, 'a'));
  overlay_->Release(std::move(fh));
  Freeze();
  Write(Image(), "third", 20 * kChunk);
  image_.replace(20 * kChunk, 5, "third");
  EXPECT_EQ(Read(Image()), image_);
  Mount();
  EXPECT_EQ(Read(Image()), image_);
}

// A frozen file a chunked copy reads from gets a second link (its pin):
// another build over the same frozen layer still numbers it as before.
TEST_F(OverlayChunkedTest, PinningAFrozenFileChangesNoInodeNumberInAnotherBuild) {
  EntryOut entry;
  ASSERT_OK_AND_ASSIGN(auto fh, overlay_->Create(kRootIno, "big", 0644, O_RDWR, kRoot, &entry));
  WriteAt(fh.get(), RandomBytes(kBig, 4), 0).value();
  overlay_->Release(std::move(fh));
  Freeze();
  testing::MakeDirs(tmp_.Path("other-upper"));
  testing::MakeDirs(tmp_.Path("other-work"));
  auto number_in_other = [&] {
    auto other = OpenOverlay(tmp_.Path("other-upper"), tmp_.Path("other-work"));
    auto e = other->Lookup(kRootIno, "big");
    EXPECT_OK(e);
    return e.ok() ? e->ino : 0;
  };
  const uint64_t before = number_in_other();
  EXPECT_EQ(before, entry.ino);
  Write(Lookup(kRootIno, "big"), "x", 5);  // a chunked copy over the frozen file
  ASSERT_TRUE(testing::GetXattr(Upper("big"), kChunksXattr).has_value());
  EXPECT_EQ(testing::Lstat(frozen_[0] + "/big").st_nlink, 2u);  // pinned
  EXPECT_EQ(number_in_other(), before);
  EXPECT_EQ(Attr(Lookup(kRootIno, "big")).st_nlink, 1u);
}

TEST_F(OverlayChunkedTest, ABigFileOfTheCommitCopiesUpChunked) {
  // A commit holding a big file, then the build over it.
  std::string src = tmp_.Path("src2");
  std::string big = RandomBytes(kBig, 3);
  testing::MakeTree(src, {{"big.img", big}});
  ASSERT_OK_AND_ASSIGN(auto repo, Repo::Open(tmp_.Path("repo")));
  ASSERT_OK_AND_ASSIGN(commit_, repo->CommitDirectory(src, "big", "big"));
  Mount();
  uint64_t ino = Lookup(kRootIno, "big.img");
  Write(ino, "data", kChunk + 1);
  big.replace(kChunk + 1, 4, "data");
  EXPECT_LE(Allocated(Upper("big.img")), kChunk + 4096);
  EXPECT_EQ(Read(ino), big);
}

TEST_F(OverlayChunkedTest, ManyWritersAndFreezesMatchAReference) {
  std::mt19937 rng(7);
  auto fh = OpenRw(Image());
  for (int step = 0; step < 300; ++step) {
    size_t off = rng() % (kBig + kChunk);
    size_t len = 1 + rng() % (2 * kChunk);
    switch (rng() % 10) {
      case 0: {
        SetAttrIn size;
        size.set_size = true;
        size.size = static_cast<off_t>(rng() % (kBig + kChunk));
        ASSERT_OK(overlay_->SetAttr(Image(), size, fh.get()));
        image_.resize(static_cast<size_t>(size.size), '\0');
        break;
      }
      case 1:
        if (off < image_.size()) {
          len = std::min(len, image_.size() - off);
          ASSERT_OK(overlay_->Fallocate(fh.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                        static_cast<off_t>(off), static_cast<off_t>(len)));
          std::fill(image_.begin() + off, image_.begin() + off + len, '\0');
        }
        break;
      case 2:
        overlay_->Release(std::move(fh));
        if (rng() % 2) Freeze(); else Mount();
        fh = OpenRw(Image());
        break;
      default:
        WriteBoth(fh.get(), RandomBytes(len, step), off);
    }
    std::vector<Segment> segments;
    size_t at = rng() % (image_.size() + 1);
    ASSERT_OK(overlay_->ReadAt(fh.get(), static_cast<off_t>(at), 3 * kChunk, &segments));
    std::string got;
    for (const Segment& s : segments) {
      std::string part(s.len, '\0');
      ssize_t n = pread(s.fd, part.data(), s.len, s.offset);
      ASSERT_GE(n, 0);
      part.resize(static_cast<size_t>(n));
      got += part;
      if (static_cast<size_t>(n) < s.len) break;
    }
    ASSERT_EQ(got, image_.substr(at, 3 * kChunk)) << "step " << step;
  }
  overlay_->Release(std::move(fh));
  EXPECT_EQ(Read(Image()), image_);
}

}  // namespace
}  // namespace buildfs
