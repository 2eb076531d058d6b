// The builder through the buildfs binary, on the embedded example
// (examples/builder: four tiny components in local git repositories): a
// full build, a rebuild that builds nothing, a source change, a failing
// component, two builds at once, Ctrl-C, and malformed manifests.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "tests/integration/harness.h"

namespace buildfs::testing {
namespace {

using Json = nlohmann::json;
// errno of creating `path` (0 when it worked).
int ErrnoOfWrite(const std::string& path) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return errno;
  close(fd);
  return 0;
}

const std::vector<std::string> kAll = {"libgreet", "hello", "counter", "greeter-tools"};

class BuilderTest : public WorkspaceTest {
 protected:
  void SetUp() override {
    WorkspaceTest::SetUp();
    src_ = tmp("src");
    CommandResult r = RunCommand({"/bin/bash", std::string(BUILDFS_SOURCE_DIR) + "/examples/builder/make-repos.sh", src_});
    ASSERT_TRUE(r.ok()) << r.Describe();
  }

  std::string Git(const std::string& repo, std::vector<std::string> args) {
    std::vector<std::string> argv = {"/usr/bin/git", "-C", src_ + "/" + repo, "-c", "user.name=t", "-c",
                                     "user.email=t@localhost"};
    argv.insert(argv.end(), args.begin(), args.end());
    CommandResult r = RunCommand(argv);
    EXPECT_TRUE(r.ok()) << r.Describe();
    return r.out;
  }
  // Changes hello's message and commits it.
  void ChangeHello(const std::string& to) {
    const std::string file = src_ + "/hello/hello.c";
    std::string text = ReadFile(file);
    const size_t at = text.find("hello program");
    ASSERT_NE(at, std::string::npos);
    text.replace(at, 13, to);
    WriteFile(file, text);
    Git("hello", {"commit", "-qam", "change"});
  }
  // `buildfs build --json` in build `name`'s directory.
  Json Build(const std::string& name, CommandResult* out = nullptr) {
    CommandResult r = RunBuildfs({"build", "--json"}, BuildDir(name));
    if (out) *out = r;
    if (!r.ok()) {
      if (!out) ADD_FAILURE() << r.Describe();
      return Json::object();
    }
    return Json::parse(r.out);
  }
  std::string Run(const std::string& name, const std::string& program) {
    CommandResult r = RunCommand({BuildDir(name) + "/result/usr/bin/" + program});
    EXPECT_TRUE(r.ok()) << r.Describe();
    return r.out;
  }
  std::string Manifest() const { return src_ + "/manifest.json"; }

