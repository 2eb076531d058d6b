// buildfs prune: delete what nothing uses any more.
#include "fs/lifecycle/commit.h"
#include "fs/lifecycle/mounter.h"
#include "fs/lifecycle/stack.h"
#include "fs/store/repo.h"

namespace buildfs {

Result<PruneResult> PruneWorkspace(const Workspace& ws, const Progress& progress) {
  PruneResult out;
  // Open first: without a repository there is nothing to prune, and nothing changes.
  BUILDFS_ASSIGN_OR_RETURN(auto repo, Repo::Open(ws.repo_path()));
  {
    BUILDFS_ASSIGN_OR_RETURN(FileLock meta, LockWorkspaceMeta(ws));
    BUILDFS_ASSIGN_OR_RETURN(CollectedLayers layers, CollectLayers(ws));
    out.layers_removed = layers.removed;
    out.damaged = layers.damaged;
  }
  CollectLeftovers(ws);
  CollectViews(ws);  // a mounted result view keeps its ref, and so its commit
  repo->DropAbandonedStaging(/*min_age_s=*/600);
  progress.Report(0);
  // Refs pin every commit a build uses, so this needs no build lock; OSTree's
  // exclusive lock waits for commits that are being written.
  BUILDFS_ASSIGN_OR_RETURN(auto stats, repo->Prune());
  out.objects_total = stats.objects_total;
  out.objects_pruned = stats.objects_pruned;
  out.bytes_freed = stats.bytes_freed;
  return out;
}

}  // namespace buildfs
