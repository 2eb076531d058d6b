// Big files through a real mount: a write copies up one chunk, not the file
// (DESIGN.md, "Big files"), from a commit, from the cache and from a frozen
// layer; commit, branch, remount and a killed daemon keep every byte right.
#include <fcntl.h>
#include <linux/falloc.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <iostream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/mount_fixture.h"
#include "tests/integration/tree.h"

namespace buildfs::testing {
namespace {

constexpr size_t kMiB = 1 << 20;
constexpr size_t kChunk = 4 * kMiB;  // the chunk size of files under 64 GiB
constexpr char kBases[] = ".buildfs-bases";

// Disk space of the regular files below `dir`, the bases of chunked files
// (hard links to files of other layers) left out.
uint64_t DiskBytes(const std::string& dir, bool top = true) {
  uint64_t total = 0;
  for (const auto& name : ListDir(dir)) {
    if (top && name == kBases) continue;
    const std::string path = dir + "/" + name;
    struct stat st = Lstat(path);
    if (S_ISDIR(st.st_mode)) total += DiskBytes(path, false);
    if (S_ISREG(st.st_mode)) total += static_cast<uint64_t>(st.st_blocks) * 512;
  }
  return total;
}

// Writes all of `data` at `off` of `fd`.
void PwriteAll(int fd, const std::string& data, size_t off) {
  for (size_t done = 0; done < data.size();) {
    ssize_t n = pwrite(fd, data.data() + done, data.size() - done, static_cast<off_t>(off + done));
    ASSERT_GT(n, 0) << strerror(errno);
    done += static_cast<size_t>(n);
  }
}

std::string PreadAll(int fd, size_t off, size_t len) {
  std::string out(len, '\0');
  size_t done = 0;
  while (done < len) {
    ssize_t n = pread(fd, out.data() + done, len - done, static_cast<off_t>(off + done));
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  out.resize(done);
  return out;
}

class BigFileTest : public MountTest {
 protected:
  std::string Upper(const std::string& build) const { return ws() + "/.buildfs/builds/" + build + "/upper"; }
  // Disk space of every frozen layer.
  uint64_t LayerBytes() const {
    const std::string layers = ws() + "/.buildfs/layers";
    uint64_t total = 0;
    if (LstatErrno(layers) != 0) return 0;
    for (const auto& id : ListDir(layers)) total += DiskBytes(layers + "/" + id);
    return total;
  }

  void Write(const std::string& path, const std::string& data, size_t off) {
    int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0) << path << ": " << strerror(errno);
    PwriteAll(fd, data, off);
    ASSERT_EQ(fsync(fd), 0);
    close(fd);
  }
  void Remount(const std::string& name) {
    ASSERT_TRUE(Umount(name));
    ASSERT_TRUE(Mount(name));
  }
};

TEST_F(BigFileTest, AWriteIntoACommittedBigFileAddsOneChunkAndCommitsWhole) {
  std::string big = RandomBytes(11, 80 * kMiB);
  WriteFile(M("big.img"), big);
  CommandResult r = Buildfs({"commit", "b", "-m", "a big file"});
  ASSERT_TRUE(r.ok()) << r.Describe();
  EXPECT_LT(DiskBytes(Upper("b")), kMiB);

  const std::string block = RandomBytes(12, 4096);
  Write(M("big.img"), block, 50 * kMiB + 123);
  big.replace(50 * kMiB + 123, block.size(), block);
  // One chunk (two when the block straddles a boundary; it does not here).
  EXPECT_LE(DiskBytes(Upper("b")), kChunk + 64 * 1024);
  EXPECT_TRUE(ReadFile(M("big.img")) == big) << "the file reads wrong through the mount";

  r = Buildfs({"status", "b"});
  ASSERT_TRUE(r.ok()) << r.Describe();
  EXPECT_NE(r.out.find("M big.img"), std::string::npos) << r.out;
  r = Buildfs({"diff", "b", "big.img"});
  ASSERT_TRUE(r.ok()) << r.Describe();
  EXPECT_NE(r.out.find("big.img"), std::string::npos) << r.out;
  r = Buildfs({"commit", "b", "-m", "one block"});
  ASSERT_TRUE(r.ok()) << r.Describe();
  EXPECT_TRUE(OstreeCat("builds/b/base", "/big.img") == big) << "the commit holds holes or old bytes";
  const std::string exported = tmp("export");
  ASSERT_TRUE(Buildfs({"export", "b", exported}).ok());
  EXPECT_TRUE(ReadFile(exported + "/big.img") == big);
}

TEST_F(BigFileTest, ABranchOfADirtyImageIsInstantAndEachSideWritesPrivately) {
  const std::string shared = ws() + "/cache/disks/x.img";
  std::string image = RandomBytes(21, 128 * kMiB);
  WriteFile(shared, image);
  const std::string shared_copy = image;
  // b dirties a quarter of it, chunk by chunk.
  for (size_t c = 0; c < 32; c += 4) {
    const std::string data = RandomBytes(100 + c, 64 * 1024);
    Write(M("cache/disks/x.img"), data, c * kChunk + 1000);
    image.replace(c * kChunk + 1000, data.size(), data);
  }
  const uint64_t before = DiskBytes(Upper("b")) + LayerBytes();
  EXPECT_LE(before, 8 * kChunk + kMiB);
  CommandResult r = Buildfs({"branch", "b", "c"});
  ASSERT_TRUE(r.ok()) << r.Describe();
  // O(1): no byte of the image was copied by the branch.
  EXPECT_LE(DiskBytes(Upper("b")) + DiskBytes(Upper("c")) + LayerBytes(), before + kMiB);
  ASSERT_TRUE(Mount("c"));
  std::string in_c = image;
  // Each side writes a dirty chunk and a clean one.
  const std::string mine = RandomBytes(31, 4096), theirs = RandomBytes(32, 4096);
  Write(M("cache/disks/x.img"), mine, 4 * kChunk + 5);
  Write(M("cache/disks/x.img"), mine, 5 * kChunk + 5);
  image.replace(4 * kChunk + 5, 4096, mine);
  image.replace(5 * kChunk + 5, 4096, mine);
  Write(BuildDir("c") + "/cache/disks/x.img", theirs, 4 * kChunk + 5);
  Write(BuildDir("c") + "/cache/disks/x.img", theirs, 6 * kChunk + 5);
  in_c.replace(4 * kChunk + 5, 4096, theirs);
  in_c.replace(6 * kChunk + 5, 4096, theirs);
  // The first write after the branch copied one chunk per side.
  EXPECT_LE(DiskBytes(Upper("b")), 2 * kChunk + 64 * 1024);
  EXPECT_LE(DiskBytes(Upper("c")), 2 * kChunk + 64 * 1024);
  EXPECT_TRUE(ReadFile(M("cache/disks/x.img")) == image);
  EXPECT_TRUE(ReadFile(BuildDir("c") + "/cache/disks/x.img") == in_c);
  EXPECT_TRUE(ReadFile(shared) == shared_copy) << "the shared image changed";
  Remount("b");
  Remount("c");
  EXPECT_TRUE(ReadFile(M("cache/disks/x.img")) == image);
  EXPECT_TRUE(ReadFile(BuildDir("c") + "/cache/disks/x.img") == in_c);
  // A commit of b keeps its private cache/ (and the bases it reads from).
  ASSERT_TRUE(Buildfs({"commit", "b", "-m", "x"}).ok());
  Remount("b");
  EXPECT_TRUE(ReadFile(M("cache/disks/x.img")) == image);
  ASSERT_TRUE(Umount("c"));
}

TEST_F(BigFileTest, TheBasePublishedOverIsKeptForTheBuildsThatReadIt) {
  const std::string shared = ws() + "/cache/disks/y.img";
  std::string image = RandomBytes(41, 72 * kMiB);
  WriteFile(shared, image);
  Write(M("cache/disks/y.img"), "changed", 9 * kMiB);
  image.replace(9 * kMiB, 7, "changed");
  // Another build publishes a new y.img: renamed over the old one.
  WriteFile(shared + ".new", RandomBytes(42, 72 * kMiB));
  ASSERT_EQ(rename((shared + ".new").c_str(), shared.c_str()), 0);
  Remount("b");
  EXPECT_TRUE(ReadFile(M("cache/disks/y.img")) == image);
  // disk put publishes b's version whole.
  CommandResult r = RunBuildfs({"disk", "put", "y"}, root_);
  ASSERT_TRUE(r.ok()) << r.Describe();
  EXPECT_TRUE(ReadFile(shared) == image);
}

// fsx through the mount: random writes, truncates, hole punches, shared
// writable mmaps and copy_file_range on a chunked file, checked against a
// reference after every step, with remounts and branches in between.
TEST_F(BigFileTest, RandomOperationsOnAChunkedFileMatchAReference) {
  const size_t size = 72 * kMiB;
  std::string ref = RandomBytes(51, size);
  WriteFile(ws() + "/cache/disks/f.img", ref);
  WriteFile(M("donor"), RandomBytes(52, 2 * kMiB));
  const std::string donor = ReadFile(M("donor"));
  const std::string path = M("cache/disks/f.img");
  std::mt19937 rng(53);
  int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  int branches = 0;
  for (int step = 0; step < 400; ++step) {
    const size_t off = rng() % (size + kChunk);
    const size_t len = 1 + rng() % (256 * 1024);
    const unsigned op = rng() % 20;
    std::string what;
    if (op == 0) {
      const size_t to = rng() % (size + kChunk);
      what = "truncate " + std::to_string(to);
      ASSERT_EQ(ftruncate(fd, static_cast<off_t>(to)), 0) << strerror(errno);
      ref.resize(to, '\0');
    } else if (op <= 2 && off < ref.size()) {
      const size_t n = std::min(len, ref.size() - off);
      what = "punch " + std::to_string(off) + "+" + std::to_string(n);
      ASSERT_EQ(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(off),
                          static_cast<off_t>(n)), 0)
          << strerror(errno);
      std::fill(ref.begin() + off, ref.begin() + off + n, '\0');
    } else if (op <= 4 && off + len <= ref.size()) {
      what = "mmap " + std::to_string(off) + "+" + std::to_string(len);
      const size_t page = off & ~size_t{4095};
      const size_t span = off + len - page;
      void* p = mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_SHARED, fd, static_cast<off_t>(page));
      ASSERT_NE(p, MAP_FAILED) << strerror(errno);
      const std::string data = RandomBytes(1000 + step, len);
      memcpy(static_cast<char*>(p) + (off - page), data.data(), len);
      ASSERT_EQ(msync(p, span, MS_SYNC), 0);
      munmap(p, span);
      ref.replace(off, len, data);
    } else if (op <= 6) {
      const size_t from = rng() % (donor.size() - len);
      what = "copy_file_range " + std::to_string(off) + "+" + std::to_string(len);
      int in = open(M("donor").c_str(), O_RDONLY | O_CLOEXEC);
      ASSERT_GE(in, 0);
      loff_t in_off = static_cast<loff_t>(from), out_off = static_cast<loff_t>(off);
      for (size_t done = 0; done < len;) {
        ssize_t n = copy_file_range(in, &in_off, fd, &out_off, len - done, 0);
        ASSERT_GT(n, 0) << strerror(errno);
        done += static_cast<size_t>(n);
      }
      close(in);
      if (ref.size() < off + len) ref.resize(off + len, '\0');
      ref.replace(off, len, donor.substr(from, len));
    } else if (op == 7) {
      close(fd);
      if (rng() % 2) {
        what = "branch";
        ASSERT_TRUE(Buildfs({"branch", "b", "fsx" + std::to_string(++branches)}).ok());
      } else {
        what = "remount";
        Remount("b");
      }
      fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
      ASSERT_GE(fd, 0);
      ASSERT_TRUE(PreadAll(fd, 0, ref.size() + 1) == ref) << "after " << what << " at step " << step;
    } else {
      const std::string data = RandomBytes(2000 + step, len);
      what = "write " + std::to_string(off) + "+" + std::to_string(len);
      PwriteAll(fd, data, off);
      if (ref.size() < off + len) ref.resize(off + len, '\0');
      ref.replace(off, len, data);
    }
    struct stat st;
    ASSERT_EQ(fstat(fd, &st), 0);
    ASSERT_EQ(static_cast<size_t>(st.st_size), ref.size()) << "after " << what << " at step " << step;
    const size_t at = rng() % (ref.size() + 1);
    ASSERT_TRUE(PreadAll(fd, at, 512 * 1024) == ref.substr(at, 512 * 1024))
        << "bytes at " << at << " wrong after " << what << " at step " << step;
  }
  close(fd);
  EXPECT_TRUE(ReadFile(path) == ref);
}

