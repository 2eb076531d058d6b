// Randomized differential test: a seeded sequence of file-system operations is
// applied to a mounted build and to a plain directory on the disk that starts
// as a copy of the build's base. After every step both trees must match in
// full (types, modes, owners, sizes, link counts, content, link targets,
// user xattrs), every failed operation must fail with the same errno on
// both, and inode numbers in the mount must stay stable and distinct.
// Every 1,000 steps the build is unmounted and mounted again.
//
// BUILDFS_SEED picks the sequence (printed at start), BUILDFS_STEPS its length
// (default 5,000). A failure names the seed, the step, the operation, the
// operations before it and the difference, which is enough to replay it.
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/harness.h"

namespace buildfs::testing {
namespace {

constexpr uint64_t kDefaultSeed = 20240611;
constexpr uint64_t kDefaultSteps = 5000;
constexpr uint64_t kRemountEvery = 1000;
constexpr int kBaseDirs = 6;
constexpr int kBaseFiles = 30;
constexpr size_t kCrowded = 64;  // entries above which the generator prefers deleting
constexpr off_t kMaxSize = 48 * 1024;

uint64_t EnvOr(const char* name, uint64_t fallback) {
  const char* v = getenv(name);
  return v != nullptr && *v != '\0' ? strtoull(v, nullptr, 0) : fallback;
}

enum class Kind {
  kCreate,
  kWrite,
  kTruncate,
  kRename,
  kUnlink,
  kMkdir,
  kRmdir,
  kSymlink,
  kLink,
  kChmod,
  kSetxattr,
  kRemovexattr
};

struct Op {
  Kind kind;
  std::string a;  // path relative to the root
  std::string b;  // second path (rename, link)
  int flags = 0;  // open, rename or xattr flags
  mode_t mode = 0;
  off_t offset = 0;  // write offset or truncate length
  std::string data;  // bytes to write, xattr value, or symlink target
  std::string name;  // xattr name

