// Lifecycle commands on one build run at the same time (issue "No lost work").
//
// Every pair of commit, branch, reset, rm, prune and mount is started twice
// at once, several rounds in a row, on a build that is mounted or not. Each
// command must either do all it says or be refused with a clear "busy"
// error (exit 4), and afterwards every build must be whole: build.json and
// the base ref agree, every layer it names exists, nothing is pending, it
// mounts and shows its files, and no line written to it was lost.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
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

constexpr const char* kOstreeBin = "/usr/bin/ostree";
constexpr int kRounds = 4;

void AppendLine(const std::string& path, int i) {
  std::ofstream out(path, std::ios::app);
  out << i << "\n";
  if (!out) throw std::runtime_error("append to " + path + " failed");
}

// Which of the two commands of a round may be refused, and how.
bool RefusedAsBusy(const CommandResult& r) {
  return r.exit_code == 4 && r.err.rfind("buildfs: ", 0) == 0 &&
         std::count(r.err.begin(), r.err.end(), '\n') == 1;
}
bool RefusedAsGone(const CommandResult& r) {
  return r.exit_code == 3 && r.err.find("no build named") != std::string::npos;
}

struct Pair {
  std::string a, b;
  bool mounted;
};

void PrintTo(const Pair& p, std::ostream* os) {
  *os << p.a << " and " << p.b << (p.mounted ? ", mounted" : ", unmounted");
}

std::string PairName(const ::testing::TestParamInfo<Pair>& info) {
  return info.param.a + "_" + info.param.b + (info.param.mounted ? "_Mounted" : "_Unmounted");
}

class LifecyclePairTest : public WorkspaceTest, public ::testing::WithParamInterface<Pair> {
 protected:
  void SetUp() override {
    WorkspaceTest::SetUp();
    src_ = tmp("src");
    MakeDir(src_);
    WriteFile(src_ + "/log.txt", "");
    WriteFile(src_ + "/keep.txt", "kept\n");
    ASSERT_TRUE(NewBuild("z", src_));
  }

  // The command line of operation `op` in round `round`, side `side`.
  std::vector<std::string> Command(const std::string& op, int round, char side) {
    if (op == "commit") return {"commit", "z", "-m", "round " + std::to_string(round) + side};
    if (op == "branch") return {"branch", "z", BranchName(round, side)};
    if (op == "reset") return {"reset", "--yes", "z"};
    if (op == "rm") return {"rm", "--force", "z"};
    if (op == "prune") return {"prune"};
    if (op == "mount") return {"mount", "z"};
    ADD_FAILURE() << "unknown op " << op;
    return {};
  }
  static std::string BranchName(int round, char side) {
    return "br" + std::to_string(round) + side;
  }

  bool Exists(const std::string& name) { return access((ws() + "/.buildfs/builds/" + name + "/build.json").c_str(), F_OK) == 0; }
  bool Mounted(const std::string& name) { return IsMountPoint(BuildDir(name)); }

  std::string Ref(const std::string& name) {
    CommandResult r = RunCommand({kOstreeBin, "--repo=" + ws() + "/repo", "rev-parse", "builds/" + name + "/base"});
    return r.ok() ? r.out.substr(0, r.out.find('\n')) : "";
  }

  // A build that exists is whole: description and ref agree, its layers
  // exist, nothing is left pending.
  void ExpectWhole(const std::string& name) {
    std::ifstream in(ws() + "/.buildfs/builds/" + name + "/build.json");
    nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << name << ": build.json does not parse";
    EXPECT_EQ(j.value("base", ""), Ref(name)) << name << ": build.json and builds/" << name << "/base disagree";
    EXPECT_FALSE(j.contains("pending_freeze")) << name << ": " << j.dump();
    EXPECT_FALSE(j.contains("pending_commit")) << name << ": " << j.dump();
    for (const auto& id : j.value("layers", std::vector<std::string>{})) {
      EXPECT_EQ(access((ws() + "/.buildfs/layers/" + id).c_str(), F_OK), 0) << name << ": layer " << id << " is gone";
    }
    CommandResult status = Buildfs({"status", name});
    EXPECT_TRUE(status.ok()) << name << ": " << status.Describe();
  }

