// Times of a build (issue "keeps every file's times"): an imported tree shows
// the times it had on disk, nanoseconds included, and every entry keeps its
// mtime and atime (and inode number) across commit, remount, branch, reset
// and export; ctime of a committed entry is its mtime. So git finds its index
// fresh and make gives the same answer after a commit, and the kernel's cached
// attributes stay right.
#include <fcntl.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/harness.h"

namespace buildfs::testing {
namespace {

// What stat shows of an entry, without reading it.
struct Stat {
  struct timespec mtime, atime, ctime;
  ino_t ino;
  mode_t mode;
  uid_t uid;
  gid_t gid;
  off_t size;
  nlink_t nlink;
};

std::string Ts(const struct timespec& t) {
  char buf[64];
  snprintf(buf, sizeof buf, "%lld.%09ld", static_cast<long long>(t.tv_sec), t.tv_nsec);
  return buf;
}

// Every entry below `root` (not `cache` at the top), by path.
void StatTree(const std::string& root, const std::string& rel, std::map<std::string, Stat>* out) {
  for (const auto& name : ListDir(rel.empty() ? root : root + "/" + rel)) {
    if (rel.empty() && name == "cache") continue;
    const std::string path = rel.empty() ? name : rel + "/" + name;
    struct stat st = Lstat(root + "/" + path);
    (*out)[path] = Stat{st.st_mtim, st.st_atim, st.st_ctim, st.st_ino, st.st_mode,
                        st.st_uid,  st.st_gid,  st.st_size, st.st_nlink};
    if (S_ISDIR(st.st_mode)) StatTree(root, path, out);
  }
}

std::map<std::string, Stat> StatTree(const std::string& root) {
  std::map<std::string, Stat> out;
  StatTree(root, "", &out);
  return out;
}

struct Compare {
  bool atime = true;   // of non-directories (listing a directory may touch its own)
  bool ino = false;    // inode numbers (one mount's against another's)
  bool ctime = false;  // ctime (equal to mtime once committed)
  bool rest = false;   // mode, owner, size, link count
};

// "" when `b` shows what `a` does; otherwise one line per difference.
std::string DiffStats(const std::map<std::string, Stat>& a, const std::map<std::string, Stat>& b,
                      const Compare& c) {
  std::string out;
  auto same = [](const timespec& x, const timespec& y) { return x.tv_sec == y.tv_sec && x.tv_nsec == y.tv_nsec; };
  for (const auto& [path, x] : a) {
    auto it = b.find(path);
    if (it == b.end()) {
      out += path + ": missing\n";
      continue;
    }
    const Stat& y = it->second;
    if (!same(x.mtime, y.mtime)) out += path + ": mtime " + Ts(x.mtime) + " -> " + Ts(y.mtime) + "\n";
    if (c.atime && !S_ISDIR(x.mode) && !same(x.atime, y.atime)) {
      out += path + ": atime " + Ts(x.atime) + " -> " + Ts(y.atime) + "\n";
    }
    if (c.ctime && !same(x.ctime, y.ctime)) out += path + ": ctime " + Ts(x.ctime) + " -> " + Ts(y.ctime) + "\n";
    if (c.ino && x.ino != y.ino) out += path + ": inode " + std::to_string(x.ino) + " -> " + std::to_string(y.ino) + "\n";
    if (c.rest && (x.mode != y.mode || x.uid != y.uid || x.gid != y.gid || x.size != y.size || x.nlink != y.nlink)) {
      out += path + ": mode, owner, size or link count changed\n";
    }
  }
  for (const auto& [path, y] : b) {
    if (!a.count(path)) out += path + ": unexpected\n";
  }
  return out;
}

void SetTimes(const std::string& path, time_t m, long mn, time_t a, long an) {
  struct timespec t[2] = {{a, an}, {m, mn}};
  if (utimensat(AT_FDCWD, path.c_str(), t, AT_SYMLINK_NOFOLLOW) != 0) {
    throw std::runtime_error("utimensat " + path + ": " + strerror(errno));
  }
}

class TimesTest : public WorkspaceTest {
 protected:
  void SetUp() override {
    WorkspaceTest::SetUp();
    umask(022);
    src_ = tmp("src");
    MakeTree(src_, {{"a.c", "int a;\n"}, {"dir/b.h", "int b;\n"}});
    MakeSymlink("a.c", src_ + "/link");
    ASSERT_EQ(mkfifo((src_ + "/fifo").c_str(), 0644), 0);
    MakeDir(src_ + "/big");  // a table too big for an xattr
    for (int i = 0; i < 200; ++i) {
      WriteFile(src_ + "/big/f" + std::to_string(i), std::to_string(i));
      SetTimes(src_ + "/big/f" + std::to_string(i), 1500000000 + i * 7, i * 1013, 1500000000 + i * 11, i * 997);
    }
    SetTimes(src_ + "/a.c", 1577836800, 123456789, 1577836900, 987654321);
    SetTimes(src_ + "/dir/b.h", 1262304000, 1, 1262304001, 2);
    SetTimes(src_ + "/link", 1000000000, 5, 1000000001, 6);
    SetTimes(src_ + "/fifo", 900000000, 7, 900000001, 8);
    SetTimes(src_ + "/big", 1400000000, 9, 1400000001, 10);
    SetTimes(src_ + "/dir", 1300000000, 11, 1300000001, 12);
    SetTimes(src_, 1200000000, 13, 1200000001, 14);
    source_ = StatTree(src_);
  }