  std::string ToString() const {
    std::ostringstream os;
    switch (kind) {
      case Kind::kCreate:
        os << "create " << a << " mode=0" << std::oct << mode << std::dec
           << ((flags & O_EXCL) ? " O_EXCL" : "") << ((flags & O_TRUNC) ? " O_TRUNC" : "");
        break;
      case Kind::kWrite:
        os << "write " << a << " offset=" << offset << " len=" << data.size()
           << ((flags & O_APPEND) ? " O_APPEND" : "") << ((flags & O_TRUNC) ? " O_TRUNC" : "");
        break;
      case Kind::kTruncate:
        os << "truncate " << a << " to " << offset;
        break;
      case Kind::kRename:
        os << "rename " << a << " -> " << b
           << ((flags & RENAME_NOREPLACE) ? " RENAME_NOREPLACE" : "")
           << ((flags & RENAME_EXCHANGE) ? " RENAME_EXCHANGE" : "");
        break;
      case Kind::kUnlink:
        os << "unlink " << a;
        break;
      case Kind::kMkdir:
        os << "mkdir " << a << " mode=0" << std::oct << mode;
        break;
      case Kind::kRmdir:
        os << "rmdir " << a;
        break;
      case Kind::kSymlink:
        os << "symlink " << a << " -> " << data;
        break;
      case Kind::kLink:
        os << "link " << a << " as " << b;
        break;
      case Kind::kChmod:
        os << "chmod " << a << " 0" << std::oct << mode;
        break;
      case Kind::kSetxattr:
        os << "setxattr " << a << " " << name << " (" << data.size() << " bytes)"
           << ((flags & XATTR_CREATE) ? " XATTR_CREATE" : "")
           << ((flags & XATTR_REPLACE) ? " XATTR_REPLACE" : "");
        break;
      case Kind::kRemovexattr:
        os << "removexattr " << a << " " << name;
        break;
    }
    return os.str();
  }
};

// Applies `op` below `root`; returns 0 or the errno of the failing call.
int Apply(const Op& op, const std::string& root) {
  const std::string a = root + "/" + op.a;
  const std::string b = root + "/" + op.b;
  auto result = [](long rc) { return rc < 0 ? errno : 0; };
  switch (op.kind) {
    case Kind::kCreate: {
      int fd = open(a.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | op.flags, op.mode);
      if (fd < 0) return errno;
      return result(close(fd));
    }
    case Kind::kWrite: {
      int fd = open(a.c_str(), O_WRONLY | O_CLOEXEC | op.flags);
      if (fd < 0) return errno;
      ssize_t n = pwrite(fd, op.data.data(), op.data.size(), op.offset);
      int err = n < 0 ? errno : (static_cast<size_t>(n) != op.data.size() ? EIO : 0);
      if (close(fd) != 0 && err == 0) err = errno;
      return err;
    }
    case Kind::kTruncate:
      return result(truncate(a.c_str(), op.offset));
    case Kind::kRename:
      return result(
          renameat2(AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), static_cast<unsigned>(op.flags)));
    case Kind::kUnlink:
      return result(unlink(a.c_str()));
    case Kind::kMkdir:
      return result(mkdir(a.c_str(), op.mode));
    case Kind::kRmdir:
      return result(rmdir(a.c_str()));
    case Kind::kSymlink:
      return result(symlink(op.data.c_str(), a.c_str()));
    case Kind::kLink:
      return result(link(a.c_str(), b.c_str()));
    case Kind::kChmod:
      return result(chmod(a.c_str(), op.mode));
    case Kind::kSetxattr:
      return result(setxattr(a.c_str(), op.name.c_str(), op.data.data(), op.data.size(), op.flags));
    case Kind::kRemovexattr:
      return result(removexattr(a.c_str(), op.name.c_str()));
  }
  return EINVAL;
}

// "d1/f0: dir with 2 entries" or "d1/f0: missing", from the snapshot taken
// before an operation, so a failure report shows what the operands were.
std::string DescribeOperand(const Snapshot& snap, const std::string& path) {
  if (path.empty()) return "";
  auto it = snap.entries.find(path);
  if (it == snap.entries.end()) return path + ": missing";
  const Entry& e = it->second;
  std::ostringstream os;
  os << path << ": ";
  if (S_ISDIR(e.mode)) {
    size_t children = 0;
    for (auto c = std::next(it); c != snap.entries.end() && c->first.rfind(path + "/", 0) == 0;
         ++c) {
      children += c->first.find('/', path.size() + 1) == std::string::npos;
    }
    os << "dir with " << children << " entries";
  } else if (S_ISLNK(e.mode)) {
    os << "symlink to " << e.data;
  } else {
    os << "file of " << e.size << " bytes, nlink " << e.nlink;
  }
  os << ", mode 0" << std::oct << (e.mode & 07777);
  return os.str();
}

std::string ErrnoName(int err) {
  if (err == 0) return "success";
  const char* name = strerrorname_np(err);
  return name != nullptr ? name : std::to_string(err);
}

// Draws operations whose operands come mostly from the current reference tree,
// so that most of them act on something: base entries, entries made earlier,
// or names of deleted entries coming back.
class OpGenerator {
 public:
  // `hard_links` false: no link operations (OSTree keeps no hard links, so a
  // commit splits them; README, "What the filesystem guarantees").
  explicit OpGenerator(uint64_t seed, bool hard_links = true) : rng_(seed), hard_links_(hard_links) {
    for (int i = 0; i < kBaseFiles; ++i) names_.push_back("f" + std::to_string(i));
    for (int i = 0; i < kBaseDirs; ++i) names_.push_back("d" + std::to_string(i));
    for (int i = 0; i < 3; ++i) names_.push_back("s" + std::to_string(i));
    for (int i = 0; i < 6; ++i) names_.push_back("n" + std::to_string(i));
  }

