// What goes wrong around a build's life cycle, and what buildfs must do then
// (issue "No lost work"): other filesystems at a build's mount point, a full
// disk, killed commands, a damaged description, a missing repository, names
// a ref cannot hold, private cache changes, export across filesystems, the
// daemon's signals, names and inherited files. Each test reproduces what was
// found going wrong, and checks the answer buildfs gives now.
#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/harness.h"

namespace buildfs::testing {
namespace {

constexpr const char* kOstreeBin = "/usr/bin/ostree";
constexpr const char* kStrace = "/usr/bin/strace";


// A failed command whose stderr is one line "buildfs: ...", with exit `code`.
::testing::AssertionResult FailsWith(const CommandResult& r, int code) {
  const bool one_line = !r.err.empty() && r.err.back() == '\n' &&
                        std::count(r.err.begin(), r.err.end(), '\n') == 1 && r.err.rfind("buildfs: ", 0) == 0;
  if (r.exit_code != code || !one_line) {
    return ::testing::AssertionFailure() << "wanted exit " << code << " and one line 'buildfs: ...': "
                                         << r.Describe();
  }
  return ::testing::AssertionSuccess();
}

// Names of the entries of a directory ({} when it does not exist).
std::vector<std::string> Entries(const std::string& dir) {
  if (LstatErrno(dir) != 0) return {};
  auto names = ListDir(dir);
  std::sort(names.begin(), names.end());
  return names;
}

class LifecycleFailureTest : public WorkspaceTest {
 protected:
  void SetUp() override {
    WorkspaceTest::SetUp();
    umask(022);
    src_ = tmp("src");
    MakeTree(src_, {{"a.txt", "alpha\n"}, {"d/x", "x\n"}});
  }

  std::string M(const std::string& build, const std::string& rel) const { return BuildDir(build) + "/" + rel; }
  std::string State(const std::string& rel) const { return ws() + "/.buildfs/" + rel; }
  nlohmann::json BuildJson(const std::string& name) {
    return nlohmann::json::parse(ReadFile(State("builds/" + name + "/build.json")));
  }
  CommandResult Ostree(std::vector<std::string> args) {
    args.insert(args.begin(), {kOstreeBin, "--repo=" + ws() + "/repo"});
    return RunCommand(args);
  }
  std::string Ref(const std::string& name) {
    CommandResult r = Ostree({"rev-parse", "builds/" + name + "/base"});
    return r.ok() ? r.out.substr(0, r.out.find('\n')) : "";
  }
  size_t LogLength(const std::string& name) {
    CommandResult r = Buildfs({"log", name, "--json"});
    EXPECT_TRUE(r.ok()) << r.Describe();
    return nlohmann::json::parse(r.out).size();
  }
  // Mounts a tmpfs of `size` at `dir` (made if missing); TempDir detaches it.
  void MountTmpfs(const std::string& dir, const std::string& size = "16m") {
    if (LstatErrno(dir) != 0) MakeDir(dir);
    ASSERT_EQ(mount("tmpfs", dir.c_str(), "tmpfs", 0, ("size=" + size).c_str()), 0) << strerror(errno);
  }

