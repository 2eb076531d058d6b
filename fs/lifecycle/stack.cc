#include "fs/lifecycle/stack.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <set>

#include "fs/common/path.h"
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
  BUILDFS_ASSIGN_OR_RETURN(auto layer, DirLayer::Open(ws.layer_path(id), {"", true, true}));
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

Result<LayerStack> OpenLayerStack(const Workspace& ws, const BuildInfo& info) {
  LayerStack stack;
  for (const auto& dir : {ws.upper_path(info.name), ws.work_path(info.name)}) {
    if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return Status::FromErrno(dir);
  }
  BUILDFS_ASSIGN_OR_RETURN(auto upper, DirLayer::Open(ws.upper_path(info.name), {"", true, false}));
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
  if (info.pending_freeze.empty() && info.pending_commit.empty()) return info;
  if (!info.pending_freeze.empty()) {
    std::string layer = ws.layer_path(info.pending_freeze);
    std::string upper = ws.upper_path(name);
    struct stat st;
    if (stat(layer.c_str(), &st) != 0) {
      if (rename(upper.c_str(), layer.c_str()) != 0) return Status::FromErrno(upper + " -> " + layer);
    }
    if (mkdir(upper.c_str(), 0755) != 0 && errno != EEXIST) return Status::FromErrno(upper);
    info.pending_freeze.clear();
  }
  if (!info.pending_commit.empty()) {
    // A commit was under way: if OSTree moved the ref, it happened.
    BUILDFS_ASSIGN_OR_RETURN(auto repo, Repo::Open(ws.repo_path()));
    BUILDFS_ASSIGN_OR_RETURN(std::string ref, repo->ResolveRef(Workspace::BaseRef(name)));
    if (ref != info.base) {
      std::vector<std::string> kept;
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
  }
  BUILDFS_RETURN_IF_ERROR(ws.SaveBuild(info));
  return info;
}

Result<int> CollectLayers(const Workspace& ws) {
  std::set<std::string> used;
  for (const auto& name : ws.ListBuilds()) {
    BUILDFS_ASSIGN_OR_RETURN(BuildInfo info, ws.LoadBuild(name));
    used.insert(info.layers.begin(), info.layers.end());
    if (!info.pending_freeze.empty()) used.insert(info.pending_freeze);
  }
  BUILDFS_ASSIGN_OR_RETURN(auto names, ListNames(ws.layers_path()));
  std::vector<std::string> unused;
  for (auto& n : names) {
    if (!used.count(n)) unused.push_back(std::move(n));
  }
  int removed = 0;
  for (const auto& id : unused) {
    UniqueFd fd(open(ws.layer_path(id).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd.valid() || flock(fd.get(), LOCK_EX | LOCK_NB) != 0) continue;  // still read by someone
    // Renamed away first, so a half-deleted layer is never mistaken for a whole one.
    std::string trash = ws.state_path() + "/trash-" + id;
    if (rename(ws.layer_path(id).c_str(), trash.c_str()) != 0) continue;
    BUILDFS_RETURN_IF_ERROR(RemoveTree(trash));
    ++removed;
  }
  return removed;
}

}  // namespace buildfs