  Op Next(const Snapshot& ref) {
    Classify(ref);
    const bool crowded = ref.entries.size() > kCrowded;
    // Weights per kind, in Kind order; a crowded tree grows no further.
    const int weights[] = {crowded ? 1 : 10,
                           18,
                           6,
                           14,
                           crowded ? 20 : 8,
                           crowded ? 1 : 7,
                           crowded ? 12 : 6,
                           crowded ? 1 : 5,
                           !hard_links_ ? 0 : crowded ? 1 : 6,
                           8,
                           8,
                           3};
    int total = 0;
    for (int w : weights) total += w;
    int pick = static_cast<int>(Below(static_cast<uint64_t>(total)));
    int k = 0;
    while (pick >= weights[k]) pick -= weights[k++];
    Op op{static_cast<Kind>(k), "", "", 0, 0, 0, "", ""};
    switch (op.kind) {
      case Kind::kCreate:
        op.a = Chance(70) ? NewPath() : AnyPath();
        op.flags = OneOf<int>({0, 0, O_EXCL, O_TRUNC});
        op.mode = OneOf<mode_t>({0644, 0600, 0755, 0444});
        break;
      case Kind::kWrite: {
        op.a = Chance(85) ? FilePath() : AnyPath();
        off_t size = SizeOf(ref, op.a);
        op.offset = static_cast<off_t>(
            Below(static_cast<uint64_t>(std::min<off_t>(size + 2048, kMaxSize))));
        op.data = RandomBytes(rng_(), 1 + Below(8192));
        op.flags = Chance(10) ? O_APPEND : (Chance(5) ? O_TRUNC : 0);
        if ((op.flags & O_APPEND) && size > kMaxSize) op.flags = O_TRUNC;
        break;
      }
      case Kind::kTruncate:
        op.a = Chance(85) ? FilePath() : AnyPath();
        op.offset = static_cast<off_t>(
            Below(static_cast<uint64_t>(std::min<off_t>(2 * SizeOf(ref, op.a) + 1000, kMaxSize))));
        break;
      case Kind::kRename:
        switch (Below(5)) {
          case 0:
            op.a = FilePath();
            op.b = NewPath();
            break;
          case 1:
            op.a = FilePath();
            op.b = FilePath();
            break;  // over an existing file
          case 2:
            op.a = DirPath();
            op.b = NewPath();
            break;
          case 3:
            op.a = DirPath();
            op.b = DirPath();
            break;  // over a directory, often not empty
          default:
            op.a = AnyPath();
            op.b = Chance(50) ? AnyPath() : NewPath();
            break;
        }
        op.flags = Chance(80) ? 0 : (Chance(50) ? RENAME_NOREPLACE : RENAME_EXCHANGE);
        break;
      case Kind::kUnlink:
        op.a = Chance(85) ? NonDirPath() : AnyPath();
        break;
      case Kind::kMkdir:
        op.a = Chance(85) ? NewPath() : AnyPath();
        op.mode = OneOf<mode_t>({0755, 0700, 0775});
        break;
      case Kind::kRmdir:
        op.a = Chance(85) ? DirPath() : AnyPath();
        break;
      case Kind::kSymlink:
        op.a = Chance(85) ? NewPath() : AnyPath();
        // Relative and without "..": a link can never lead out of the tree.
        op.data = Chance(50) ? Name() : "d" + std::to_string(Below(kBaseDirs)) + "/" + Name();
        break;
      case Kind::kLink:
        op.a = Chance(85) ? NonDirPath() : AnyPath();
        op.b = Chance(85) ? NewPath() : AnyPath();
        break;
      case Kind::kChmod:
        op.a = AnyPath();
        op.mode = OneOf<mode_t>({0644, 0600, 0755, 0700, 0444, 0, 01777, 04755, 02755, 0711});
        break;
      case Kind::kSetxattr:
        op.a = AnyPath();
        op.name = XattrName(ref, op.a);
        op.data = RandomBytes(rng_(), Below(100));
        op.flags = OneOf<int>({0, 0, XATTR_CREATE, XATTR_REPLACE});
        break;
      case Kind::kRemovexattr:
        op.a = AnyPath();
        op.name = XattrName(ref, op.a);
        break;
    }
    return op;
  }

