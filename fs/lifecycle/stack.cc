#include "fs/lifecycle/stack.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <set>

#include "fs/common/path.h"
#include "fs/common/xattr.h"
#include "fs/layers/chunked_file.h"
#include "fs/layers/ostree_layer.h"
#include "fs/store/repo.h"

namespace buildfs {

Result<FileLock> LockWorkspaceMeta(const Workspace& ws) {
  auto lock = FileLock::Acquire(ws.meta_lock_path(), 120000);
  if (!lock.ok()) return lock.status().With("locking the workspace");
  return lock;
}

std::string NewLayerId() {
  std::random_device rd;
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%08x%08x", rd(), rd());
  return buf;
}

Result<std::shared_ptr<DirLayer>> OpenFrozenLayer(const Workspace& ws, const std::string& id) {
  BUILDFS_ASSIGN_OR_RETURN(auto layer, DirLayer::Open(ws.layer_path(id), {"", true, true, true}));
  if (flock(layer->root_fd(), LOCK_SH) != 0) return Status::FromErrno(ws.layer_path(id));
  return std::shared_ptr<DirLayer>(std::move(layer));
}

Result<std::vector<StackLayer>> OpenLowerLayers(const Workspace& ws, const BuildInfo& info,
                                                bool with_cache) {
  std::vector<StackLayer> lowers;
  for (const auto& id : info.layers) {
    BUILDFS_ASSIGN_OR_RETURN(auto frozen, OpenFrozenLayer(ws, id));
    lowers.push_back({std::move(frozen), true});
  }
  if (with_cache) {
    BUILDFS_ASSIGN_OR_RETURN(auto cache, DirLayer::Open(ws.cache_path(), {"cache", false, false}));
    lowers.push_back({std::move(cache), false});
  }
  BUILDFS_ASSIGN_OR_RETURN(auto base, OstreeLayer::Open(ws.repo_path(), info.base));
  lowers.push_back({std::move(base), false});
  return lowers;
}

Result<std::shared_ptr<DirLayer>> OpenUpperLayer(const Workspace& ws, const std::string& name) {
  BUILDFS_ASSIGN_OR_RETURN(auto upper, DirLayer::Open(ws.upper_path(name), {"", true, false, true}));
  return std::shared_ptr<DirLayer>(std::move(upper));
}

Result<LayerStack> OpenLayerStack(const Workspace& ws, const BuildInfo& info) {
  LayerStack stack;
  for (const auto& dir : {ws.upper_path(info.name), ws.work_path(info.name)}) {
    if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return Status::FromErrno(dir);
  }
  BUILDFS_ASSIGN_OR_RETURN(auto upper, OpenUpperLayer(ws, info.name));
  BUILDFS_ASSIGN_OR_RETURN(auto work, DirLayer::Open(ws.work_path(info.name), {"", false, false}));
  stack.upper = std::move(upper);
  stack.work = std::move(work);
  BUILDFS_ASSIGN_OR_RETURN(stack.lowers, OpenLowerLayers(ws, info, /*with_cache=*/true));
  return stack;
}

Status FreezeUpperOnDisk(const Workspace& ws, const std::string& name, const std::string& id) {
  BUILDFS_ASSIGN_OR_RETURN(BuildInfo info, ws.LoadBuild(name));
  info.layers.insert(info.layers.begin(), id);
  info.pending_freeze = id;
  BUILDFS_RETURN_IF_ERROR(ws.SaveBuild(info));
  BUILDFS_ASSIGN_OR_RETURN(info, RecoverBuild(ws, name));
  return Status::Ok();
}

Result<BuildInfo> RecoverBuild(const Workspace& ws, const std::string& name) {
  BUILDFS_ASSIGN_OR_RETURN(BuildInfo info, ws.LoadBuild(name));
  if (info.pending_freeze.empty() && info.pending_commit.empty() && info.pending_unfreeze.empty()) {
    return info;  // nothing to finish, nothing to write
  }
  const std::string upper = ws.upper_path(name);
  if (!info.pending_freeze.empty()) {
    std::string layer = ws.layer_path(info.pending_freeze);
    struct stat st;
    if (stat(layer.c_str(), &st) != 0) {
      if (rename(upper.c_str(), layer.c_str()) != 0) return Status::FromErrno(upper + " -> " + layer);
    }
    if (mkdir(upper.c_str(), 0755) != 0 && errno != EEXIST) return Status::FromErrno(upper);
    info.pending_freeze.clear();
  }
  if (!info.pending_commit.empty()) {
    // A commit was under way: if OSTree moved the ref, it happened. Nothing
    // else runs on the build meanwhile (its BuildLock), so the folded layers
    // are all the layers it has.
    BUILDFS_ASSIGN_OR_RETURN(auto repo, Repo::Open(ws.repo_path()));
    BUILDFS_ASSIGN_OR_RETURN(std::string ref, repo->ResolveRef(Workspace::BaseRef(name)));
    if (ref != info.base) {
      std::vector<std::string> kept = info.pending_cache;
      for (const auto& id : info.layers) {
        if (std::find(info.pending_commit.begin(), info.pending_commit.end(), id) ==
            info.pending_commit.end()) {
          kept.push_back(id);
        }
      }
      info.layers = kept;
      info.base = ref;
    }
    info.pending_commit.clear();
    info.pending_cache.clear();
  }
  if (!info.pending_unfreeze.empty()) {
    // Undoing the freeze of a failed commit: the layer goes back to being
    // the upper, which was empty when it started.
    std::string layer = ws.layer_path(info.pending_unfreeze);
    struct stat st;
    if (stat(layer.c_str(), &st) == 0) {
      if (rmdir(upper.c_str()) != 0 && errno != ENOENT) return Status::FromErrno(upper);
      if (rename(layer.c_str(), upper.c_str()) != 0) return Status::FromErrno(layer + " -> " + upper);
    }
    auto it = std::find(info.layers.begin(), info.layers.end(), info.pending_unfreeze);
    if (it != info.layers.end()) info.layers.erase(it);
    info.pending_unfreeze.clear();
  }
  BUILDFS_RETURN_IF_ERROR(ws.SaveBuild(info));
  return info;
}

namespace {

// Recreates entry `name` of `from` in `to`: directories anew with their mode,
// owner, xattrs and times, everything else as a hard link.
Status LinkTreeAt(int from, int to, const std::string& name) {
  struct stat st;
  if (fstatat(from, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return Status::FromErrno(name);
  if (!S_ISDIR(st.st_mode)) {
    if (linkat(from, name.c_str(), to, name.c_str(), 0) != 0) return Status::FromErrno(name);
    return Status::Ok();
  }
  if (mkdirat(to, name.c_str(), 0700) != 0) return Status::FromErrno(name);
  UniqueFd src(openat(from, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  UniqueFd dst(openat(to, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!src.valid() || !dst.valid()) return Status::FromErrno(name);
  BUILDFS_ASSIGN_OR_RETURN(auto names, ListNamesAt(src.get()));
  for (const auto& n : names) BUILDFS_RETURN_IF_ERROR(LinkTreeAt(src.get(), dst.get(), n));
  BUILDFS_ASSIGN_OR_RETURN(Xattrs xattrs, ReadXattrsAt(from, name));
  for (const auto& [key, value] : xattrs) BUILDFS_RETURN_IF_ERROR(SetXattrAt(to, name, key, value));
  if (fchownat(to, name.c_str(), st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) != 0 && geteuid() == 0) {
    return Status::FromErrno(name);
  }
  if (fchmodat(to, name.c_str(), st.st_mode & 07777, 0) != 0) return Status::FromErrno(name);
  struct timespec times[2] = {st.st_atim, st.st_mtim};
  if (utimensat(to, name.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) return Status::FromErrno(name);
  return Status::Ok();
}

}  // namespace

Result<std::string> CopyCacheOfLayer(const Workspace& ws, const std::string& id) {
  UniqueFd from(open(ws.layer_path(id).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!from.valid()) return Status::FromErrno(ws.layer_path(id));
  struct stat st;
  if (fstatat(from.get(), "cache", &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return std::string();
    return Status::FromErrno(ws.layer_path(id) + "/cache");
  }
  std::string copy = NewLayerId();
  const std::string path = ws.layer_path(copy);
  if (mkdir(path.c_str(), 0755) != 0) return Status::FromErrno(path);
  UniqueFd to(open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  Status st_copy = to.valid() ? LinkTreeAt(from.get(), to.get(), "cache") : Status::FromErrno(path);
  // Chunked files of cache/ read from the layer's bases: they come along.
  if (st_copy.ok() && fstatat(from.get(), kBasesDir, &st, AT_SYMLINK_NOFOLLOW) == 0) {
    st_copy = LinkTreeAt(from.get(), to.get(), kBasesDir);
  }
  if (!st_copy.ok()) {
    RemoveTree(path);
    return st_copy;
  }
  return copy;
}

Status UnfreezeUpperOnDisk(const Workspace& ws, const std::string& name, const std::string& id) {
  BUILDFS_ASSIGN_OR_RETURN(BuildInfo info, ws.LoadBuild(name));
  if (info.layers.empty() || info.layers.front() != id) {
    return Status::Error(EINVAL, "layer " + id + " is not the topmost layer of build '" + name + "'");
  }
  if (DirHasEntries(ws.upper_path(name))) {
    return Status::Error(ENOTEMPTY, "build '" + name + "' was written to meanwhile");
  }
  info.pending_unfreeze = id;
  BUILDFS_RETURN_IF_ERROR(ws.SaveBuild(info));
  return RecoverBuild(ws, name).status();
}

Result<CollectedLayers> CollectLayers(const Workspace& ws) {
  CollectedLayers out;
  std::set<std::string> used;
  for (const auto& name : ws.ListBuilds()) {
    auto info = ws.LoadBuild(name);
    if (!info.ok()) {
      if (info.code() == ENOENT) continue;  // removed meanwhile
      out.damaged.push_back(name);
      continue;
    }
    used.insert(info->layers.begin(), info->layers.end());
    used.insert(info->pending_cache.begin(), info->pending_cache.end());
    if (!info->pending_freeze.empty()) used.insert(info->pending_freeze);
  }
  if (!out.damaged.empty()) return out;
  BUILDFS_ASSIGN_OR_RETURN(auto names, ListNames(ws.layers_path()));
  for (const auto& id : names) {
    if (used.count(id)) continue;
    UniqueFd fd(open(ws.layer_path(id).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd.valid() || flock(fd.get(), LOCK_EX | LOCK_NB) != 0) continue;  // still read by someone
    // Renamed away first, so a half-deleted layer is never mistaken for a whole one.
    BUILDFS_RETURN_IF_ERROR(DeleteTreeNow(ws, ws.layer_path(id)));
    ++out.removed;
  }
  return out;
}

namespace {

std::string TrashPath(const Workspace& ws) { return ws.state_path() + "/trash"; }

bool ProcessAlive(const std::string& pid_text) {
  if (pid_text.empty() || pid_text.find_first_not_of("0123456789") != std::string::npos) return false;
  return kill(static_cast<pid_t>(std::stol(pid_text)), 0) == 0 || errno == EPERM;
}

}  // namespace

Status DeleteTreeNow(const Workspace& ws, const std::string& path) {
  const std::string trash = TrashPath(ws);
  if (mkdir(trash.c_str(), 0700) != 0 && errno != EEXIST) return Status::FromErrno(trash);
  const std::string target = trash + "/" + std::to_string(getpid()) + "-" + NewLayerId();
  if (rename(path.c_str(), target.c_str()) != 0) {
    if (errno == ENOENT) return Status::Ok();
    return Status::FromErrno(path);
  }
  return RemoveTree(target);
}

void CollectLeftovers(const Workspace& ws) {
  // The trash holds nothing anyone needs: whatever is there was being deleted.
  if (auto names = ListNames(TrashPath(ws)); names.ok()) {
    for (const auto& n : names.value()) {
      if (!ProcessAlive(n.substr(0, n.find('-')))) RemoveTree(TrashPath(ws) + "/" + n);
    }
  }
  // Builds a killed `new` or `branch` was assembling (.new-NAME-PID), and
  // builds a killed `rm` had set aside but not yet deleted the refs of
  // (.rm-NAME-PID): those come back, so rm did all or nothing.
  const std::string builds = ws.state_path() + "/builds";
  if (auto names = ListNames(builds); names.ok()) {
    for (const auto& n : names.value()) {
      const bool made = n.rfind(".new-", 0) == 0, removed = n.rfind(".rm-", 0) == 0;
      const size_t dash = n.rfind('-');
      if ((!made && !removed) || ProcessAlive(n.substr(dash + 1))) continue;
      const std::string name = n.substr(made ? 5 : 4, dash - (made ? 5 : 4));
      if (removed && !ws.HasBuildDir(name) &&
          rename((builds + "/" + n).c_str(), ws.build_path(name).c_str()) == 0) {
        continue;
      }
      RemoveTree(builds + "/" + n);
    }
  }
  // The tree a killed `disk create` exported (.buildfs/disk-tree-NAME-PID),
  // and left by earlier versions: .buildfs/trash-*.
  if (auto names = ListNames(ws.state_path()); names.ok()) {
    for (const auto& n : names.value()) {
      if ((n.rfind("trash-", 0) == 0 || n.rfind("disk-tree-", 0) == 0) &&
          !ProcessAlive(n.substr(n.rfind('-') + 1))) {
        RemoveTree(ws.state_path() + "/" + n);
      }
    }
  }
  // Images a killed `disk create` or `disk put` was writing (cache/disks/.NAME.img.tmp-PID).
  if (auto names = ListNames(ws.cache_path() + "/disks"); names.ok()) {
    for (const auto& n : names.value()) {
      const size_t tmp = n.rfind(".tmp-");
      if (n[0] == '.' && tmp != std::string::npos && !ProcessAlive(n.substr(tmp + 5))) {
        unlink((ws.cache_path() + "/disks/" + n).c_str());
      }
    }
  }
  for (const auto& build : ws.ListBuilds()) {
    auto names = ListNames(ws.build_path(build));
    if (!names.ok()) continue;
    for (const auto& n : names.value()) {
      if (n.rfind("commit.tmp-", 0) == 0 && !ProcessAlive(n.substr(n.rfind('-') + 1))) {
        RemoveTree(ws.build_path(build) + "/" + n);
      }
    }
  }
}

Result<std::string> EmptyDir(const Workspace& ws) {
  const std::string dir = ws.state_path() + "/empty";
  if (mkdir(dir.c_str(), 0555) != 0 && errno != EEXIST) return Status::FromErrno(dir);
  return dir;
}

}  // namespace buildfs
