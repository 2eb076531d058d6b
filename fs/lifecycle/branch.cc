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

  std::string tmp = ws.state_path() + "/builds/.new-" + to + "-" + std::to_string(getpid());
  RemoveTree(tmp);
  for (const char* sub : {"", "/upper", "/work", "/logs"}) {
    std::string p = tmp + sub;
    if (mkdir(p.c_str(), 0755) != 0) return Status::FromErrno(p);
  }
  auto fail = [&](const Status& st) {
    RemoveTree(tmp);
    return st;
  };
  BuildInfo info{to, source.base, source.layers, ""};
  Status st = WriteFileAtomic(tmp + "/build.json", BuildJson(info));
  if (!st.ok()) return fail(st);
  auto repo = Repo::Open(ws.repo_path());
  if (!repo.ok()) return fail(repo.status());
  st = repo.value()->SetRef(Workspace::BaseRef(to), info.base);
  if (!st.ok()) return fail(st);
  if (rename(tmp.c_str(), ws.build_path(to).c_str()) != 0) {
    return fail(Status::FromErrno(ws.build_path(to)));
  }
  return Status::Ok();
}

}  // namespace buildfs
