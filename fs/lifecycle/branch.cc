#include "fs/lifecycle/branch.h"

#include <sys/stat.h>
#include <unistd.h>

#include "fs/common/path.h"
#include "fs/lifecycle/build_lock.h"
#include "fs/lifecycle/builds.h"
#include "fs/lifecycle/control.h"
#include "fs/lifecycle/mounter.h"
#include "fs/lifecycle/stack.h"
#include "fs/store/repo.h"

namespace buildfs {

Result<BuildInfo> FreezeBuild(const Workspace& ws, const std::string& name) {
  BUILDFS_ASSIGN_OR_RETURN(BuildInfo info, RecoverBuild(ws, name));
  if (!DirHasEntries(ws.upper_path(name))) return info;
  std::string id = NewLayerId();
  if (IsMounted(ws, name)) {
    auto reply = ControlCall(ws.build_path(name), {{"op", "freeze"}, {"id", id}});
    if (!reply.ok()) return reply.status().With("freezing mounted build '" + name + "'");
  } else {
    BUILDFS_RETURN_IF_ERROR(FreezeUpperOnDisk(ws, name, id));
  }
  return ws.LoadBuild(name);
}

Status BranchBuild(const Workspace& ws, const std::string& from, const std::string& to) {
  // Every name is checked before anything changes.
  BUILDFS_RETURN_IF_ERROR(ValidateBuildName(from));
  BUILDFS_RETURN_IF_ERROR(ValidateBuildName(to));
  if (from == to) return Status::Error(EEXIST, "build '" + to + "' already exists");
  BUILDFS_ASSIGN_OR_RETURN(auto locks, BuildLock::AcquireTwo(ws, from, to, "branch"));
  BUILDFS_RETURN_IF_ERROR(ws.LoadBuild(from).status());
  if (ws.HasBuildDir(to)) return Status::Error(EEXIST, "build '" + to + "' already exists");
  BUILDFS_ASSIGN_OR_RETURN(auto repo, Repo::Open(ws.repo_path()));
  BUILDFS_ASSIGN_OR_RETURN(FileLock meta, LockWorkspaceMeta(ws));
  BUILDFS_ASSIGN_OR_RETURN(BuildInfo source, FreezeBuild(ws, from));
  BuildInfo info;
  info.name = to;
  info.base = source.base;
  info.layers = source.layers;
  BUILDFS_RETURN_IF_ERROR(repo->SetRef(Workspace::BaseRef(to), info.base));
  Status installed = InstallBuild(ws, info);
  if (!installed.ok()) repo->DeleteRef(Workspace::BaseRef(to));
  return installed;
}

}  // namespace buildfs
