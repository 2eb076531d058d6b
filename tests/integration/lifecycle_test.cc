// End-to-end tests of a build's life cycle (README "Using it", DESIGN.md
// "Branch, commit, prune"): status and diff, commit and log, branch (also of a
// build that is being written), reset, rm, export and prune, with the real
// `buildfs` binary, a real OSTree repo (checked with the `ostree` CLI) and
// real FUSE mounts. Processes that write or read while a command runs are
// forked children of the test; each is killed and reaped by the test.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <new>
#include <random>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/harness.h"

namespace buildfs::testing {
namespace {

constexpr const char* kOstreeBin = "/usr/bin/ostree";

// ------------------------------------------------------------ small helpers

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

// A failed command whose stderr is one line starting "buildfs: ".
::testing::AssertionResult FailsWithOneLineError(const CommandResult& r) {
  if (r.ok()) return ::testing::AssertionFailure() << "command succeeded: " << r.Describe();
  if (r.timed_out) return ::testing::AssertionFailure() << "command timed out: " << r.Describe();
  const bool one_line = !r.err.empty() && r.err.back() == '\n' &&
                        std::count(r.err.begin(), r.err.end(), '\n') == 1;
  if (r.err.rfind("buildfs: ", 0) != 0 || !one_line) {
    return ::testing::AssertionFailure() << "stderr is not one line 'buildfs: ...': " << r.Describe();
  }
  return ::testing::AssertionSuccess();
}

// Regular files at or below `dir` (not following symlinks).
int CountFilesUnder(const std::string& dir) {
  int n = 0;
  for (const auto& name : ListDir(dir)) {
    const std::string path = dir + "/" + name;
    struct stat st = Lstat(path);
    if (S_ISDIR(st.st_mode)) n += CountFilesUnder(path);
    else if (S_ISREG(st.st_mode)) ++n;
  }
  return n;
}

void AppendFile(const std::string& path, std::string_view data) {
  int fd = open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("open " + path + ": " + strerror(errno));
  ssize_t n = write(fd, data.data(), data.size());
  int err = errno;
  close(fd);
  if (n != static_cast<ssize_t>(data.size())) throw std::runtime_error("write " + path + ": " + strerror(err));
}


// Exit status of a waited-for child: its exit code, or 128 + signal.
int DecodeWait(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// A forked child that runs `fn` and exits with its result. The destructor
// SIGKILLs and reaps a child that is still running, so no test leaves one
// behind (it would keep files in a mount open).
class Child {
 public:
  explicit Child(const std::function<int()>& fn) {
    fflush(nullptr);
    pid_ = fork();
    if (pid_ < 0) throw std::runtime_error(std::string("fork: ") + strerror(errno));
    if (pid_ == 0) {
      int rc = 3;
      try {
        rc = fn();
      } catch (const std::exception& e) {
        fprintf(stderr, "child: %s\n", e.what());
      }
      _exit(rc);
    }
  }
  // Runs `argv` (argv[0] a path) with stdin from /dev/null, stdout and stderr
  // to `output`.
  static Child Exec(const std::vector<std::string>& argv, const std::string& output) {
    return Child([argv, output]() -> int {
      std::vector<char*> args;
      for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      int in = open("/dev/null", O_RDONLY);
      int out = open(output.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (in < 0 || out < 0) return 126;
      dup2(in, 0);
      dup2(out, 1);
      dup2(out, 2);
      execv(args[0], args.data());
      return 127;
    });
  }
  Child(Child&& o) noexcept : pid_(std::exchange(o.pid_, -1)) {}
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      Wait();
    }
  }

  pid_t pid() const { return pid_; }
  // Reaps the child: its exit code, or 128 + signal.
  int Wait() {
    int status = 0;
    while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    return DecodeWait(status);
  }
  // True (and *code set) when the child has exited, without waiting.
  bool Exited(int* code) {
    int status = 0;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r != pid_) return false;
    pid_ = -1;
    *code = DecodeWait(status);
    return true;
  }

 private:
  pid_t pid_ = -1;
};

// Memory shared with forked children: counters and an error text per child.
struct SharedState {
  static constexpr int kSlots = 4;
  std::atomic<int> stop{0};
  std::atomic<long> count[kSlots] = {};
  char error[kSlots][512] = {};

  void SetError(int slot, const std::string& text) {
    snprintf(error[slot], sizeof error[slot], "%s", text.c_str());
  }
};

class Shared {
 public:
  Shared() {
    void* p = mmap(nullptr, sizeof(SharedState), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error(std::string("mmap: ") + strerror(errno));
    state_ = new (p) SharedState();
  }
  ~Shared() { munmap(state_, sizeof(SharedState)); }
  SharedState* operator->() { return state_; }
  SharedState* get() { return state_; }

 private:
  SharedState* state_;
};

// ------------------------------------------------------ numbered-line files

constexpr size_t kLineSize = 9;  // "%08ld\n"

std::string NumberedLine(long i) {
  char line[32];
  snprintf(line, sizeof line, "%08ld\n", i);
  return line;
}

// Appends numbered lines first, first+1, ... to `path` until state->stop,
// counting finished writes in state->count[slot]. `keep_open`: one fd for
// all lines; otherwise open(O_APPEND), write, close per line.
int AppendNumberedLines(const std::string& path, bool keep_open, long first, SharedState* state, int slot) {
  int fd = -1;
  for (long i = first; !state->stop.load(); ++i) {
    if (fd < 0) {
      fd = open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
      if (fd < 0) {
        state->SetError(slot, "open " + path + ": " + strerror(errno));
        return 1;
      }
    }
    const std::string line = NumberedLine(i);
    ssize_t n = write(fd, line.data(), line.size());
    if (n != static_cast<ssize_t>(line.size())) {
      state->SetError(slot, "write of line " + std::to_string(i) + " returned " + std::to_string(n) + ": " +
                                strerror(errno));
      return 1;
    }
    if (!keep_open) {
      if (close(fd) != 0) {
        state->SetError(slot, std::string("close: ") + strerror(errno));
        return 1;
      }
      fd = -1;
    }
    state->count[slot].store(i + 1 - first);
  }
  if (fd >= 0 && close(fd) != 0) {
    state->SetError(slot, std::string("close: ") + strerror(errno));
    return 1;
  }
  return 0;
}

// Checks that `data` is complete lines numbered first, first+1, ...; returns
// how many, or -1 with *why set.
long CountNumberedLines(const std::string& data, long first, std::string* why) {
  if (data.size() % kLineSize != 0) {
    *why = "size " + std::to_string(data.size()) + " is not a multiple of " + std::to_string(kLineSize);
    return -1;
  }
  const long n = static_cast<long>(data.size() / kLineSize);
  for (long i = 0; i < n; ++i) {
    if (data.compare(static_cast<size_t>(i) * kLineSize, kLineSize, NumberedLine(first + i)) != 0) {
      *why = "line " + std::to_string(i) + " is '" + data.substr(static_cast<size_t>(i) * kLineSize, kLineSize) +
             "', expected '" + NumberedLine(first + i) + "'";
      return -1;
    }
  }
  return n;
}

// Reads the whole tree under `root` in a loop and compares it with
// `expected`, until state->stop; counts passes in state->count[slot].
int ReadTreeInALoop(const std::string& root, const Snapshot& expected, SharedState* state, int slot) {
  while (!state->stop.load()) {
    std::string diff = DiffSnapshots(expected, ScanTree(root, ScanOptions{{"cache"}}));
    if (!diff.empty()) {
      state->SetError(slot, "pass " + std::to_string(state->count[slot].load()) + ": " + diff);
      return 1;
    }
    state->count[slot].fetch_add(1);
  }
  return 0;
}

// --------------------------------------------------------------- fixture

class LifecycleTest : public WorkspaceTest {
 protected:
  void SetUp() override {
    WorkspaceTest::SetUp();
    if (HasFatalFailure()) return;
    umask(022);
  }

  std::string M(const std::string& build, std::string_view rel) const {
    return BuildDir(build) + "/" + std::string(rel);
  }

  CommandResult Ostree(std::vector<std::string> args) {
    args.insert(args.begin(), {kOstreeBin, "--repo=" + ws() + "/repo"});
    return RunCommand(args);
  }

  // Output of a buildfs command that must succeed.
  std::string Out(const std::vector<std::string>& args) {
    CommandResult r = Buildfs(args);
    EXPECT_TRUE(r.ok()) << "buildfs " << ::testing::PrintToString(args) << ": " << r.Describe();
    return r.out;
  }

  nlohmann::json Json(const std::vector<std::string>& args) {
    std::string out = Out(args);
    try {
      return nlohmann::json::parse(out);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "not JSON: " << e.what() << "\n" << out;
      return nullptr;
    }
  }

  std::string Status(const std::string& name) { return Out({"status", name}); }

  // The build's commits, newest first, from `log --json`.
  std::vector<std::string> LogCommits(const std::string& name) {
    std::vector<std::string> out;
    nlohmann::json log = Json({"log", name, "--json"});
    if (!log.is_array()) return out;
    for (const auto& e : log) out.push_back(e.value("commit", ""));
    return out;
  }

  std::string BaseRefCommit(const std::string& name) {
    CommandResult r = Ostree({"rev-parse", "builds/" + name + "/base"});
    EXPECT_TRUE(r.ok()) << r.Describe();
    while (!r.out.empty() && r.out.back() == '\n') r.out.pop_back();
    return r.out;
  }

  nlohmann::json ListEntry(const std::string& name) {
    nlohmann::json list = Json({"list", "--json"});
    if (list.is_array()) {
      for (const auto& e : list) {
        if (e.value("name", "") == name) return e;
      }
    }
    return nullptr;
  }

  int CountObjects() { return CountFilesUnder(ws() + "/repo/objects"); }

  void ExpectFsck() {
    CommandResult r = Ostree({"fsck"});
    EXPECT_TRUE(r.ok()) << "ostree fsck: " << r.Describe();
  }

