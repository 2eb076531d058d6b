// Commit, log and prune: a build's history in the repository.
//
// Commit freezes the upper first (a mounted build goes on writing into a
// fresh one), then writes the frozen layers over the base as a commit whose
// parent is the old base: only what the frozen layers hold is hashed and
// written; every directory the base alone provides is reused by checksum.
// Then the build's base becomes the new commit and its folded layers leave
// its stack, so stacks stay shallow however often a build is branched.
// Private changes under cache/ are no part of a build's tree: the layers
// holding any are replaced by copies of just their cache/ (hard links).
//
// Atomic: OSTree's transaction writes the commit and moves builds/NAME/base;
// build.json is replaced by rename. Killed in between, the build shows the
// same tree either way (old base + frozen layers == new commit).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "fs/common/progress.h"
#include "fs/common/status.h"
#include "fs/store/workspace.h"

namespace buildfs {

struct CommitResult {
  std::string commit;        // the new base (or the old one when nothing changed)
  bool changed = false;
  uint64_t entries_written = 0;  // files and symlinks hashed and stored
  uint64_t dirs_walked = 0;
  // The build has private changes under cache/: they are never committed and
  // stay in the build (as layers of their own).
  bool kept_cache_changes = false;
};

// Records the build's merged state as a new commit whose parent is its base.
// Refuses an empty subject. When the tree equals the base's, makes no commit
// (changed = false). Fails with ENOSPC before changing anything when the
// repository's filesystem cannot hold the changes. On any failure the build
// is left as it was: its layers, and (when nothing wrote to it meanwhile) its
// upper. Takes the build's BuildLock.
Result<CommitResult> CommitBuild(const Workspace& ws, const std::string& name,
                                 const std::string& subject, const Progress& progress = {});

struct LogEntry {
  std::string commit;
  std::string subject;  // the first line of the message
  uint64_t timestamp = 0;
};
// The build's commits, newest first.
Result<std::vector<LogEntry>> BuildLog(const Workspace& ws, const std::string& name);

struct PruneResult {
  int objects_total = 0;
  int objects_pruned = 0;
  uint64_t bytes_freed = 0;
  int layers_removed = 0;
  // Builds whose description is damaged: skipped; their layers are all kept.
  std::vector<std::string> damaged;
};
// Deletes repository objects no ref reaches, frozen layers no build uses, and
// what killed commands left behind.
Result<PruneResult> PruneWorkspace(const Workspace& ws, const Progress& progress = {});

}  // namespace buildfs
