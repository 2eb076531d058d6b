// resolve and build (DESIGN.md, "The builder"): a build directory's
// manifest.json resolved against git mirrors into snapshot.json and a build
// number, its components built in dependency order inside the build
// directory (through the mount) or reused from the repo, and their results
// composed into builds/NAME/result/NUMBER and result/.
//
// In the build directory:
//   manifest.json            what to build
//   snapshot.json            the manifest with every source pinned to a commit
//   work/COMPONENT/src       its source checkout (patched), where its commands run
//   work/COMPONENT/sysroot   its dependencies' results ($SYSROOT)
//   work/COMPONENT/install   where it installs ($DESTDIR)
//   logs/COMPONENT.log       its output
//   result/                  every component's result, composed
// In the repo: components/COMPONENT/KEY (a component's installed tree, by
// cache key) and builds/NAME/result/NUMBER (the composed result).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "fs/common/progress.h"
#include "fs/common/status.h"
#include "fs/store/workspace.h"

namespace buildfs {

// Bumped when what a cache key covers or how a component is built changes.
inline constexpr int kBuilderFormat = 1;

struct BuildOptions {
  std::string dir;  // the build directory (mounted)
  int jobs = 0;     // jobs at once, components and make jobs (0: the number of cores)
  // Lines saying what happens ("building hello (2 of 4)"); may be empty.
  std::function<void(const std::string&)> say;
  Progress progress;  // cancellation (Ctrl-C)
};

struct ResolveReport {
  std::string number;     // YYYYMMDD.N
  bool changed = false;   // a new snapshot (and so a new number)
  std::string snapshot;   // its sha256
};

// Updates the mirrors in WS/src, pins every source and writes snapshot.json.
Result<ResolveReport> ResolveBuild(const Workspace& ws, const std::string& name,
                                   const BuildOptions& options);

struct BuildReport {
  std::string number;
  std::vector<std::string> built, reused;  // component names, in dependency order
  std::string result;                      // the result commit
};

// Resolves, then builds what is not in the repo yet and composes the result.
// A failing component is ECHILD, naming it and its log (LogPath).
Result<BuildReport> RunBuild(const Workspace& ws, const std::string& name, const BuildOptions& options);

// A build number's result (builds/NAME/result/NUMBER).
struct BuildResult {
  std::string number;
  std::string commit;
  std::string snapshot;  // the sha256 of its snapshot
  uint64_t timestamp = 0;
};
// Every build number of build `name` with a result, newest first.
Result<std::vector<BuildResult>> ListBuildResults(const Workspace& ws, const std::string& name);

// The log of `component` in build directory `dir`.
std::string LogPath(const std::string& dir, const std::string& component);

}  // namespace buildfs
