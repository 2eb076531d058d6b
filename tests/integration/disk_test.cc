// buildfs disk create|list|put: real ext4 images made by mke2fs, checked by
// e2fsck and read back with debugfs, written through real mounts.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/harness.h"

namespace buildfs::testing {
namespace {

class DiskTest : public WorkspaceTest {
 protected:
  std::string Disk(const std::string& name) const { return ws() + "/cache/disks/" + name + ".img"; }
  std::string M(const std::string& build, const std::string& rel) const {
    return BuildDir(build) + "/" + rel;
  }

  // e2fsck -fn: exit 0 when the filesystem is clean.
  static CommandResult Fsck(const std::string& image) {
    return RunCommand({"/sbin/e2fsck", "-fn", image});
  }
  // The content of `path` inside the image (debugfs cat).
  static std::string CatIn(const std::string& image, const std::string& path) {
    CommandResult r = RunCommand({"/sbin/debugfs", "-R", "cat " + path, image});
    return r.ok() ? r.out : "<debugfs failed: " + r.Describe() + ">";
  }
  static std::string LsIn(const std::string& image, const std::string& path) {
    return RunCommand({"/sbin/debugfs", "-R", "ls -l " + path, image}).out;
  }
  // Writes `data` as `path` into the image with debugfs -w.
  void WriteIn(const std::string& image, const std::string& path, const std::string& data) {
    const std::string src = tmp("debugfs-src");
    WriteFile(src, data);
    CommandResult r = RunCommand({"/sbin/debugfs", "-w", "-R", "write " + src + " " + path, image});
    ASSERT_TRUE(r.ok()) << r.Describe();
  }
  static std::string Sha(const std::string& path) {
    CommandResult r = RunCommand({"/usr/bin/sha256sum", path});
    return r.out.substr(0, 64);
  }
  nlohmann::json List(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args{"disk", "list", "--json"};
    args.insert(args.end(), extra.begin(), extra.end());
    CommandResult r = Buildfs(args);
    EXPECT_TRUE(r.ok()) << r.Describe();
    return nlohmann::json::parse(r.out);
  }
  // A build `name` whose tree is a small sample, mounted.
  void NewMounted(const std::string& name) {
    const std::string src = tmp("src-" + name);
    MakeTree(src, {{"etc/motd", "hello\n"}, {"bin/tool", "#!/bin/sh\necho tool\n"}});
    ASSERT_TRUE(NewBuild(name, src));
    ASSERT_TRUE(Mount(name));
  }
};

TEST_F(DiskTest, CreateFromADirectoryMakesACleanImageOfIt) {
  const std::string src = tmp("tree");
  MakeTree(src,
           {{"etc/motd", "hello disk\n"}, {"usr/share/doc/README", "read me\n"}, {"empty/", ""}});
  MakeSymlink("../etc/motd", src + "/usr/motd");
  CommandResult r = Buildfs({"disk", "create", "base", "--size", "16M", "--from-dir", src});
  ASSERT_TRUE(r.ok()) << r.Describe();
  EXPECT_EQ(Lstat(Disk("base")).st_size, 16 << 20);
  CommandResult fsck = Fsck(Disk("base"));
  EXPECT_TRUE(fsck.ok()) << fsck.Describe();
  EXPECT_EQ(CatIn(Disk("base"), "/etc/motd"), "hello disk\n");
  EXPECT_EQ(CatIn(Disk("base"), "/usr/share/doc/README"), "read me\n");
  EXPECT_NE(LsIn(Disk("base"), "/usr").find("motd"), std::string::npos);
  nlohmann::json list = List();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["name"], "base");
  EXPECT_EQ(list[0]["shared"], true);
  EXPECT_EQ(list[0]["size"], 16 << 20);
  EXPECT_EQ(ListDir(ws() + "/cache/disks"), std::vector<std::string>{"base.img"});
}

TEST_F(DiskTest, CreateFromABuildTakesItsCurrentTreeWithoutTheCache) {
  NewMounted("main");
  WriteFile(M("main", "etc/new"), "not committed yet\n");
  CommandResult r = RunBuildfs({"disk", "create", "img", "--size", "16M"}, BuildDir("main"));
  ASSERT_TRUE(r.ok()) << r.Describe();
  EXPECT_TRUE(Fsck(Disk("img")).ok());
  EXPECT_EQ(CatIn(Disk("img"), "/etc/new"), "not committed yet\n");
  EXPECT_EQ(CatIn(Disk("img"), "/etc/motd"), "hello\n");
  EXPECT_EQ(LsIn(Disk("img"), "/").find("cache"), std::string::npos);
  // The build sees the new image at once.
  EXPECT_EQ(Lstat(M("main", "cache/disks/img.img")).st_size, 16 << 20);
  // Nothing of the export is left behind.
  for (const auto& n : ListDir(ws() + "/.buildfs"))
    EXPECT_EQ(n.find("disk-tree"), std::string::npos) << n;
}

TEST_F(DiskTest, BadInputIsOneLineAndLeavesNothing) {
  const std::string src = tmp("tree");
  MakeTree(src, {{"big", RandomBytes(1, 3 << 20)}});
  ASSERT_TRUE(Buildfs({"disk", "create", "base", "--size", "16M", "--from-dir", src}).ok());
  const std::string sha = Sha(Disk("base"));
  struct Case {
    std::vector<std::string> args;
    int exit_code;
    std::string says;
  };
  const std::vector<Case> cases = {
      {{"disk", "create", "base", "--size", "16M", "--from-dir", src}, 2, "already exists"},
      {{"disk", "create", "a/b", "--size", "16M", "--from-dir", src}, 2, "invalid disk name"},
      {{"disk", "create", "x", "--size", "12Q", "--from-dir", src}, 2, "unknown unit"},
      {{"disk", "create", "x", "--size", "-5M", "--from-dir", src}, 2, "not a number"},
      {{"disk", "create", "x", "--size", "512K", "--from-dir", src}, 2, "at least 1M"},
      {{"disk", "create", "x", "--size", "2M", "--from-dir", src},
       1,
       "mke2fs"},  // 3 MiB do not fit
      {{"disk", "create", "x", "--size", "16M", "--from-dir", tmp("nothing")},
       2,
       "not a directory"},
      {{"disk", "create", "x", "--size", "16M"}, 2, "no build named"},
      {{"disk", "put", "base", "-b", "nosuch"}, 3, ""},
      {{"disk", "frobnicate"}, 2, ""},
  };
  for (const auto& c : cases) {
    CommandResult r = Buildfs(c.args);
    EXPECT_EQ(r.exit_code, c.exit_code) << r.Describe();
    EXPECT_NE(r.err.find(c.says), std::string::npos) << r.Describe();
    EXPECT_LE(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.Describe();
  }
  EXPECT_EQ(ListDir(ws() + "/cache/disks"), std::vector<std::string>{"base.img"});
  EXPECT_EQ(Sha(Disk("base")), sha);
}

TEST_F(DiskTest, FromResultNeedsAResult) {
  NewMounted("main");
  CommandResult r =
      RunBuildfs({"disk", "create", "img", "--size", "16M", "--from-result"}, BuildDir("main"));
  EXPECT_EQ(r.exit_code, 3) << r.Describe();
  EXPECT_NE(r.err.find("result/"), std::string::npos) << r.Describe();
  MakeTree(M("main", "result"), {{"usr/bin/app", "app\n"}});
  r = RunBuildfs({"disk", "create", "img", "--size", "16M", "--from-result"}, BuildDir("main"));
  ASSERT_TRUE(r.ok()) << r.Describe();
  EXPECT_EQ(CatIn(Disk("img"), "/usr/bin/app"), "app\n");
  EXPECT_EQ(CatIn(Disk("img"), "/etc/motd").find("hello"), std::string::npos);
}

TEST_F(DiskTest, PutPublishesTheBuildsVersionAndOpenReadersKeepTheOldOne) {
  const std::string src = tmp("tree");
  MakeTree(src, {{"etc/motd", "first\n"}});
  ASSERT_TRUE(Buildfs({"disk", "create", "base", "--size", "16M", "--from-dir", src}).ok());
  const std::string old_sha = Sha(Disk("base"));
  const std::string old = ReadFile(Disk("base"));
  NewMounted("main");
  NewMounted("other");
  // Readers of the old image: one directly, one through another build.
  int direct = open(Disk("base").c_str(), O_RDONLY | O_CLOEXEC);
  int through = open(M("other", "cache/disks/base.img").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(direct, 0);
  ASSERT_GE(through, 0);

  // Nothing to publish before the build changed it.
  CommandResult r = RunBuildfs({"disk", "put", "base"}, BuildDir("main"));
  EXPECT_EQ(r.exit_code, 3) << r.Describe();
  EXPECT_NE(r.err.find("no version of its own"), std::string::npos) << r.Describe();

  WriteIn(M("main", "cache/disks/base.img"), "/etc/second", "second\n");
  EXPECT_EQ(Sha(Disk("base")), old_sha) << "the shared image was written in place";
  nlohmann::json list = List({"-b", "main"});
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["private_copy"], true);
  EXPECT_GT(list[0]["private_bytes"].get<uint64_t>(), 0u);

  r = RunBuildfs({"disk", "put", "base"}, BuildDir("main"));
  ASSERT_TRUE(r.ok()) << r.Describe();
  EXPECT_NE(Sha(Disk("base")), old_sha);
  EXPECT_TRUE(Fsck(Disk("base")).ok());
  EXPECT_EQ(CatIn(Disk("base"), "/etc/second"), "second\n");
  EXPECT_EQ(ListDir(ws() + "/cache/disks"), std::vector<std::string>{"base.img"});

  // The open readers still read the old image, whole.
  for (int fd : {direct, through}) {
    std::string data(old.size() + 1, '\0');
    size_t got = 0;
    for (ssize_t n;
         (n = pread(fd, data.data() + got, data.size() - got, static_cast<off_t>(got))) > 0;) {
      got += static_cast<size_t>(n);
    }
    data.resize(got);
    EXPECT_TRUE(data == old) << (fd == direct ? "direct" : "through the other build") << ": " << got
                             << " bytes, not the old image";
    close(fd);
  }
  // A new open through the other build gets the published one.
  EXPECT_TRUE(WaitUntil(
      [&] { return Sha(M("other", "cache/disks/base.img")) == Sha(Disk("base")); }, 10000));
}

// What a killed `disk create` or `disk put` leaves (a half-written image
// beside the others, an exported tree) goes at the next prune or create;
// what a live one is writing stays.
TEST_F(DiskTest, LeftoversOfKilledDiskCommandsAreCollected) {
  const std::string src = tmp("tree");
  MakeTree(src, {{"data", RandomBytes(3, 32 << 20)}});
  // A real one, killed at some moment of its work.
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    execl(BuildfsBin(), BuildfsBin(), "-C", ws().c_str(), "disk", "create", "big", "--size", "256M",
          "--from-dir", src.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  usleep(20 * 1000);
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  // Made by hand: a dead process's and a live one's.
  pid_t dead = 4000000;
  while (kill(dead, 0) == 0 || errno != ESRCH) ++dead;
  const std::string disks = ws() + "/cache/disks";
  if (LstatErrno(disks) != 0) MakeDir(disks);
  WriteFile(disks + "/.x.img.tmp-" + std::to_string(dead), "half");
  WriteFile(disks + "/.y.img.tmp-" + std::to_string(getpid()), "being written");
  MakeDir(ws() + "/.buildfs/disk-tree-x-" + std::to_string(dead));
  ASSERT_TRUE(Buildfs({"prune"}).ok());
  std::vector<std::string> left = ListDir(disks);
  std::erase(left, "big.img");  // finished before the kill
  EXPECT_EQ(left, std::vector<std::string>{".y.img.tmp-" + std::to_string(getpid())});
  for (const auto& n : ListDir(ws() + "/.buildfs"))
    EXPECT_EQ(n.find("disk-tree"), std::string::npos) << n;
}

// Three builds use one image at once, each with another disk tool: each sees
// only its own changes, each image stays clean, the shared one untouched,
// and each build's private copy holds only the chunks its tool wrote.
TEST_F(DiskTest, ThreeBuildsWriteOneImageAtOnceEachPrivately) {
  const std::string src = tmp("tree");
  MakeTree(src, {{"etc/motd", "shared\n"}, {"data/blob", RandomBytes(7, 1 << 20)}});
  ASSERT_TRUE(Buildfs({"disk", "create", "base", "--size", "256M", "--from-dir", src}).ok());
  const std::string shared_sha = Sha(Disk("base"));
  for (const char* b : {"b1", "b2", "b3"}) NewMounted(b);
  const std::string f1 = tmp("f1");
  WriteFile(f1, "written by b1\n");
  std::vector<std::vector<std::string>> tools = {
      {"/sbin/debugfs", "-w", "-R", "write " + f1 + " /etc/b1", M("b1", "cache/disks/base.img")},
      {"/sbin/e2fsck", "-fy", M("b2", "cache/disks/base.img")},
      {"/bin/dd", "if=/dev/urandom", "of=" + M("b3", "cache/disks/base.img"), "bs=4096", "count=64",
       "seek=12000", "conv=notrunc"},
  };
  std::vector<std::thread> threads;
  std::vector<CommandResult> results(tools.size());
  for (size_t i = 0; i < tools.size(); ++i) {
    threads.emplace_back([&, i] { results[i] = RunCommand(tools[i]); });
  }
  for (auto& t : threads) t.join();
  for (const auto& r : results) EXPECT_TRUE(r.ok()) << r.Describe();

  EXPECT_EQ(Sha(Disk("base")), shared_sha);
  EXPECT_EQ(CatIn(M("b1", "cache/disks/base.img"), "/etc/b1"), "written by b1\n");
  for (const char* b : {"b2", "b3"}) {
    EXPECT_NE(CatIn(M(b, "cache/disks/base.img"), "/etc/b1"), "written by b1\n") << b;
  }
  // dd wrote past the filesystem's used blocks: b3's image differs, still clean.
  EXPECT_NE(Sha(M("b3", "cache/disks/base.img")), shared_sha);
  for (const char* b : {"b1", "b2", "b3"}) {
    CommandResult fsck = Fsck(M(b, "cache/disks/base.img"));
    EXPECT_TRUE(fsck.ok()) << b << ": " << fsck.Describe();
    // A few 4 MiB chunks (superblock, group descriptors, bitmaps, inodes,
    // the blocks written), not the 256 MiB image.
    nlohmann::json list = List({"-b", b});
    ASSERT_EQ(list.size(), 1u);
    EXPECT_EQ(list[0]["private_copy"], true) << b;
    EXPECT_LE(list[0]["private_bytes"].get<uint64_t>(), uint64_t{24} << 20) << b;
  }
}

}  // namespace
}  // namespace buildfs::testing
