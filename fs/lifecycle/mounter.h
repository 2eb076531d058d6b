// Mounting and unmounting builds.
//
// `MountBuild` checks the build, takes its mount lock (held by the daemon for
// as long as it serves: "is NAME mounted" is "is that lock held"), cleans up
// a dead mount its own daemon left, and starts the daemon: in this process
// (foreground) or as a program of its own (DaemonLauncher), which gets the
// ready pipe and the mount lock as fds kDaemonReadyFd and kDaemonLockFd and
// calls ServeDaemon. It returns once the mount answers. `UnmountBuild`
// unmounts and waits for the daemon to let go of the mount lock, so a
// following mount cannot race it.
//
// Only a mount this workspace's daemon made is ever unmounted: anything else
// at WS/NAME (a tmpfs, another filesystem) is refused as busy and left alone.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "fs/common/status.h"
#include "fs/lifecycle/build_lock.h"
#include "fs/store/workspace.h"

namespace buildfs {

struct MountRequest {
  std::string name;
  bool foreground = false;
  bool debug = false;
};

// The command line of a background daemon for build `name`; it must end up
// calling ServeDaemon(ws, name, debug).
using DaemonLauncher = std::function<std::vector<std::string>(const std::string& name, bool debug)>;

inline constexpr int kDaemonReadyFd = 3;  // write "ok\n" or an error line, then close
inline constexpr int kDaemonLockFd = 4;   // the mount lock, held while serving

// Each takes the build's lock; the overloads with a BuildLock are for
// callers that already hold it (reset, rm).
Status MountBuild(const Workspace& ws, const MountRequest& request, const DaemonLauncher& launcher);
Status MountBuild(const Workspace& ws, const MountRequest& request, const DaemonLauncher& launcher,
                  BuildLock held);
// `lazy` detaches a busy mount instead of failing.
Status UnmountBuild(const Workspace& ws, const std::string& name, bool lazy);
Status UnmountBuild(const Workspace& ws, const std::string& name, bool lazy, const BuildLock& held);

// The daemon of a background mount: serves build `name` until unmounted or
// stopped by SIGINT, SIGTERM or SIGHUP (a clean exit). REQUIRES: the fds
// above were set up by MountBuild.
Status ServeDaemon(const Workspace& ws, const std::string& name, bool debug);

// True when a daemon serves the build (or the result view).
bool IsMounted(const Workspace& ws, const std::string& name);

// Result views: "NAME@NUMBER" is build NAME's result of build number NUMBER
// (ref builds/NAME/result/NUMBER), "NAME@COMMIT" any commit, mounted
// read-only at WS/NAME@..., with no checkout: MountBuild, UnmountBuild,
// ServeDaemon and IsMounted take such names too. A view's state (mount lock,
// log, an empty upper) is in .buildfs/views/NAME@.../; while it is mounted
// the ref views/NAME@... keeps its commit from prune.
bool IsViewName(const std::string& name);
// EINVAL unless `name` is BUILD@NUMBER or BUILD@COMMIT with a valid BUILD.
Status ValidateViewName(const std::string& name);
// Drops the refs and state of views no daemon serves (prune).
void CollectViews(const Workspace& ws);

}  // namespace buildfs