  // `ostree checkout REF` into a fresh directory beside the workspace,
  // without the times tables a big directory's checkout holds as a file
  // (README, "The workspace"; the test trees have no file of that name).
  std::string Checkout(const std::string& ref) {
    std::string out = tmp("checkout-" + std::to_string(++checkouts_));
    CommandResult r = Ostree({"checkout", ref, out});
    EXPECT_TRUE(r.ok()) << "ostree checkout " << ref << ": " << r.Describe();
    RunCommand({"/usr/bin/find", out, "-name", ".buildfs-times", "-type", "f", "-delete"});
    return out;
  }

  Snapshot Scan(const std::string& build) { return ScanTree(BuildDir(build), MountScan()); }

  // A small base: two text files, a binary file, two directories.
  std::string MakeSmallTree(const std::string& name = "small") {
    std::string root = tmp(name);
    MakeDir(root);
    WriteFile(root + "/a.txt", "alpha\n");
    WriteFile(root + "/b.txt", "bravo\n");
    WriteFile(root + "/bin.dat", std::string("\x7f" "ELF\0\1\2\3 binary\n", 16));
    MakeDir(root + "/d1");
    WriteFile(root + "/d1/x", "x\n");
    MakeDir(root + "/d1/sub");
    WriteFile(root + "/d1/sub/y", "y\n");
    MakeDir(root + "/d2");
    WriteFile(root + "/d2/z", "z\n");
    return root;
  }

  // Build `name` over `src`, mounted.
  bool NewMounted(const std::string& name, const std::string& src) {
    return NewBuild(name, src) && Mount(name);
  }

  // Content checksums of the regular files of `commit`, from `ostree ls -R -C`.
  std::set<std::string> FileObjects(const std::string& commit) {
    std::set<std::string> out;
    CommandResult r = Ostree({"ls", "-R", "-C", commit});
    EXPECT_TRUE(r.ok()) << r.Describe();
    for (const auto& line : Lines(r.out)) {
      // "-00644 0 0      2 CHECKSUM /path"
      if (line.empty() || line[0] != '-') continue;
      std::istringstream fields(line);
      std::string mode, uid, gid, size, checksum;
      fields >> mode >> uid >> gid >> size >> checksum;
      out.insert(checksum);
    }
    return out;
  }

  int checkouts_ = 0;
};

// Changes of every kind a build can make to the sample tree (harness
// MakeSampleTree): added, modified, deleted, renamed, re-moded, re-owned,
// xattrs set and removed, a partial overwrite of a large file.
void ChangeSampleTree(const std::string& r) {
  auto p = [&](std::string_view rel) { return r + "/" + std::string(rel); };
  WriteFile(p("hello.txt"), "hello changed\n");
  WriteFile(p("added.txt"), "added\n", 0640);
  SetXattr(p("added.txt"), "user.note", "new file");
  if (unlink(p("private.txt").c_str()) != 0) throw std::runtime_error("unlink private.txt");
  if (rename(p("sub").c_str(), p("sub-moved").c_str()) != 0) throw std::runtime_error("rename sub");
  WriteFile(p("sub-moved/deeper/new-leaf.txt"), "new leaf\n");
  if (chmod(p("bin/tool").c_str(), 0700) != 0) throw std::runtime_error("chmod");
  if (lchown(p("user-file.txt").c_str(), 2000, 2001) != 0) throw std::runtime_error("chown");
  MakeSymlink("added.txt", p("link-to-added"));
  MakeDir(p("newdir"));
  MakeDir(p("newdir/inner"), 0750);
  WriteFile(p("newdir/inner/f"), "inner\n");
  SetXattr(p("attrs.txt"), "user.color", "red");
  if (lremovexattr(p("attrs.txt").c_str(), "user.binary") != 0) throw std::runtime_error("removexattr");
  for (int i = 0; i < 10; ++i) {
    char name[32];
    snprintf(name, sizeof name, "many/f%03d", i);
    if (unlink(p(name).c_str()) != 0) throw std::runtime_error(std::string("unlink ") + name);
  }
  int fd = open(p("big.bin").c_str(), O_WRONLY | O_CLOEXEC);
  const bool patched = fd >= 0 && pwrite(fd, "PATCHED", 7, 100000) == 7;
  if (fd >= 0) close(fd);
  if (!patched) throw std::runtime_error("pwrite big.bin");
  if (rmdir(p("emptydir").c_str()) != 0) throw std::runtime_error("rmdir emptydir");
}

// ================================================================ status

TEST_F(LifecycleTest, StatusListsAddedModifiedAndDeletedFiles) {
  ASSERT_TRUE(NewMounted("b", MakeSmallTree()));
  EXPECT_EQ(Status("b"), "");
  WriteFile(M("b", "n.txt"), "new\n");
  AppendFile(M("b", "a.txt"), "more\n");
  ASSERT_EQ(unlink(M("b", "b.txt").c_str()), 0);
  EXPECT_EQ(Status("b"), "M a.txt\nD b.txt\nA n.txt\n");
}

TEST_F(LifecycleTest, StatusShowsRenamedBaseDirectoryAsDeletedAndAddedFiles) {
  ASSERT_TRUE(NewMounted("b", MakeSmallTree()));
  ASSERT_EQ(rename(M("b", "d1").c_str(), M("b", "d1r").c_str()), 0);
  EXPECT_EQ(Status("b"), "D d1/sub/y\nD d1/x\nA d1r/sub/y\nA d1r/x\n");
}

TEST_F(LifecycleTest, StatusMarksNewEmptyDirectoryWithSlash) {
  ASSERT_TRUE(NewMounted("b", MakeSmallTree()));
  MakeDir(M("b", "fresh"));
  EXPECT_EQ(Status("b"), "A fresh/\n");
}

TEST_F(LifecycleTest, StatusOfUnmountedBuildShowsTheSameChanges) {
  ASSERT_TRUE(NewMounted("b", MakeSmallTree()));
  WriteFile(M("b", "d2/z"), "zulu\n");
  ASSERT_EQ(unlink(M("b", "d1/x").c_str()), 0);
  const std::string mounted = Status("b");
  EXPECT_EQ(mounted, "D d1/x\nM d2/z\n");
  ASSERT_TRUE(Umount("b"));
  EXPECT_EQ(Status("b"), mounted);
}

TEST_F(LifecycleTest, StatusJsonIsAnArrayOfStatusPathAndDir) {
  ASSERT_TRUE(NewMounted("b", MakeSmallTree()));
  WriteFile(M("b", "n.txt"), "new\n");
  AppendFile(M("b", "a.txt"), "more\n");
  ASSERT_EQ(unlink(M("b", "b.txt").c_str()), 0);
  MakeDir(M("b", "fresh"));
  nlohmann::json j = Json({"status", "b", "--json"});
  ASSERT_TRUE(j.is_array()) << j.dump();
  std::vector<std::string> got;
  for (const auto& e : j) {
    ASSERT_TRUE(e.is_object()) << j.dump();
    got.push_back(e.value("status", "?") + " " + e.value("path", "?") + (e.value("dir", false) ? "/" : ""));
  }
  EXPECT_EQ(got, (std::vector<std::string>{"M a.txt", "D b.txt", "A fresh/", "A n.txt"}));
}

TEST_F(LifecycleTest, DiffShowsUnifiedDiffOfChangedTextFile) {
  ASSERT_TRUE(NewMounted("b", MakeSmallTree()));
  AppendFile(M("b", "a.txt"), "more\n");
  const std::string diff = Out({"diff", "b", "a.txt"});
  EXPECT_TRUE(diff.starts_with("diff --git a/a.txt b/a.txt\nindex ")) << diff;
  EXPECT_TRUE(diff.ends_with(" 100644\n--- a/a.txt\n+++ b/a.txt\n@@ -1 +1,2 @@\n alpha\n+more\n")) << diff;
}

TEST_F(LifecycleTest, DiffSaysBinaryFilesDifferForChangedBinaryFile) {
  ASSERT_TRUE(NewMounted("b", MakeSmallTree()));
  AppendFile(M("b", "bin.dat"), std::string("\0more", 5));
  AppendFile(M("b", "a.txt"), "more\n");
  const std::string bin = Out({"diff", "b", "bin.dat"});
  EXPECT_TRUE(bin.starts_with("diff --git a/bin.dat b/bin.dat\n")) << bin;
  EXPECT_TRUE(bin.ends_with("\nBinary files a/bin.dat and b/bin.dat differ\n")) << bin;
  std::string all = Out({"diff", "b"});
  EXPECT_NE(all.find("Binary files a/bin.dat and b/bin.dat differ\n"), std::string::npos) << all;
  EXPECT_NE(all.find("+more\n"), std::string::npos) << all;
}

// ================================================================ commit

class LifecycleCommitTest : public LifecycleTest {
 protected:
  void SetUp() override {
    LifecycleTest::SetUp();
    if (HasFatalFailure()) return;
    src_ = tmp("src");
    MakeSampleTree(src_);
    ASSERT_TRUE(NewMounted("b", src_));
    base_ = BaseRefCommit("b");
    ASSERT_EQ(base_.size(), 64u);
  }

  // Changes the mounted sample tree, snapshots it, commits with `subject`.
  // Returns the new commit id.
  std::string ChangeAndCommit(const std::string& subject) {
    ChangeSampleTree(BuildDir("b"));
    snapshot_ = Scan("b");
    EXPECT_TRUE(snapshot_.problems.empty()) << snapshot_.problems.front();
    nlohmann::json j = Json({"commit", "b", "-m", subject, "--json"});
    EXPECT_TRUE(j.is_object()) << j.dump();
    if (!j.is_object()) return "";
    EXPECT_EQ(j.value("changed", false), true) << j.dump();
    return j.value("commit", "");
  }