  std::string src_;
};

TEST_F(BuilderTest, AFullBuildThenARebuildThatBuildsNothing) {
  CommandResult r = Buildfs({"new", "main", "--manifest", Manifest()});
  ASSERT_TRUE(r.ok()) << r.Describe();
  Json first = Build("main");
  EXPECT_EQ(first["built"], Json({"libgreet", "hello", "counter", "greeter-tools"})) << first;
  EXPECT_EQ(first["reused"], Json::array());
  EXPECT_EQ(Run("main", "greet-all"), "hello from libgreet 1.0\nhello program\ncounter 3\n");
  for (const auto& c : kAll) {
    EXPECT_EQ(LstatErrno(BuildDir("main") + "/logs/" + c + ".log"), 0) << c;
  }
  const std::string number = first["number"];
  EXPECT_EQ(number.size(), 10u) << number;  // YYYYMMDD.1
  EXPECT_TRUE(number.ends_with(".1")) << number;
  Json snapshot = Json::parse(ReadFile(BuildDir("main") + "/snapshot.json"));
  EXPECT_EQ(snapshot["number"], number);
  EXPECT_EQ(snapshot["components"].size(), 4u);
  // The result commit is the ref of the build number.
  CommandResult ref = RunCommand({"/usr/bin/ostree", "--repo=" + ws() + "/repo", "rev-parse",
                                  "builds/main/result/" + number});
  EXPECT_TRUE(ref.ok()) << ref.Describe();
  EXPECT_EQ(ref.out, first["result"].get<std::string>() + "\n");

  Json again = Build("main");
  EXPECT_EQ(again["built"], Json::array());
  EXPECT_EQ(again["reused"], Json({"libgreet", "hello", "counter", "greeter-tools"}));
  EXPECT_EQ(again["number"], number) << "an unchanged snapshot keeps its number";
  EXPECT_EQ(again["result"], first["result"]);
  r = RunBuildfs({"build"}, BuildDir("main"));
  ASSERT_TRUE(r.ok()) << r.Describe();
  EXPECT_NE(r.out.find(": 0 built, 4 reused"), std::string::npos) << r.out;
  // The result survives a remount.
  ASSERT_TRUE(Umount("main"));
  ASSERT_TRUE(Mount("main"));
  EXPECT_EQ(Run("main", "greet-all"), "hello from libgreet 1.0\nhello program\ncounter 3\n");
}

TEST_F(BuilderTest, ASourceChangeRebuildsThatComponentAndWhatDependsOnIt) {
  ASSERT_TRUE(Buildfs({"new", "main", "--manifest", Manifest()}).ok());
  Json first = Build("main");
  ChangeHello("hello program v2");
  Json second = Build("main");
  EXPECT_EQ(second["built"], Json({"hello", "greeter-tools"})) << second;
  EXPECT_EQ(second["reused"], Json({"libgreet", "counter"})) << second;
  EXPECT_NE(second["number"], first["number"]);
  EXPECT_TRUE(second["number"].get<std::string>().ends_with(".2")) << second;
  EXPECT_EQ(Run("main", "hello"), "hello from libgreet 1.0\nhello program v2\n");
  // A change of the library rebuilds everything that uses it, not counter.
  WriteFile(src_ + "/libgreet/greet.c", ReadFile(src_ + "/libgreet/greet.c") + "/* touched */\n");
  Git("libgreet", {"commit", "-qam", "touch"});
  Json third = Build("main");
  EXPECT_EQ(third["built"], Json({"libgreet", "hello", "greeter-tools"})) << third;
  EXPECT_EQ(third["reused"], Json({"counter"})) << third;
}

TEST_F(BuilderTest, AFailingComponentStopsTheBuildAndTheNextBuildGoesOn) {
  Json m = Json::parse(ReadFile(Manifest()));
  m["components"][1]["build-commands"] = Json({"echo compiling hello", "echo 'hello.c:1: error: oops' >&2; exit 3"});
  WriteFile(tmp("bad.json"), m.dump(2));
  ASSERT_TRUE(Buildfs({"new", "main", "--manifest", tmp("bad.json")}).ok());
  CommandResult r;
  Build("main", &r);
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_NE(r.err.find("component hello failed: `echo 'hello.c:1: error: oops' >&2; exit 3` exited with 3"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("  | hello.c:1: error: oops"), std::string::npos) << "the log's last lines: " << r.err;
  EXPECT_NE(r.err.find("logs/hello.log"), std::string::npos) << r.err;
  // What depends on it did not build; the build is whole and mountable.
  EXPECT_NE(LstatErrno(BuildDir("main") + "/logs/greeter-tools.log"), 0);
  ASSERT_TRUE(Umount("main"));
  ASSERT_TRUE(Mount("main"));
  // Fixed in the build's own manifest: what was built before is reused.
  WriteFile(BuildDir("main") + "/manifest.json", ReadFile(Manifest()));
  Json fixed = Build("main");
  EXPECT_EQ(fixed["built"], Json({"hello", "greeter-tools"})) << fixed;
  EXPECT_EQ(fixed["reused"], Json({"libgreet", "counter"})) << fixed;
}

// Patches come with the manifest into the build, apply in order after the
// checkout, and one that does not apply fails the component, naming it.
TEST_F(BuilderTest, PatchesApplyInOrderAndOneThatDoesNotFailsNamingIt) {
  const std::string dir = tmp("with-patches");
  MakeDir(dir);
  MakeDir(dir + "/patches");
  WriteFile(dir + "/patches/1-v2.patch",
            "--- a/hello.c\n+++ b/hello.c\n@@ -5,3 +5,3 @@\n"
            " int main(void) {\n   puts(greet());\n-  puts(\"hello program\");\n"
            "+  puts(\"hello program, patched\");\n");
  Json m = Json::parse(ReadFile(Manifest()));
  m["components"][1]["patches"] = Json({"patches/1-v2.patch"});
  WriteFile(dir + "/manifest.json", m.dump(2));
  ASSERT_TRUE(Buildfs({"new", "main", "--manifest", dir + "/manifest.json"}).ok());
  EXPECT_NE(ReadFile(BuildDir("main") + "/patches/1-v2.patch").find("patched"), std::string::npos);
  Json built = Build("main");
  ASSERT_TRUE(built.contains("built")) << built;
  EXPECT_EQ(Run("main", "hello"), "hello from libgreet 1.0\nhello program, patched\n");
  // A second patch that does not apply.
  WriteFile(BuildDir("main") + "/patches/2-bad.patch",
            "--- a/hello.c\n+++ b/hello.c\n@@ -1,1 +1,1 @@\n-no such line\n+x\n");
  m["components"][1]["patches"] = Json({"patches/1-v2.patch", "patches/2-bad.patch"});
  WriteFile(BuildDir("main") + "/manifest.json", m.dump(2));
  CommandResult r;
  Build("main", &r);
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_NE(r.err.find("component hello failed: patch patches/2-bad.patch does not apply"), std::string::npos)
      << r.err;
}

TEST_F(BuilderTest, TwoBuildsAtOnceBuildEachComponentOnce) {
  ASSERT_TRUE(Buildfs({"new", "main", "--manifest", Manifest()}).ok());
  ASSERT_TRUE(Buildfs({"branch", "main", "other"}).ok());
  ASSERT_TRUE(Mount("other"));
  Json a, b;
  std::thread ta([&] { a = Build("main"); });
  std::thread tb([&] { b = Build("other"); });
  ta.join();
  tb.join();
  ASSERT_TRUE(a.contains("built") && b.contains("built")) << a << b;
  std::multiset<std::string> built;
  for (const auto& n : a["built"]) built.insert(n.get<std::string>());
  for (const auto& n : b["built"]) built.insert(n.get<std::string>());
  EXPECT_EQ(built, std::multiset<std::string>(kAll.begin(), kAll.end())) << a << b;
  // The same components make the same files (directories differ in the
  // times buildfs keeps beside them: each build checked them out itself).
  CommandResult diff = RunCommand({"/usr/bin/ostree", "--repo=" + ws() + "/repo", "diff",
                                   a["result"].get<std::string>(), b["result"].get<std::string>()});
  EXPECT_TRUE(diff.ok()) << diff.Describe();
  std::istringstream lines(diff.out);
  for (std::string line; std::getline(lines, line);) {
    const std::string path = line.substr(line.find('/'));
    EXPECT_TRUE(S_ISDIR(Lstat(BuildDir("main") + "/result" + path).st_mode)) << line;
  }
  EXPECT_EQ(Run("main", "greet-all"), Run("other", "greet-all"));
}

// The build is one GNU make job server: `-j 2` bounds the jobs of all
// components together, and a component left alone gets the cores another
// gave back. `one` has a single job, `many` eight; every job logs when it
// starts and ends.
TEST_F(BuilderTest, AllComponentsShareTheJobsOfTheBuild) {
  const std::string events = tmp("events");
  auto make_repo = [&](const std::string& name, int jobs) {
    const std::string dir = src_ + "/" + name;
    ASSERT_TRUE(RunCommand({"/usr/bin/git", "init", "-q", "-b", "master", dir}).ok());
    std::string targets;
    for (int i = 1; i <= jobs; ++i) targets += " " + name + std::to_string(i);
    WriteFile(dir + "/Makefile",
              "all:" + targets + "\n" + targets.substr(1) +
                  ":\n"
                  "\t@echo start $@ $$(date +%s%N) >> " + events + "; sleep 0.3; echo end $@ $$(date +%s%N) >> " +
                  events +
                  "\n"
                  "install:\n\tmkdir -p $(DESTDIR)/usr/share && echo " + name + " > $(DESTDIR)/usr/share/" + name +
                  "\n"
                  ".PHONY: all install" + targets + "\n");
    Git(name, {"add", "."});
    Git(name, {"commit", "-qm", "jobs"});
  };
  make_repo("one", 1);
  make_repo("many", 8);
  Json m = {{"components",
             {{{"src", src_ + "/one"}, {"branch", "master"}, {"build-system", "make"}},
              {{"src", src_ + "/many"}, {"branch", "master"}, {"build-system", "make"}}}}};
  WriteFile(tmp("jobs.json"), m.dump(2));
  ASSERT_TRUE(Buildfs({"new", "main", "--manifest", tmp("jobs.json")}).ok());
  CommandResult r = RunBuildfs({"build", "-j", "2", "--json"}, BuildDir("main"));
  ASSERT_TRUE(r.ok()) << r.Describe();
  EXPECT_EQ(Json::parse(r.out)["built"], Json({"one", "many"}));

  // Jobs running at each event, in time order.
  std::vector<std::tuple<long long, int, std::string>> timeline;  // (ns, +1 start / -1 end, target)
  std::istringstream lines(ReadFile(events));
  for (std::string what, target; lines >> what;) {
    long long ns = 0;
    lines >> target >> ns;
    timeline.emplace_back(ns, what == "start" ? 1 : -1, target);
  }
  ASSERT_EQ(timeline.size(), 18u) << ReadFile(events);
  std::sort(timeline.begin(), timeline.end());
  int running = 0, most = 0, many_at_once = 0, many_most = 0;
  for (const auto& [ns, delta, target] : timeline) {
    running += delta;
    most = std::max(most, running);
    if (target.starts_with("many")) many_at_once += delta;
    many_most = std::max(many_most, many_at_once);
  }
  EXPECT_LE(most, 2) << "more jobs than -j 2 ran at once:\n" << ReadFile(events);
  EXPECT_EQ(many_most, 2) << "`many` never ran two jobs once `one` was done:\n" << ReadFile(events);
  for (const auto& c : {"one", "many"}) {
    const std::string log = ReadFile(BuildDir("main") + "/logs/" + c + ".log");
    EXPECT_EQ(log.find("warning"), std::string::npos) << log;  // "jobserver unavailable", "-jN forced"
  }
}

TEST_F(BuilderTest, CtrlCStopsTheRunningCommandAndTheNextBuildContinues) {
  Json m = Json::parse(ReadFile(Manifest()));
  m["components"][3]["build-system"] = nullptr;
  m["components"][3].erase("build-system");
  m["components"][3]["build-commands"] = Json({"touch $DESTDIR/../started; sleep 60", "make install DESTDIR=\"$DESTDIR\""});
  WriteFile(tmp("slow.json"), m.dump(2));
  ASSERT_TRUE(Buildfs({"new", "main", "--manifest", tmp("slow.json")}).ok());
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (chdir(BuildDir("main").c_str()) != 0) _exit(126);
    int null = open("/dev/null", O_WRONLY);
    dup2(null, 1);
    dup2(null, 2);
    execl(BuildfsBin(), BuildfsBin(), "build", static_cast<char*>(nullptr));
    _exit(127);
  }
  const std::string started = BuildDir("main") + "/work/greeter-tools/started";
  ASSERT_TRUE(WaitUntil([&] { return LstatErrno(started) == 0; }, 60000)) << "the slow command never started";
  kill(pid, SIGINT);
  int status = 0;
  ASSERT_TRUE(WaitForExit(pid, 20000)) << "build did not stop on SIGINT";
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 130) << status;
  // No sleep is left running; the build is whole.
  EXPECT_TRUE(FindProcesses([](const std::vector<std::string>& args) {
                return args.size() == 2 && args[0] == "sleep" && args[1] == "60";
              }).empty());
  ASSERT_TRUE(Umount("main"));
  ASSERT_TRUE(Mount("main"));
  WriteFile(BuildDir("main") + "/manifest.json", ReadFile(Manifest()));
  Json next = Build("main");
  EXPECT_EQ(next["built"], Json({"greeter-tools"})) << next;
  EXPECT_EQ(next["reused"], Json({"libgreet", "hello", "counter"})) << next;
}

