#include "builder/manifest.h"

#include <gtest/gtest.h>

#include "fs/testing/status_testing.h"

namespace buildfs {
namespace {

TEST(ManifestTest, AFullManifestParsesInDependencyOrder) {
  ASSERT_OK_AND_ASSIGN(Manifest m, ParseManifest(R"({
    "name": "demo",
    "vcsconfig": {"gnome": "git:https://example.org/", "local": "file:///srv/git/"},
    "config-opts": ["--disable-docs"],
    "components": [
      {"src": "gnome:app.git", "branch": "main", "depends": ["glib", "zlib"],
       "build-commands": ["make", "make install"], "env": {"CFLAGS": "-O2"}},
      {"name": "glib", "src": "gnome:glib", "tag": "2.74.0", "depends": ["zlib"],
       "build-system": "autotools", "config-opts": ["--with-x"], "patches": ["p/glib.patch"]},
      {"src": "git:/srv/git/zlib", "revision": "0123456789abcdef0123456789abcdef01234567",
       "build-system": "cmake"}
    ]})"));
  EXPECT_EQ(m.name, "demo");
  ASSERT_EQ(m.components.size(), 3u);
  EXPECT_EQ(m.components[0].name, "zlib");
  EXPECT_EQ(m.components[0].src, "/srv/git/zlib");
  EXPECT_EQ(m.components[0].pin, Component::Pin::kRevision);
  EXPECT_EQ(m.components[0].config_opts, std::vector<std::string>{"--disable-docs"});
  EXPECT_EQ(m.components[1].name, "glib");
  EXPECT_EQ(m.components[1].src, "https://example.org/glib");
  EXPECT_EQ(m.components[1].pin, Component::Pin::kTag);
  EXPECT_EQ(m.components[1].config_opts, (std::vector<std::string>{"--disable-docs", "--with-x"}));
  EXPECT_EQ(m.components[1].patches, std::vector<std::string>{"p/glib.patch"});
  EXPECT_EQ(m.components[2].name, "app");  // from src, ".git" dropped
  EXPECT_EQ(m.components[2].src, "https://example.org/app.git");
  EXPECT_EQ(m.components[2].build_commands, (std::vector<std::string>{"make", "make install"}));
  EXPECT_EQ(m.components[2].env.at("CFLAGS"), "-O2");
  EXPECT_EQ(m.deps[2], (std::vector<size_t>{1, 0}));
  EXPECT_EQ(m.deps[1], std::vector<size_t>{0});
}

// Each malformed manifest and the exact error it gives.
struct Malformed {
  std::string json;
  std::string error;
};

class MalformedManifestTest : public ::testing::TestWithParam<Malformed> {};

TEST_P(MalformedManifestTest, GivesItsExactError) {
  auto m = ParseManifest(GetParam().json);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.code(), EINVAL);
  EXPECT_EQ(m.status().message(), GetParam().error);
}

constexpr char kOk[] = R"("src": "/srv/a", "branch": "main", "build-commands": ["make"])";

INSTANTIATE_TEST_SUITE_P(
    Manifest, MalformedManifestTest,
    ::testing::Values(
        Malformed{"{", "not JSON: at line 1, column 2: syntax error while parsing object key - "
                       "unexpected end of input; expected string literal"},
        Malformed{"[]", "(top): an object expected, not an array"},
        Malformed{R"({"components": [{)" + std::string(kOk) + R"(}], "compnents": []})",
                  "compnents: unknown key"},
        Malformed{R"({"name": "x"})", "components: missing"},
        Malformed{R"({"components": []})", "components: empty"},
        Malformed{R"({"components": [{"branch": "main", "build-commands": ["make"]}]})",
                  "components[0]: no src"},
        Malformed{R"({"components": [{"src": "/srv/a", "build-commands": ["make"]}]})",
                  "components[0]: one of branch, tag or revision is needed"},
        Malformed{R"({"components": [{"src": "/srv/a", "branch": "main", "tag": "v1", "build-commands": ["make"]}]})",
                  "components[0]: only one of branch, tag or revision may be given"},
        Malformed{R"({"components": [{"src": "/srv/a", "revision": "abc", "build-commands": ["make"]}]})",
                  "components[0].revision: a full commit id (40 lowercase hex digits) expected"},
        Malformed{R"({"components": [{"src": "/srv/a", "branch": "main"}]})",
                  "components[0]: no build-system or build-commands"},
        Malformed{R"({"components": [{"src": "/srv/a", "branch": "main", "build-system": "scons"}]})",
                  "components[0].build-system: \"scons\" is not one of cmake, autotools, make"},
        Malformed{R"({"components": [{"src": "/srv/a", "branch": "main", "build-commands": "make"}]})",
                  "components[0].build-commands: an array of strings expected, not a string"},
        Malformed{R"({"components": [{)" + std::string(kOk) + R"(, "depends": [3]}]})",
                  "components[0].depends[0]: a string expected, not a number"},
        Malformed{R"({"components": [{)" + std::string(kOk) + R"(, "env": {"CC": 1}}]})",
                  "components[0].env.CC: a string expected, not a number"},
        Malformed{R"({"components": [{)" + std::string(kOk) + R"(, "bulid-system": "make"}]})",
                  "components[0].bulid-system: unknown key"},
        Malformed{R"({"components": [{"name": "a", )" + std::string(kOk) + R"(}, {"name": "a", )" +
                      std::string(kOk) + "}]}",
                  "components[1].name: \"a\" is also the name of components[0]"},
        Malformed{R"({"components": [{"name": "a", )" + std::string(kOk) + R"(}, {"name": "b", )" +
                      std::string(kOk) + R"(, "depends": ["a", "glib2"]}]})",
                  "components[1].depends[1]: no component named \"glib2\""},
        Malformed{R"({"components": [{"name": "a", )" + std::string(kOk) + R"(, "depends": ["b"]}, {"name": "b", )" +
                      std::string(kOk) + R"(, "depends": ["a"]}]})",
                  "components[0].depends: a dependency cycle: a -> b -> a"},
        Malformed{R"({"components": [{"name": "a", )" + std::string(kOk) + R"(, "depends": ["a"]}]})",
                  "components[0].depends[0]: a component cannot depend on itself"},
        Malformed{R"({"components": [{"name": "a/b", )" + std::string(kOk) + "}]}",
                  "components[0].name: invalid component name 'a/b': contains '/'"},
        Malformed{R"({"components": [{"src": "gnome:glib", "branch": "main", "build-commands": ["make"]}]})",
                  "components[0].src: no vcsconfig prefix \"gnome\""},
        Malformed{R"({"components": [{"src": "srv/a", "branch": "main", "build-commands": ["make"]}]})",
                  "components[0].src: \"srv/a\" is neither a URL nor an absolute path"},
        Malformed{R"({"components": [{)" + std::string(kOk) + R"(, "config-opts": ["-x"]}]})",
                  "components[0].config-opts: only with a build-system"},
        Malformed{R"({"components": [{)" + std::string(kOk) + R"(, "patches": ["../x.patch"]}]})",
                  "components[0].patches[0]: a path inside the build (relative, without ..) expected"}));

}  // namespace
}  // namespace buildfs