 private:
  uint64_t Below(uint64_t n) { return n == 0 ? 0 : rng_() % n; }
  bool Chance(int percent) { return Below(100) < static_cast<uint64_t>(percent); }
  template <typename T>
  T OneOf(std::initializer_list<T> options) {
    return *(options.begin() + Below(options.size()));
  }
  const std::string& Name() { return names_[Below(names_.size())]; }
  const std::string& From(const std::vector<std::string>& v) { return v[Below(v.size())]; }

  void Classify(const Snapshot& ref) {
    files_.clear();
    dirs_.clear();
    non_dirs_.clear();
    all_.clear();
    for (const auto& [path, e] : ref.entries) {  // std::map: a fixed order
      all_.push_back(path);
      if (S_ISDIR(e.mode))
        dirs_.push_back(path);
      else
        non_dirs_.push_back(path);
      if (S_ISREG(e.mode)) files_.push_back(path);
    }
  }

  std::string NewPath() {
    std::string parent = dirs_.empty() || Chance(20) ? "" : From(dirs_);
    return (parent.empty() ? "" : parent + "/") + Name();
  }
  std::string AnyPath() { return all_.empty() || Chance(10) ? NewPath() : From(all_); }
  std::string FilePath() { return files_.empty() ? AnyPath() : From(files_); }
  std::string NonDirPath() { return non_dirs_.empty() ? AnyPath() : From(non_dirs_); }
  std::string DirPath() { return dirs_.empty() ? AnyPath() : From(dirs_); }

  // Mostly a name the entry has (so removes and replaces act), else any.
  std::string XattrName(const Snapshot& ref, const std::string& path) {
    auto it = ref.entries.find(path);
    if (it != ref.entries.end() && !it->second.xattrs.empty() && Chance(70)) {
      auto x = it->second.xattrs.begin();
      std::advance(x, static_cast<long>(Below(it->second.xattrs.size())));
      return x->first;
    }
    return "user.k" + std::to_string(Below(4));
  }

  static off_t SizeOf(const Snapshot& ref, const std::string& path) {
    auto it = ref.entries.find(path);
    return it == ref.entries.end() ? 0 : it->second.size;
  }

  std::mt19937_64 rng_;
  bool hard_links_;
  std::vector<std::string> names_;
  std::vector<std::string> files_, dirs_, non_dirs_, all_;
};

// Inode numbers of the mount, checked against the reference's: an inode that
// lives on in the reference keeps its number in the mount (copy-up, rename),
// names that share an inode in the reference share it in the mount, and
// different inodes never share a number.
class InodeMap {
 public:
  std::string Check(const Snapshot& ref, const Snapshot& mnt) {
    std::map<ino_t, std::pair<ino_t, std::string>> next;  // reference ino -> mount ino, a path
    std::map<ino_t, std::string> owner;                   // mount ino -> reference path
    std::string problems;
    for (const auto& [path, r] : ref.entries) {
      auto m = mnt.entries.find(path);
      if (m == mnt.entries.end()) continue;  // reported by the tree comparison
      const ino_t mino = m->second.ino;
      if (auto it = next.find(r.ino); it != next.end() && it->second.first != mino) {
        problems += path + " and " + it->second.second +
                    " are one inode, but the mount gives them " + std::to_string(mino) + " and " +
                    std::to_string(it->second.first) + "\n";
      }
      if (auto it = owner.find(mino);
          it != owner.end() && ref.entries.at(it->second).ino != r.ino) {
        problems += path + " and " + it->second + " are different files with one inode number " +
                    std::to_string(mino) + "\n";
      }
      if (auto it = known_.find(r.ino); it != known_.end() && it->second.first != mino) {
        problems += path + " changed inode number from " + std::to_string(it->second.first) +
                    " to " + std::to_string(mino) + "\n";
      }
      next.emplace(r.ino, std::make_pair(mino, path));
      owner.emplace(mino, path);
    }
    known_ = std::move(next);
    return problems;
  }
  // Numbers are promised stable only while mounted.
  void Forget() { known_.clear(); }