TEST_F(BuilderTest, AnEarlierResultMountsReadOnlyWhileTheBuildGoesOn) {
  ASSERT_TRUE(Buildfs({"new", "main", "--manifest", Manifest()}).ok());
  Json first = Build("main");
  const std::string number = first["number"];
  // The next build: a changed hello and a slow last component.
  ChangeHello("hello program v2");
  Json m = Json::parse(ReadFile(Manifest()));
  m["components"][3].erase("build-system");
  m["components"][3]["build-commands"] = Json({"sleep 2", "make install DESTDIR=\"$DESTDIR\""});
  WriteFile(BuildDir("main") + "/manifest.json", m.dump(2));
  Json second;
  std::thread builder([&] { second = Build("main"); });
  CommandResult r = Buildfs({"mount", "main@" + number});
  ASSERT_TRUE(r.ok()) << r.Describe();
  const std::string view = ws() + "/main@" + number;
  CommandResult run = RunCommand({view + "/usr/bin/greet-all"});
  EXPECT_EQ(run.out, "hello from libgreet 1.0\nhello program\ncounter 3\n") << run.Describe();
  EXPECT_EQ(ErrnoOfWrite(view + "/usr/new-file"), EROFS);
  // Mounted, its commit outlives a prune even without its ref.
  ASSERT_TRUE(RunCommand({"/usr/bin/ostree", "--repo=" + ws() + "/repo", "refs", "--delete",
                          "builds/main/result/" + number}).ok());
  ASSERT_TRUE(Buildfs({"prune"}).ok());
  EXPECT_EQ(ReadFile(view + "/usr/bin/greet-all").empty(), false);
  CommandResult show = RunCommand({"/usr/bin/ostree", "--repo=" + ws() + "/repo", "show",
                                   first["result"].get<std::string>()});
  EXPECT_TRUE(show.ok()) << show.Describe();
  builder.join();
  ASSERT_TRUE(second.contains("number")) << second;
  EXPECT_NE(second["number"], first["number"]);
  r = Buildfs({"umount", "main@" + number});
  ASSERT_TRUE(r.ok()) << r.Describe();
  EXPECT_NE(LstatErrno(view), 0) << "the view's mount point stays behind";
  // The new number, and any commit by its id.
  const std::string by_id = "main@" + second["result"].get<std::string>();
  ASSERT_TRUE(Buildfs({"mount", by_id}).ok());
  CommandResult v2 = RunCommand({ws() + "/" + by_id + "/usr/bin/hello"});
  EXPECT_EQ(v2.out, "hello from libgreet 1.0\nhello program v2\n") << v2.Describe();
  ASSERT_TRUE(Buildfs({"umount", by_id}).ok());
  Json builds = Json::parse(Buildfs({"log", "main", "--builds", "--json"}).out);
  ASSERT_EQ(builds.size(), 1u) << builds;  // the first one's ref was deleted above
  EXPECT_EQ(builds[0]["number"], second["number"]);
  EXPECT_EQ(builds[0]["result"], second["result"]);
  EXPECT_EQ(builds[0]["snapshot"].get<std::string>().size(), 64u);
  // Bad names are refused.
  EXPECT_EQ(Buildfs({"mount", "main@20261130.99"}).exit_code, 3);
  EXPECT_EQ(Buildfs({"mount", "main@nonsense"}).exit_code, 2);
}

