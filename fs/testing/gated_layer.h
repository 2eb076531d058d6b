// GatedLayer: a layer over a directory (an immutable DirLayer) whose first
// Lookup or Open of one path waits at a Gate until the test releases it: it
// holds the overlay in the middle of a lookup, or of a copy-up's data, as a
// slow disk or a big file would.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "fs/layers/dir_layer.h"
#include "fs/testing/gate.h"

namespace buildfs::testing {

class GatedLayer : public Layer {
 public:
  enum class At { kLookup, kOpen };
  GatedLayer(std::unique_ptr<DirLayer> inner, std::string gated, At at)
      : inner_(std::move(inner)), gated_(std::move(gated)), at_(at) {}
  const std::string& key() const override { return inner_->key(); }
  bool immutable() const override { return true; }
  Result<LayerEntry> Lookup(const std::string& path) override {
    Pass(At::kLookup, path);
    return inner_->Lookup(path);
  }
  Status ReadDir(const std::string& path, std::vector<LayerDirent>* out) override {
    return inner_->ReadDir(path, out);
  }
  Result<UniqueFd> Open(const std::string& path, int flags) override {
    Pass(At::kOpen, path);
    return inner_->Open(path, flags);
  }
  Result<std::string> ReadLink(const std::string& path) override { return inner_->ReadLink(path); }
  Result<Xattrs> ListXattrs(const std::string& path) override { return inner_->ListXattrs(path); }

  Gate gate;

 private:
  void Pass(At at, const std::string& path) {
    if (at == at_ && path == gated_ && !passed_.exchange(true)) gate.Wait();
  }

  std::unique_ptr<DirLayer> inner_;
  std::string gated_;
  At at_;
  std::atomic<bool> passed_{false};
};

}  // namespace buildfs::testing
