// Commit: record a build's merged state as a new OSTree commit.
//
// The upper is frozen first (the build goes on writing into a fresh one),
// then the frozen layers over the base are written as a commit whose parent
// is the old base: only what the frozen layers hold is hashed and written;
// every directory the base alone provides is reused by checksum. Then the
// build's base becomes the new commit and its folded layers leave its stack,
// so stacks stay shallow however often a build is branched.
//
// Atomic: OSTree's transaction writes the commit and moves builds/NAME/base;
// build.json is replaced by rename. Killed in between, the build shows the
// same tree either way (old base + frozen layers == new commit).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "fs/common/status.h"
#include "fs/store/workspace.h"

namespace buildfs {

struct CommitResult {
  std::string commit;        // the new base (or the old one when nothing changed)
  bool changed = false;
  uint64_t entries_written = 0;  // files and symlinks hashed and stored
  uint64_t dirs_walked = 0;
  // The build has private changes under cache/: they are never committed, and
  // the layers holding them stay in its stack.
  bool kept_cache_changes = false;
};

Result<CommitResult> CommitBuild(const Workspace& ws, const std::string& name,
                                 const std::string& subject);

struct LogEntry {
  std::string commit;
  std::string subject;
  uint64_t timestamp = 0;
};
// The build's commits, newest first.
Result<std::vector<LogEntry>> BuildLog(const Workspace& ws, const std::string& name);

struct PruneResult {
  int objects_total = 0;
  int objects_pruned = 0;
  uint64_t bytes_freed = 0;
  int layers_removed = 0;
};
// Deletes repository objects no ref reaches and frozen layers no build uses.
Result<PruneResult> PruneWorkspace(const Workspace& ws);

}  // namespace buildfs
