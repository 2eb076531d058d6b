// The layer stack of a build on disk: opening it, freezing its upper into a
// shared layer, finishing a freeze a crash interrupted, and deleting frozen
// layers no build uses any more.
//
// Frozen layers live in .buildfs/layers/ID and are shared by every build that
// lists them in build.json. A process reading a frozen layer holds a shared
// flock on its directory; collection takes it exclusively, so a layer in use
// by a daemon (whose build.json may already have dropped it) is never deleted.
// Callers changing build descriptions hold the workspace's meta lock.
#pragma once

#include <string>
#include <vector>

#include "fs/overlay/overlay.h"
#include "fs/store/lock.h"
#include "fs/store/workspace.h"

namespace buildfs {

// The workspace-wide lock for changes to build descriptions and layers.
Result<FileLock> LockWorkspaceMeta(const Workspace& ws);

// A new, unique frozen layer id.
std::string NewLayerId();

// Opens a frozen layer read-only and holds its shared flock while it lives.
Result<std::shared_ptr<DirLayer>> OpenFrozenLayer(const Workspace& ws, const std::string& id);
// The read-only layers of a build below its upper: frozen layers, then (when
// `with_cache`) the workspace cache/ at "cache", then the base commit.
Result<std::vector<StackLayer>> OpenLowerLayers(const Workspace& ws, const BuildInfo& info,
                                                bool with_cache);
// The build's upper as its daemon uses it (only the daemon changes it).
Result<std::shared_ptr<DirLayer>> OpenUpperLayer(const Workspace& ws, const std::string& name);
// The whole stack a build is mounted with: upper, work, lowers with cache.
Result<LayerStack> OpenLayerStack(const Workspace& ws, const BuildInfo& info);

// Moves the build's upper to layers/`id`, puts `id` on top of its frozen
// layers and gives it an empty upper. Crash-safe: build.json records the
// freeze before the rename (pending_freeze) and RecoverBuild finishes it.
Status FreezeUpperOnDisk(const Workspace& ws, const std::string& name, const std::string& id);
// A new frozen layer holding only the cache/ subtree of frozen layer `id`
// (its files hard-linked: frozen layers never change); "" when `id` holds
// nothing under cache/. REQUIRES: the meta lock (the new layer is listed by
// no build yet).
Result<std::string> CopyCacheOfLayer(const Workspace& ws, const std::string& id);
// The reverse after a failed commit: the topmost frozen layer `id` becomes
// the upper again. ENOTEMPTY when the upper was written to meanwhile.
Status UnfreezeUpperOnDisk(const Workspace& ws, const std::string& name, const std::string& id);
// Finishes an interrupted freeze, commit or unfreeze; returns the build's
// description. Writes nothing when nothing was interrupted.
// REQUIRES: the build's BuildLock and the workspace meta lock.
Result<BuildInfo> RecoverBuild(const Workspace& ws, const std::string& name);

struct CollectedLayers {
  int removed = 0;
  // Builds whose description is damaged: while there is one, no layer is
  // deleted (it may be one of theirs).
  std::vector<std::string> damaged;
};
// Deletes frozen layers that no build lists and no process reads.
// REQUIRES: the workspace meta lock.
Result<CollectedLayers> CollectLayers(const Workspace& ws);

// Moves `path` into the workspace's trash (.buildfs/trash/) in one rename,
// so it is gone at once, then deletes it. Killed in between, it stays in the
// trash until CollectLeftovers.
Status DeleteTreeNow(const Workspace& ws, const std::string& path);
// Deletes what killed commands left behind: the trash, builds a killed
// `new` or `branch` was making, and the images and trees of a killed `disk`
// command. Best effort; safe at any time.
void CollectLeftovers(const Workspace& ws);
// An empty directory that nothing writes to: the upper and work directory of
// the read-only overlays of commit, status, diff and export.
Result<std::string> EmptyDir(const Workspace& ws);

}  // namespace buildfs
