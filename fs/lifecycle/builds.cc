#include "fs/lifecycle/builds.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "fs/common/path.h"
#include "fs/lifecycle/mounter.h"
#include "fs/lifecycle/stack.h"
#include "fs/store/lock.h"
#include "fs/store/repo.h"

namespace buildfs {

bool DirHasEntries(const std::string& path) {
  auto names = ListNames(path);
  return names.ok() && !names->empty();
}

bool IsMountPoint(const std::string& path) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    // Field 5 is the mount point, with spaces and such escaped as \040.
    std::istringstream fields(line);
    std::string f[5];
    for (auto& x : f) fields >> x;
    std::string mp;
    for (size_t i = 0; i < f[4].size(); ++i) {
      if (f[4][i] == '\\' && i + 3 < f[4].size()) {
        mp += static_cast<char>(std::stoi(f[4].substr(i + 1, 3), nullptr, 8));
        i += 3;
      } else {
        mp += f[4][i];
      }
    }
    if (mp == path) return true;
  }
  return false;
}

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
                              const std::string& from_dir, const Repo::Progress& progress) {
  BUILDFS_RETURN_IF_ERROR(ValidateBuildName(name));
  if (ws.HasBuild(name)) return Status::Error(EEXIST, "build '" + name + "' already exists");
  if (!from_dir.empty()) {
    struct stat st;
    if (stat(from_dir.c_str(), &st) != 0) return Status::FromErrno(from_dir);
    if (!S_ISDIR(st.st_mode)) return Status::Error(ENOTDIR, from_dir + ": not a directory");
  }
  BUILDFS_ASSIGN_OR_RETURN(auto repo, Repo::Open(ws.repo_path()));
  BUILDFS_ASSIGN_OR_RETURN(std::string base,
                           repo->CommitDirectory(from_dir, Workspace::BaseRef(name),
                                                 from_dir.empty() ? "empty tree" : "import " + from_dir,
                                                 progress));
  BuildInfo info{name, base, {}, ""};
  BUILDFS_RETURN_IF_ERROR(InstallBuild(ws, info));
  return info;
}

Result<BuildSummary> DescribeBuild(const Workspace& ws, const std::string& name) {
  BUILDFS_ASSIGN_OR_RETURN(BuildInfo info, ws.LoadBuild(name));
  BuildSummary s;
  s.name = name;
  s.base = info.base;
  s.layers = info.layers;
  s.mountpoint = ws.mountpoint(name);
  s.mounted = FileLock::IsHeld(ws.lock_path(name));
  s.dirty = DirHasEntries(ws.upper_path(name)) || !info.layers.empty();
  return s;
}

Result<std::vector<BuildSummary>> ListBuildSummaries(const Workspace& ws) {
  std::vector<BuildSummary> out;
  for (const auto& name : ws.ListBuilds()) {
    BUILDFS_ASSIGN_OR_RETURN(BuildSummary s, DescribeBuild(ws, name));
    out.push_back(std::move(s));
  }
  return out;
}

namespace {

// Moves `path` aside (one rename, so it is gone at once) and deletes it.
Status DeleteTreeNow(const Workspace& ws, const std::string& path, const std::string& tag) {
  std::string trash = ws.state_path() + "/trash-" + tag + "-" + std::to_string(getpid());
  RemoveTree(trash);
  if (rename(path.c_str(), trash.c_str()) != 0) {
    if (errno == ENOENT) return Status::Ok();
    return Status::FromErrno(path);
  }
  return RemoveTree(trash);
}

}  // namespace

Status RemoveBuild(const Workspace& ws, const std::string& name, bool force) {
  BUILDFS_RETURN_IF_ERROR(ws.LoadBuild(name).status());
  if (IsMounted(ws, name)) {
    if (!force) {
      return Status::Error(EBUSY, "build '" + name + "' is mounted; hint: buildfs umount " + name +
                                      ", or rm --force");
    }
    BUILDFS_RETURN_IF_ERROR(UnmountBuild(ws, name, /*lazy=*/false));
  }
  BUILDFS_ASSIGN_OR_RETURN(FileLock meta, LockWorkspaceMeta(ws));
  // The build disappears with the rename of its directory; refs go after.
  BUILDFS_RETURN_IF_ERROR(DeleteTreeNow(ws, ws.build_path(name), name));
  BUILDFS_ASSIGN_OR_RETURN(auto repo, Repo::Open(ws.repo_path()));
  BUILDFS_ASSIGN_OR_RETURN(auto refs, repo->ListRefs("builds/" + name));
  for (const auto& ref : refs) {
    BUILDFS_RETURN_IF_ERROR(repo->DeleteRef(ref));
  }
  rmdir(ws.mountpoint(name).c_str());
  return CollectLayers(ws).status();
}

Status ResetBuild(const Workspace& ws, const std::string& name) {
  BUILDFS_RETURN_IF_ERROR(ws.LoadBuild(name).status());
  bool was_mounted = IsMounted(ws, name);
  if (was_mounted) BUILDFS_RETURN_IF_ERROR(UnmountBuild(ws, name, /*lazy=*/false));
  {
    BUILDFS_ASSIGN_OR_RETURN(FileLock meta, LockWorkspaceMeta(ws));
    BUILDFS_ASSIGN_OR_RETURN(BuildInfo info, RecoverBuild(ws, name));
    // build.json first: once it lists no layers, the old upper is all that is left to delete.
    info.layers.clear();
    BUILDFS_RETURN_IF_ERROR(ws.SaveBuild(info));
    BUILDFS_RETURN_IF_ERROR(DeleteTreeNow(ws, ws.upper_path(name), name + "-upper"));
    if (mkdir(ws.upper_path(name).c_str(), 0755) != 0 && errno != EEXIST) {
      return Status::FromErrno(ws.upper_path(name));
    }
    BUILDFS_RETURN_IF_ERROR(CollectLayers(ws).status());
  }
  if (was_mounted) return MountBuild(ws, MountRequest{name, false, false});
  return Status::Ok();
}

}  // namespace buildfs
