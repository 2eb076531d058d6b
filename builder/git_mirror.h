// Git sources, through libgit2 (the only <git2.h> user): a bare mirror of
// every source in the workspace's src/, updated by resolve, and checkouts of
// a pinned commit into a build directory.
#pragma once

#include <string>

#include "builder/manifest.h"
#include "fs/common/status.h"

namespace buildfs {

// The mirror of `url` below `src_dir`: a directory named after the URL.
std::string MirrorPath(const std::string& src_dir, const std::string& url);

// Creates or updates the mirror of `url` (every branch and tag), under a
// lock of its own, so that two builds resolving at once share it.
Status UpdateMirror(const std::string& mirror, const std::string& url);

// The commit id a component's branch, tag or revision names in its mirror.
Result<std::string> ResolvePin(const std::string& mirror, const Component& c);

// Writes the tree of `commit` into `dest` (made when missing; no .git).
Status CheckoutCommit(const std::string& mirror, const std::string& commit, const std::string& dest);

}  // namespace buildfs