  std::string src_;
};

// ---------------------------------------------- 2. other people's mounts

TEST_F(LifecycleFailureTest, MountLeavesAnotherFilesystemAtTheMountPointAlone) {
  ASSERT_TRUE(NewBuild("b", src_));
  MountTmpfs(BuildDir("b"));
  WriteFile(BuildDir("b") + "/precious", "mine\n");
  CommandResult r = Buildfs({"mount", "b"});
  EXPECT_TRUE(FailsWith(r, 4));
  EXPECT_NE(r.err.find("tmpfs"), std::string::npos) << r.err;
  EXPECT_EQ(ReadFile(BuildDir("b") + "/precious"), "mine\n");
  EXPECT_EQ(umount(BuildDir("b").c_str()), 0) << "the tmpfs is no longer mounted there";
}

TEST_F(LifecycleFailureTest, UmountLeavesAnotherFilesystemAtTheMountPointAlone) {
  ASSERT_TRUE(NewBuild("b", src_));
  MountTmpfs(BuildDir("b"));
  WriteFile(BuildDir("b") + "/precious", "mine\n");
  for (const auto& args : std::vector<std::vector<std::string>>{{"umount", "b"}, {"umount", "--lazy", "b"},
                                                                {"rm", "--force", "b"}}) {
    SCOPED_TRACE(args[0]);
    EXPECT_TRUE(FailsWith(Buildfs(args), 4));
    EXPECT_EQ(ReadFile(BuildDir("b") + "/precious"), "mine\n");
  }
  EXPECT_EQ(LstatErrno(State("builds/b/build.json")), 0) << "rm removed the build all the same";
  EXPECT_EQ(umount(BuildDir("b").c_str()), 0);
}

TEST_F(LifecycleFailureTest, UmountLeavesAFilesystemMountedOverTheBuildAlone) {
  ASSERT_TRUE(NewBuild("b", src_));
  ASSERT_TRUE(Mount("b"));
  MountTmpfs(BuildDir("b"));
  WriteFile(BuildDir("b") + "/precious", "mine\n");
  EXPECT_TRUE(FailsWith(Buildfs({"umount", "b"}), 4));
  EXPECT_EQ(ReadFile(BuildDir("b") + "/precious"), "mine\n");
  ASSERT_EQ(umount(BuildDir("b").c_str()), 0);
  EXPECT_TRUE(Umount("b"));
}

// ------------------------------------------------------- 3. a full disk

class FullDiskTest : public LifecycleFailureTest {
 protected:
  void SetUp() override {
    LifecycleFailureTest::SetUp();
    small_ = tmp("small");
    MountTmpfs(small_, "64m");
    small_ws_ = small_ + "/ws";
    ASSERT_TRUE(RunBuildfs({"init", small_ws_}).ok());
  }
  CommandResult Small(std::vector<std::string> args) {
    args.insert(args.begin(), {"-C", small_ws_});
    return RunBuildfs(args);
  }
  std::string small_, small_ws_;
};

TEST_F(FullDiskTest, CommitThatCannotFitFailsFirstAndRemovingTheFileGivesTheSpaceBack) {
  ASSERT_TRUE(Small({"new", "b", "--from-dir", src_}).ok());
  ASSERT_TRUE(Small({"mount", "b"}).ok());
  const std::string big = small_ws_ + "/b/big";
  WriteFile(big, std::string(40 << 20, 'x'));
  const nlohmann::json before = nlohmann::json::parse(ReadFile(small_ws_ + "/.buildfs/builds/b/build.json"));
  CommandResult commit = Small({"commit", "b", "-m", "too big"});
  EXPECT_TRUE(FailsWith(commit, 1));
  EXPECT_NE(commit.err.find("not enough space"), std::string::npos) << commit.err;
  // Exactly as before: the same layers, the file still in the upper.
  EXPECT_EQ(nlohmann::json::parse(ReadFile(small_ws_ + "/.buildfs/builds/b/build.json")), before);
  EXPECT_EQ(LstatErrno(small_ws_ + "/.buildfs/builds/b/upper/big"), 0);
  // Removing the file gives its space back, and the build commits and mounts.
  struct statvfs full;
  ASSERT_EQ(statvfs(small_.c_str(), &full), 0);
  ASSERT_EQ(unlink(big.c_str()), 0);
  struct statvfs freed;
  ASSERT_EQ(statvfs(small_.c_str(), &freed), 0);
  EXPECT_GT((freed.f_bavail - full.f_bavail) * freed.f_frsize, 30ull << 20);
  WriteFile(small_ws_ + "/b/small", "small\n");
  CommandResult ok = Small({"commit", "b", "-m", "fits"});
  EXPECT_TRUE(ok.ok()) << ok.Describe();
  ASSERT_TRUE(Small({"umount", "b"}).ok());
  ASSERT_TRUE(Small({"mount", "b"}).ok());
  EXPECT_EQ(ReadFile(small_ws_ + "/b/small"), "small\n");
  ASSERT_TRUE(Small({"umount", "b"}).ok());
}

// A commit that fails half-way (the disk fills up while objects are written:
// strace fails OSTree's link of an object into place with ENOSPC) takes its
// freeze back: the build's layers and upper are as before.
TEST_F(LifecycleFailureTest, CommitFailingHalfWayLeavesTheBuildAsItWas) {
  ASSERT_EQ(access(kStrace, X_OK), 0);
  for (bool mounted : {true, false}) {
    SCOPED_TRACE(mounted ? "mounted" : "unmounted");
    const std::string name = mounted ? "m" : "u";
    ASSERT_TRUE(NewBuild(name, src_));
    ASSERT_TRUE(Mount(name));
    WriteFile(M(name, "new.txt"), "new\n");
    if (!mounted) {
      ASSERT_TRUE(Umount(name));
    }
    const nlohmann::json before = BuildJson(name);
    CommandResult failed = RunCommand({kStrace, "-f", "-o", "/dev/null", "-e", "trace=linkat", "-e",
                                       "inject=linkat:error=ENOSPC:when=1", BuildfsBin(), "-C", ws(), "commit",
                                       name, "-m", "fails"});
    EXPECT_NE(failed.exit_code, 0) << failed.Describe();
    EXPECT_NE(failed.err.find("No space left on device"), std::string::npos) << failed.err;
    EXPECT_EQ(BuildJson(name), before);
    EXPECT_EQ(ReadFile(State("builds/" + name + "/upper/new.txt")), "new\n");
    EXPECT_EQ(Entries(State("layers")), std::vector<std::string>{});
    EXPECT_EQ(LogLength(name), 1u);
    if (!mounted) {
      ASSERT_TRUE(Mount(name));
    }
    EXPECT_EQ(ReadFile(M(name, "new.txt")), "new\n");
    CommandResult ok = Buildfs({"commit", name, "-m", "works"});
    EXPECT_TRUE(ok.ok()) << ok.Describe();
    EXPECT_EQ(LogLength(name), 2u);
    ASSERT_TRUE(Umount(name));
  }
}

// Mounting needs no space when nothing is left to finish: on a full disk a
// build still mounts.
TEST_F(FullDiskTest, ABuildMountsOnAFullDisk) {
  ASSERT_TRUE(Small({"new", "b", "--from-dir", src_}).ok());
  ASSERT_TRUE(Small({"mount", "b"}).ok());
  WriteFile(small_ws_ + "/b/note", "kept\n");
  ASSERT_TRUE(Small({"umount", "b"}).ok());
  // Fill what is left.
  int fd = open((small_ + "/filler").c_str(), O_WRONLY | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  std::string chunk(1 << 20, 'f');
  while (write(fd, chunk.data(), chunk.size()) > 0) {
  }
  while (write(fd, chunk.data(), 4096) > 0) {
  }
  close(fd);
  CommandResult mounted = Small({"mount", "b"});
  EXPECT_TRUE(mounted.ok()) << mounted.Describe();
  EXPECT_EQ(ReadFile(small_ws_ + "/b/note"), "kept\n");
  EXPECT_TRUE(Small({"umount", "b"}).ok());
}

// ------------------------------------------ 4. leftovers of killed commands

// Commits killed at each step that writes (as in lifecycle_test.cc) leave
// nothing behind once another command ran: no trash, no staging, no layer
// that no build lists.
TEST_F(LifecycleFailureTest, KilledCommitsLeaveNothingBehind) {
  ASSERT_EQ(access(kStrace, X_OK), 0);
  ASSERT_TRUE(NewBuild("k", src_));
  ASSERT_TRUE(Mount("k"));
  int round = 0;
  for (const char* sc : {"rename", "renameat", "connect", "linkat", "unlinkat", "mkdir", "fsync"}) {
    for (int when = 1; when <= 3; ++when) {
      WriteFile(M("k", "f" + std::to_string(round)), std::string(1 << 20, 'a' + round % 26));
      RunCommand({kStrace, "-o", "/dev/null", "-e", std::string("trace=") + sc, "-e",
                  std::string("inject=") + sc + ":signal=KILL:when=" + std::to_string(when), BuildfsBin(), "-C",
                  ws(), "commit", "k", "-m", "killed " + std::to_string(round)});
      ++round;
    }
  }
  CommandResult ok = Buildfs({"commit", "k", "-m", "after"});
  ASSERT_TRUE(ok.ok()) << ok.Describe();
  EXPECT_EQ(Entries(State("trash")), std::vector<std::string>{});
  for (const auto& n : Entries(State("builds/k"))) EXPECT_EQ(n.rfind("commit.tmp", 0), std::string::npos) << n;
  for (const auto& n : Entries(State(""))) EXPECT_EQ(n.rfind("trash-", 0), std::string::npos) << n;
  EXPECT_EQ(Entries(State("layers")), std::vector<std::string>{}) << BuildJson("k").dump();
  ASSERT_TRUE(Buildfs({"prune"}).ok());
  for (const auto& n : Entries(ws() + "/repo/tmp")) EXPECT_EQ(n.rfind("staging-", 0), std::string::npos) << n;
  CommandResult fsck = Ostree({"fsck"});
  EXPECT_TRUE(fsck.ok()) << fsck.Describe();
}

// rm killed while it deletes the build (set aside in the trash): the next
// command deletes the rest.
TEST_F(LifecycleFailureTest, RmKilledWhileDeletingLeavesNothingAfterTheNextCommand) {
  ASSERT_TRUE(NewBuild("k", src_));
  ASSERT_TRUE(Mount("k"));
  for (int i = 0; i < 50; ++i) WriteFile(M("k", "f" + std::to_string(i)), "x\n");
  ASSERT_TRUE(Umount("k"));
  CommandResult killed = RunCommand({kStrace, "-o", "/dev/null", "-e", "trace=unlinkat", "-e",
                                     "inject=unlinkat:signal=KILL:when=10", BuildfsBin(), "-C", ws(), "rm", "k"});
  EXPECT_EQ(killed.exit_code, 128 + SIGKILL) << killed.Describe();
  EXPECT_FALSE(Entries(State("trash")).empty()) << "the kill came before the deletion";
  ASSERT_TRUE(NewBuild("other", src_));
  ASSERT_TRUE(Buildfs({"prune"}).ok());
  EXPECT_EQ(Entries(State("trash")), std::vector<std::string>{});
  EXPECT_EQ(LstatErrno(State("builds/k")), ENOENT);
}

// ----------------------------------------------- 6. a damaged description

class DamagedBuildTest : public LifecycleFailureTest {
 protected:
  void SetUp() override {
    LifecycleFailureTest::SetUp();
    ASSERT_TRUE(NewBuild("c1", src_));
    ASSERT_TRUE(NewBuild("c8", src_));
    ASSERT_TRUE(Mount("c8"));
    WriteFile(M("c8", "kept.txt"), "kept\n");
    ASSERT_TRUE(Buildfs({"branch", "c8", "c9"}).ok());  // c8 and c9 share a frozen layer
    ASSERT_TRUE(Umount("c8"));
    WriteFile(State("builds/c1/build.json"), "{\"base\": \"3f8797b8");  // cut short
  }
};

TEST_F(DamagedBuildTest, ListShowsTheDamagedBuildAndTheOthers) {
  CommandResult text = Buildfs({"list"});
  ASSERT_TRUE(text.ok()) << text.Describe();
  EXPECT_NE(text.out.find("c1"), std::string::npos);
  EXPECT_NE(text.out.find("damaged"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("c8"), std::string::npos);
  EXPECT_NE(text.out.find("c9"), std::string::npos);
  CommandResult json = Buildfs({"list", "--json"});
  ASSERT_TRUE(json.ok()) << json.Describe();
  auto list = nlohmann::json::parse(json.out);
  ASSERT_EQ(list.size(), 3u);
  EXPECT_TRUE(list[0].contains("damaged")) << list.dump();
  EXPECT_FALSE(list[1].contains("damaged")) << list.dump();
}

TEST_F(DamagedBuildTest, TheErrorNamesTheFileAndSaysWhatIsWrongInWords) {
  CommandResult r = Buildfs({"status", "c1"});
  EXPECT_TRUE(FailsWith(r, 1));
  EXPECT_NE(r.err.find(State("builds/c1/build.json") + " is not valid JSON"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("json.exception"), std::string::npos) << r.err;
}

TEST_F(DamagedBuildTest, PruneGoesOnForTheHealthyBuildsAndDeletesNoLayer) {
  const auto layers = Entries(State("layers"));
  ASSERT_FALSE(layers.empty());
  ASSERT_TRUE(Buildfs({"rm", "c9"}).ok());
  CommandResult r = Buildfs({"prune"});
  EXPECT_TRUE(r.ok()) << r.Describe();
  EXPECT_NE(r.err.find("c1"), std::string::npos) << r.err;
  EXPECT_EQ(Entries(State("layers")), layers);
  ASSERT_TRUE(Mount("c8"));
  EXPECT_EQ(ReadFile(M("c8", "kept.txt")), "kept\n");
  ASSERT_TRUE(Umount("c8"));
}

TEST_F(DamagedBuildTest, RmOfAHealthyBuildSucceeds) {
  CommandResult r = Buildfs({"rm", "c9"});
  EXPECT_TRUE(r.ok()) << r.Describe();
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(LstatErrno(State("builds/c9")), ENOENT);
}

TEST_F(DamagedBuildTest, RmForceRemovesTheDamagedBuild) {
  EXPECT_TRUE(FailsWith(Buildfs({"rm", "c1"}), 1));
  CommandResult r = Buildfs({"rm", "--force", "c1"});
  EXPECT_TRUE(r.ok()) << r.Describe();
  EXPECT_EQ(LstatErrno(State("builds/c1")), ENOENT);
  EXPECT_EQ(Ref("c1"), "");
}

// --------------------------------------------------- 7. all or nothing

TEST_F(LifecycleFailureTest, RmWithoutTheRepositoryChangesNothing) {
  ASSERT_TRUE(NewBuild("b", src_));
  ASSERT_EQ(rename((ws() + "/repo").c_str(), tmp("repo-aside").c_str()), 0);
  CommandResult r = Buildfs({"rm", "b"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(FailsWith(r, r.exit_code));
  EXPECT_EQ(LstatErrno(State("builds/b/build.json")), 0);
  ASSERT_EQ(rename(tmp("repo-aside").c_str(), (ws() + "/repo").c_str()), 0);
  EXPECT_NE(Ref("b"), "");
  EXPECT_TRUE(Buildfs({"rm", "b"}).ok());
  EXPECT_EQ(Ref("b"), "");
}

// --------------------------------------------- 8. names a ref cannot hold

TEST_F(LifecycleFailureTest, NamesARefCannotHoldAreRefusedBeforeAnythingChanges) {
  ASSERT_TRUE(NewBuild("b", src_));
  ASSERT_TRUE(Mount("b"));
  WriteFile(M("b", "dirty"), "uncommitted\n");
  const nlohmann::json before = BuildJson("b");
  for (const std::string name : {"a\\b", "a:b", "*", "a b", "über"}) {
    SCOPED_TRACE(name);
    CommandResult made = Buildfs({"new", name});
    EXPECT_TRUE(FailsWith(made, 2));
    EXPECT_NE(made.err.find("invalid build name"), std::string::npos) << made.err;
    EXPECT_TRUE(FailsWith(Buildfs({"branch", "b", name}), 2));
  }
  EXPECT_EQ(BuildJson("b"), before) << "branch froze the source before checking the name";
  EXPECT_EQ(Entries(State("layers")), std::vector<std::string>{});
  EXPECT_EQ(Entries(State("builds")), std::vector<std::string>{"b"});
}

// --------------------------------------------- 9. private cache changes

TEST_F(LifecycleFailureTest, PrivateCacheChangesAreShownAndNeverMakeACommit) {
  WriteFile(ws() + "/cache/shared.img", "shared\n");
  ASSERT_TRUE(NewBuild("b", src_));
  ASSERT_TRUE(Mount("b"));
  WriteFile(M("b", "cache/shared.img"), "private\n");
  CommandResult status = Buildfs({"status", "b"});
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status.out, "C cache/shared.img\n");
  nlohmann::json list = nlohmann::json::parse(Buildfs({"list", "--json"}).out);
  EXPECT_EQ(list[0].value("dirty", true), false) << list.dump();
  EXPECT_EQ(list[0].value("cache_changes", false), true) << list.dump();
  EXPECT_NE(Buildfs({"list"}).out.find("private cache/ only"), std::string::npos);
  for (int i = 0; i < 3; ++i) {
    CommandResult commit = Buildfs({"commit", "b", "-m", "nothing " + std::to_string(i)});
    ASSERT_TRUE(commit.ok()) << commit.Describe();
    EXPECT_NE(commit.out.find("nothing to commit"), std::string::npos) << commit.out;
    EXPECT_EQ(LogLength("b"), 1u);
  }
  // With a change of the tree: one commit, and then nothing again.
  WriteFile(M("b", "real.txt"), "real\n");
  ASSERT_TRUE(Buildfs({"commit", "b", "-m", "real"}).ok());
  EXPECT_EQ(LogLength("b"), 2u);
  CommandResult again = Buildfs({"commit", "b", "-m", "again"});
  EXPECT_NE(again.out.find("nothing to commit"), std::string::npos) << again.out;
  EXPECT_EQ(LogLength("b"), 2u);
  EXPECT_EQ(Buildfs({"status", "b"}).out, "C cache/shared.img\n");
  EXPECT_EQ(ReadFile(M("b", "cache/shared.img")), "private\n");
  EXPECT_EQ(ReadFile(ws() + "/cache/shared.img"), "shared\n");
  ASSERT_TRUE(Umount("b"));
  ASSERT_TRUE(Mount("b"));
  EXPECT_EQ(ReadFile(M("b", "cache/shared.img")), "private\n");
  CommandResult checkout = Ostree({"ls", "builds/b/base", "/cache"});
  EXPECT_FALSE(checkout.ok()) << "cache/ was committed: " << checkout.out;
}

// ------------------------------------------ 10. export to another filesystem

TEST_F(LifecycleFailureTest, ExportToAnotherFilesystemWorks) {
  ASSERT_TRUE(NewBuild("b", src_));
  ASSERT_TRUE(Mount("b"));
  WriteFile(M("b", "new.txt"), std::string(300000, 'n'));
  const std::string other = tmp("other");
  MountTmpfs(other);
  CommandResult r = Buildfs({"export", "b", other + "/out"});
  ASSERT_TRUE(r.ok()) << r.Describe();
  EXPECT_EQ(DiffTrees(other + "/out", BuildDir("b"), MountScan()), "");
  EXPECT_EQ(ReadFile(other + "/out/new.txt"), std::string(300000, 'n'));
  EXPECT_EQ(ReadFile(other + "/out/d/x"), "x\n");
}

// ------------------------------------------------ 11. signals to the daemon

TEST_F(LifecycleFailureTest, SignalsStopAForegroundMountCleanly) {
  ASSERT_TRUE(NewBuild("b", src_));
  for (int sig : {SIGINT, SIGTERM}) {
    SCOPED_TRACE(strsignal(sig));
    const std::string out = tmp("fg.out");
    pid_t pid = fork();
    if (pid == 0) {
      int fd = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(fd, 1);
      dup2(fd, 2);
      execl(BuildfsBin(), BuildfsBin(), "-C", ws().c_str(), "mount", "--foreground", "b", nullptr);
      _exit(127);
    }
    ASSERT_TRUE(WaitUntil([&] { return IsMountPoint(BuildDir("b")); }, 10000));
    EXPECT_EQ(ReadFile(M("b", "a.txt")), "alpha\n");
    kill(pid, sig);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << ReadFile(out);
    EXPECT_FALSE(IsMountPoint(BuildDir("b")));
    EXPECT_EQ(ReadFile(out).find("failed"), std::string::npos) << ReadFile(out);
  }
}

TEST_F(LifecycleFailureTest, SigtermStopsABackgroundDaemonCleanly) {
  ASSERT_TRUE(NewBuild("b", src_));
  ASSERT_TRUE(Mount("b"));
  std::vector<pid_t> daemons = FindProcesses([&](const std::vector<std::string>& args) {
    return std::find(args.begin(), args.end(), "--daemon") != args.end() &&
           std::find(args.begin(), args.end(), ws()) != args.end();
  });
  ASSERT_EQ(daemons.size(), 1u);
  kill(daemons[0], SIGTERM);
  EXPECT_TRUE(WaitForExit(daemons[0], 10000));
  EXPECT_FALSE(IsMountPoint(BuildDir("b")));
  const std::string log = ReadFile(State("builds/b/logs/mount.log"));
  EXPECT_EQ(log.find("failed"), std::string::npos) << log;
  EXPECT_TRUE(Mount("b"));
}

// -------------------------------------------------------- 12. long names

TEST_F(LifecycleFailureTest, ANameOfMoreThan255BytesIsTooLong) {
  ASSERT_TRUE(NewBuild("b", src_));
  ASSERT_TRUE(Mount("b"));
  const std::string name(256, 'n');
  EXPECT_EQ(open(M("b", name).c_str(), O_WRONLY | O_CREAT, 0644), -1);
  EXPECT_EQ(errno, ENAMETOOLONG);
  EXPECT_EQ(mkdir(M("b", name).c_str(), 0755), -1);
  EXPECT_EQ(errno, ENAMETOOLONG);
  struct stat st;
  EXPECT_EQ(lstat(M("b", name).c_str(), &st), -1);
  EXPECT_EQ(errno, ENAMETOOLONG);
  WriteFile(M("b", std::string(255, 'n')), "fits\n");
}

// ------------------------------------------------- 13. inherited files

// `x=$(buildfs mount NAME)` returns: the daemon keeps no file the command
// inherited, such as the pipe of a command substitution.
TEST_F(LifecycleFailureTest, TheDaemonKeepsNoInheritedFile) {
  ASSERT_TRUE(NewBuild("b", src_));
  int out[2], extra[2];
  ASSERT_EQ(pipe(out), 0);
  ASSERT_EQ(pipe(extra), 0);  // not close-on-exec: inherited like a shell's fds
  pid_t pid = fork();
  if (pid == 0) {
    dup2(out[1], 1);
    close(out[0]);
    close(extra[0]);
    execl(BuildfsBin(), BuildfsBin(), "-C", ws().c_str(), "mount", "b", nullptr);
    _exit(127);
  }
  close(out[1]);
  close(extra[1]);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  // Every writer of both pipes is gone: the reads end.
  for (int fd : {out[0], extra[0]}) {
    fcntl(fd, F_SETFL, O_NONBLOCK);
    EXPECT_TRUE(WaitUntil(
        [&] {
          char buf[256];
          return read(fd, buf, sizeof buf) == 0;
        },
        5000))
        << "a process (the daemon) still holds the pipe";
    close(fd);
  }
  EXPECT_TRUE(IsMountPoint(BuildDir("b")));
  EXPECT_TRUE(Umount("b"));
}

}  // namespace
}  // namespace buildfs::testing