 private:
  std::map<ino_t, std::pair<ino_t, std::string>> known_;
};

// Adds the time from construction to Stop() to *total; shows where a slow run goes.
class Stopwatch {
 public:
  explicit Stopwatch(double* total) : total_(total), start_(std::chrono::steady_clock::now()) {}
  void Stop() {
    *total_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  double* total_;
  std::chrono::steady_clock::time_point start_;
};

class DifferentialTest : public WorkspaceTest {
 protected:
  // A random tree from `seed` as the base of build "diff", mounted, and a
  // plain copy of it to apply the same operations to.
  void MakeBuildAndReference(uint64_t seed) {
    umask(022);
    const std::string base = tmp("base");
    ref_ = tmp("reference");
    MakeRandomTree(base, seed, kBaseDirs, kBaseFiles);
    CopyTree(base, ref_);
    ASSERT_TRUE(NewBuild("diff", base));
    ASSERT_TRUE(Mount("diff"));
    mnt_ = BuildDir("diff");
  }

  std::string ref_, mnt_;
};

TEST_F(DifferentialTest, RandomOperationsMatchAPlainDirectory) {
  const uint64_t seed = EnvOr("BUILDFS_SEED", kDefaultSeed);
  const uint64_t steps = EnvOr("BUILDFS_STEPS", kDefaultSteps);
  printf("differential test: BUILDFS_SEED=%llu BUILDFS_STEPS=%llu\n",
         static_cast<unsigned long long>(seed), static_cast<unsigned long long>(steps));
  fflush(stdout);
  RecordProperty("seed", std::to_string(seed));
  ASSERT_NO_FATAL_FAILURE(MakeBuildAndReference(seed));
  const std::string& ref = ref_;
  const std::string& mnt = mnt_;
  const CompareOptions options{.compare_nlink = true};

  std::deque<std::string> recent;  // the operations before a failure, for the report
  std::string operands;            // the current operation's operands before it ran
  auto report = [&](uint64_t step, const std::string& what) {
    std::string history;
    for (const auto& line : recent) history += "  " + line + "\n";
    return "BUILDFS_SEED=" + std::to_string(seed) + " step " + std::to_string(step) + ": " + what +
           "\noperands before it: " + operands + "\nlast operations (newest last):\n" + history;
  };

  Snapshot ref_snap = ScanTree(ref);
  Snapshot mnt_snap = ScanTree(mnt, MountScan());
  ASSERT_EQ(DiffSnapshots(ref_snap, mnt_snap, options), "")
      << "the fresh mount differs from its base";
  InodeMap inodes;
  ASSERT_EQ(inodes.Check(ref_snap, mnt_snap), "");

  OpGenerator gen(seed);
  std::map<std::string, std::pair<int, int>> outcomes;  // kind word -> (succeeded, failed)
  uint64_t succeeded = 0;
  double mount_op_seconds = 0, mount_scan_seconds = 0;
  for (uint64_t step = 1; step <= steps; ++step) {
    const Op op = gen.Next(ref_snap);
    operands = DescribeOperand(ref_snap, op.a) +
               (op.b.empty() ? "" : "; " + DescribeOperand(ref_snap, op.b));
    const int ref_err = Apply(op, ref);
    Stopwatch op_time(&mount_op_seconds);
    const int mnt_err = Apply(op, mnt);
    op_time.Stop();
    const std::string text = op.ToString();
    recent.push_back(text + " => " + ErrnoName(ref_err));
    if (recent.size() > 25) recent.pop_front();
    auto& count = outcomes[text.substr(0, text.find(' '))];
    (ref_err == 0 ? count.first : count.second)++;
    succeeded += ref_err == 0;
    ASSERT_EQ(ErrnoName(mnt_err), ErrnoName(ref_err))
        << report(step, text + ": the mount answered " + ErrnoName(mnt_err) +
                            ", a plain directory " + ErrnoName(ref_err));

    ref_snap = ScanTree(ref);
    Stopwatch scan_time(&mount_scan_seconds);
    mnt_snap = ScanTree(mnt, MountScan());
    scan_time.Stop();
    const std::string diff = DiffSnapshots(ref_snap, mnt_snap, options);
    ASSERT_EQ(diff, "") << report(step, "trees differ after " + text);
    const std::string inode_problems = inodes.Check(ref_snap, mnt_snap);
    ASSERT_EQ(inode_problems, "") << report(step, "inode numbers after " + text);

    if (step % kRemountEvery == 0) {
      // Per-interval cost: a daemon that slows down as its history grows shows here.
      printf("differential test: step %llu, %zu entries, mount scans so far %.1f s\n",
             static_cast<unsigned long long>(step), ref_snap.entries.size(), mount_scan_seconds);
      fflush(stdout);
      ASSERT_TRUE(Umount("diff")) << report(step, "umount");
      ASSERT_TRUE(Mount("diff")) << report(step, "mount");
      mnt_snap = ScanTree(mnt, MountScan());
      ASSERT_EQ(DiffSnapshots(ref_snap, mnt_snap, options), "")
          << report(step, "trees differ after umount and mount");
      inodes.Forget();
      ASSERT_EQ(inodes.Check(ref_snap, mnt_snap), "") << report(step, "inode numbers after mount");
    }
  }

  printf("differential test: %llu of %llu operations succeeded; by kind (ok/failed):",
         static_cast<unsigned long long>(succeeded), static_cast<unsigned long long>(steps));
  for (const auto& [kind, c] : outcomes) printf(" %s %d/%d", kind.c_str(), c.first, c.second);
  printf("\nfinal tree: %zu entries; time in the mount: operations %.1f s, scans %.1f s\n",
         ref_snap.entries.size(), mount_op_seconds, mount_scan_seconds);
  // A generator whose operations mostly fail would test little but error paths.
  EXPECT_GT(succeeded, steps / 2) << "too few operations succeeded to exercise the filesystem";
}

// Runs `buildfs commit`, `branch`, `rm` of an older branch and `prune` of the
// build in a loop on its own thread, so that its daemon switches the stack
// (freeze, replace the lowers) while the test's operations run. Every
// command must succeed; failures are collected for the test to report.
class LifecycleLoop {
 public:
  // `background` false: nothing runs until Once() is called.
  LifecycleLoop(std::function<CommandResult(const std::vector<std::string>&)> buildfs,
                std::string build, bool background = true)
      : buildfs_(std::move(buildfs)), build_(std::move(build)) {
    if (background) thread_ = std::thread([this] { Run(); });
  }
  // Runs the next lifecycle command on the caller's thread.
  void Once() { RunOne(); }
  ~LifecycleLoop() { Stop(); }

  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  // "commit: exit 1 ..." lines of the commands that failed.
  std::string failures() {
    std::lock_guard lock(mu_);
    return failures_;
  }
  int switches() const { return switches_; }