  std::string src_;
  std::string base_;
  Snapshot snapshot_;
};

TEST_F(LifecycleCommitTest, StatusIsEmptyAfterCommit) {
  ChangeAndCommit("changed things");
  EXPECT_EQ(Status("b"), "");
  EXPECT_EQ(ListEntry("b").value("dirty", true), false);
}

TEST_F(LifecycleCommitTest, CommitMovesTheBaseRefToANewCommit) {
  std::string commit = ChangeAndCommit("changed things");
  ASSERT_EQ(commit.size(), 64u);
  EXPECT_NE(commit, base_);
  EXPECT_EQ(BaseRefCommit("b"), commit);
  EXPECT_EQ(ListEntry("b").value("base", ""), commit);
}

TEST_F(LifecycleCommitTest, LogListsBothCommitsNewestFirstWithSubject) {
  std::string commit = ChangeAndCommit("the second commit");
  EXPECT_EQ(LogCommits("b"), (std::vector<std::string>{commit, base_}));
  nlohmann::json j = Json({"log", "b", "--json"});
  ASSERT_TRUE(j.is_array() && j.size() == 2) << j.dump();
  EXPECT_EQ(j[0].value("subject", ""), "the second commit");
  auto lines = Lines(Out({"log", "b"}));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].substr(0, 12), commit.substr(0, 12));
  EXPECT_TRUE(lines[0].ends_with("  the second commit")) << lines[0];
  EXPECT_EQ(lines[1].substr(0, 12), base_.substr(0, 12));
}

TEST_F(LifecycleCommitTest, OstreeLogShowsTheHistory) {
  std::string commit = ChangeAndCommit("the second commit");
  CommandResult r = Ostree({"log", "builds/b/base"});
  ASSERT_TRUE(r.ok()) << r.Describe();
  size_t new_at = r.out.find("commit " + commit);
  size_t old_at = r.out.find("commit " + base_);
  ASSERT_NE(new_at, std::string::npos) << r.out;
  ASSERT_NE(old_at, std::string::npos) << r.out;
  EXPECT_LT(new_at, old_at) << r.out;
  EXPECT_NE(r.out.find("Parent:  " + base_), std::string::npos) << r.out;
  size_t subject_at = r.out.find("    the second commit\n");
  EXPECT_TRUE(subject_at > new_at && subject_at < old_at) << r.out;
}

TEST_F(LifecycleCommitTest, OstreeCheckoutEqualsTheMountedTreeAtCommitTime) {
  ChangeAndCommit("changed things");
  std::string out = Checkout("builds/b/base");
  EXPECT_EQ(DiffSnapshots(snapshot_, ScanTree(out)), "");
}

TEST_F(LifecycleCommitTest, BuildStaysMountedAndWritableAfterCommit) {
  ChangeAndCommit("changed things");
  EXPECT_TRUE(IsMountPoint(BuildDir("b")));
  EXPECT_EQ(DiffSnapshots(snapshot_, Scan("b")), "");
  WriteFile(M("b", "after-commit.txt"), "written after the commit\n");
  AppendFile(M("b", "hello.txt"), "appended after the commit\n");
  EXPECT_EQ(ReadFile(M("b", "after-commit.txt")), "written after the commit\n");
  EXPECT_EQ(ReadFile(M("b", "hello.txt")), "hello changed\nappended after the commit\n");
  EXPECT_EQ(Status("b"), "A after-commit.txt\nM hello.txt\n");
  Snapshot before_remount = Scan("b");
  ASSERT_TRUE(Umount("b"));
  ASSERT_TRUE(Mount("b"));
  EXPECT_EQ(DiffSnapshots(before_remount, Scan("b")), "");
}

TEST_F(LifecycleCommitTest, SecondCommitHasTheFirstAsParent) {
  std::string first = ChangeAndCommit("first");
  WriteFile(M("b", "second.txt"), "second\n");
  Snapshot snap = Scan("b");
  nlohmann::json j = Json({"commit", "b", "-m", "second", "--json"});
  std::string second = j.value("commit", "");
  EXPECT_EQ(j.value("entries_written", -1), 1) << j.dump();
  EXPECT_EQ(LogCommits("b"), (std::vector<std::string>{second, first, base_}));
  EXPECT_EQ(DiffSnapshots(snap, ScanTree(Checkout("builds/b/base"))), "");
}

TEST_F(LifecycleCommitTest, CommitWithoutChangesSaysSoAndMakesNoCommit) {
  const int objects = CountObjects();
  CommandResult r = Buildfs({"commit", "b", "-m", "nothing"});
  ASSERT_TRUE(r.ok()) << r.Describe();
  EXPECT_NE(r.out.find("nothing to commit"), std::string::npos) << r.Describe();
  EXPECT_EQ(BaseRefCommit("b"), base_);
  EXPECT_EQ(LogCommits("b"), std::vector<std::string>{base_});
  EXPECT_EQ(CountObjects(), objects);
  nlohmann::json j = Json({"commit", "b", "-m", "nothing", "--json"});
  EXPECT_EQ(j.value("changed", true), false) << j.dump();
  EXPECT_EQ(j.value("commit", ""), base_) << j.dump();
}

TEST_F(LifecycleCommitTest, CommitRightAfterACommitMakesNoCommit) {
  std::string commit = ChangeAndCommit("changed things");
  const int objects = CountObjects();
  nlohmann::json j = Json({"commit", "b", "-m", "again", "--json"});
  EXPECT_EQ(j.value("changed", true), false) << j.dump();
  EXPECT_EQ(BaseRefCommit("b"), commit);
  EXPECT_EQ(LogCommits("b").size(), 2u);
  EXPECT_EQ(CountObjects(), objects);
}

// mode, owner and user.* xattrs of a directory itself, e.g. "0751 1000:1000 user.k=v".
std::string DirMeta(const std::string& path) {
  struct stat st = Lstat(path);
  char buf[64];
  snprintf(buf, sizeof buf, "%04o %u:%u", st.st_mode & 07777, st.st_uid, st.st_gid);
  std::string out = buf;
  char names[4096];
  ssize_t n = llistxattr(path.c_str(), names, sizeof names);
  std::vector<std::string> attrs;
  for (ssize_t i = 0; i < n; i += static_cast<ssize_t>(strlen(names + i)) + 1) {
    std::string name = names + i;
    if (name.rfind("user.", 0) != 0 || name.rfind("user.buildfs.", 0) == 0) continue;
    char value[4096];
    ssize_t len = lgetxattr(path.c_str(), name.c_str(), value, sizeof value);
    attrs.push_back(name + "=" + std::string(value, len < 0 ? 0 : static_cast<size_t>(len)));
  }
  std::sort(attrs.begin(), attrs.end());
  for (const auto& a : attrs) out += " " + a;
  return out;
}

TEST_F(LifecycleTest, CommitRecordsTheRootDirectoryAsTheMountShowsIt) {
  ASSERT_TRUE(NewMounted("b", MakeSmallTree()));
  WriteFile(M("b", "n.txt"), "new\n");
  const std::string shown = DirMeta(BuildDir("b"));
  ASSERT_TRUE(Buildfs({"commit", "b", "-m", "one"}).ok());
  EXPECT_EQ(DirMeta(Checkout("builds/b/base")), shown);
}

TEST_F(LifecycleTest, CommitKeepsTheModeOwnerAndXattrsOfTheBaseRoot) {
  const std::string src = MakeSmallTree();
  ASSERT_EQ(chmod(src.c_str(), 0751), 0);
  ASSERT_EQ(lchown(src.c_str(), 1000, 1000), 0);
  SetXattr(src, "user.root", "yes");
  ASSERT_TRUE(NewMounted("b", src));
  EXPECT_EQ(DirMeta(Checkout("builds/b/base")), DirMeta(src)) << "the import";
  EXPECT_EQ(DirMeta(BuildDir("b")), DirMeta(src)) << "the mount";
  WriteFile(M("b", "n.txt"), "new\n");
  ASSERT_TRUE(Buildfs({"commit", "b", "-m", "one"}).ok());
  EXPECT_EQ(DirMeta(Checkout("builds/b/base")), DirMeta(src)) << "the commit";
}

// Writes under cache/ stay private to the build: not committed, but not lost.
TEST_F(LifecycleTest, PrivateCacheChangesAreNotCommittedAndStayInTheBuild) {
  WriteFile(ws() + "/cache/shared.txt", "shared\n");
  ASSERT_TRUE(NewMounted("b", MakeSmallTree()));
  WriteFile(M("b", "cache/private.txt"), "private to b\n");
  AppendFile(M("b", "cache/shared.txt"), "b's private addition\n");
  WriteFile(M("b", "n.txt"), "new\n");
  CommandResult r = Buildfs({"commit", "b", "-m", "one"});
  ASSERT_TRUE(r.ok()) << r.Describe();
  EXPECT_NE(r.err.find("cache/"), std::string::npos) << "commit does not say it left cache/ out: " << r.Describe();
  EXPECT_EQ(LstatErrno(Checkout("builds/b/base") + "/cache"), ENOENT);
  EXPECT_EQ(ReadFile(ws() + "/cache/shared.txt"), "shared\n");
  EXPECT_EQ(ReadFile(M("b", "cache/private.txt")), "private to b\n");
  EXPECT_EQ(ReadFile(M("b", "cache/shared.txt")), "shared\nb's private addition\n");
}

