// The workspace on disk: where it is, its builds and their descriptions.
//
//   WS/repo/  WS/src/  WS/cache/  WS/NAME/ (mount points)
//   WS/.buildfs/config.json
//   WS/.buildfs/builds/NAME/{build.json, upper/, work/, logs/, lock}
//   WS/.buildfs/layers/ID/    frozen layers shared by builds
//
// Descriptions are written to a temporary file and renamed into place.
// A Workspace is a value (paths only); it is safe to copy and share.
#pragma once

#include <string>
#include <vector>

#include "fs/common/status.h"

namespace buildfs {

// What build.json says about a build.
struct BuildInfo {
  std::string name;
  std::string base;                 // commit checksum at the bottom of the stack
  std::vector<std::string> layers;  // frozen layer ids above the base, topmost first
  // Set while the upper is being renamed to layers/ID (see FreezeUpperOnDisk):
  // a crash then is finished on the next use of the build.
  std::string pending_freeze;
  // Set while a commit folding these layers is written; RecoverBuild
  // completes it (the ref moved) or forgets it (it did not).
  std::vector<std::string> pending_commit;
  // With pending_commit: the layers that replace the folded ones once the
  // commit is complete (copies of their private cache/ changes).
  std::vector<std::string> pending_cache;
  // Set while the frozen layer `pending_unfreeze` (the topmost) is renamed
  // back to the upper after a failed commit; RecoverBuild finishes it.
  std::string pending_unfreeze;
};

// The text of build.json for `info`.
std::string BuildJson(const BuildInfo& info);

// A build name is also a directory name and part of OSTree refs
// (builds/NAME/base): letters, digits, '_', '.' and '-', starting with a
// letter, digit or '_', without "..", at most 100 bytes, and none of the
// workspace's own directories. EINVAL otherwise, saying why; `what` names
// the kind of name in the message (disk names follow the same rules).
Status ValidateBuildName(const std::string& name, const char* what = "build name");

class Workspace {
 public:
  // Creates the layout at `dir` (which may exist but must hold no workspace).
  static Result<Workspace> Init(const std::string& dir);
  // Finds the workspace containing `start` (a directory), searching upward.
  static Result<Workspace> Find(const std::string& start);
  // When `cwd` lies inside WS/NAME, returns NAME; otherwise "".
  std::string BuildAt(const std::string& cwd) const;

  const std::string& root() const { return root_; }
  std::string repo_path() const { return root_ + "/repo"; }
  std::string cache_path() const { return root_ + "/cache"; }
  std::string state_path() const { return root_ + "/.buildfs"; }
  std::string layers_path() const { return state_path() + "/layers"; }
  std::string build_path(const std::string& name) const { return state_path() + "/builds/" + name; }
  std::string upper_path(const std::string& name) const { return build_path(name) + "/upper"; }
  std::string work_path(const std::string& name) const { return build_path(name) + "/work"; }
  std::string lock_path(const std::string& name) const { return build_path(name) + "/lock"; }
  std::string log_path(const std::string& name) const { return build_path(name) + "/logs"; }
  std::string mountpoint(const std::string& name) const { return root_ + "/" + name; }
  std::string layer_path(const std::string& id) const { return layers_path() + "/" + id; }
  // Held while build descriptions and frozen layers change (branch, commit, rm, prune).
  std::string meta_lock_path() const { return state_path() + "/lock"; }
  static std::string BaseRef(const std::string& name) { return "builds/" + name + "/base"; }

  // True when build `name` has a description (which may be damaged).
  bool HasBuild(const std::string& name) const;
  // True when .buildfs/builds/NAME exists at all.
  bool HasBuildDir(const std::string& name) const;
  // Every build with a description, damaged ones included, sorted.
  std::vector<std::string> ListBuilds() const;
  // ENOENT for no such build; EUCLEAN when build.json is damaged (the
  // message says how, in words).
  Result<BuildInfo> LoadBuild(const std::string& name) const;
  // Writes build.json atomically.
  Status SaveBuild(const BuildInfo& info) const;

 private:
  explicit Workspace(std::string root) : root_(std::move(root)) {}
  std::string root_;
};

}  // namespace buildfs