 private:
  void Run() {
    while (!stop_) {
      RunOne();
      std::this_thread::sleep_for(std::chrono::milliseconds(150));
    }
  }

  void RunOne() {
    const int round = round_++;
    std::vector<std::string> args;
    switch (round % 4) {
      case 0:
        args = {"commit", build_, "-m", "round " + std::to_string(round)};
        break;
      case 1:
        args = {"branch", build_, "br" + std::to_string(round)};
        break;
      case 2:
        args = {"prune"};
        break;
      default:
        // The branch of the round before last: rm folds layers away too.
        args = {"rm", "br" + std::to_string(round - 6)};
        if (round < 6) args = {"commit", build_, "-m", "early " + std::to_string(round)};
        break;
    }
    CommandResult r = buildfs_(args);
    if (!r.ok()) {
      std::lock_guard lock(mu_);
      failures_ += args[0] + ": " + r.Describe() + "\n";
    }
    ++switches_;
  }

  std::function<CommandResult(const std::vector<std::string>&)> buildfs_;
  std::string build_;
  std::atomic<bool> stop_{false};
  std::atomic<int> switches_{0};
  std::atomic<int> round_{0};
  std::mutex mu_;
  std::string failures_;
  std::thread thread_;
};

// Applies the generator's operations to the reference and to the mount in
// lockstep: each must answer the same on both. Keeps the last operations for
// a report that names what replays it (`replay`: "BUILDFS_SEED=... ").
class Lockstep {
 public:
  Lockstep(uint64_t seed, std::string replay, std::string ref, std::string mnt, ScanOptions mount_scan)
      : gen_(seed, /*hard_links=*/false),
        replay_(std::move(replay)),
        ref_(std::move(ref)),
        mnt_(std::move(mnt)),
        mount_scan_(std::move(mount_scan)),
        snap_(ScanTree(ref_)) {}

