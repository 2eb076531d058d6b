// DirLayer: a directory on disk as a layer.
//
// Used three ways: the workspace's shared cache/ (shown at `prefix` "cache"
// inside the build, plain files, changed by others: not immutable), frozen
// layers (former uppers: overlay format, immutable) and the read side of the
// build's upper (overlay format, changed only by the overlay itself).
// Every name is opened beneath the root fd without following symlinks.
// Holds one fd (the root) for its life. Thread-safe.
#pragma once

#include <memory>
#include <string>

#include "fs/layers/layer.h"

namespace buildfs {

struct DirLayerOptions {
  std::string prefix;           // where the directory appears in the merged tree ("" = root)
  bool overlay_format = false;  // interpret whiteouts, opaque and redirect markers
  bool immutable = false;
};

class DirLayer : public Layer {
 public:
  static Result<std::unique_ptr<DirLayer>> Open(const std::string& root, DirLayerOptions options);

  const std::string& key() const override { return key_; }
  bool immutable() const override { return options_.immutable; }
  bool HasRoot() const override { return options_.prefix.empty(); }
  Result<LayerEntry> Lookup(const std::string& path) override;
  Status ReadDir(const std::string& path, std::vector<LayerDirent>* out) override;
  Result<UniqueFd> Open(const std::string& path, int flags) override;
  Result<std::string> ReadLink(const std::string& path) override;
  Result<Xattrs> ListXattrs(const std::string& path) override;

  int root_fd() const { return root_.get(); }
  const std::string& root_path() const { return root_path_; }

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
};

}  // namespace buildfs