// A daemon killed while writes copy chunks up: each block reads as its old
// or its new content (never zeros or another block's), and what was
// fsynced before is there. Each write of the writer goes to a chunk not
// copied yet, so the kill lands in a chunk copy; three rounds, killed 0.5,
// 1 and 2 ms after the 3rd, 9th and 15th write.
TEST_F(BigFileTest, AKilledDaemonLeavesEachBlockOldOrNewAndKeepsWhatWasSynced) {
  constexpr size_t kBlock = 4096;
  const size_t size = 96 * kMiB;
  const size_t blocks = size / kBlock, per_chunk = kChunk / kBlock, chunks = size / kChunk;
  for (int round = 0; round < 3; ++round) {
    const uint64_t seed = 100000000ull * (round + 1);
    auto old_block = [&](size_t b) { return RandomBytes(seed + b, kBlock); };
    auto new_block = [&](size_t b) { return RandomBytes(seed + 50000000 + b, kBlock); };
    const std::string name = "k" + std::to_string(round) + ".img";
    {
      std::string image;
      image.reserve(size);
      for (size_t b = 0; b < blocks; ++b) image += old_block(b);
      WriteFile(ws() + "/cache/disks/" + name, image);
    }
    const std::string path = M("cache/disks/" + name);
    std::mt19937 rng(61 + round);
    std::vector<size_t> order(chunks);
    for (size_t c = 0; c < chunks; ++c) order[c] = c;
    std::shuffle(order.begin(), order.end(), rng);
    int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    // Synced: 16 blocks of the first chunk.
    std::vector<size_t> synced;
    for (size_t i = 0; i < 16; ++i) synced.push_back(order[0] * per_chunk + rng() % per_chunk);
    for (size_t b : synced) PwriteAll(fd, new_block(b), b * kBlock);
    ASSERT_EQ(fsync(fd), 0);
    const std::vector<pid_t> daemon = DaemonPids("b");
    ASSERT_FALSE(daemon.empty());
    std::atomic<size_t> written{0};
    std::thread writer([&] {
      for (size_t i = 1; i < chunks; ++i) {
        const size_t b = order[i] * per_chunk + (i * 7919) % per_chunk;
        const std::string data = new_block(b);
        if (pwrite(fd, data.data(), kBlock, static_cast<off_t>(b * kBlock)) != kBlock) break;
        ++written;
      }
    });
    // Killed right after a write was acknowledged: the next one is copying.
    while (written.load() < static_cast<size_t>(3 + 6 * round)) std::this_thread::yield();
    usleep(static_cast<useconds_t>(500 << round));  // into the next copy
    for (pid_t pid : daemon) kill(pid, SIGKILL);
    for (pid_t pid : daemon) ASSERT_TRUE(WaitForExit(pid, 10000));
    writer.join();
    close(fd);
    ASSERT_TRUE(Mount("b"));
    fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    const std::string now = PreadAll(fd, 0, size + 1);
    close(fd);
    ASSERT_EQ(now.size(), size);
    size_t renewed = 0;
    for (size_t b = 0; b < blocks; ++b) {
      const std::string got = now.substr(b * kBlock, kBlock);
      const bool is_new = got == new_block(b);
      ASSERT_TRUE(is_new || got == old_block(b))
          << "round " << round << ": block " << b << " is neither old nor new";
      renewed += is_new;
    }
    for (size_t b : synced) {
      EXPECT_TRUE(now.substr(b * kBlock, kBlock) == new_block(b)) << "synced block " << b << " lost";
    }
    // The kill came while chunks were still being copied up.
    EXPECT_LT(written.load(), chunks - 1) << "round " << round << ": the writer was done before the kill";
    std::cout << "round " << round << ": " << written.load() << " of " << chunks - 1
              << " chunk writes acknowledged, " << renewed << " blocks new\n";
  }
}

}  // namespace
}  // namespace buildfs::testing