  // The next operation on both trees; a failure when their answers differ.
  void Step() {
    ++step_;
    const Op op = gen_.Next(snap_);
    const int ref_err = Apply(op, ref_);
    const int mnt_err = Apply(op, mnt_);
    last_ = op.ToString();
    Note(last_ + " => " + ErrnoName(ref_err));
    ASSERT_EQ(ErrnoName(mnt_err), ErrnoName(ref_err))
        << Report(last_ + ": the mount answered " + ErrnoName(mnt_err) + ", a plain directory " +
                  ErrnoName(ref_err));
    snap_ = ScanTree(ref_);
  }
  // A line in the history of the report.
  void Note(const std::string& line) {
    recent_.push_back(line);
    if (recent_.size() > 25) recent_.pop_front();
  }
  std::string Report(const std::string& what) const {
    std::string history;
    for (const auto& line : recent_) history += "  " + line + "\n";
    return replay_ + "step " + std::to_string(step_) + ": " + what + "\nlast operations (newest last):\n" +
           history;
  }
  // Empty when the mount holds the reference's tree, else the difference.
  std::string Differences() const {
    return DiffSnapshots(snap_, ScanTree(mnt_, mount_scan_), CompareOptions{.compare_nlink = true});
  }
  uint64_t step() const { return step_; }
  const std::string& last() const { return last_; }

