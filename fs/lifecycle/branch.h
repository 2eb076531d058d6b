// Freezing a build's upper: what branch and commit start with.
//
// O(1) in the size of the tree and of the changes: the upper is renamed into
// a shared frozen layer (a mounted build's daemon does it between two
// writes), and the build goes on with an empty upper of its own.
#pragma once

#include <string>

#include "fs/common/status.h"
#include "fs/store/workspace.h"

namespace buildfs {

// Freezes `name`'s upper if it holds anything (through its daemon when it is
// mounted). REQUIRES: the build's BuildLock and the workspace meta lock.
// Returns the build's description after.
Result<BuildInfo> FreezeBuild(const Workspace& ws, const std::string& name);

}  // namespace buildfs