  // Reads `rel` in build `name`, mounting it for the read when needed.
  std::string ReadIn(const std::string& name, const std::string& rel) {
    const bool was = Mounted(name);
    if (!was && !Mount(name)) return "<not mountable>";
    std::string data = ReadFile(BuildDir(name) + "/" + rel);
    if (!was) Umount(name);
    return data;
  }

  std::string src_;
};

TEST_P(LifecyclePairTest, BothApplyOrOneIsRefusedAndNoWriteIsLost) {
  const Pair& pair = GetParam();
  const bool has_reset = pair.a == "reset" || pair.b == "reset";
  const bool has_commit = pair.a == "commit" || pair.b == "commit";
  std::string expected;   // z's log.txt as it must read
  std::string committed;  // ... and as its base holds it
  std::set<std::string> branches;
  for (int round = 1; round <= kRounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    if (!Exists("z")) {
      ASSERT_TRUE(NewBuild("z", src_));
      expected = committed = "";
    }
    if (!Mounted("z")) {
      ASSERT_TRUE(Mount("z"));
    }
    AppendLine(BuildDir("z") + "/log.txt", round);
    expected += std::to_string(round) + "\n";
    if (!pair.mounted) {
      ASSERT_TRUE(Umount("z"));
    }

    CommandResult ra, rb;
    std::thread other([&] { rb = Buildfs(Command(pair.b, round, 'b')); });
    ra = Buildfs(Command(pair.a, round, 'a'));
    other.join();
    for (const auto* r : {&ra, &rb}) {
      const std::string& op = r == &ra ? pair.a : pair.b;
      const bool ok = r->ok() || RefusedAsBusy(*r) || RefusedAsGone(*r);
      EXPECT_TRUE(ok) << op << ": " << r->Describe();
      if (op == "branch" && r->ok()) branches.insert(Command(op, round, r == &ra ? 'a' : 'b')[2]);
    }

    if (!Exists("z")) {
      // rm won: nothing of z is left, not even a ref or a mount.
      EXPECT_EQ(Ref("z"), "");
      EXPECT_FALSE(Mounted("z"));
      continue;
    }
    ExpectWhole("z");
    const std::string log = ReadIn("z", "log.txt");
    if (has_reset) {
      // A reset drops what was not committed, never what was.
      EXPECT_TRUE(log == expected || log == committed)
          << "log.txt: " << log << "expected: " << expected << "or, as committed: " << committed;
    } else {
      EXPECT_EQ(log, expected);
    }
    expected = log;
    if (has_commit || has_reset) committed = log;
  }
  // Every branch holds the lines z had when it was taken, and every build is
  // whole after a prune.
  ASSERT_TRUE(Buildfs({"prune"}).ok());
  for (const auto& br : branches) {
    if (!Exists(br)) continue;
    SCOPED_TRACE(br);
    ExpectWhole(br);
    const std::string round = br.substr(2, br.size() - 3);
    const std::string log = ReadIn(br, "log.txt");
    if (!has_reset) {
      EXPECT_TRUE(log.ends_with(round + "\n")) << br << " log.txt: " << log;
    }
    EXPECT_EQ(ReadIn(br, "keep.txt"), "kept\n");
  }
  if (Exists("z")) {
    EXPECT_EQ(ReadIn("z", "keep.txt"), "kept\n");
  }
  CommandResult fsck = RunCommand({kOstreeBin, "--repo=" + ws() + "/repo", "fsck"});
  EXPECT_TRUE(fsck.ok()) << fsck.Describe();
}

std::vector<Pair> AllPairs() {
  const std::vector<std::string> ops = {"commit", "branch", "reset", "rm", "prune", "mount"};
  std::vector<Pair> out;
  for (size_t i = 0; i < ops.size(); ++i) {
    for (size_t j = i; j < ops.size(); ++j) {
      const bool needs_unmounted = ops[i] == "mount" || ops[j] == "mount";
      if (!needs_unmounted) out.push_back({ops[i], ops[j], true});
      out.push_back({ops[i], ops[j], false});
    }
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(Lifecycle, LifecyclePairTest, ::testing::ValuesIn(AllPairs()), PairName);

}  // namespace
}  // namespace buildfs::testing
