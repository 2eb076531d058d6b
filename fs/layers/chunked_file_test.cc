#include "fs/layers/chunked_file.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "fs/common/fd.h"
#include "fs/testing/status_testing.h"
#include "fs/testing/temp_dir.h"

namespace buildfs {
namespace {

constexpr uint8_t kShift = 12;  // 4 KiB chunks: many chunks in a small file
constexpr uint64_t kChunk = uint64_t{1} << kShift;

std::string Pattern(size_t size, unsigned seed) {
  std::mt19937 rng(seed);
  std::string s(size, '\0');
  for (auto& c : s) c = static_cast<char>('a' + rng() % 26);
  return s;
}

// The bytes `content` shows at [off, off + len), read segment by segment.
std::string ReadVia(const FileContent& content, uint64_t off, uint64_t len) {
  std::vector<Segment> segments;
  EXPECT_OK(content.Segments(off, len, &segments));
  std::string out;
  for (const Segment& s : segments) {
    std::string part(s.len, '\0');
    const ssize_t n =
        pread(s.fd, part.data(), s.len, s.offset);  // short at the end of a plain file
    EXPECT_GE(n, 0);
    part.resize(n > 0 ? static_cast<size_t>(n) : 0);
    out += part;
  }
  return out;
}

class ChunkedFileTest : public ::testing::Test {
 protected:
  // A base file with `data`, and an empty upper file.
  void MakeFiles(const std::string& data) {
    base_data_ = data;
    base_fd_.reset(open(tmp_.Path("base").c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    ASSERT_TRUE(base_fd_.valid());
    ASSERT_EQ(pwrite(base_fd_.get(), data.data(), data.size(), 0),
              static_cast<ssize_t>(data.size()));
    base_ = std::make_shared<PlainContent>(base_fd_.get(), data.size());
    upper_fd_ = NewUpper("upper");
  }
  UniqueFd NewUpper(const std::string& name) {
    UniqueFd fd(open(tmp_.Path(name).c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    EXPECT_TRUE(fd.valid());
    return fd;
  }
  std::unique_ptr<ChunkedFile> Make(int upper, std::shared_ptr<const FileContent> base) {
    EXPECT_OK(ChunkedFile::Create(upper, *base, kShift));
    auto file = ChunkedFile::Open(upper, std::move(base));
    EXPECT_OK(file);
    return file.ok() ? std::move(file.value()) : nullptr;
  }
  // A write as the overlay will make it: prepare, then write to the upper.
  static void Write(ChunkedFile& f, int upper, uint64_t off, const std::string& data) {
    ASSERT_OK(f.PrepareWrite(off, data.size()));
    ASSERT_EQ(pwrite(upper, data.data(), data.size(), static_cast<off_t>(off)),
              static_cast<ssize_t>(data.size()));
  }
  static uint64_t Allocated(int fd) {
    struct stat st;
    fstat(fd, &st);
    return static_cast<uint64_t>(st.st_blocks) * 512;
  }

  testing::TempDir tmp_;
  std::string base_data_;
  UniqueFd base_fd_, upper_fd_;
  std::shared_ptr<const FileContent> base_;
};

TEST(ChunkMapTest, EncodesAndDecodes) {
  ChunkMap map;
  map.shift = 22;
  map.base_size = (uint64_t{10} << 22) + 5;  // 11 chunks, the last partial
  map.bits.assign(2, 0);
  map.Set(0);
  map.Set(10);
  ASSERT_OK_AND_ASSIGN(ChunkMap back, ChunkMap::Decode(map.Encode()));
  EXPECT_EQ(back.shift, 22);
  EXPECT_EQ(back.base_size, map.base_size);
  EXPECT_EQ(back.chunks(), 11u);
  EXPECT_TRUE(back.Has(0));
  EXPECT_FALSE(back.Has(1));
  EXPECT_TRUE(back.Has(10));
  EXPECT_EQ(map.Encode().size(), 16u + 2u);
}

TEST(ChunkMapTest, RefusesWhatIsNotAMap) {
  ChunkMap map;
  map.base_size = 3 << 22;
  map.bits.assign(1, 0);
  std::string good = map.Encode();
  EXPECT_ERRNO(ChunkMap::Decode("short"), EIO);
  EXPECT_ERRNO(ChunkMap::Decode("XXXX" + good.substr(4)), EIO);
  EXPECT_ERRNO(ChunkMap::Decode(good + "x"), EIO);  // bitmap of the wrong length
  std::string version = good;
  version[4] = 2;
  EXPECT_ERRNO(ChunkMap::Decode(version), EIO);
}

TEST(ChunkMapTest, ChunksStayFewForHugeFiles) {
  EXPECT_EQ(ChunkMap::ShiftFor(uint64_t{2} << 30), 22);  // 2 GiB: 4 MiB chunks
  for (uint64_t size : {uint64_t{64} << 30, uint64_t{1} << 40, uint64_t{16} << 40}) {
    ChunkMap map;
    map.shift = ChunkMap::ShiftFor(size);
    map.base_size = size;
    EXPECT_LE(map.chunks(), 16384u) << size;
  }
}

TEST(ChunkMapTest, ShrinkDropsTheBitsPastTheNewSize) {
  ChunkMap map;
  map.shift = 12;
  map.base_size = 16 * 4096;
  map.bits.assign(2, 0xff);
  map.Shrink(3 * 4096 + 1);  // 4 chunks left
  EXPECT_EQ(map.chunks(), 4u);
  ASSERT_EQ(map.bits.size(), 1u);
  EXPECT_EQ(map.bits[0], 0x0f);
  map.Shrink(100 * 4096);  // never grows
  EXPECT_EQ(map.chunks(), 4u);
}

TEST_F(ChunkedFileTest, AFreshCopyReadsAsTheBaseAndHoldsNothing) {
  MakeFiles(Pattern(10 * kChunk + 100, 1));
  auto f = Make(upper_fd_.get(), base_);
  EXPECT_EQ(f->size(), base_data_.size());
  EXPECT_EQ(ReadVia(*f, 0, base_data_.size()), base_data_);
  EXPECT_EQ(ReadVia(*f, 3 * kChunk - 7, 20), base_data_.substr(3 * kChunk - 7, 20));
  EXPECT_EQ(Allocated(upper_fd_.get()), 0u);
  EXPECT_TRUE(ChunkedFile::IsChunked(upper_fd_.get()));
  EXPECT_FALSE(ChunkedFile::IsChunked(base_fd_.get()));
}

TEST_F(ChunkedFileTest, ASmallWriteCopiesOneChunk) {
  // 4 MiB chunks, as a real image gets them: a 64 MiB base, one 4 KiB write.
  MakeFiles(Pattern(64 << 20, 2));
  ASSERT_OK(ChunkedFile::Create(upper_fd_.get(), *base_));
  ASSERT_OK_AND_ASSIGN(auto f, ChunkedFile::Open(upper_fd_.get(), base_));
  const uint64_t at = (10 << 20) + 123;
  Write(*f, upper_fd_.get(), at, std::string(4096, 'W'));
  const ChunkMap map = f->map();
  int present = 0;
  for (uint64_t c = 0; c < map.chunks(); ++c) present += map.Has(c);
  EXPECT_EQ(present, 1);
  EXPECT_LE(Allocated(upper_fd_.get()), uint64_t{4} << 20 << 1);
  std::string want = base_data_;
  want.replace(at, 4096, std::string(4096, 'W'));
  EXPECT_EQ(ReadVia(*f, 0, want.size()), want);
}

TEST_F(ChunkedFileTest, ReadsAcrossPresentAndAbsentChunksAreOneStream) {
  MakeFiles(Pattern(8 * kChunk, 3));
  auto f = Make(upper_fd_.get(), base_);
  std::string want = base_data_;
  for (uint64_t at : {kChunk + 10, 2 * kChunk + 5, 6 * kChunk - 3}) {
    Write(*f, upper_fd_.get(), at, "XYZ");
    want.replace(at, 3, "XYZ");
  }
  for (uint64_t off = 0; off < want.size(); off += 1000) {
    EXPECT_EQ(ReadVia(*f, off, 5000), want.substr(off, 5000)) << off;
  }
  // Chunks 1 and 2 are present and adjacent: one segment of the upper.
  std::vector<Segment> segments;
  ASSERT_OK(f->Segments(kChunk, 2 * kChunk, &segments));
  ASSERT_EQ(segments.size(), 1u);
  EXPECT_EQ(segments[0].fd, upper_fd_.get());
}

TEST_F(ChunkedFileTest, TruncateThenExtendReadsZerosNotTheBase) {
  MakeFiles(Pattern(8 * kChunk, 4));
  auto f = Make(upper_fd_.get(), base_);
  ASSERT_OK(f->Truncate(3 * kChunk + 100));
  EXPECT_EQ(f->map().base_size, 3 * kChunk + 100);
  ASSERT_OK(f->Truncate(6 * kChunk));
  std::string want =
      base_data_.substr(0, 3 * kChunk + 100) + std::string(6 * kChunk - (3 * kChunk + 100), '\0');
  EXPECT_EQ(ReadVia(*f, 0, 6 * kChunk), want);
  // A write past the old base size lands in the upper alone.
  Write(*f, upper_fd_.get(), 5 * kChunk, "tail");
  want.replace(5 * kChunk, 4, "tail");
  EXPECT_EQ(ReadVia(*f, 0, 6 * kChunk), want);
}

TEST_F(ChunkedFileTest, AMapLeftLargerThanTheFileIsRepairedOnOpen) {
  // A daemon killed between the two steps of a truncate (upper cut, map not).
  MakeFiles(Pattern(8 * kChunk, 5));
  Make(upper_fd_.get(), base_);
  ASSERT_EQ(ftruncate(upper_fd_.get(), 2 * kChunk), 0);
  ASSERT_OK_AND_ASSIGN(auto f, ChunkedFile::Open(upper_fd_.get(), base_));
  EXPECT_EQ(f->map().base_size, 2 * kChunk);
  ASSERT_OK(f->Truncate(4 * kChunk));
  EXPECT_EQ(ReadVia(*f, 0, 4 * kChunk),
            base_data_.substr(0, 2 * kChunk) + std::string(2 * kChunk, '\0'));
}

TEST_F(ChunkedFileTest, ACopyCutShortReadsAsTheOldContent) {
  // What a daemon killed in the middle of copying chunk 3 leaves: bytes in
  // the upper, the bit clear. The chunk reads as before; the next write
  // copies it again whole.
  MakeFiles(Pattern(8 * kChunk, 6));
  Make(upper_fd_.get(), base_);
  const std::string garbage(kChunk / 2, '#');
  ASSERT_EQ(pwrite(upper_fd_.get(), garbage.data(), garbage.size(), 3 * kChunk),
            static_cast<ssize_t>(garbage.size()));
  ASSERT_OK_AND_ASSIGN(auto f, ChunkedFile::Open(upper_fd_.get(), base_));
  EXPECT_EQ(ReadVia(*f, 0, base_data_.size()), base_data_);
  Write(*f, upper_fd_.get(), 3 * kChunk + kChunk - 2, "!!");
  std::string want = base_data_;
  want.replace(3 * kChunk + kChunk - 2, 2, "!!");
  EXPECT_EQ(ReadVia(*f, 0, want.size()), want);
}

TEST_F(ChunkedFileTest, PunchAndZeroRangeKeepTheBytesAround) {
  MakeFiles(Pattern(8 * kChunk, 7));
  auto f = Make(upper_fd_.get(), base_);
  std::string want = base_data_;
  // Part of chunk 1, all of 2 and 3, part of 4.
  ASSERT_OK(f->Fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, kChunk + 100, 3 * kChunk));
  want.replace(kChunk + 100, 3 * kChunk, std::string(3 * kChunk, '\0'));
  ASSERT_OK(f->Fallocate(FALLOC_FL_ZERO_RANGE, 6 * kChunk, kChunk));
  want.replace(6 * kChunk, kChunk, std::string(kChunk, '\0'));
  EXPECT_EQ(ReadVia(*f, 0, want.size()), want);
  // Whole chunks were recorded without a copy.
  EXPECT_LE(Allocated(upper_fd_.get()), 3 * kChunk);
  EXPECT_ERRNO(f->Fallocate(FALLOC_FL_COLLAPSE_RANGE, 0, kChunk), EOPNOTSUPP);
}

// fsx-style: random writes, truncates, punches, zero ranges and reads of a
// chunked file, checked against a reference after every step; now and then
// the file is opened again (a remount) or becomes the base of a new chunked
// copy (a branch or commit freezes it), and the work goes on in that copy.
TEST_F(ChunkedFileTest, RandomWorkMatchesAReferenceAcrossReopensAndFreezes) {
  MakeFiles(Pattern(32 * kChunk + 77, 8));
  std::string ref = base_data_;
  std::vector<UniqueFd> uppers;                           // the copies, the last one written to
  std::vector<std::shared_ptr<const FileContent>> bases;  // what each copy is over
  uppers.push_back(std::move(upper_fd_));
  bases.push_back(base_);
  std::shared_ptr<ChunkedFile> f = Make(uppers.back().get(), base_);
  std::mt19937 rng(99);
  for (int step = 0; step < 1500; ++step) {
    const int upper = uppers.back().get();
    const uint64_t size = ref.size();
    const uint64_t off = rng() % (size + 2 * kChunk);
    const uint64_t len = 1 + rng() % (3 * kChunk);
    switch (rng() % 8) {
      case 0:
      case 1:
      case 2: {
        std::string data = Pattern(len, static_cast<unsigned>(step));
        Write(*f, upper, off, data);
        if (off + len > ref.size()) ref.resize(off + len, '\0');
        ref.replace(off, len, data);
        break;
      }
      case 3: {
        const uint64_t to = rng() % (40 * kChunk);
        ASSERT_OK(f->Truncate(to));
        ref.resize(to, '\0');
        break;
      }
      case 4:
        if (off < size) {
          const uint64_t n = std::min(len, size - off);
          ASSERT_OK(f->Fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, n));
          ref.replace(off, n, std::string(n, '\0'));
        }
        break;
      case 5: {
        ASSERT_OK(f->Fallocate(FALLOC_FL_ZERO_RANGE, off, len));
        if (off + len > ref.size()) ref.resize(off + len, '\0');
        ref.replace(off, len, std::string(len, '\0'));
        break;
      }
      case 6:
        if (rng() % 10 == 0) {  // a remount
          f.reset();
          ASSERT_OK_AND_ASSIGN(auto again, ChunkedFile::Open(upper, bases.back()));
          f = std::move(again);
        } else if (rng() % 10 == 0 && uppers.size() < 6) {  // a freeze: a new copy over this one
          bases.push_back(f);
          uppers.push_back(NewUpper("upper" + std::to_string(uppers.size())));
          f = Make(uppers.back().get(), bases.back());
        }
        break;
      default:
        break;
    }
    ASSERT_EQ(f->size(), ref.size()) << "step " << step;
    const uint64_t at = rng() % (ref.size() + 1);
    ASSERT_EQ(ReadVia(*f, at, 2 * kChunk), ref.substr(at, 2 * kChunk)) << "step " << step;
  }
  EXPECT_EQ(ReadVia(*f, 0, ref.size()), ref);
}

// What commit, status, diff and export do with a file: read it whole, copy
// it, or put it together in one file: every byte, no hole where data is.
TEST_F(ChunkedFileTest, ReadersGetEveryByteOfAChunkedFile) {
  MakeFiles(Pattern(16 * kChunk + 300, 10));
  auto f = Make(upper_fd_.get(), base_);
  std::string want = base_data_;
  Write(*f, upper_fd_.get(), 5 * kChunk + 1, "changed");
  want.replace(5 * kChunk + 1, 7, "changed");
  ASSERT_OK(f->Truncate(want.size() + 2 * kChunk));
  want.resize(want.size() + 2 * kChunk, '\0');
  ASSERT_OK_AND_ASSIGN(std::string all, ReadAll(*f));
  EXPECT_TRUE(all == want);
  UniqueFd copy = NewUpper("copy");
  ASSERT_OK(CopyContent(*f, copy.get()));
  EXPECT_TRUE(ReadVia(PlainContent(copy.get()), 0, want.size() + 10) == want);
  ASSERT_OK_AND_ASSIGN(UniqueFd whole, MaterializeContent(*f, tmp_.path()));
  struct stat st;
  ASSERT_EQ(fstat(whole.get(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), want.size());
  EXPECT_TRUE(ReadVia(PlainContent(whole.get(), want.size()), 0, want.size()) == want);
  EXPECT_EQ(PlainContent(whole.get()).plain_fd(), whole.get());
  EXPECT_EQ(f->plain_fd(), -1);
}

TEST_F(ChunkedFileTest, ThreadsWritingDifferentChunksAtOnceLoseNothing) {
  MakeFiles(Pattern(64 * kChunk, 9));
  std::shared_ptr<ChunkedFile> f = Make(upper_fd_.get(), base_);
  std::string want = base_data_;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    for (uint64_t c = t; c < 64; c += 4)
      want.replace(c * kChunk + 7, 3, "T" + std::to_string(t) + "!");
    threads.emplace_back([&, t] {
      for (uint64_t c = t; c < 64; c += 4) {
        const std::string data = "T" + std::to_string(t) + "!";
        if (!f->PrepareWrite(c * kChunk + 7, 3).ok()) return;
        pwrite(upper_fd_.get(), data.data(), 3, static_cast<off_t>(c * kChunk + 7));
        ReadVia(*f, c * kChunk, kChunk);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ReadVia(*f, 0, want.size()), want);
  ASSERT_OK_AND_ASSIGN(auto again, ChunkedFile::Open(upper_fd_.get(), base_));
  EXPECT_EQ(ReadVia(*again, 0, want.size()), want);
}

}  // namespace
}  // namespace buildfs
