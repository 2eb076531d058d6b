#include "fs/lifecycle/branch.h"

#include <sys/stat.h>
#include <unistd.h>

#include "fs/common/path.h"
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
  BUILDFS_RETURN_IF_ERROR(ValidateBuildName(to));
  BUILDFS_RETURN_IF_ERROR(ws.LoadBuild(from).status());
  BUILDFS_ASSIGN_OR_RETURN(FileLock meta, LockWorkspaceMeta(ws));
  if (ws.HasBuild(to)) return Status::Error(EEXIST, "build '" + to + "' already exists");
  BUILDFS_ASSIGN_OR_RETURN(BuildInfo source, FreezeBuild(ws, from));

  BuildInfo info{to, source.base, source.layers, ""};
  BUILDFS_ASSIGN_OR_RETURN(auto repo, Repo::Open(ws.repo_path()));
  BUILDFS_RETURN_IF_ERROR(repo->SetRef(Workspace::BaseRef(to), info.base));
  BUILDFS_RETURN_IF_ERROR(InstallBuild(ws, info));
  return Status::Ok();
}

}  // namespace buildfs
