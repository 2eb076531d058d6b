// Branch: a new build that starts with exactly another build's current state.
//
// O(1) in the size of the tree and of the changes: the source's upper is
// frozen into a shared layer (one rename; a mounted source's daemon does it
// between two writes), and the new build lists the same layers over the same
// base, each with an empty upper of its own.
#pragma once

#include <string>

#include "fs/common/status.h"
#include "fs/store/workspace.h"

namespace buildfs {

Status BranchBuild(const Workspace& ws, const std::string& from, const std::string& to);

// Freezes `name`'s upper if it holds anything (through its daemon when it is
// mounted). REQUIRES: the workspace meta lock. Returns the build's description after.
Result<BuildInfo> FreezeBuild(const Workspace& ws, const std::string& name);

}  // namespace buildfs