// One changed file in a tree of ~2,000: the commit writes that file, the
// directories up its path and the commit object, nothing more.
TEST_F(LifecycleTest, CommitWritesOnlyTheChangedFile) {
  std::string src = tmp("src");
  MakeRandomTree(src, 7, 50, 2000);
  // A regular file three directories deep (or as deep as there is, up to 3).
  std::string target;
  int target_depth = -1;
  for (const auto& [path, e] : ScanTree(src).entries) {
    int depth = static_cast<int>(std::count(path.begin(), path.end(), '/'));
    if (S_ISREG(e.mode) && depth <= 3 && depth > target_depth) {
      target = path;
      target_depth = depth;
    }
  }
  ASSERT_FALSE(target.empty());
  ASSERT_TRUE(NewMounted("o", src));
  const int before = CountObjects();
  ASSERT_GT(before, 1000);
  WriteFile(M("o", target), "the only change\n");
  nlohmann::json j = Json({"commit", "o", "-m", "one file", "--json"});
  const int after = CountObjects();
  EXPECT_EQ(j.value("entries_written", -1), 1) << j.dump();
  EXPECT_LT(j.value("dirs_walked", 1000), 50) << "the commit walked the whole tree: " << j.dump();
  EXPECT_GT(after, before);
  // The file, 1 + depth dirtrees and as many dirmetas (their times tables
  // change along the path), the commit; a commitmeta at most.
  EXPECT_LE(after - before, 2 * (1 + target_depth) + 3) << "changed " << target << " (depth " << target_depth
                                                        << ")";
  CommandResult cat = Ostree({"cat", "builds/o/base", "/" + target});
  EXPECT_TRUE(cat.ok()) << cat.Describe();
  EXPECT_EQ(cat.out, "the only change\n");
}

// ================================================================ branch

// Branches build "a" while a forked writer appends numbered lines to a file
// in it; see the two tests below.
class LifecycleBranchWhileWritingTest : public LifecycleTest {
 protected:
  void Run(bool keep_open) {
    ASSERT_TRUE(NewMounted("a", MakeSmallTree()));
    const std::string a_log = M("a", "log.txt");
    Shared shared;
    Child writer([&] { return AppendNumberedLines(a_log, keep_open, 0, shared.get(), 0); });
    auto written = [&] { return shared->count[0].load(); };
    ASSERT_TRUE(WaitUntil([&] { return written() >= 200 || shared->error[0][0]; }, 30000));
    ASSERT_EQ(shared->error[0][0], 0) << shared->error[0];

    const long before = written();
    CommandResult branch = Buildfs({"branch", "a", "b"});
    const long after = written();
    ASSERT_TRUE(branch.ok()) << branch.Describe();
    // Let the writer go on well past the branch.
    ASSERT_TRUE(WaitUntil([&] { return written() >= after + 200 || shared->error[0][0]; }, 30000));
    shared->stop = 1;
    EXPECT_EQ(writer.Wait(), 0) << shared->error[0];
    const long total = written();

    std::string why;
    const std::string a_data = ReadFile(a_log);
    EXPECT_EQ(CountNumberedLines(a_data, 0, &why), total) << why << " (" << total << " lines written)";

    ASSERT_TRUE(Mount("b"));
    const std::string b_log = M("b", "log.txt");
    const std::string b_data = ReadFile(b_log);
    const long b_lines = CountNumberedLines(b_data, 0, &why);
    ASSERT_GE(b_lines, 0) << why;
    // Everything written before the branch began, nothing started after it ended.
    EXPECT_GE(b_lines, before);
    EXPECT_LE(b_lines, after + 1);
    EXPECT_EQ(a_data.compare(0, b_data.size(), b_data), 0) << "b's file is not a prefix of a's";
    EXPECT_LT(b_data.size(), a_data.size());

    // More lines into a, with the same kind of writer: b does not change.
    shared->stop = 0;
    shared->count[1] = 0;
    {
      Child more([&] { return AppendNumberedLines(a_log, keep_open, total, shared.get(), 1); });
      ASSERT_TRUE(WaitUntil([&] { return shared->count[1].load() >= 100 || shared->error[1][0]; }, 30000));
      shared->stop = 1;
      EXPECT_EQ(more.Wait(), 0) << shared->error[1];
    }
    EXPECT_EQ(ReadFile(b_log), b_data);
    EXPECT_EQ(CountNumberedLines(ReadFile(a_log), 0, &why), total + shared->count[1].load()) << why;
    ASSERT_TRUE(Umount("b"));
    ASSERT_TRUE(Mount("b"));
    EXPECT_EQ(ReadFile(b_log), b_data);
  }
};

TEST_F(LifecycleBranchWhileWritingTest, BranchTakesAConsistentPrefixOfAFileReopenedForEachLine) { Run(false); }

TEST_F(LifecycleBranchWhileWritingTest, BranchTakesAConsistentPrefixOfAFileKeptOpenForWriting) { Run(true); }

// Commits build "a" while a forked writer appends numbered lines to a file in
// it: the commit holds a prefix of complete lines, the build keeps them all.
class LifecycleCommitWhileWritingTest : public LifecycleTest {
 protected:
  void Run(bool keep_open) {
    ASSERT_TRUE(NewMounted("a", MakeSmallTree()));
    const std::string a_log = M("a", "log.txt");
    Shared shared;
    Child writer([&] { return AppendNumberedLines(a_log, keep_open, 0, shared.get(), 0); });
    auto written = [&] { return shared->count[0].load(); };
    ASSERT_TRUE(WaitUntil([&] { return written() >= 200 || shared->error[0][0]; }, 30000));
    ASSERT_EQ(shared->error[0][0], 0) << shared->error[0];

    const long before = written();
    CommandResult commit = Buildfs({"commit", "a", "-m", "while writing"});
    const long after = written();
    ASSERT_TRUE(commit.ok()) << commit.Describe();
    ASSERT_TRUE(WaitUntil([&] { return written() >= after + 200 || shared->error[0][0]; }, 30000));
    shared->stop = 1;
    EXPECT_EQ(writer.Wait(), 0) << shared->error[0];
    const long total = written();

    std::string why;
    const std::string a_data = ReadFile(a_log);
    EXPECT_EQ(CountNumberedLines(a_data, 0, &why), total) << why << " (" << total << " lines written)";
    CommandResult cat = Ostree({"cat", "builds/a/base", "/log.txt"});
    ASSERT_TRUE(cat.ok()) << cat.Describe();
    const long committed = CountNumberedLines(cat.out, 0, &why);
    ASSERT_GE(committed, 0) << "committed file: " << why;
    EXPECT_GE(committed, before);
    EXPECT_LE(committed, after + 1);
    EXPECT_EQ(Status("a"), "M log.txt\n");
    ASSERT_TRUE(Umount("a"));
    ASSERT_TRUE(Mount("a"));
    EXPECT_EQ(ReadFile(a_log), a_data);
  }
};

TEST_F(LifecycleCommitWhileWritingTest, CommitTakesAConsistentPrefixOfAFileReopenedForEachLine) { Run(false); }

TEST_F(LifecycleCommitWhileWritingTest, CommitTakesAConsistentPrefixOfAFileKeptOpenForWriting) { Run(true); }

// One write() is one change: a commit never holds part of it. Records of 3,000
// bytes straddle page boundaries, where the kernel may cut a cached write in
// two requests; ten commits land while a writer appends them through one fd.
// The writer is paced (and capped) so that the file, which every commit reads
// whole, stays a few MiB however slow the machine.
TEST_F(LifecycleCommitWhileWritingTest, ACommitNeverHoldsPartOfAWrite) {
  ASSERT_TRUE(NewMounted("a", MakeSmallTree()));
  const std::string path = M("a", "records.bin");
  constexpr size_t kRecord = 3000;
  constexpr long kMaxRecords = 20000;
  Shared shared;
  Child writer([&] {
    int fd = open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return 1;
    for (long i = 0; !shared->stop.load(); ++i) {
      if (i >= kMaxRecords) {
        usleep(1000);
        --i;
        continue;
      }
      std::string record(kRecord - 1, static_cast<char>('a' + i % 26));
      record += '\n';
      if (write(fd, record.data(), record.size()) != static_cast<ssize_t>(record.size())) {
        shared->SetError(0, std::string("write: ") + strerror(errno));
        return 1;
      }
      shared->count[0].store(i + 1);
      usleep(500);
    }
    return close(fd) == 0 ? 0 : 1;
  });
  auto whole = [&](const std::string& data) -> std::string {
    if (data.size() % kRecord != 0) return "size " + std::to_string(data.size()) + " is not whole records";
    for (size_t at = 0; at < data.size(); at += kRecord) {
      const char c = static_cast<char>('a' + (at / kRecord) % 26);
      if (data.compare(at, kRecord, std::string(kRecord - 1, c) + '\n') != 0) {
        return "record " + std::to_string(at / kRecord) + " is mixed";
      }
    }
    return "";
  };
  for (int round = 0; round < 10; ++round) {
    const long before = shared->count[0].load();
    ASSERT_TRUE(WaitUntil(
        [&] { return shared->count[0].load() > std::min(before + 20, kMaxRecords - 1) || shared->error[0][0]; },
        30000));
    ASSERT_EQ(shared->error[0][0], 0) << shared->error[0];
    CommandResult commit = Buildfs({"commit", "a", "-m", "round " + std::to_string(round)});
    ASSERT_TRUE(commit.ok()) << commit.Describe();
    CommandResult cat = Ostree({"cat", "builds/a/base", "/records.bin"});
    ASSERT_TRUE(cat.ok()) << cat.Describe();
    ASSERT_EQ(whole(cat.out), "") << "commit " << round;
  }
  shared->stop = 1;
  EXPECT_EQ(writer.Wait(), 0) << shared->error[0];
  const std::string data = ReadFile(path);
  EXPECT_EQ(whole(data), "");
  EXPECT_EQ(data.size(), kRecord * static_cast<size_t>(shared->count[0].load()));
}

