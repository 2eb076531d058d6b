// BuildView: a read-only view of a build's merged tree, in this process,
// whether or not the build is mounted: an Overlay over its upper, frozen
// layers and base (not cache/), and the base alone for comparison. What
// status, diff and export read. Nothing is written to the build.
#pragma once

#include <memory>
#include <string>

#include "fs/common/progress.h"
#include "fs/common/status.h"
#include "fs/lifecycle/changes.h"
#include "fs/overlay/overlay.h"
#include "fs/store/workspace.h"

namespace buildfs {

struct BuildView {
  std::unique_ptr<Overlay> overlay;
  std::shared_ptr<Layer> base;
  // The private layers (upper first), as directories: where cache/ changes are.
  std::vector<std::string> private_dirs;
};

// The directories of a build's private layers, upper first: where its
// changes (and its own versions of cache/ files) are.
std::vector<std::string> PrivateDirs(const Workspace& ws, const BuildInfo& info);

// REQUIRES: the build's BuildLock (its layers must not change meanwhile).
Result<BuildView> OpenBuildView(const Workspace& ws, const std::string& name);
// What BuildStatus reports, for a view already open (status.cc).
Result<std::vector<Change>> ChangesIn(BuildView& view, const std::vector<std::string>& paths,
                                      const Progress& progress = {});

// All xattrs of an overlay inode, sorted.
Result<Xattrs> OverlayXattrs(Overlay& ov, uint64_t ino);
// Resolves a relative path to an inode; the caller owns one lookup of it.
Result<EntryOut> LookupPath(Overlay& ov, const std::string& path);

// True when `path` is `prefix` or lies below it ("" is the root: everything).
bool PathAtOrBelow(const std::string& path, const std::string& prefix);

}  // namespace buildfs
