// What a build changed against its base (status, diff), and a plain copy of
// its current tree (export).
//
// All three read the build's merged tree through an Overlay over its own
// layers (upper, frozen layers, base; not cache/), in this process, whether
// or not the build is mounted; nothing is written to the build. Only
// directories that a private layer touches are walked.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "fs/common/status.h"
#include "fs/store/workspace.h"

namespace buildfs {

struct Change {
  char kind;         // 'A' added, 'M' modified, 'D' deleted
  std::string path;  // relative to the build's root
  bool is_dir = false;
};

// Changes of regular files, symlinks and special files, sorted by path; a
// directory is listed itself when it was added or deleted empty, or when only
// its metadata changed.
Result<std::vector<Change>> BuildStatus(const Workspace& ws, const std::string& name);

// Prints a unified diff of every changed path (under `prefix` when given) to
// `out`: text files with `diff -u`, "Binary files ... differ" otherwise.
Status BuildDiff(const Workspace& ws, const std::string& name, const std::string& prefix, FILE* out);

// Copies the build's current tree to `dest` (which must not exist): modes,
// owners, times, xattrs, symlinks and special files included. Written to a
// temporary directory beside `dest` and renamed into place.
Status ExportBuild(const Workspace& ws, const std::string& name, const std::string& dest);

}  // namespace buildfs
