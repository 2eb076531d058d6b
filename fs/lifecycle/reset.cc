// buildfs reset: throw away a build's uncommitted changes.
#include <sys/stat.h>

#include "fs/common/path.h"
#include "fs/lifecycle/build_lock.h"
#include "fs/lifecycle/builds.h"
#include "fs/lifecycle/stack.h"

namespace buildfs {

Status ResetBuild(const Workspace& ws, const std::string& name, const DaemonLauncher& launcher) {
  BUILDFS_ASSIGN_OR_RETURN(BuildLock lock, BuildLock::Acquire(ws, name, "reset"));
  BUILDFS_RETURN_IF_ERROR(ws.LoadBuild(name).status());
  bool was_mounted = IsMounted(ws, name);
  if (was_mounted) BUILDFS_RETURN_IF_ERROR(UnmountBuild(ws, name, /*lazy=*/false, lock));
  {
    BUILDFS_ASSIGN_OR_RETURN(FileLock meta, LockWorkspaceMeta(ws));
    BUILDFS_ASSIGN_OR_RETURN(BuildInfo info, RecoverBuild(ws, name));
    // build.json first: once it lists no layers, the old upper is all that is left to delete.
    info.layers.clear();
    BUILDFS_RETURN_IF_ERROR(ws.SaveBuild(info));
    BUILDFS_RETURN_IF_ERROR(DeleteTreeNow(ws, ws.upper_path(name)));
    if (mkdir(ws.upper_path(name).c_str(), 0755) != 0 && errno != EEXIST) {
      return Status::FromErrno(ws.upper_path(name));
    }
    BUILDFS_RETURN_IF_ERROR(CollectLayers(ws).status());
  }
  CollectLeftovers(ws);
  if (was_mounted) return MountBuild(ws, MountRequest{name, false, false}, launcher, std::move(lock));
  return Status::Ok();
}

}  // namespace buildfs
