// buildfs new: a build whose base is a tree committed into the repository.
#include <sys/stat.h>
#include <unistd.h>

#include "fs/common/path.h"
#include "fs/lifecycle/build_lock.h"
#include "fs/lifecycle/builds.h"
#include "fs/store/repo.h"

namespace buildfs {

Status InstallBuild(const Workspace& ws, const BuildInfo& info) {
  // Everything is prepared under a temporary name and renamed into place last.
  std::string tmp = ws.state_path() + "/builds/.new-" + info.name + "-" + std::to_string(getpid());
  RemoveTree(tmp);
  Status st;
  for (const char* sub : {"", "/upper", "/work", "/logs"}) {
    std::string p = tmp + sub;
    if (st.ok() && mkdir(p.c_str(), 0755) != 0) st = Status::FromErrno(p);
  }
  if (st.ok()) st = WriteFileAtomic(tmp + "/build.json", BuildJson(info));
  if (st.ok() && rename(tmp.c_str(), ws.build_path(info.name).c_str()) != 0) {
    st = Status::FromErrno(ws.build_path(info.name));
  }
  if (!st.ok()) RemoveTree(tmp);
  return st;
}

Result<BuildInfo> CreateBuild(const Workspace& ws, const std::string& name,
                              const std::string& from_dir, const Progress& progress,
                              const std::string& subject) {
  BUILDFS_RETURN_IF_ERROR(ValidateBuildName(name));
  if (!from_dir.empty()) {
    struct stat st;
    if (stat(from_dir.c_str(), &st) != 0) return Status::FromErrno(from_dir);
    if (!S_ISDIR(st.st_mode)) return Status::Error(ENOTDIR, from_dir + ": not a directory");
  }
  BUILDFS_ASSIGN_OR_RETURN(BuildLock lock, BuildLock::Acquire(ws, name, "new"));
  if (ws.HasBuildDir(name)) return Status::Error(EEXIST, "build '" + name + "' already exists");
  BUILDFS_ASSIGN_OR_RETURN(auto repo, Repo::Open(ws.repo_path()));
  BUILDFS_ASSIGN_OR_RETURN(std::string base,
                           repo->CommitDirectory(from_dir, Workspace::BaseRef(name),
                                                 !subject.empty()   ? subject
                                                 : from_dir.empty() ? "empty tree"
                                                                    : "import " + from_dir,
                                                 progress));
  BuildInfo info;
  info.name = name;
  info.base = base;
  Status installed = InstallBuild(ws, info);
  if (!installed.ok()) {
    repo->DeleteRef(Workspace::BaseRef(name));
    return installed;
  }
  return info;
}

}  // namespace buildfs
