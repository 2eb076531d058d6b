// Eight threads work in one mounted build at once: they create, write,
// rename (within a directory and across directories), remove and stat, in
// one shared directory and across several. Each thread owns its names, so
// what it does has one right outcome whatever the interleaving: every call
// must succeed, and the tree afterwards (and after a remount) must equal a
// plain directory that received the same operations one thread at a time.
// Meanwhile readers stat and list everything, and may only see entries that
// exist or vanish (0 or ENOENT), never a duplicate name or another error.
// Last, all threads rename their own file onto one shared name at once:
// exactly one wins, and no source is left behind.
//
// BUILDFS_SEED picks the operations (printed at start).
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/harness.h"

namespace buildfs::testing {
namespace {

constexpr int kThreads = 8;
constexpr int kStepsPerThread = 400;
constexpr int kDirs = 4;                // d0..d3, plus the one everybody uses: shared
constexpr int kBaseFilesPerThread = 3;  // lower files each thread owns in each directory
constexpr uint64_t kDefaultSeed = 20261130;

uint64_t EnvOr(const char* name, uint64_t fallback) {
  const char* v = getenv(name);
  return v != nullptr && *v != '\0' ? strtoull(v, nullptr, 0) : fallback;
}

std::vector<std::string> Dirs() {
  std::vector<std::string> dirs = {"shared"};
  for (int i = 0; i < kDirs; ++i) dirs.push_back("d" + std::to_string(i));
  return dirs;
}

enum class Kind { kCreate, kAppend, kRename, kUnlink, kMkdir, kRmdir, kStat };

struct Op {
  Kind kind;
  std::string a, b;  // paths relative to the root
  std::string data;  // bytes to write
};

std::string Describe(const Op& op) {
  static const char* const kNames[] = {"create", "append", "rename", "unlink",
                                       "mkdir",  "rmdir",  "stat"};
  std::string s = std::string(kNames[static_cast<int>(op.kind)]) + " " + op.a;
  if (!op.b.empty()) s += " -> " + op.b;
  return s;
}

// Applies `op` below `root`; returns 0 or the errno of the failing call.
int Apply(const Op& op, const std::string& root) {
  const std::string a = root + "/" + op.a;
  const std::string b = root + "/" + op.b;
  switch (op.kind) {
    case Kind::kCreate:
    case Kind::kAppend: {
      int flags = op.kind == Kind::kCreate ? O_CREAT | O_EXCL | O_WRONLY : O_WRONLY | O_APPEND;
      int fd = open(a.c_str(), flags | O_CLOEXEC, 0644);
      if (fd < 0) return errno;
      ssize_t n = write(fd, op.data.data(), op.data.size());
      int err = n < 0 ? errno : (static_cast<size_t>(n) != op.data.size() ? EIO : 0);
      if (close(fd) != 0 && err == 0) err = errno;
      return err;
    }
    case Kind::kRename:
      return rename(a.c_str(), b.c_str()) == 0 ? 0 : errno;
    case Kind::kUnlink:
      return unlink(a.c_str()) == 0 ? 0 : errno;
    case Kind::kMkdir:
      return mkdir(a.c_str(), 0755) == 0 ? 0 : errno;
    case Kind::kRmdir:
      return rmdir(a.c_str()) == 0 ? 0 : errno;
    case Kind::kStat: {
      struct stat st;
      return lstat(a.c_str(), &st) == 0 ? 0 : errno;
    }
  }
  return EINVAL;
}

// One thread's operations, all valid in order: the thread's model of its
// own files (path -> nothing) and empty directories decides what comes next.
std::vector<Op> ThreadOps(int thread, uint64_t seed) {
  std::mt19937_64 rng(seed * 1000003 + static_cast<uint64_t>(thread));
  auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
  const std::vector<std::string> dirs = Dirs();
  const std::string me = "t" + std::to_string(thread) + "_";
  std::vector<std::string> files, empty_dirs;
  for (const auto& dir : dirs) {
    for (int k = 0; k < kBaseFilesPerThread; ++k) {
      files.push_back(dir + "/" + me + "base" + std::to_string(k));
    }
  }
  int next = 0;
  auto fresh = [&](const std::string& dir) { return dir + "/" + me + std::to_string(next++); };
  auto take = [&](std::vector<std::string>& from) {
    size_t i = pick(from.size());
    std::string path = from[i];
    from.erase(from.begin() + static_cast<long>(i));
    return path;
  };

  std::vector<Op> ops;
  for (int step = 0; step < kStepsPerThread; ++step) {
    // Mostly in the shared directory: that is where threads contend.
    const std::string dir = pick(2) == 0 ? "shared" : dirs[pick(dirs.size())];
    const std::string data = "t" + std::to_string(thread) + " step " + std::to_string(step) + "\n";
    switch (pick(files.size() < 4 ? 3 : 10)) {
      case 0:
      case 1:
      case 2: {
        std::string path = fresh(dir);
        ops.push_back({Kind::kCreate, path, "", data});
        files.push_back(path);
        break;
      }
      case 3:
        ops.push_back({Kind::kAppend, files[pick(files.size())], "", data});
        break;
      case 4:
      case 5: {  // within a directory or across directories
        std::string from = take(files);
        std::string to = fresh(dir);
        ops.push_back({Kind::kRename, from, to, ""});
        files.push_back(to);
        break;
      }
      case 6:
        ops.push_back({Kind::kUnlink, take(files), "", ""});
        break;
      case 7:
        if (!empty_dirs.empty() && pick(2) == 0) {
          ops.push_back({Kind::kRmdir, take(empty_dirs), "", ""});
        } else {
          std::string path = fresh(dir);
          ops.push_back({Kind::kMkdir, path, "", ""});
          empty_dirs.push_back(path);
        }
        break;
      case 8:
        if (!empty_dirs.empty()) {  // a directory moves across directories
          std::string from = take(empty_dirs);
          std::string to = fresh(dirs[pick(dirs.size())]);
          ops.push_back({Kind::kRename, from, to, ""});
          empty_dirs.push_back(to);
          break;
        }
        [[fallthrough]];
      default:
        ops.push_back({Kind::kStat, files[pick(files.size())], "", ""});
        break;
    }
  }
  return ops;
}

class ConcurrencyTest : public WorkspaceTest {
 protected:
  void SetUp() override {
    WorkspaceTest::SetUp();
    umask(022);
    const std::string base = tmp("base");
    MakeDir(base);
    for (const auto& dir : Dirs()) {
      MakeDir(base + "/" + dir);
      for (int t = 0; t < kThreads; ++t) {
        for (int k = 0; k < kBaseFilesPerThread; ++k) {
          WriteFile(base + "/" + dir + "/t" + std::to_string(t) + "_base" + std::to_string(k),
                    "base of thread " + std::to_string(t) + " in " + dir + "\n");
        }
      }
    }
    ref_ = tmp("reference");
    CopyTree(base, ref_);
    ASSERT_TRUE(NewBuild("conc", base));
    ASSERT_TRUE(Mount("conc"));
    mnt_ = BuildDir("conc");
  }

