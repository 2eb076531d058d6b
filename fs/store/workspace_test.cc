// ValidateBuildName and Workspace (init, find, build descriptions) over real
// directories.
#include "fs/store/workspace.h"

#include <gtest/gtest.h>

#include "fs/store/repo.h"
#include "fs/testing/status_testing.h"
#include "fs/testing/temp_dir.h"

namespace buildfs {
namespace {

using testing::Exists;
using testing::MakeDirs;
using testing::TempDir;

TEST(ValidateBuildNameTest, RefusesEmptyName) { EXPECT_ERRNO(ValidateBuildName(""), EINVAL); }

TEST(ValidateBuildNameTest, RefusesSlash) { EXPECT_ERRNO(ValidateBuildName("a/b"), EINVAL); }

TEST(ValidateBuildNameTest, RefusesDotDot) {
  EXPECT_ERRNO(ValidateBuildName(".."), EINVAL);
  EXPECT_ERRNO(ValidateBuildName("a..b"), EINVAL);
}

TEST(ValidateBuildNameTest, RefusesWhitespace) {
  EXPECT_ERRNO(ValidateBuildName("a b"), EINVAL);
  EXPECT_ERRNO(ValidateBuildName("a\tb"), EINVAL);
}

TEST(ValidateBuildNameTest, RefusesLeadingDash) { EXPECT_ERRNO(ValidateBuildName("-x"), EINVAL); }

TEST(ValidateBuildNameTest, RefusesLeadingDot) {
  EXPECT_ERRNO(ValidateBuildName(".hidden"), EINVAL);
}

TEST(ValidateBuildNameTest, RefusesControlCharacter) {
  EXPECT_ERRNO(ValidateBuildName(std::string("a\x01"
                                             "b")),
               EINVAL);
}

TEST(ValidateBuildNameTest, RefusesWorkspaceDirectoryNames) {
  EXPECT_ERRNO(ValidateBuildName("repo"), EINVAL);
  EXPECT_ERRNO(ValidateBuildName("src"), EINVAL);
  EXPECT_ERRNO(ValidateBuildName("cache"), EINVAL);
}

// Build names are part of OSTree refs: what a ref cannot hold is refused here,
// before any command changes anything.
TEST(ValidateBuildNameTest, RefusesWhatARefCannotHold) {
  for (const char* name : {"a\\b", "a:b", "*", "a?b", "a@b", "a~b", "a^b", "a[b", "é"}) {
    SCOPED_TRACE(name);
    EXPECT_ERRNO(ValidateBuildName(name), EINVAL);
  }
}

TEST(ValidateBuildNameTest, AcceptsOrdinaryNames) {
  EXPECT_OK(ValidateBuildName("demo"));
  EXPECT_OK(ValidateBuildName("feature-1.2_x"));
}

class WorkspaceTest : public ::testing::Test {
 protected:
  TempDir tmp_;
};

TEST_F(WorkspaceTest, InitCreatesLayout) {
  ASSERT_OK_AND_ASSIGN(Workspace ws, Workspace::Init(tmp_.Path("ws")));
  EXPECT_EQ(ws.root(), tmp_.Path("ws"));
  EXPECT_TRUE(Exists(ws.repo_path() + "/config"));
  EXPECT_TRUE(Exists(ws.root() + "/src"));
  EXPECT_TRUE(Exists(ws.cache_path()));
  EXPECT_TRUE(Exists(ws.state_path() + "/config.json"));
  EXPECT_TRUE(Exists(ws.state_path() + "/builds"));
  EXPECT_TRUE(Exists(ws.layers_path()));
  EXPECT_FALSE(Exists(ws.state_path() + ".tmp"));
}

TEST_F(WorkspaceTest, InitMakesAnOpenableRepo) {
  ASSERT_OK_AND_ASSIGN(Workspace ws, Workspace::Init(tmp_.Path("ws")));
  EXPECT_OK(Repo::Open(ws.repo_path()));
}

TEST_F(WorkspaceTest, InitAcceptsExistingEmptyDirectory) {
  MakeDirs(tmp_.Path("ws"));
  EXPECT_OK(Workspace::Init(tmp_.Path("ws")));
}

TEST_F(WorkspaceTest, InitTwiceFailsWithEEXIST) {
  ASSERT_OK(Workspace::Init(tmp_.Path("ws")));
  EXPECT_ERRNO(Workspace::Init(tmp_.Path("ws")), EEXIST);
}

TEST_F(WorkspaceTest, FindFromRootFindsIt) {
  ASSERT_OK(Workspace::Init(tmp_.Path("ws")));
  ASSERT_OK_AND_ASSIGN(Workspace found, Workspace::Find(tmp_.Path("ws")));
  EXPECT_EQ(found.root(), tmp_.Path("ws"));
}

TEST_F(WorkspaceTest, FindFromSubdirectorySearchesUpward) {
  ASSERT_OK(Workspace::Init(tmp_.Path("ws")));
  MakeDirs(tmp_.Path("ws/src/deep/er"));
  ASSERT_OK_AND_ASSIGN(Workspace found, Workspace::Find(tmp_.Path("ws/src/deep/er")));
  EXPECT_EQ(found.root(), tmp_.Path("ws"));
}

TEST_F(WorkspaceTest, FindOutsideAnyWorkspaceIsENOENT) {
  MakeDirs(tmp_.Path("elsewhere"));
  EXPECT_ERRNO(Workspace::Find(tmp_.Path("elsewhere")), ENOENT);
}

TEST_F(WorkspaceTest, SaveThenLoadBuildRoundTrips) {
  ASSERT_OK_AND_ASSIGN(Workspace ws, Workspace::Init(tmp_.Path("ws")));
  MakeDirs(ws.build_path("demo"));
  BuildInfo info;
  info.name = "demo";
  info.base = std::string(64, 'a');
  info.layers = {"layer2", "layer1"};
  ASSERT_OK(ws.SaveBuild(info));
  ASSERT_OK_AND_ASSIGN(BuildInfo loaded, ws.LoadBuild("demo"));
  EXPECT_EQ(loaded.name, "demo");
  EXPECT_EQ(loaded.base, info.base);
  EXPECT_EQ(loaded.layers, info.layers);
}

TEST_F(WorkspaceTest, SavedBuildIsListedAndFound) {
  ASSERT_OK_AND_ASSIGN(Workspace ws, Workspace::Init(tmp_.Path("ws")));
  MakeDirs(ws.build_path("demo"));
  BuildInfo info;
  info.name = "demo";
  info.base = std::string(64, 'b');
  ASSERT_OK(ws.SaveBuild(info));
  EXPECT_TRUE(ws.HasBuild("demo"));
  EXPECT_EQ(ws.ListBuilds(), std::vector<std::string>{"demo"});
  EXPECT_EQ(ws.BuildAt(ws.mountpoint("demo") + "/sub/dir"), "demo");
  EXPECT_EQ(ws.BuildAt(ws.root() + "/src"), "");
}

TEST_F(WorkspaceTest, SaveBuildLeavesNoTemporaryFile) {
  ASSERT_OK_AND_ASSIGN(Workspace ws, Workspace::Init(tmp_.Path("ws")));
  MakeDirs(ws.build_path("demo"));
  BuildInfo info;
  info.name = "demo";
  info.base = std::string(64, 'b');
  ASSERT_OK(ws.SaveBuild(info));
  EXPECT_EQ(testing::ListDir(ws.build_path("demo")), std::vector<std::string>{"build.json"});
}

TEST_F(WorkspaceTest, LoadOfUnknownBuildIsENOENT) {
  ASSERT_OK_AND_ASSIGN(Workspace ws, Workspace::Init(tmp_.Path("ws")));
  EXPECT_ERRNO(ws.LoadBuild("nobody"), ENOENT);
}

TEST_F(WorkspaceTest, LoadOfInvalidNameIsEINVAL) {
  ASSERT_OK_AND_ASSIGN(Workspace ws, Workspace::Init(tmp_.Path("ws")));
  EXPECT_ERRNO(ws.LoadBuild("../etc"), EINVAL);
}

TEST_F(WorkspaceTest, LoadOfBuildJsonWithoutBaseSaysItIsDamaged) {
  ASSERT_OK_AND_ASSIGN(Workspace ws, Workspace::Init(tmp_.Path("ws")));
  MakeDirs(ws.build_path("demo"));
  testing::WriteFile(ws.build_path("demo") + "/build.json", "{\"name\": \"demo\"}");
  auto info = ws.LoadBuild("demo");
  EXPECT_ERRNO(info, EUCLEAN);
  EXPECT_EQ(info.status().message(),
            "build 'demo' is damaged: " + ws.build_path("demo") + "/build.json names no base commit");
}

TEST_F(WorkspaceTest, LoadOfBuildJsonThatIsNoJsonSaysSoInWords) {
  ASSERT_OK_AND_ASSIGN(Workspace ws, Workspace::Init(tmp_.Path("ws")));
  MakeDirs(ws.build_path("demo"));
  testing::WriteFile(ws.build_path("demo") + "/build.json", "{\"base\": ");
  auto info = ws.LoadBuild("demo");
  EXPECT_ERRNO(info, EUCLEAN);
  EXPECT_EQ(info.status().message(),
            "build 'demo' is damaged: " + ws.build_path("demo") + "/build.json is not valid JSON");
}

}  // namespace
}  // namespace buildfs