// Readers walking the whole build while it commits (freeze, then the switch
// to the new commit) never see an error or other content.
TEST_F(LifecycleTest, ReadersDuringCommitSeeTheSameTree) {
  const std::string src = tmp("src");
  MakeRandomTree(src, 41, 10, 200);
  ASSERT_TRUE(NewMounted("a", src));
  Shared shared;
  for (int round = 0; round < 2; ++round) {
    SCOPED_TRACE("commit " + std::to_string(round));
    for (int i = 0; i < 50; ++i) {
      WriteFile(M("a", "round" + std::to_string(round) + "-" + std::to_string(i)), std::to_string(i) + "\n");
    }
    WriteFile(M("a", "d0/changed"), "round " + std::to_string(round) + "\n");
    const Snapshot expected = Scan("a");
    shared->stop = 0;
    shared->count[0] = shared->count[1] = 0;
    std::vector<Child> readers;
    for (int slot = 0; slot < 2; ++slot) {
      readers.emplace_back([&, slot] { return ReadTreeInALoop(BuildDir("a"), expected, shared.get(), slot); });
    }
    auto passes = [&](int slot) { return shared->count[slot].load(); };
    auto failed = [&] { return shared->error[0][0] || shared->error[1][0]; };
    ASSERT_TRUE(WaitUntil([&] { return (passes(0) >= 1 && passes(1) >= 1) || failed(); }, 60000));
    CommandResult r = Buildfs({"commit", "a", "-m", "round " + std::to_string(round)});
    EXPECT_TRUE(r.ok()) << r.Describe();
    const long done0 = passes(0), done1 = passes(1);
    EXPECT_TRUE(WaitUntil([&] { return (passes(0) >= done0 + 2 && passes(1) >= done1 + 2) || failed(); }, 60000));
    shared->stop = 1;
    for (auto& reader : readers) EXPECT_EQ(reader.Wait(), 0);
    ASSERT_EQ(shared->error[0][0], 0) << shared->error[0];
    ASSERT_EQ(shared->error[1][0], 0) << shared->error[1];
    EXPECT_EQ(Status("a"), "");
  }
}