  std::string ref_, mnt_;
};

// Stats and lists everything until `stop`: entries may vanish under it
// (ENOENT), nothing else may go wrong. Returns what did.
std::vector<std::string> ReadWhileWriting(const std::string& root, const std::atomic<bool>& stop) {
  std::vector<std::string> problems;
  while (!stop.load() && problems.size() < 10) {
    for (const auto& dir : Dirs()) {
      const std::string path = root + "/" + dir;
      DIR* d = opendir(path.c_str());
      if (d == nullptr) {
        problems.push_back("opendir " + dir + ": " + strerror(errno));
        continue;
      }
      std::set<std::string> seen;
      errno = 0;
      while (struct dirent* e = readdir(d)) {
        std::string name = e->d_name;
        if (name == "." || name == "..") continue;
        if (!seen.insert(name).second) problems.push_back("readdir " + dir + ": " + name + " twice");
        struct stat st;
        if (fstatat(dirfd(d), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 && errno != ENOENT) {
          problems.push_back("stat " + dir + "/" + name + ": " + strerror(errno));
        }
        errno = 0;
      }
      if (errno != 0) problems.push_back("readdir " + dir + ": " + strerror(errno));
      closedir(d);
    }
  }
  return problems;
}

TEST_F(ConcurrencyTest, EightThreadsMatchAReferenceDoneOneAtATime) {
  const uint64_t seed = EnvOr("BUILDFS_SEED", kDefaultSeed);
  printf("concurrency test: BUILDFS_SEED=%llu\n", static_cast<unsigned long long>(seed));
  fflush(stdout);
  std::vector<std::vector<Op>> ops;
  for (int t = 0; t < kThreads; ++t) ops.push_back(ThreadOps(t, seed));

  std::vector<std::string> failures[kThreads];
  std::atomic<bool> stop{false};
  std::vector<std::string> read_problems[2];
  {
    std::vector<std::thread> readers;
    for (auto& problems : read_problems) {
      readers.emplace_back([&] { problems = ReadWhileWriting(mnt_, stop); });
    }
    std::vector<std::thread> writers;
    for (int t = 0; t < kThreads; ++t) {
      writers.emplace_back([&, t] {
        for (const Op& op : ops[t]) {
          int err = Apply(op, mnt_);
          if (err != 0) failures[t].push_back(Describe(op) + ": " + strerror(err));
        }
      });
    }
    for (auto& w : writers) w.join();
    stop = true;
    for (auto& r : readers) r.join();
  }
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(failures[t], std::vector<std::string>{}) << "thread " << t << ", BUILDFS_SEED=" << seed;
  }
  for (const auto& problems : read_problems) EXPECT_EQ(problems, std::vector<std::string>{});

  for (int t = 0; t < kThreads; ++t) {
    for (const Op& op : ops[t]) ASSERT_EQ(Apply(op, ref_), 0) << "reference: " << Describe(op);
  }
  const CompareOptions options{.compare_nlink = true};
  EXPECT_EQ(DiffTrees(ref_, mnt_, MountScan(), options), "") << "BUILDFS_SEED=" << seed;
  Snapshot snap = ScanTree(mnt_, MountScan());
  std::map<ino_t, std::string> inodes;
  for (const auto& [path, entry] : snap.entries) {
    auto [it, fresh] = inodes.emplace(entry.ino, path);
    EXPECT_TRUE(fresh) << path << " and " << it->second << " share inode " << entry.ino;
  }

  ASSERT_TRUE(Umount("conc"));
  ASSERT_TRUE(Mount("conc"));
  EXPECT_EQ(DiffTrees(ref_, mnt_, MountScan(), options), "") << "after a remount";
}

TEST_F(ConcurrencyTest, RenamesOntoOneNameLeaveExactlyOneWinner) {
  // Half the sources are lower files (copy-up races the other renames).
  std::vector<std::string> sources;
  for (int t = 0; t < kThreads; ++t) {
    std::string src = t % 2 == 0 ? "d1/t" + std::to_string(t) + "_base0"
                                 : "d2/t" + std::to_string(t) + "_new";
    if (t % 2 == 1) WriteFile(mnt_ + "/" + src, "new of thread " + std::to_string(t) + "\n");
    sources.push_back(src);
  }
  std::atomic<int> ready{0};
  std::vector<int> results(kThreads, -1);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      ++ready;
      while (ready.load() < kThreads) {
      }
      results[t] = Apply(Op{Kind::kRename, sources[t], "shared/target", ""}, mnt_);
    });
  }
  for (auto& th : threads) th.join();

  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(results[t], 0) << sources[t];
    EXPECT_EQ(LstatErrno(mnt_ + "/" + sources[t]), ENOENT) << sources[t];
  }
  const std::string won = ReadFile(mnt_ + "/shared/target");
  bool one_of_them = false;
  for (int t = 0; t < kThreads; ++t) {
    std::string expected = t % 2 == 0 ? ReadFile(ref_ + "/" + sources[t])
                                      : "new of thread " + std::to_string(t) + "\n";
    one_of_them = one_of_them || won == expected;
  }
  EXPECT_TRUE(one_of_them) << won;
  std::vector<std::string> in_shared = ListDir(mnt_ + "/shared");
  EXPECT_EQ(std::count(in_shared.begin(), in_shared.end(), "target"), 1);
  ASSERT_TRUE(Umount("conc"));
  ASSERT_TRUE(Mount("conc"));
  EXPECT_EQ(ReadFile(mnt_ + "/shared/target"), won) << "after a remount";
}

}  // namespace
}  // namespace buildfs::testing