 private:
  OpGenerator gen_;
  const std::string replay_, ref_, mnt_;
  const ScanOptions mount_scan_;
  Snapshot snap_;
  std::deque<std::string> recent_;
  uint64_t step_ = 0;
  std::string last_;
};

// The same operations as above, while the build is committed, branched and
// pruned over and over: a stack switch must be invisible to every operation
// (same result, same errno, same tree). Bounded by time, not steps: the
// seed fixes the operations, the loop's timing decides where switches fall.
TEST_F(DifferentialTest, RandomOperationsMatchWhileCommitsBranchesAndPrunesRun) {
  const uint64_t seed = EnvOr("BUILDFS_SEED", kDefaultSeed + 1);
  const double seconds = static_cast<double>(EnvOr("BUILDFS_SWITCH_SECONDS", 45));
  printf("differential test under stack switches: BUILDFS_SEED=%llu BUILDFS_SWITCH_SECONDS=%.0f\n",
         static_cast<unsigned long long>(seed), seconds);
  fflush(stdout);
  ASSERT_NO_FATAL_FAILURE(MakeBuildAndReference(seed));
  Lockstep run(seed, "BUILDFS_SEED=" + std::to_string(seed) + " ", ref_, mnt_, MountScan());
  {
    // BUILDFS_SWITCH_EVERY=N: the lifecycle commands run between operations,
    // after every N of them, so a failure replays exactly.
    const uint64_t every = EnvOr("BUILDFS_SWITCH_EVERY", 0);
    LifecycleLoop loop([this](const std::vector<std::string>& a) { return Buildfs(a); }, "diff",
                       /*background=*/every == 0);
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < deadline) {
      ASSERT_NO_FATAL_FAILURE(run.Step());
      if (every != 0 && run.step() % every == 0) {
        loop.Once();
        run.Note("(" + std::to_string(loop.switches()) + " lifecycle commands)");
      }
      if (run.step() % 50 == 0 || every != 0) {
        ASSERT_EQ(run.Differences(), "") << run.Report("trees differ after " + run.last());
      }
    }
    loop.Stop();
    printf("differential test under stack switches: %llu operations, %d lifecycle commands\n",
           static_cast<unsigned long long>(run.step()), loop.switches());
    ASSERT_EQ(loop.failures(), "") << "lifecycle commands failed while operations ran";
    ASSERT_GT(loop.switches(), 10) << "too few lifecycle commands ran to test anything";
  }
  ASSERT_EQ(run.Differences(), "") << run.Report("trees differ at the end");
  ASSERT_TRUE(Umount("diff"));
  ASSERT_TRUE(Mount("diff"));
  ASSERT_EQ(run.Differences(), "") << run.Report("trees differ after umount and mount");
}

// A commit freezes the upper, writes the commit while the build goes on, then
// replaces the lowers by the commit. Here the test holds the workspace lock
// from the freeze until after `between` operations, so each commit's two
// stack switches fall on either side of them, at the same steps every run.
TEST_F(DifferentialTest, RandomOperationsMatchBetweenACommitsFreezeAndItsReload) {
  const uint64_t seed = EnvOr("BUILDFS_SEED", kDefaultSeed + 1);
  const uint64_t steps = EnvOr("BUILDFS_STEPS", 600);
  const uint64_t between = EnvOr("BUILDFS_BETWEEN", 7);
  printf("differential test across commits: BUILDFS_SEED=%llu BUILDFS_STEPS=%llu BUILDFS_BETWEEN=%llu\n",
         static_cast<unsigned long long>(seed), static_cast<unsigned long long>(steps),
         static_cast<unsigned long long>(between));
  fflush(stdout);
  ASSERT_NO_FATAL_FAILURE(MakeBuildAndReference(seed));
  const std::string build_json = ws() + "/.buildfs/builds/diff/build.json";
  ASSERT_EQ(access(build_json.c_str(), F_OK), 0) << build_json;
  // The build's state names the commit being written from its freeze until
  // the commit is recorded.
  auto committing = [&] {
    std::ifstream in(build_json);
    std::stringstream state;
    state << in.rdbuf();
    return state.str().find("\"pending_commit\"") != std::string::npos;
  };
  Lockstep run(seed, "BUILDFS_SEED=" + std::to_string(seed) + " BUILDFS_BETWEEN=" + std::to_string(between) + " ",
               ref_, mnt_, MountScan());
  int held = 0, commits = 0;
  while (run.step() < steps) {
    for (uint64_t i = 0; i < between && run.step() < steps; ++i) ASSERT_NO_FATAL_FAILURE(run.Step());
    // The commit freezes (its state file then names the commit it is writing),
    // and the test takes the workspace lock before the commit can take it back.
    const std::string lock_path = ws() + "/.buildfs/lock";
    const int lock_fd = open(lock_path.c_str(), O_RDWR | O_CLOEXEC);
    ASSERT_GE(lock_fd, 0) << lock_path;
    CommandResult committed;
    std::atomic<bool> done{false};
    std::thread commit([&] {
      committed = Buildfs({"commit", "diff", "-m", "step " + std::to_string(run.step())});
      done = true;
    });
    bool locked = false;
    while (!done && !locked) {
      if (committing()) {
        locked = flock(lock_fd, LOCK_EX) == 0;
        // Taken too late (the commit is recorded): let go at once.
        if (locked && !committing()) {
          flock(lock_fd, LOCK_UN);
          locked = false;
          break;
        }
      }
      if (!locked) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    held += locked;
    for (uint64_t i = 0; i < between && run.step() < steps; ++i) {
      run.Step();
      if (HasFatalFailure()) break;
    }
    if (locked) flock(lock_fd, LOCK_UN);
    close(lock_fd);
    commit.join();
    ++commits;
    if (HasFatalFailure()) return;
    ASSERT_TRUE(committed.ok()) << committed.Describe();
    ASSERT_EQ(run.Differences(), "") << run.Report("trees differ after the commit");
  }
  printf("differential test across commits: %llu operations, %d commits, %d held between freeze and reload\n",
         static_cast<unsigned long long>(run.step()), commits, held);
  ASSERT_GT(held, commits / 2) << "too few commits were held between their freeze and reload";
}

}  // namespace
}  // namespace buildfs::testing
