// Builds: create, list and describe the builds of a workspace.
//
// Library calls behind `buildfs new` and `buildfs list`; the CLI stays thin.
// Not thread-safe; separate processes may call them at once (the repo and
// the per-build lock serialize what must be).
#pragma once

#include <string>
#include <vector>

#include "fs/common/status.h"
#include "fs/store/repo.h"
#include "fs/store/workspace.h"

namespace buildfs {

struct BuildSummary {
  std::string name;
  std::string base;
  std::vector<std::string> layers;
  std::string mountpoint;
  bool mounted = false;
  bool dirty = false;  // the private layers hold changes
};

// Commits `from_dir` ("" = an empty tree) as the base of a new build `name`.
// The build appears whole or not at all.
Result<BuildInfo> CreateBuild(const Workspace& ws, const std::string& name,
                              const std::string& from_dir, const Repo::Progress& progress = {});
// Makes the build directory of `info` (upper/, work/, logs/, build.json) in
// one rename. Its base ref must already point at info.base.
Status InstallBuild(const Workspace& ws, const BuildInfo& info);
Result<BuildSummary> DescribeBuild(const Workspace& ws, const std::string& name);
Result<std::vector<BuildSummary>> ListBuildSummaries(const Workspace& ws);

// Deletes a build: its refs, its private layers, its mount point. A mounted
// build is refused unless `force`, which unmounts it first.
Status RemoveBuild(const Workspace& ws, const std::string& name, bool force);
// Throws away a build's uncommitted changes (its upper and frozen layers).
// A mounted build is unmounted, reset and mounted again.
Status ResetBuild(const Workspace& ws, const std::string& name);

// True when `path` is a mount point (per /proc/self/mountinfo).
bool IsMountPoint(const std::string& path);
// True when the directory at `path` has any entry.
bool DirHasEntries(const std::string& path);

}  // namespace buildfs