  std::string M(const std::string& build, const std::string& rel) const { return BuildDir(build) + "/" + rel; }
  static std::string Drop() {
    std::ofstream("/proc/sys/vm/drop_caches") << "3\n";
    return "";
  }

  std::string src_;
  std::map<std::string, Stat> source_;
};

TEST_F(TimesTest, AnImportedTreeShowsTheTimesItHadOnDisk) {
  ASSERT_TRUE(NewBuild("t", src_));
  ASSERT_TRUE(Mount("t"));
  auto shown = StatTree(BuildDir("t"));
  EXPECT_EQ(DiffStats(source_, shown, {.atime = true}), "");
  for (const auto& [path, s] : shown) {
    EXPECT_TRUE(s.ctime.tv_sec == s.mtime.tv_sec && s.ctime.tv_nsec == s.mtime.tv_nsec) << path << " ctime";
  }
  struct stat root;
  ASSERT_EQ(stat(BuildDir("t").c_str(), &root), 0);
  EXPECT_EQ(root.st_mtim.tv_sec, 1200000000);
  EXPECT_EQ(root.st_mtim.tv_nsec, 13);
}

TEST_F(TimesTest, TimesSurviveCommitRemountBranchResetAndExport) {
  ASSERT_TRUE(NewBuild("t", src_));
  ASSERT_TRUE(Mount("t"));
  SetTimes(M("t", "a.c"), 1600000000, 111, 1600000100, 222);  // a base file, copied up
  WriteFile(M("t", "new.c"), "int n;\n");                       // a new file
  MakeDir(M("t", "newdir"));
  WriteFile(M("t", "newdir/x"), "x\n");
  SetTimes(M("t", "newdir/x"), 1650000000, 333, 1650000000, 333);
  WriteFile(M("t", "big/f7"), "changed\n");  // in the directory with a big table
  const auto before = StatTree(BuildDir("t"));
  ASSERT_TRUE(Buildfs({"commit", "t", "-m", "times"}).ok());
  EXPECT_EQ(DiffStats(before, StatTree(BuildDir("t")), {.ino = true}), "") << "after the commit";
  ASSERT_TRUE(Umount("t"));
  ASSERT_TRUE(Mount("t"));
  EXPECT_EQ(DiffStats(before, StatTree(BuildDir("t")), {.ino = true}), "") << "after a remount";
  for (const auto& [path, s] : StatTree(BuildDir("t"))) {
    EXPECT_TRUE(s.ctime.tv_sec == s.mtime.tv_sec && s.ctime.tv_nsec == s.mtime.tv_nsec) << path << " ctime";
  }

  ASSERT_TRUE(Buildfs({"branch", "t", "br"}).ok());
  ASSERT_TRUE(Mount("br"));
  EXPECT_EQ(DiffStats(before, StatTree(BuildDir("br")), {}), "") << "in a branch";
  SetTimes(M("br", "new.c"), 1, 1, 1, 1);
  ASSERT_TRUE(Buildfs({"reset", "--yes", "br"}).ok());
  EXPECT_EQ(DiffStats(before, StatTree(BuildDir("br")), {}), "") << "after a reset";

  ASSERT_TRUE(Buildfs({"export", "t", tmp("exported")}).ok());
  EXPECT_EQ(DiffStats(before, StatTree(tmp("exported")), {}), "") << "in an export";
}

// A commit changes nothing the kernel may have cached of the base's entries,
// and tells it about what it changes (ctime of entries it folded in): the
// attributes read before, right after (cache warm) and after dropping the
// caches agree.
TEST_F(TimesTest, ACommitKeepsWhatTheKernelCachedTrue) {
  ASSERT_TRUE(NewBuild("t", src_));
  ASSERT_TRUE(Mount("t"));
  WriteFile(M("t", "new.c"), "int n;\n");
  WriteFile(M("t", "dir/b.h"), "int b2;\n");
  const auto before = StatTree(BuildDir("t"));
  ASSERT_TRUE(Buildfs({"commit", "t", "-m", "one"}).ok());
  const Compare all{.atime = true, .ino = true, .ctime = true, .rest = true};
  const auto warm = StatTree(BuildDir("t"));
  EXPECT_EQ(DiffStats(before, warm, all), "");
  Drop();
  EXPECT_EQ(DiffStats(warm, StatTree(BuildDir("t")), all), "");
  // tar finds nothing that changed while it read, after a commit and a prune.
  ASSERT_TRUE(Buildfs({"prune"}).ok());
  CommandResult tar = RunCommand({"/bin/tar", "-cf", "/dev/null", "-C", BuildDir("t"), "--exclude=./cache", "."});
  EXPECT_TRUE(tar.ok()) << tar.Describe();
}

// A reader walking the build while commits, branches and a prune switch its
// layers underneath sees every entry exactly as before: no attribute (ctime
// and inode number included) moves, no entry comes or goes.
TEST_F(TimesTest, AReaderSeesNothingMoveWhileCommitsAndBranchesRun) {
  ASSERT_TRUE(NewBuild("t", src_));
  ASSERT_TRUE(Mount("t"));
  WriteFile(M("t", "new.c"), "int n;\n");
  WriteFile(M("t", "dir/b.h"), "int b2;\n");
  const auto baseline = StatTree(BuildDir("t"));
  const Compare all{.atime = true, .ino = true, .ctime = true, .rest = true};
  std::atomic<bool> stop{false};
  std::atomic<int> walks{0};
  std::string first_difference;
  std::thread reader([&] {
    while (!stop.load() && first_difference.empty()) {
      try {
        first_difference = DiffStats(baseline, StatTree(BuildDir("t")), all);
      } catch (const std::exception& e) {
        first_difference = e.what();
      }
      ++walks;
    }
  });
  EXPECT_TRUE(Buildfs({"commit", "t", "-m", "one"}).ok());
  EXPECT_TRUE(Buildfs({"branch", "t", "t2"}).ok());
  EXPECT_TRUE(Buildfs({"branch", "t", "t3"}).ok());
  EXPECT_TRUE(Buildfs({"commit", "t", "-m", "nothing"}).ok());
  EXPECT_TRUE(Buildfs({"prune"}).ok());
  WaitUntil([&] { return walks.load() >= 3; }, 30000);
  stop = true;
  reader.join();
  EXPECT_EQ(first_difference, "");
  EXPECT_GE(walks.load(), 3);
}

// The numbers in directory listings (which the kernel keeps) are the ones
// stat shows, also for the second name of a hard link, which a branch and a
// commit make a file of its own.
TEST_F(TimesTest, ListingsShowTheNumbersStatShowsAcrossBranchAndCommit) {
  ASSERT_TRUE(NewBuild("t", src_));
  ASSERT_TRUE(Mount("t"));
  WriteFile(M("t", "dir/one"), "linked\n");
  ASSERT_EQ(link(M("t", "dir/one").c_str(), M("t", "dir/two").c_str()), 0) << strerror(errno);
  auto listed = [&] {
    std::map<std::string, ino_t> inos;
    DIR* d = opendir(M("t", "dir").c_str());
    if (!d) return inos;
    while (struct dirent* e = readdir(d)) inos[e->d_name] = e->d_ino;
    closedir(d);
    return inos;
  };
  auto check = [&](const std::string& when) {
    for (const auto& [name, ino] : listed()) {
      if (name == "." || name == "..") continue;
      EXPECT_EQ(ino, Lstat(M("t", "dir/" + name)).st_ino) << name << " " << when;
    }
  };
  check("before");
  // The kernel keeps the listing while the directory stays open, also when
  // it lets go of the names in it (so nothing else tells it they changed).
  const int dir_fd = open(M("t", "dir").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(dir_fd, 0) << strerror(errno);
  std::ofstream("/proc/sys/vm/drop_caches") << "2\n";
  ASSERT_TRUE(Buildfs({"branch", "t", "t2"}).ok());
  check("after a branch");
  close(dir_fd);
  WriteFile(M("t", "dir/three"), "3\n");
  ASSERT_EQ(link(M("t", "dir/three").c_str(), M("t", "dir/four").c_str()), 0) << strerror(errno);
  check("after new links");
  ASSERT_TRUE(Buildfs({"commit", "t", "-m", "links"}).ok());
  check("after a commit");
  EXPECT_NE(Lstat(M("t", "dir/one")).st_ino, Lstat(M("t", "dir/two")).st_ino);
}

// `git status` after a commit and a remount hashes no file again: git finds
// every file's stat data (times, inode, size) as its index recorded it.
TEST_F(TimesTest, GitReadsNoFileAfterACommitAndARemount) {
  ASSERT_TRUE(NewBuild("t", src_));
  ASSERT_TRUE(Mount("t"));
  const std::string git = "git -c user.email=t@t -c user.name=t ";
  CommandResult init = RunCommand({"/bin/sh", "-c", git + "init -q . && " + git + "add -A && " + git +
                                                        "commit -qm x && git status --porcelain"},
                                  BuildDir("t"));
  ASSERT_TRUE(init.ok()) << init.Describe();
  ASSERT_TRUE(Buildfs({"commit", "t", "-m", "with git"}).ok());
  ASSERT_TRUE(Umount("t"));
  ASSERT_TRUE(Mount("t"));
  CommandResult traced = RunCommand({"/usr/bin/strace", "-f", "-e", "trace=openat,open", "-o", tmp("git.trace"),
                                     "git", "status", "--porcelain"},
                                    BuildDir("t"));
  ASSERT_TRUE(traced.ok()) << traced.Describe();
  EXPECT_EQ(traced.out, "");
  int worktree_reads = 0;
  std::ifstream in(tmp("git.trace"));
  for (std::string line; std::getline(in, line);) {
    // Files of the work tree are opened to be hashed; .git and /usr are git's own.
    if (line.find("openat(AT_FDCWD, \"") == std::string::npos || line.find("O_RDONLY") == std::string::npos ||
        line.find("O_DIRECTORY") != std::string::npos) {
      continue;  // listing a directory (for untracked files) reads no file
    }
    const std::string path = line.substr(line.find('"') + 1, line.find('"', line.find('"') + 1) - line.find('"') - 1);
    if (path.empty() || path[0] == '/' || path.rfind(".git", 0) == 0) continue;
    ++worktree_reads;
  }
  EXPECT_EQ(worktree_reads, 0) << ReadFile(tmp("git.trace"));
}

// make decides from mtimes: a source newer than its object stays newer.
TEST_F(TimesTest, MakeGivesTheSameAnswerAfterACommitAndARemount) {
  ASSERT_TRUE(NewBuild("t", src_));
  ASSERT_TRUE(Mount("t"));
  WriteFile(M("t", "Makefile"), "a.o: a.c\n\tcp a.c a.o\n");
  auto make_q = [&] { return RunCommand({"/usr/bin/make", "-q", "a.o"}, BuildDir("t")).exit_code; };
  ASSERT_TRUE(RunCommand({"/usr/bin/make", "a.o"}, BuildDir("t")).ok());
  EXPECT_EQ(make_q(), 0);
  // The source edited 1 ns after the object: make must rebuild.
  struct stat o = Lstat(M("t", "a.o"));
  SetTimes(M("t", "a.c"), o.st_mtim.tv_sec, o.st_mtim.tv_nsec + 1 >= 1000000000 ? 0 : o.st_mtim.tv_nsec + 1,
           o.st_mtim.tv_sec, 0);
  if (o.st_mtim.tv_nsec + 1 >= 1000000000) SetTimes(M("t", "a.c"), o.st_mtim.tv_sec + 1, 0, 0, 0);
  EXPECT_EQ(make_q(), 1);
  ASSERT_TRUE(Buildfs({"commit", "t", "-m", "edited"}).ok());
  EXPECT_EQ(make_q(), 1);
  ASSERT_TRUE(Umount("t"));
  ASSERT_TRUE(Mount("t"));
  EXPECT_EQ(make_q(), 1);
  ASSERT_TRUE(RunCommand({"/usr/bin/make", "a.o"}, BuildDir("t")).ok());
  ASSERT_TRUE(Buildfs({"commit", "t", "-m", "built"}).ok());
  ASSERT_TRUE(Umount("t"));
  ASSERT_TRUE(Mount("t"));
  EXPECT_EQ(make_q(), 0);
}

}  // namespace
}  // namespace buildfs::testing
