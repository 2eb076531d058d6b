// Builds: make, list, branch, reset and remove the builds of a workspace.
//
// The library calls behind `buildfs new`, `list`, `branch`, `reset` and
// `rm` (one file each); the CLI stays thin. Each operation on a build holds
// its BuildLock, so two commands on one build never interleave. Not
// thread-safe; separate processes may call them at once.
#pragma once

#include <string>
#include <vector>

#include "fs/common/progress.h"
#include "fs/common/status.h"
#include "fs/lifecycle/mounter.h"
#include "fs/store/workspace.h"

namespace buildfs {

// Commits `from_dir` ("" = an empty tree) as the base of a new build `name`,
// reporting entries imported. The build appears whole or not at all:
// cancelled or failed, no ref, no object and no directory is left behind.
// `subject`: the base commit's (default: "import FROM_DIR").
Result<BuildInfo> CreateBuild(const Workspace& ws, const std::string& name,
                              const std::string& from_dir, const Progress& progress = {},
                              const std::string& subject = "");
// Makes the build directory of `info` (upper/, work/, logs/, build.json) in
// one rename. Its base ref must already point at info.base.
Status InstallBuild(const Workspace& ws, const BuildInfo& info);

// A new build `to` that starts with exactly `from`'s current state: O(1),
// `from` may be mounted and busy.
Status BranchBuild(const Workspace& ws, const std::string& from, const std::string& to);

struct BuildSummary {
  std::string name;
  std::string base;
  std::vector<std::string> layers;
  std::string mountpoint;
  bool mounted = false;
  bool dirty = false;          // the private layers hold changes to the tree
  bool cache_changes = false;  // ... and to the shared cache/ (never committed)
  std::string damaged;         // why its description cannot be read ("" when fine)
};
Result<BuildSummary> DescribeBuild(const Workspace& ws, const std::string& name);
// Every build; a damaged one is listed as such, and the others still are.
std::vector<BuildSummary> ListBuildSummaries(const Workspace& ws);

// Deletes a build: its refs, its private layers, its mount point. A mounted
// build is refused unless `force`, which unmounts it first; `force` also
// removes a build whose description is damaged. All or nothing.
Status RemoveBuild(const Workspace& ws, const std::string& name, bool force);
// Throws away a build's uncommitted changes (its upper and frozen layers).
// A mounted build is unmounted, reset and mounted again (with `launcher`).
Status ResetBuild(const Workspace& ws, const std::string& name, const DaemonLauncher& launcher);

}  // namespace buildfs
