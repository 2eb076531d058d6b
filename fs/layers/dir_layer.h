// DirLayer: a directory on disk as a layer.
//
// Used three ways: the workspace's shared cache/ (shown at `prefix` "cache"
// inside the build, plain files, changed by others: not immutable), frozen
// layers (former uppers: overlay format, immutable) and the read side of the
// build's upper (overlay format, changed only by the overlay itself).
// Every name is opened beneath the root fd without following symlinks.
// Holds one fd (the root) for its life. Thread-safe.
#pragma once

#include <atomic>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "fs/layers/layer.h"

namespace buildfs {

struct DirLayerOptions {
  std::string prefix;           // where the directory appears in the merged tree ("" = root)
  bool overlay_format = false;  // interpret whiteouts, opaque and redirect markers
  bool immutable = false;
  // Keep the fds of recently used directories (at most kDirFdCache): only for
  // a tree that changes only through its owner (the upper, which calls
  // ForgetDirs when a directory moves or goes, and frozen layers).
  bool cache_dirs = false;
};

class DirLayer : public Layer {
 public:
  static Result<std::unique_ptr<DirLayer>> Open(const std::string& root, DirLayerOptions options);

  const std::string& key() const override { return key_; }
  bool immutable() const override { return options_.immutable; }
  bool HasRoot() const override { return options_.prefix.empty(); }
  bool Covers(const std::string& path) const override { return Translate(path).kind != Place::kOutside; }
  bool HoldsEntriesIn(const std::string& dir) const override { return Translate(dir).kind == Place::kInside; }
  Result<LayerEntry> Lookup(const std::string& path) override;
  Status ReadDir(const std::string& path, std::vector<LayerDirent>* out) override;
  Result<UniqueFd> Open(const std::string& path, int flags) override;
  Result<std::string> ReadLink(const std::string& path) override;
  Result<UniqueFd> OpenBases() override;
  // Learned once: only MakeBases adds a bases directory to a layer.
  bool HasBases() override;
  // The bases directory, made when missing (overlay format only).
  Result<UniqueFd> MakeBases();
  Result<Xattrs> ListXattrs(const std::string& path) override;

  int root_fd() const { return root_.get(); }
  const std::string& root_path() const { return root_path_; }

  // An open directory of the layer; shared, so that a cached one stays open
  // while a caller uses it.
  using DirFd = std::shared_ptr<const UniqueFd>;
  struct Parent {
    DirFd dir;
    std::string name;
  };
  static constexpr size_t kDirFdCache = 256;
  // The directory at `path` (relative, "" = root), opened beneath the root.
  Result<DirFd> OpenDir(const std::string& path);
  // The directory holding `path`, and `path`'s last component.
  Result<Parent> OpenParent(const std::string& path);
  // Forgets every cached directory fd: a directory moved or was removed.
  void ForgetDirs();
  // The attributes of the entry at `path` (ENOENT when absent), without
  // reading its markers: one fstatat.
  Result<struct stat> Stat(const std::string& path);

 private:
  DirLayer(UniqueFd root, std::string root_path, DirLayerOptions options);

  // Where a merged path falls relative to `prefix`.
  struct Place {
    enum Kind { kInside, kAncestor, kOutside } kind;
    std::string rel;  // kInside: path in the directory; kAncestor: the next prefix component
  };
  Place Translate(const std::string& path) const;
  Status ReadMarkers(int dir_fd, const std::string& name, LayerEntry* e) const;

  UniqueFd root_;
  std::string root_path_;
  DirLayerOptions options_;
  std::string key_;
  std::atomic<int> has_bases_{-1};  // -1: not known yet

  std::mutex dirs_mu_;  // guards the two below; held for the map only
  std::list<std::pair<std::string, DirFd>> dirs_;  // most recently used first
  std::unordered_map<std::string, std::list<std::pair<std::string, DirFd>>::iterator> dir_index_;
};

}  // namespace buildfs