// Malformed manifests given to `new --manifest`: each its exact error, exit
// 2, and no build made.
TEST_F(BuilderTest, MalformedManifestsAreRefusedWithTheirExactErrors) {
  const std::string ok = R"("src": "/srv/a", "branch": "main", "build-commands": ["make"])";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{\"components\": [", "not JSON: at line 1, column 17: syntax error while parsing value - unexpected end of input; expected '[', '{', or a literal"},
      {R"({"components": {}})", "components: an array expected, not an object"},
      {R"({"components": [{)" + ok + R"(}], "vcsconfig": []})", "vcsconfig: an object of strings expected, not an array"},
      {R"({"components": [{"src": "/srv/a", "build-commands": ["make"]}]})", "components[0]: one of branch, tag or revision is needed"},
      {R"({"components": [{)" + ok + R"(, "depends": ["glib2"]}]})", "components[0].depends[0]: no component named \"glib2\""},
      {R"({"components": [{)" + ok + R"(, "build-system": "make"}]})", "components[0]: build-system and build-commands: give one, not both"},
      {R"({"components": [{)" + ok + R"(, "env": []}]})", "components[0].env: an object of strings expected, not an array"},
      {R"({"components": [{"name": "a", )" + ok + R"(}, {"name": "a", )" + ok + "}]}", "components[1].name: \"a\" is also the name of components[0]"},
      {R"({"components": [{"name": "a", )" + ok + R"(, "depends": ["b"]}, {"name": "b", )" + ok + R"(, "depends": ["a"]}]})", "components[0].depends: a dependency cycle: a -> b -> a"},
      {R"({"components": [{)" + ok + R"(, "patch": []}]})", "components[0].patch: unknown key"},
      {R"({"components": [{)" + ok + R"(, "patches": ["fix.patch"]}]})", "component a: patch fix.patch: " + tmp("fix.patch") + ": No such file or directory"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    WriteFile(tmp("m.json"), cases[i].first);
    CommandResult r = Buildfs({"new", "b" + std::to_string(i), "--manifest", tmp("m.json")});
    const bool missing = i == cases.size() - 1;
    EXPECT_EQ(r.exit_code, missing ? 3 : 2) << r.Describe();
    const std::string want = missing ? "buildfs: " + cases[i].second + "\n"
                                     : "buildfs: " + tmp("m.json") + ": " + cases[i].second + "\n";
    EXPECT_EQ(r.err, want) << "case " << i;
    EXPECT_EQ(Buildfs({"list"}).out.find("b" + std::to_string(i) + " "), std::string::npos) << "case " << i;
  }
}

}  // namespace
}  // namespace buildfs::testing