// A file opened before the commit (its data then in the private layer that
// the commit folds away) stays readable and writable through that fd.
TEST_F(LifecycleTest, FileOpenAcrossACommitKeepsWorking) {
  ASSERT_TRUE(NewMounted("a", MakeSmallTree()));
  WriteFile(M("a", "open.txt"), "before the commit\n");
  int rfd = open(M("a", "open.txt").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(rfd, 0) << strerror(errno);
  int wfd = open(M("a", "a.txt").c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  ASSERT_GE(wfd, 0) << strerror(errno);
  ASSERT_EQ(write(wfd, "x\n", 2), 2);
  ASSERT_TRUE(Buildfs({"commit", "a", "-m", "one"}).ok());
  ASSERT_TRUE(Buildfs({"prune"}).ok());
  char buf[64] = {};
  ssize_t n = pread(rfd, buf, sizeof buf, 0);
  EXPECT_EQ(std::string(buf, n < 0 ? 0 : static_cast<size_t>(n)), "before the commit\n") << strerror(errno);
  EXPECT_EQ(write(wfd, "y\n", 2), 2) << strerror(errno);
  close(rfd);
  close(wfd);
  EXPECT_EQ(ReadFile(M("a", "a.txt")), "alpha\nx\ny\n");
  EXPECT_EQ(Ostree({"cat", "builds/a/base", "/a.txt"}).out, "alpha\nx\n");
  EXPECT_EQ(Status("a"), "M a.txt\n");
}

TEST_F(LifecycleTest, RemovingTheSourceOfABranchKeepsTheBranch) {
  ASSERT_TRUE(NewMounted("a", MakeSmallTree()));
  WriteFile(M("a", "n.txt"), "new\n");
  ASSERT_EQ(unlink(M("a", "b.txt").c_str()), 0);
  const Snapshot a_tree = Scan("a");
  ASSERT_TRUE(Buildfs({"branch", "a", "b"}).ok());
  ASSERT_TRUE(Buildfs({"rm", "--force", "a"}).ok());
  ASSERT_TRUE(Buildfs({"prune"}).ok());
  ASSERT_TRUE(Mount("b"));
  EXPECT_EQ(DiffSnapshots(a_tree, Scan("b")), "");
  EXPECT_EQ(Status("b"), "D b.txt\nA n.txt\n");
}

// Committing b folds the layer it shares with its mounted source a: a keeps it.
TEST_F(LifecycleTest, CommitOfABranchLeavesTheSourceIntact) {
  ASSERT_TRUE(NewMounted("a", MakeSmallTree()));
  WriteFile(M("a", "n.txt"), "new\n");
  const Snapshot a_tree = Scan("a");
  ASSERT_TRUE(Buildfs({"branch", "a", "b"}).ok());
  ASSERT_TRUE(Mount("b"));
  WriteFile(M("b", "only-b.txt"), "b\n");
  ASSERT_TRUE(Buildfs({"commit", "b", "-m", "b's commit"}).ok());
  ASSERT_TRUE(Buildfs({"prune"}).ok());
  EXPECT_EQ(DiffSnapshots(a_tree, Scan("a")), "");
  EXPECT_EQ(Status("a"), "A n.txt\n");
  ASSERT_TRUE(Umount("a"));
  ASSERT_TRUE(Mount("a"));
  EXPECT_EQ(DiffSnapshots(a_tree, Scan("a")), "");
  EXPECT_EQ(LogCommits("a").size(), 1u);
  EXPECT_EQ(LogCommits("b").size(), 2u);
}

// A branch asked for while the source's commit runs waits for it (the
// build's lock, whose file names its holder): both end with the same tree,
// and the layer the branch shares with the committed build survives.
TEST_F(LifecycleTest, BranchDuringACommitKeepsBothBuildsWhole) {
  ASSERT_TRUE(NewMounted("a", MakeSmallTree()));
  MakeDir(M("a", "many"));
  for (int i = 0; i < 3000; ++i) WriteFile(M("a", "many/f" + std::to_string(i)), std::to_string(i) + "\n");
  const Snapshot committed_tree = Scan("a");
  Child commit = Child::Exec({BuildfsBin(), "-C", ws(), "commit", "a", "-m", "big"}, tmp("commit.out"));
  const std::string holder = std::to_string(commit.pid()) + " commit\n";
  ASSERT_TRUE(WaitUntil([&] { return access((ws() + "/.buildfs/locks/a").c_str(), F_OK) == 0 &&
                                     ReadFile(ws() + "/.buildfs/locks/a") == holder; },
                        10000))
      << "the commit never held the build's lock";
  WriteFile(M("a", "during.txt"), "written during the commit\n");
  CommandResult branch = Buildfs({"branch", "a", "b"});
  const int code = commit.Wait();
  EXPECT_EQ(code, 0) << ReadFile(tmp("commit.out"));
  ASSERT_TRUE(branch.ok()) << branch.Describe();

  const Snapshot a_tree = Scan("a");
  EXPECT_EQ(a_tree.entries.count("during.txt"), 1u);
  // The commit has the tree without during.txt (or with it, had the freeze come late).
  Snapshot in_commit = ScanTree(Checkout("builds/a/base"));
  in_commit.entries.erase("during.txt");
  EXPECT_EQ(DiffSnapshots(committed_tree, in_commit), "");
  ASSERT_TRUE(Buildfs({"prune"}).ok());
  ASSERT_TRUE(Mount("b"));
  EXPECT_EQ(DiffSnapshots(a_tree, Scan("b")), "");
  ASSERT_TRUE(Umount("a"));
  ASSERT_TRUE(Mount("a"));
  EXPECT_EQ(DiffSnapshots(a_tree, Scan("a")), "");
  ExpectFsck();
}

TEST_F(LifecycleTest, BranchedBuildsAreIndependentBothWays) {
  ASSERT_TRUE(NewMounted("a", MakeSmallTree()));
  WriteFile(M("a", "shared.txt"), "before the branch\n");
  ASSERT_TRUE(Buildfs({"branch", "a", "b"}).ok());
  ASSERT_TRUE(Mount("b"));
  AppendFile(M("b", "shared.txt"), "from b\n");
  WriteFile(M("b", "only-b.txt"), "b\n");
  ASSERT_EQ(unlink(M("b", "a.txt").c_str()), 0);
  AppendFile(M("a", "shared.txt"), "from a\n");
  WriteFile(M("a", "only-a.txt"), "a\n");
  EXPECT_EQ(ReadFile(M("a", "shared.txt")), "before the branch\nfrom a\n");
  EXPECT_EQ(ReadFile(M("b", "shared.txt")), "before the branch\nfrom b\n");
  EXPECT_EQ(LstatErrno(M("a", "only-b.txt")), ENOENT);
  EXPECT_EQ(LstatErrno(M("b", "only-a.txt")), ENOENT);
  EXPECT_EQ(ReadFile(M("a", "a.txt")), "alpha\n");
  EXPECT_EQ(Status("a"), "A only-a.txt\nA shared.txt\n");
  EXPECT_EQ(Status("b"), "D a.txt\nA only-b.txt\nA shared.txt\n");
}

// a -> b -> c -> d, each with its own change, all mounted at once.
TEST_F(LifecycleTest, ChainOfBranchesKeepsEachBuildsOwnChanges) {
  const std::string src = MakeSmallTree();
  ASSERT_TRUE(NewMounted("a", src));
  std::map<std::string, std::string> expected;  // build -> its expected tree on disk
  auto change = [&](const std::string& what, const std::string& root) {
    WriteFile(root + "/only-" + what, what + "\n");
    AppendFile(root + "/a.txt", what + "\n");
  };
  auto apply = [&](const std::string& build, const std::string& what) {
    change(what, BuildDir(build));
    change(what, expected[build]);
  };
  expected["a"] = tmp("expect-a");
  CopyTree(src, expected["a"]);
  apply("a", "a");
  const std::vector<std::string> chain{"a", "b", "c", "d"};
  for (size_t i = 1; i < chain.size(); ++i) {
    const std::string& from = chain[i - 1];
    const std::string& to = chain[i];
    CommandResult r = Buildfs({"branch", from, to});
    ASSERT_TRUE(r.ok()) << r.Describe();
    ASSERT_TRUE(Mount(to));
    expected[to] = tmp("expect-" + to);
    CopyTree(expected[from], expected[to]);
    apply(to, to);
  }
  // Changes after the branches stay in their build.
  apply("a", "a2");
  apply("b", "b2");
  for (const auto& name : chain) {
    EXPECT_EQ(DiffTrees(expected[name], BuildDir(name), MountScan()), "") << "build " << name;
  }
  EXPECT_EQ(ReadFile(M("d", "a.txt")), "alpha\na\nb\nc\nd\n");
  EXPECT_EQ(Status("a"), "M a.txt\nA only-a\nA only-a2\n");
  EXPECT_EQ(Status("c"), "M a.txt\nA only-a\nA only-b\nA only-c\n");
}

TEST_F(LifecycleTest, BranchOfUnmountedBuildStartsWithItsState) {
  ASSERT_TRUE(NewMounted("a", MakeSmallTree()));
  WriteFile(M("a", "n.txt"), "new\n");
  ASSERT_EQ(unlink(M("a", "b.txt").c_str()), 0);
  ASSERT_TRUE(Umount("a"));
  CommandResult r = Buildfs({"branch", "a", "b"});
  ASSERT_TRUE(r.ok()) << r.Describe();
  EXPECT_EQ(Status("b"), "D b.txt\nA n.txt\n");
  ASSERT_TRUE(Mount("b"));
  ASSERT_TRUE(Mount("a"));
  EXPECT_EQ(DiffSnapshots(Scan("a"), Scan("b")), "");
  EXPECT_EQ(BaseRefCommit("b"), BaseRefCommit("a"));
}

TEST_F(LifecycleTest, BranchOfCommittedBuildSharesItsHistory) {
  ASSERT_TRUE(NewMounted("a", MakeSmallTree()));
  WriteFile(M("a", "n.txt"), "new\n");
  ASSERT_TRUE(Buildfs({"commit", "a", "-m", "one"}).ok());
  ASSERT_TRUE(Buildfs({"branch", "a", "b"}).ok());
  EXPECT_EQ(LogCommits("b"), LogCommits("a"));
  EXPECT_EQ(LogCommits("b").size(), 2u);
  EXPECT_EQ(Status("b"), "");
}

TEST_F(LifecycleTest, BranchToAnExistingNameFails) {
  ASSERT_TRUE(NewMounted("a", MakeSmallTree()));
  ASSERT_TRUE(NewBuild("b", MakeSmallTree("other")));
  WriteFile(M("a", "n.txt"), "new\n");
  CommandResult r = Buildfs({"branch", "a", "b"});
  EXPECT_TRUE(FailsWithOneLineError(r));
  EXPECT_EQ(Status("b"), "");  // b is untouched
  EXPECT_EQ(ReadFile(M("a", "n.txt")), "new\n");
}

TEST_F(LifecycleTest, BranchRefusesInvalidNames) {
  ASSERT_TRUE(NewMounted("a", MakeSmallTree()));
  for (const std::string name : {"a/b", "..", "a b", "-x", ".hidden", "repo"}) {
    CommandResult r = Buildfs({"branch", "a", "--", name});
    EXPECT_TRUE(FailsWithOneLineError(r)) << "name '" << name << "'";
    EXPECT_EQ(r.exit_code, 2) << "name '" << name << "': " << r.Describe();
  }
  nlohmann::json list = Json({"list", "--json"});
  EXPECT_EQ(list.size(), 1u) << list.dump();
  CommandResult refs = Ostree({"refs"});
  EXPECT_EQ(refs.out, "builds/a/base\n");
}

// ============================================================ kill -9 commit

// A commit of 3,000 new files killed at several moments: every time the build
// shows the same tree, mounts and unmounts, the repo passes fsck, and the
// next commit succeeds.
TEST_F(LifecycleTest, CommitKilledAtAnyMomentLosesNothing) {
  ASSERT_TRUE(NewMounted("k", MakeSmallTree()));
  for (int d = 0; d < 30; ++d) {
    const std::string dir = M("k", "many/d" + std::to_string(d));
    if (d == 0) MakeDir(M("k", "many"));
    MakeDir(dir);
    for (int f = 0; f < 100; ++f) WriteFile(dir + "/f" + std::to_string(f), "file " + std::to_string(d * 100 + f) + "\n");
  }
  const int delays_ms[] = {5, 20, 50, 150, 400};
  int killed_mid_commit = 0;
  for (int i = 0; i < static_cast<int>(std::size(delays_ms)); ++i) {
    SCOPED_TRACE("kill after " + std::to_string(delays_ms[i]) + " ms");
    // A new change each round, so every round has something to commit.
    WriteFile(M("k", "round-" + std::to_string(i)), "round " + std::to_string(i) + "\n");
    AppendFile(M("k", "a.txt"), "round " + std::to_string(i) + "\n");
    const Snapshot expected = Scan("k");
    ASSERT_TRUE(expected.problems.empty()) << expected.problems.front();
    const bool mounted = i % 2 == 0;  // odd rounds commit an unmounted build
    if (!mounted) {
      ASSERT_TRUE(Umount("k"));
    }

    Child commit = Child::Exec({BuildfsBin(), "-C", ws(), "commit", "k", "-m", "round " + std::to_string(i)},
                               tmp("commit.out"));
    std::this_thread::sleep_for(std::chrono::milliseconds(delays_ms[i]));
    int code = 0;
    if (!commit.Exited(&code)) {
      kill(commit.pid(), SIGKILL);
      code = commit.Wait();
    }
    if (code == 128 + SIGKILL) {
      ++killed_mid_commit;
    } else {
      EXPECT_EQ(code, 0) << ReadFile(tmp("commit.out"));
    }

    if (mounted) {
      ASSERT_TRUE(Umount("k"));
    }
    ASSERT_TRUE(Mount("k"));
    EXPECT_EQ(DiffSnapshots(expected, Scan("k")), "");
    ExpectFsck();
  }
  EXPECT_GE(killed_mid_commit, 3) << "the commit finished too fast to be killed";

  const Snapshot expected = Scan("k");
  nlohmann::json j = Json({"commit", "k", "-m", "finally", "--json"});
  EXPECT_EQ(j.value("changed", false), true) << j.dump();
  EXPECT_EQ(Status("k"), "");
  EXPECT_EQ(DiffSnapshots(expected, Scan("k")), "");
  EXPECT_EQ(DiffSnapshots(expected, ScanTree(Checkout("builds/k/base"))), "");
  nlohmann::json log = Json({"log", "k", "--json"});
  ASSERT_TRUE(log.is_array() && !log.empty()) << log.dump();
  EXPECT_EQ(log[0].value("subject", ""), "finally");
  ExpectFsck();
}

// A small commit killed at every step that changes something on disk
// (build.json and the freeze: rename; OSTree's objects and ref: renameat,
// fsync, linkat; the mount's daemon: connect; cleanup: unlinkat), each time
// followed by a commit that must succeed. strace kills it at the Nth call of
// that system call, so the steps are the same on a loaded machine as on a
// quiet one.
TEST_F(LifecycleTest, SmallCommitKilledAtEveryStepLosesNothing) {
  constexpr const char* kStrace = "/usr/bin/strace";
  ASSERT_EQ(access(kStrace, X_OK), 0) << "needs " << kStrace << " (tools/install-deps.sh installs it)";
  ASSERT_TRUE(NewMounted("k", MakeSmallTree()));
  // Calls per system call of a whole commit (of the main thread, as inject counts them).
  WriteFile(M("k", "first"), "first\n");
  CommandResult counted = RunCommand({kStrace, "-c", "-o", tmp("count.txt"), BuildfsBin(), "-C", ws(),
                                      "commit", "k", "-m", "first"});
  ASSERT_TRUE(counted.ok()) << counted.Describe();
  std::map<std::string, long> calls;
  for (const auto& line : Lines(ReadFile(tmp("count.txt")))) {
    std::istringstream fields(line);
    std::vector<std::string> f;
    for (std::string x; fields >> x;) f.push_back(x);
    if (f.size() >= 5 && std::isdigit(static_cast<unsigned char>(f[0][0]))) calls[f.back()] = std::stol(f[3]);
  }
  // Each step: (system call, N); N runs through the calls, a few for the
  // frequent ones, and one past the last (the commit then gets through).
  std::vector<std::pair<std::string, long>> steps;
  for (const char* sc : {"rename", "renameat", "connect", "fsync", "linkat", "unlinkat"}) {
    const long n = calls.count(sc) ? calls.at(sc) : 0;
    ASSERT_GT(n, 0) << sc << " never called: " << ReadFile(tmp("count.txt"));
    for (long k = 1; k <= n; k += std::max(1L, n / 5)) steps.emplace_back(sc, k);
    steps.emplace_back(sc, n + 1);
  }
  const int kRounds = static_cast<int>(steps.size());
  int killed = 0;
  for (int i = 0; i < kRounds; ++i) {
    const auto& [sc, when] = steps[i];
    SCOPED_TRACE("round " + std::to_string(i) + ", killed at " + sc + " call " + std::to_string(when));
    WriteFile(M("k", "round-" + std::to_string(i)), "round " + std::to_string(i) + "\n");
    AppendFile(M("k", "a.txt"), "round " + std::to_string(i) + "\n");
    const Snapshot expected = Scan("k");
    const bool mounted = i % 3 != 2;  // every third round commits an unmounted build
    if (!mounted) {
      ASSERT_TRUE(Umount("k"));
    }
    CommandResult run = RunCommand({kStrace, "-o", "/dev/null", "-e", "trace=" + sc, "-e",
                                    "inject=" + sc + ":signal=KILL:when=" + std::to_string(when), BuildfsBin(),
                                    "-C", ws(), "commit", "k", "-m", "killed " + std::to_string(i)});
    if (run.exit_code == 128 + SIGKILL) {
      ++killed;
    } else {
      EXPECT_EQ(run.exit_code, 0) << run.Describe();
    }
    if (mounted) {
      EXPECT_EQ(DiffSnapshots(expected, Scan("k")), "") << "while still mounted";
      ASSERT_TRUE(Umount("k"));
    }
    ASSERT_TRUE(Mount("k"));
    EXPECT_EQ(DiffSnapshots(expected, Scan("k")), "");
    ExpectFsck();
    // `log` (build.json) and `ostree log` (the ref) agree, whether or not the commit got through.
    EXPECT_EQ(LogCommits("k").front(), BaseRefCommit("k")) << "build.json and the ref disagree";

    CommandResult next = Buildfs({"commit", "k", "-m", "after " + std::to_string(i)});
    ASSERT_TRUE(next.ok()) << next.Describe();
    EXPECT_EQ(Status("k"), "");
    EXPECT_EQ(DiffSnapshots(expected, ScanTree(Checkout("builds/k/base"))), "");
    EXPECT_EQ(LogCommits("k").front(), BaseRefCommit("k"));
  }
  EXPECT_GE(killed, kRounds / 2);
  EXPECT_LT(killed, kRounds) << "no commit got through before the kill";
  ExpectFsck();
}

// The moment between OSTree moving the ref and build.json being replaced,
// hit every time: strace kills the commit at its first rename(2) (the
// objects and the ref are moved with renameat, build.json with rename).
TEST_F(LifecycleTest, CommitKilledRightAfterTheRefMovedKeepsLogAndRefInAgreement) {
  constexpr const char* kStrace = "/usr/bin/strace";
  ASSERT_EQ(access(kStrace, X_OK), 0) << "needs " << kStrace << " (tools/install-deps.sh installs it)";
  ASSERT_TRUE(NewMounted("k", MakeSmallTree()));
  AppendFile(M("k", "a.txt"), "more\n");
  const Snapshot expected = Scan("k");
  const std::string base = BaseRefCommit("k");
  CommandResult killed = RunCommand({kStrace, "-f", "-o", "/dev/null", "-e", "trace=rename", "-e",
                                     "inject=rename:signal=KILL:when=1", BuildfsBin(), "-C", ws(), "commit", "k",
                                     "-m", "killed"});
  EXPECT_FALSE(killed.ok()) << "the commit was not killed: " << killed.Describe();
  ASSERT_TRUE(Umount("k"));
  ASSERT_TRUE(Mount("k"));
  EXPECT_EQ(DiffSnapshots(expected, Scan("k")), "");
  ExpectFsck();
  EXPECT_EQ(LogCommits("k").front(), BaseRefCommit("k")) << "`buildfs log` and `ostree log` disagree";

  CommandResult next = Buildfs({"commit", "k", "-m", "next"});
  ASSERT_TRUE(next.ok()) << next.Describe();
  EXPECT_EQ(LogCommits("k").front(), BaseRefCommit("k"));
  // Whatever became of the killed commit, the history is one chain back to the base.
  std::vector<std::string> log = LogCommits("k");
  EXPECT_EQ(log.back(), base);
  CommandResult ostree_log = Ostree({"log", "builds/k/base"});
  std::vector<std::string> ostree_commits;
  for (const auto& line : Lines(ostree_log.out)) {
    if (line.rfind("commit ", 0) == 0) ostree_commits.push_back(line.substr(7));
  }
  EXPECT_EQ(ostree_commits, log);
  EXPECT_EQ(DiffSnapshots(expected, ScanTree(Checkout("builds/k/base"))), "");
}

// ================================================================= prune

TEST_F(LifecycleTest, PruneWhileBuildsAreMountedAndReadKeepsThemWhole) {
  const std::string src_a = tmp("src-a"), src_b = tmp("src-b"), src_c = tmp("src-c");
  MakeRandomTree(src_a, 11, 8, 150);
  MakeRandomTree(src_b, 12, 8, 150);
  MakeRandomTree(src_c, 13, 8, 150);
  // a: a commit on top of its base, then uncommitted changes that end up in a
  // frozen layer (branched off to a build that is removed again).
  ASSERT_TRUE(NewMounted("a", src_a));
  WriteFile(M("a", "committed.txt"), "committed in a\n");
  ASSERT_TRUE(Buildfs({"commit", "a", "-m", "a1"}).ok());
  WriteFile(M("a", "frozen.txt"), "frozen in a\n");
  ASSERT_TRUE(Buildfs({"branch", "a", "a-tmp"}).ok());
  ASSERT_TRUE(Buildfs({"rm", "a-tmp"}).ok());
  WriteFile(M("a", "upper.txt"), "in a's upper\n");
  // b: uncommitted changes only.
  ASSERT_TRUE(NewMounted("b", src_b));
  WriteFile(M("b", "upper.txt"), "in b's upper\n");
  // c: two commits, then removed: nothing references them any more.
  ASSERT_TRUE(NewMounted("c", src_c));
  WriteFile(M("c", "c-only.txt"), "only ever in c\n");
  ASSERT_TRUE(Buildfs({"commit", "c", "-m", "c1"}).ok());
  const std::vector<std::string> c_commits = LogCommits("c");
  ASSERT_EQ(c_commits.size(), 2u);
  std::set<std::string> c_files;
  for (const auto& commit : c_commits) {
    auto files = FileObjects(commit);
    c_files.insert(files.begin(), files.end());
  }
  for (const auto& name : {"a", "b"}) {
    for (const auto& commit : LogCommits(name)) {
      for (const auto& f : FileObjects(commit)) c_files.erase(f);
    }
  }
  ASSERT_GT(c_files.size(), 50u);
  ASSERT_TRUE(Buildfs({"rm", "--force", "c"}).ok());
  const std::vector<std::string> a_commits = LogCommits("a");
  ASSERT_EQ(a_commits.size(), 2u);

  const Snapshot expect_a = Scan("a"), expect_b = Scan("b");
  const int objects_before = CountObjects();
  Shared shared;
  std::vector<Child> readers;
  readers.emplace_back([&] { return ReadTreeInALoop(BuildDir("a"), expect_a, shared.get(), 0); });
  readers.emplace_back([&] { return ReadTreeInALoop(BuildDir("b"), expect_b, shared.get(), 1); });
  auto passes = [&](int slot) { return shared->count[slot].load(); };
  auto failed = [&] { return shared->error[0][0] || shared->error[1][0]; };
  ASSERT_TRUE(WaitUntil([&] { return (passes(0) >= 1 && passes(1) >= 1) || failed(); }, 60000));

  nlohmann::json pruned = Json({"prune", "--json"});
  const long done0 = passes(0), done1 = passes(1);
  // Two more full passes each, both begun after prune ended.
  EXPECT_TRUE(WaitUntil([&] { return (passes(0) >= done0 + 2 && passes(1) >= done1 + 2) || failed(); }, 60000));
  shared->stop = 1;
  for (auto& r : readers) EXPECT_EQ(r.Wait(), 0);
  EXPECT_EQ(shared->error[0][0], 0) << "reader of a: " << shared->error[0];
  EXPECT_EQ(shared->error[1][0], 0) << "reader of b: " << shared->error[1];

  EXPECT_GT(pruned.value("objects_pruned", 0), 0) << pruned.dump();
  const int objects_after = CountObjects();
  EXPECT_LT(objects_after, objects_before - static_cast<int>(c_files.size()) + 1);
  const std::string objects = ws() + "/repo/objects/";
  for (const auto& commit : c_commits) {
    EXPECT_EQ(LstatErrno(objects + commit.substr(0, 2) + "/" + commit.substr(2) + ".commit"), ENOENT)
        << "commit " << commit << " of the removed build survived prune";
  }
  int c_left = 0;
  for (const auto& f : c_files) c_left += LstatErrno(objects + f.substr(0, 2) + "/" + f.substr(2) + ".file") == 0;
  EXPECT_EQ(c_left, 0) << "file objects only the removed build used survived prune";
  EXPECT_EQ(LogCommits("a"), a_commits);  // the parent of a's base is kept
  ExpectFsck();

  ASSERT_TRUE(Umount("a"));
  ASSERT_TRUE(Umount("b"));
  ASSERT_TRUE(Mount("a"));
  ASSERT_TRUE(Mount("b"));
  EXPECT_EQ(DiffSnapshots(expect_a, Scan("a")), "");
  EXPECT_EQ(DiffSnapshots(expect_b, Scan("b")), "");
}

// ====================================================== concurrent commits

// `new` and `commit` write objects that no ref reaches until their
// transaction ends: a prune meanwhile must leave them alone.
TEST_F(LifecycleTest, PruneDuringNewKeepsTheNewBase) {
  const std::string src = tmp("src");
  MakeRandomTree(src, 31, 40, 2000);
  Child make = Child::Exec({BuildfsBin(), "-C", ws(), "new", "n", "--from-dir", src}, tmp("new.out"));
  int code = 0, prunes = 0;
  while (!make.Exited(&code)) {
    CommandResult r = Buildfs({"prune"});
    EXPECT_TRUE(r.ok()) << r.Describe();
    ++prunes;
  }
  ASSERT_EQ(code, 0) << ReadFile(tmp("new.out"));
  EXPECT_GE(prunes, 1) << "new ended before prune ran";
  ExpectFsck();
  ASSERT_TRUE(Mount("n"));
  EXPECT_EQ(DiffTrees(src, BuildDir("n"), MountScan()), "");
}

TEST_F(LifecycleTest, PruneDuringCommitKeepsTheCommit) {
  ASSERT_TRUE(NewMounted("c", MakeSmallTree()));
  MakeDir(M("c", "many"));
  for (int i = 0; i < 1000; ++i) WriteFile(M("c", "many/f" + std::to_string(i)), "file " + std::to_string(i) + "\n");
  const Snapshot expected = Scan("c");
  Child commit = Child::Exec({BuildfsBin(), "-C", ws(), "commit", "c", "-m", "big"}, tmp("commit.out"));
  int code = 0, prunes = 0;
  while (!commit.Exited(&code)) {
    CommandResult r = Buildfs({"prune"});
    EXPECT_TRUE(r.ok()) << r.Describe();
    ++prunes;
  }
  ASSERT_EQ(code, 0) << ReadFile(tmp("commit.out"));
  EXPECT_GE(prunes, 1) << "the commit ended before prune ran";
  ExpectFsck();
  EXPECT_EQ(DiffSnapshots(expected, ScanTree(Checkout("builds/c/base"))), "");
  ASSERT_TRUE(Umount("c"));
  ASSERT_TRUE(Mount("c"));
  EXPECT_EQ(DiffSnapshots(expected, Scan("c")), "");
}

TEST_F(LifecycleTest, TwoBuildsCommittingAtOnceBothSucceed) {
  const std::string src = tmp("src");
  MakeRandomTree(src, 21, 6, 100);
  ASSERT_TRUE(NewMounted("a", src));
  ASSERT_TRUE(NewMounted("b", src));
  std::map<std::string, Snapshot> expected;
  for (const std::string name : {"a", "b"}) {
    MakeDir(M(name, "new"));
    for (int i = 0; i < 300; ++i) {
      WriteFile(M(name, "new/f" + std::to_string(i)), name + " " + std::to_string(i) + "\n");
    }
    WriteFile(M(name, "d0/which"), name + "\n");
    expected[name] = Scan(name);
  }
  const std::map<std::string, std::string> bases{{"a", BaseRefCommit("a")}, {"b", BaseRefCommit("b")}};
  std::vector<Child> commits;
  for (const std::string name : {"a", "b"}) {
    commits.push_back(Child::Exec({BuildfsBin(), "-C", ws(), "commit", name, "-m", "concurrent " + name},
                                  tmp("commit-" + name + ".out")));
  }
  EXPECT_EQ(commits[0].Wait(), 0) << ReadFile(tmp("commit-a.out"));
  EXPECT_EQ(commits[1].Wait(), 0) << ReadFile(tmp("commit-b.out"));
  for (const std::string name : {"a", "b"}) {
    nlohmann::json log = Json({"log", name, "--json"});
    ASSERT_TRUE(log.is_array() && log.size() == 2) << log.dump();
    EXPECT_EQ(log[0].value("subject", ""), "concurrent " + name);
    EXPECT_EQ(log[1].value("commit", ""), bases.at(name));
    EXPECT_EQ(log[0].value("commit", ""), BaseRefCommit(name));
    EXPECT_EQ(Status(name), "");
    EXPECT_EQ(DiffSnapshots(expected[name], ScanTree(Checkout("builds/" + name + "/base"))), "") << name;
  }
  ExpectFsck();
}

// ================================================================= reset

TEST_F(LifecycleTest, ResetOfMountedBuildDropsChangesAndStaysMounted) {
  const std::string src = MakeSmallTree();
  ASSERT_TRUE(NewMounted("b", src));
  WriteFile(M("b", "n.txt"), "new\n");
  AppendFile(M("b", "a.txt"), "more\n");
  ASSERT_EQ(rename(M("b", "d1").c_str(), M("b", "d1r").c_str()), 0);
  CommandResult r = Buildfs({"reset", "b", "--yes"});
  ASSERT_TRUE(r.ok()) << r.Describe();
  EXPECT_TRUE(IsMountPoint(BuildDir("b")));
  EXPECT_EQ(Status("b"), "");
  EXPECT_EQ(DiffTrees(src, BuildDir("b"), MountScan()), "");
  WriteFile(M("b", "after-reset.txt"), "still works\n");
  EXPECT_EQ(ReadFile(M("b", "after-reset.txt")), "still works\n");
}

TEST_F(LifecycleTest, ResetOfUnmountedBuildDropsChanges) {
  const std::string src = MakeSmallTree();
  ASSERT_TRUE(NewMounted("b", src));
  WriteFile(M("b", "n.txt"), "new\n");
  ASSERT_EQ(unlink(M("b", "b.txt").c_str()), 0);
  ASSERT_TRUE(Umount("b"));
  CommandResult r = Buildfs({"reset", "b", "--yes"});
  ASSERT_TRUE(r.ok()) << r.Describe();
  EXPECT_FALSE(IsMountPoint(BuildDir("b")));
  EXPECT_EQ(Status("b"), "");
  ASSERT_TRUE(Mount("b"));
  EXPECT_EQ(DiffTrees(src, BuildDir("b"), MountScan()), "");
}

TEST_F(LifecycleTest, ResetKeepsCommittedChangesAndDropsFrozenOnes) {
  const std::string src = MakeSmallTree();
  ASSERT_TRUE(NewMounted("b", src));
  WriteFile(M("b", "committed.txt"), "kept\n");
  ASSERT_TRUE(Buildfs({"commit", "b", "-m", "keep"}).ok());
  const Snapshot committed = Scan("b");
  WriteFile(M("b", "frozen.txt"), "dropped\n");
  ASSERT_TRUE(Buildfs({"branch", "b", "other"}).ok());  // freezes b's upper
  WriteFile(M("b", "upper.txt"), "dropped\n");
  ASSERT_TRUE(Buildfs({"reset", "b", "--yes"}).ok());
  EXPECT_EQ(Status("b"), "");
  EXPECT_EQ(DiffSnapshots(committed, Scan("b")), "");
  EXPECT_EQ(Status("other"), "A frozen.txt\n");  // the branch keeps the frozen layer
}

TEST_F(LifecycleTest, ResetWithoutYesAndWithoutTerminalFails) {
  ASSERT_TRUE(NewMounted("b", MakeSmallTree()));
  WriteFile(M("b", "n.txt"), "new\n");
  CommandResult r = Buildfs({"reset", "b"});  // stdin is /dev/null
  EXPECT_TRUE(FailsWithOneLineError(r));
  EXPECT_NE(r.err.find("--yes"), std::string::npos) << r.Describe();
  EXPECT_EQ(Status("b"), "A n.txt\n");
  EXPECT_EQ(ReadFile(M("b", "n.txt")), "new\n");
}

// ==================================================================== rm

TEST_F(LifecycleTest, RmRefusesAMountedBuild) {
  ASSERT_TRUE(NewMounted("b", MakeSmallTree()));
  WriteFile(M("b", "n.txt"), "new\n");
  CommandResult r = Buildfs({"rm", "b"});
  EXPECT_TRUE(FailsWithOneLineError(r));
  EXPECT_EQ(r.exit_code, 4) << r.Describe();  // busy
  EXPECT_TRUE(IsMountPoint(BuildDir("b")));
  EXPECT_EQ(ReadFile(M("b", "n.txt")), "new\n");
  EXPECT_FALSE(ListEntry("b").is_null());
  EXPECT_EQ(Ostree({"refs"}).out, "builds/b/base\n");
}

TEST_F(LifecycleTest, RmForceUnmountsAndRemovesTheBuild) {
  ASSERT_TRUE(NewMounted("b", MakeSmallTree()));
  ASSERT_TRUE(NewBuild("keep", MakeSmallTree("other")));
  WriteFile(M("b", "n.txt"), "new\n");
  ASSERT_TRUE(Buildfs({"commit", "b", "-m", "one"}).ok());
  CommandResult r = Buildfs({"rm", "--force", "b"});
  ASSERT_TRUE(r.ok()) << r.Describe();
  EXPECT_FALSE(IsMountPoint(BuildDir("b")));
  EXPECT_EQ(LstatErrno(BuildDir("b")), ENOENT);
  EXPECT_EQ(LstatErrno(ws() + "/.buildfs/builds/b"), ENOENT);
  EXPECT_TRUE(ListEntry("b").is_null());
  EXPECT_FALSE(ListEntry("keep").is_null());
  EXPECT_EQ(Ostree({"refs"}).out, "builds/keep/base\n");
  EXPECT_EQ(Buildfs({"status", "b"}).exit_code, 3);  // no such build
}

TEST_F(LifecycleTest, RmOfUnmountedBuildRemovesItsRefs) {
  ASSERT_TRUE(NewBuild("b", MakeSmallTree()));
  CommandResult r = Buildfs({"rm", "b"});
  ASSERT_TRUE(r.ok()) << r.Describe();
  EXPECT_TRUE(ListEntry("b").is_null());
  EXPECT_EQ(Ostree({"refs"}).out, "");
  EXPECT_EQ(LstatErrno(BuildDir("b")), ENOENT);
}

// ================================================================ export

TEST_F(LifecycleTest, ExportIsAPlainCopyOfTheMountedTree) {
  const std::string src = tmp("src");
  MakeSampleTree(src);
  ASSERT_TRUE(NewMounted("b", src));
  ChangeSampleTree(BuildDir("b"));
  const std::string out = tmp("exported");
  CommandResult r = Buildfs({"export", "b", out});
  ASSERT_TRUE(r.ok()) << r.Describe();
  EXPECT_NE(Lstat(out).st_dev, Lstat(BuildDir("b")).st_dev) << "the export is not a plain directory";
  EXPECT_EQ(DiffSnapshots(Scan("b"), ScanTree(out)), "");
  EXPECT_EQ(DirMeta(out), DirMeta(BuildDir("b")));
}

TEST_F(LifecycleTest, ExportOfUnmountedBuildEqualsItsTree) {
  const std::string src = MakeSmallTree();
  ASSERT_TRUE(NewMounted("b", src));
  WriteFile(M("b", "n.txt"), "new\n");
  ASSERT_EQ(rename(M("b", "d1").c_str(), M("b", "d1r").c_str()), 0);
  const Snapshot mounted = Scan("b");
  ASSERT_TRUE(Umount("b"));
  const std::string out = tmp("exported");
  CommandResult r = Buildfs({"export", "b", out});
  ASSERT_TRUE(r.ok()) << r.Describe();
  EXPECT_EQ(DiffSnapshots(mounted, ScanTree(out)), "");
}

TEST_F(LifecycleTest, ExportIntoAnExistingDirectoryFails) {
  ASSERT_TRUE(NewMounted("b", MakeSmallTree()));
  const std::string out = tmp("exported");
  MakeDir(out);
  WriteFile(out + "/mine", "keep me\n");
  CommandResult r = Buildfs({"export", "b", out});
  EXPECT_TRUE(FailsWithOneLineError(r));
  EXPECT_EQ(ListDir(out), std::vector<std::string>{"mine"});
}

}  // namespace
}  // namespace buildfs::testing
