// buildfs rm: delete a build, all of it or nothing.
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs/common/mounts.h"
#include "fs/common/path.h"
#include "fs/lifecycle/build_lock.h"
#include "fs/lifecycle/builds.h"
#include "fs/lifecycle/stack.h"
#include "fs/store/repo.h"

namespace buildfs {

Status RemoveBuild(const Workspace& ws, const std::string& name, bool force) {
  BUILDFS_RETURN_IF_ERROR(ValidateBuildName(name));
  BUILDFS_ASSIGN_OR_RETURN(BuildLock lock, BuildLock::Acquire(ws, name, "rm"));
  if (!ws.HasBuildDir(name)) return Status::Error(ENOENT, "no build named '" + name + "'");
  auto info = ws.LoadBuild(name);
  if (!info.ok() && !(force && info.code() == EUCLEAN)) return info.status();
  const bool served = IsMounted(ws, name);
  if (served || MountAt(ws.mountpoint(name))) {
    if (served && !force) return Status::Error(EBUSY, "build '" + name + "' is mounted");
    // Refuses a mount that is not this build's, cleans up one a dead daemon left.
    BUILDFS_RETURN_IF_ERROR(UnmountBuild(ws, name, /*lazy=*/false, lock));
  }
  // Everything that can fail without changing anything comes first.
  BUILDFS_ASSIGN_OR_RETURN(auto repo, Repo::Open(ws.repo_path()));
  BUILDFS_ASSIGN_OR_RETURN(auto refs, repo->ListRefs("builds/" + name));
  BUILDFS_ASSIGN_OR_RETURN(FileLock meta, LockWorkspaceMeta(ws));
  // The build disappears with one rename; its refs go after, or it comes back.
  const std::string aside = ws.state_path() + "/builds/.rm-" + name + "-" + std::to_string(getpid());
  if (rename(ws.build_path(name).c_str(), aside.c_str()) != 0) return Status::FromErrno(ws.build_path(name));
  for (const auto& ref : refs) {
    Status st = repo->DeleteRef(ref);
    if (!st.ok()) {
      rename(aside.c_str(), ws.build_path(name).c_str());
      return st;
    }
  }
  lock.RemoveFile();
  BUILDFS_RETURN_IF_ERROR(DeleteTreeNow(ws, aside));
  if (!MountAt(ws.mountpoint(name))) rmdir(ws.mountpoint(name).c_str());
  BUILDFS_RETURN_IF_ERROR(CollectLayers(ws).status());
  CollectLeftovers(ws);
  return Status::Ok();
}

}  // namespace buildfs
