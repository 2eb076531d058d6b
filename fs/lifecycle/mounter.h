// Mounting and unmounting builds.
//
// `MountBuild` checks the build, takes its lock, cleans up a dead mount left
// by a daemon that died, builds the layer stack and starts the daemon: in
// the background (fork; the lock passes to the child) or in the foreground.
// It returns once the mount answers. `UnmountBuild` unmounts and waits for
// the daemon to let go of the lock, so a following mount cannot race it.
#pragma once

#include <functional>
#include <string>

#include "fs/common/status.h"
#include "fs/overlay/overlay.h"
#include "fs/store/workspace.h"

namespace buildfs {

struct MountRequest {
  std::string name;
  bool foreground = false;
  bool debug = false;
};

Status MountBuild(const Workspace& ws, const MountRequest& request);
// `lazy` detaches a busy mount instead of failing.
Status UnmountBuild(const Workspace& ws, const std::string& name, bool lazy);
// True when a daemon serves the build.
bool IsMounted(const Workspace& ws, const std::string& name);

}  // namespace buildfs
