// What a build changed against its base (status, diff), and a plain copy of
// its current tree (export).
//
// All three read the build's merged tree through a BuildView, whether or not
// the build is mounted, holding its BuildLock; nothing is written to the
// build. Only directories that a private layer touches are walked.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include "fs/common/progress.h"
#include "fs/common/status.h"
#include "fs/store/workspace.h"

namespace buildfs {

struct Change {
  // 'A' added, 'M' modified, 'D' deleted; 'C' a private change under cache/,
  // which is no part of the build's tree and is never committed.
  char kind;
  std::string path;  // relative to the build's root
  bool is_dir = false;
};

// Changes of regular files, symlinks and special files, sorted by path; a
// directory is listed itself when it was added or deleted empty, or when only
// its metadata changed. With `paths`, only changes at or below one of them
// (relative to the build's root; "" is the root).
Result<std::vector<Change>> BuildStatus(const Workspace& ws, const std::string& name,
                                        const std::vector<std::string>& paths = {},
                                        const Progress& progress = {});

// Writes a unified diff (git's format) of every changed file at or below
// `paths` (all when empty) to `out`; binary files are named, not shown.
Status BuildDiff(const Workspace& ws, const std::string& name, const std::vector<std::string>& paths,
                 FILE* out);

// Copies the build's current tree to `dest` (which must not exist): modes,
// owners, times, xattrs, symlinks and special files included, onto any
// filesystem. Written to a temporary directory beside `dest` and renamed
// into place; cancelled or failed, nothing is left.
Status ExportBuild(const Workspace& ws, const std::string& name, const std::string& dest,
                   const Progress& progress = {});

}  // namespace buildfs
