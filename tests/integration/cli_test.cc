// The command line as users of git, ostree and podman expect it: --version,
// help, unknown commands and options, -C, paths in status and diff, output
// into a closed pipe, quoting of odd names, unmounting from inside, commit
// messages, progress on a terminal, and Ctrl-C during an import.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/harness.h"

namespace buildfs::testing {
namespace {


class CliTest : public WorkspaceTest {
 protected:
  void SetUp() override {
    WorkspaceTest::SetUp();
    umask(022);
    src_ = tmp("src");
    MakeTree(src_, {{"a.txt", "alpha\n"}, {"d/x", "x\n"}, {"e/y", "y\n"}});
    ASSERT_TRUE(NewBuild("b", src_));
    ASSERT_TRUE(Mount("b"));
  }
  std::string M(const std::string& rel) const { return BuildDir("b") + "/" + rel; }
  // buildfs run in `cwd` (no -C).
  CommandResult In(const std::string& cwd, const std::vector<std::string>& args) { return RunBuildfs(args, cwd); }
  // A shell command line, run in `cwd`.
  CommandResult Sh(const std::string& cwd, const std::string& line) {
    return RunCommand({"/bin/sh", "-c", line}, cwd);
  }
  std::string Bin() const { return BuildfsBin(); }

  std::string src_;
};

// ------------------------------------------------- table: what the CLI says

struct CliCase {
  const char* what;
  std::vector<std::string> args;  // after "-C WS"
  int exit_code;
  const char* out_has;  // in stdout ("" for anything)
  const char* err_has;  // in stderr, which is then one line ("" for none expected)
};

TEST_F(CliTest, EachCaseGivesItsExitCodeAndMessage) {
  const std::vector<CliCase> cases = {
      {"version", {"--version"}, 0, "buildfs 0.2", ""},
      {"help for a command", {"help", "commit"}, 0, "--message", ""},
      {"help without a command", {"help"}, 0, "commit", ""},
      {"help for no such command", {"help", "frobnicate"}, 2, "", "'frobnicate' is not a buildfs command"},
      {"unknown command", {"frobnicate"}, 2, "", "'frobnicate' is not a buildfs command"},
      {"unknown option", {"list", "--frobnicate"}, 2, "", "--frobnicate"},
      {"unknown global option", {"--frobnicate", "list"}, 2, "", "--frobnicate"},
      {"empty commit message", {"commit", "b", "-m", ""}, 2, "", "empty commit message"},
      {"blank commit message", {"commit", "b", "-m", " \n"}, 2, "", "empty commit message"},
      {"no such build", {"status", "nosuch"}, 3, "", "no build named 'nosuch'"},
      {"invalid name", {"new", "a:b"}, 2, "", "invalid build name 'a:b'"},
      {"already mounted", {"mount", "b"}, 4, "", "already mounted"},
      {"rm of a mounted build", {"rm", "b"}, 4, "", "hint: buildfs umount b, or rm --force"},
      {"path outside the build", {"status", "b", "/etc"}, 2, "", "outside build 'b'"},
      {"a missing -C directory", {"-C", "/nonexistent", "list"}, 3, "", "no such directory"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    CommandResult r = c.args.front() == "-C" ? RunBuildfs(c.args) : Buildfs(c.args);
    EXPECT_EQ(r.exit_code, c.exit_code) << r.Describe();
    EXPECT_NE(r.out.find(c.out_has), std::string::npos) << r.Describe();
    if (*c.err_has) {
      EXPECT_NE(r.err.find(c.err_has), std::string::npos) << r.Describe();
      EXPECT_EQ(r.err.rfind("buildfs: ", 0), 0u) << r.err;
      EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    } else {
      EXPECT_EQ(r.err, "");
    }
  }
}

// ------------------------------------------------------------ -C and paths

TEST_F(CliTest, DashCInABuildDirectorySelectsThatBuild) {
  WriteFile(M("n.txt"), "new\n");
  CommandResult r = RunBuildfs({"-C", BuildDir("b"), "status"});
  EXPECT_TRUE(r.ok()) << r.Describe();
  EXPECT_EQ(r.out, "A n.txt\n");
  // As if started there: exactly what running inside gives.
  EXPECT_EQ(In(BuildDir("b"), {"status"}).out, r.out);
  EXPECT_EQ(RunBuildfs({"-C", M("d"), "status"}).out, r.out);
}

TEST_F(CliTest, InsideABuildStatusAndDiffTakePathsAsGitDoes) {
  WriteFile(M("d/x"), "changed\n");
  WriteFile(M("e/y"), "changed too\n");
  WriteFile(M("top.txt"), "top\n");
  EXPECT_EQ(In(M("d"), {"status"}).out, "M d/x\nM e/y\nA top.txt\n");
  EXPECT_EQ(In(M("d"), {"status", "."}).out, "M d/x\n");
  EXPECT_EQ(In(M("d"), {"status", "x", "../top.txt"}).out, "M d/x\nA top.txt\n");
  EXPECT_EQ(In(BuildDir("b"), {"status", "e"}).out, "M e/y\n");
  CommandResult diff = In(M("d"), {"diff", "."});
  EXPECT_NE(diff.out.find("+changed\n"), std::string::npos) << diff.out;
  EXPECT_EQ(diff.out.find("changed too"), std::string::npos) << diff.out;
  // Outside the build directory, the first word names the build.
  EXPECT_EQ(Buildfs({"status", "b", "e"}).out, "M e/y\n");
  CommandResult outside = In(M("d"), {"status", "../../.."});
  EXPECT_EQ(outside.exit_code, 2) << outside.Describe();
  EXPECT_NE(outside.err.find("outside build 'b'"), std::string::npos) << outside.err;
}

// --------------------------------------------------------- pipes and names

TEST_F(CliTest, StatusAndDiffIntoAPipeClosedEarlyEndQuietly) {
  for (int i = 0; i < 2000; ++i) WriteFile(M("f" + std::to_string(i)), std::string(100, 'a') + "\n");
  for (const char* cmd : {"status", "diff"}) {
    SCOPED_TRACE(cmd);
    CommandResult r = Sh(BuildDir("b"), "'" + Bin() + "' " + cmd + " | head -1");
    EXPECT_EQ(r.err, "") << r.Describe();
    EXPECT_NE(r.out.find("f"), std::string::npos) << r.out;
  }
}

TEST_F(CliTest, DiffShowsGitFiles) {
  CommandResult init = Sh(BuildDir("b"), "git init -q . && git -c user.email=t@t -c user.name=t commit -q --allow-empty -m x");
  ASSERT_TRUE(init.ok()) << init.Describe();
  CommandResult r = In(BuildDir("b"), {"diff", ".git/HEAD"});
  EXPECT_TRUE(r.ok()) << r.Describe();
  EXPECT_NE(r.out.find("+ref: refs/heads/"), std::string::npos) << r.out;
  CommandResult all = In(BuildDir("b"), {"diff"});
  EXPECT_TRUE(all.ok()) << all.Describe();
  EXPECT_NE(all.out.find("Binary files"), std::string::npos) << "the index is binary";
}

TEST_F(CliTest, StatusQuotesOddNamesAsGitDoesAndJsonStaysRaw) {
  WriteFile(M("tab\there"), "t\n");
  WriteFile(M("quote\"d"), "q\n");
  WriteFile(M("caf\xc3\xa9"), "c\n");
  WriteFile(M("plain name"), "p\n");
  CommandResult r = Buildfs({"status", "b"});
  ASSERT_TRUE(r.ok()) << r.Describe();
  EXPECT_EQ(r.out, "A \"caf\\303\\251\"\nA plain name\nA \"quote\\\"d\"\nA \"tab\\there\"\n");
  auto json = nlohmann::json::parse(Buildfs({"status", "b", "--json"}).out);
  std::vector<std::string> paths;
  for (const auto& e : json) paths.push_back(e.value("path", ""));
  EXPECT_EQ(paths, (std::vector<std::string>{"caf\xc3\xa9", "plain name", "quote\"d", "tab\there"}));
}

// ------------------------------------------------------- umount from inside

TEST_F(CliTest, UmountFromInsideSaysTheShellIsInIt) {
  CommandResult r = Sh(M("d"), "exec '" + Bin() + "' umount");
  EXPECT_EQ(r.exit_code, 0) << "with exec, no shell stays in the build: " << r.Describe();
  ASSERT_TRUE(Mount("b"));
  CommandResult busy = Sh(M("d"), "'" + Bin() + "' umount; true");
  EXPECT_NE(busy.err.find("your shell"), std::string::npos) << busy.Describe();
  EXPECT_NE(busy.err.find("cd out of it"), std::string::npos) << busy.Describe();
  EXPECT_NE(busy.err.find("--lazy"), std::string::npos) << busy.Describe();
  EXPECT_TRUE(IsMountPoint(BuildDir("b")));
}

TEST_F(CliTest, RmForceOfABusyBuildNamesOnlyFlagsThatExist) {
  CommandResult r = Sh(M("d"), "'" + Bin() + "' -C '" + ws() + "' rm --force b; true");
  EXPECT_NE(r.err.find("busy"), std::string::npos) << r.Describe();
  EXPECT_NE(r.err.find("buildfs umount --lazy b"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("or --lazy"), std::string::npos) << r.err;
}

// --------------------------------------------------------- commit messages

TEST_F(CliTest, ALongCommitMessageShowsItsFirstLineInTheLog) {
  WriteFile(M("n.txt"), "new\n");
  ASSERT_TRUE(Buildfs({"commit", "b", "-m", "the subject\n\nthe body,\nover lines"}).ok());
  auto log = nlohmann::json::parse(Buildfs({"log", "b", "--json"}).out);
  EXPECT_EQ(log[0].value("subject", ""), "the subject");
  CommandResult text = Buildfs({"log", "b"});
  EXPECT_NE(text.out.find("the subject\n"), std::string::npos) << text.out;
  EXPECT_EQ(text.out.find("the body"), std::string::npos) << text.out;
}

// ------------------------------------------------ terminals and Ctrl-C

TEST_F(CliTest, LongWorkShowsProgressOnATerminal) {
  const std::string big = tmp("big");
  MakeDir(big);
  for (int i = 0; i < 3000; ++i) WriteFile(big + "/f" + std::to_string(i), std::to_string(i));
  // script(1) gives the command a terminal.
  CommandResult r = RunCommand({"/usr/bin/script", "-qec",
                                "'" + Bin() + "' -C '" + ws() + "' new big --from-dir '" + big + "'", "/dev/null"});
  EXPECT_TRUE(r.ok()) << r.Describe();
  EXPECT_NE(r.out.find("importing: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("created build big"), std::string::npos) << r.out;
}

TEST_F(CliTest, CtrlCDuringAnImportLeavesNothingBehind) {
  const std::string big = tmp("big");
  MakeDir(big);
  for (int d = 0; d < 40; ++d) {
    MakeDir(big + "/d" + std::to_string(d));
    for (int i = 0; i < 500; ++i) WriteFile(big + "/d" + std::to_string(d) + "/f" + std::to_string(i), std::to_string(d * 1000 + i));
  }
  auto objects = [&] {
    CommandResult r = RunCommand({"/usr/bin/find", ws() + "/repo/objects", "-type", "f"});
    return std::count(r.out.begin(), r.out.end(), '\n');
  };
  const long before = objects();
  pid_t pid = fork();
  if (pid == 0) {
    int null_fd = open("/dev/null", O_WRONLY);
    dup2(null_fd, 1);
    dup2(null_fd, 2);
    execl(Bin().c_str(), Bin().c_str(), "-C", ws().c_str(), "new", "big", "--from-dir", big.c_str(), nullptr);
    _exit(127);
  }
  // Interrupted once it writes objects (its staging directory exists).
  ASSERT_TRUE(WaitUntil(
      [&] {
        for (const auto& n : ListDir(ws() + "/repo/tmp")) {
          if (n.rfind("staging-", 0) == 0) return true;
        }
        return false;
      },
      20000));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  kill(pid, SIGINT);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 130) << "status " << status;
  for (const auto& n : ListDir(ws() + "/repo/tmp")) EXPECT_EQ(n.rfind("staging-", 0), std::string::npos) << n;
  EXPECT_EQ(objects(), before);
  EXPECT_EQ(LstatErrno(ws() + "/.buildfs/builds/big"), ENOENT);
  CommandResult refs = RunCommand({"/usr/bin/ostree", "--repo=" + ws() + "/repo", "refs"});
  EXPECT_EQ(refs.out.find("big"), std::string::npos) << refs.out;
}

}  // namespace
}  // namespace buildfs::testing
