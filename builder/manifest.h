// The manifest: what a build is made of (DESIGN.md, "The builder"). JSON,
// validated strictly: an unknown key, a wrong type, a missing field, a
// duplicate name, an unknown dependency or a dependency cycle is one error
// naming the JSON path, e.g.
//   components[2].depends[0]: no component named "glib2"
//
//   {
//     "name": "hello",                             optional
//     "vcsconfig": {"gnome": "git:https://example.org/"},
//                                                  "gnome:glib" = that URL + "glib"
//     "config-opts": ["--disable-docs"],           every build-system component's, first
//     "components": [{
//       "name": "glib",                            default: the last part of src
//       "src": "gnome:glib",                       a git URL or an absolute path
//                                                  of a git repository; "git:" allowed
//       "branch": "main",                          one of branch, tag, revision
//       "depends": ["libffi"],
//       "build-system": "cmake",                   cmake, autotools or make; or
//       "build-commands": ["make", "make install"] shell commands
//       "config-opts": ["-DX=1"],                  build-system only
//       "env": {"CFLAGS": "-O2"},
//       "patches": ["patches/glib-fix.patch"]      relative to the manifest, in order
//     }]
//   }
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "fs/common/status.h"

namespace buildfs {

struct Component {
  std::string name;
  std::string src;  // the URL or absolute path, prefixes expanded, without "git:"
  enum class Pin { kBranch, kTag, kRevision } pin = Pin::kBranch;
  std::string ref;  // the branch, tag or revision
  std::vector<std::string> depends;
  std::string build_system;                 // "cmake", "autotools", "make", or "" for commands
  std::vector<std::string> build_commands;  // when no build system
  std::vector<std::string> config_opts;     // the manifest's, then the component's
  std::map<std::string, std::string> env;
  std::vector<std::string> patches;  // relative to the manifest's directory
};

struct Manifest {
  std::string name;
  // In dependency order: every component after those it depends on (and
  // otherwise in the manifest's order).
  std::vector<Component> components;
  // The index in `components` of each component's dependencies.
  std::vector<std::vector<size_t>> deps;
};

// Parses and validates a manifest. EINVAL with the JSON path on bad input.
Result<Manifest> ParseManifest(std::string_view text);
// The manifest in file `path`; errors start with the path.
Result<Manifest> LoadManifest(const std::string& path);

}  // namespace buildfs
