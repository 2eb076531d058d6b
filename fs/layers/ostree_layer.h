// OstreeLayer: an OSTree commit read lazily, straight from repo/objects.
//
// Nothing is checked out and mounting walks nothing: a dirtree is loaded the
// first time a path under it is looked up, and cached by checksum (trees are
// immutable and shared between commits). File attributes come from the
// object's user.ostreemeta; every entry reports the commit's timestamp as its
// times, since OSTree records no per-file times. Thread-safe: the caches sit
// behind a shared mutex.
#pragma once

#include <map>
#include <memory>
#include <shared_mutex>
#include <unordered_map>

#include "fs/layers/layer.h"
#include "fs/store/objects.h"

namespace buildfs {

class OstreeLayer : public Layer {
 public:
  static Result<std::unique_ptr<OstreeLayer>> Open(const std::string& repo_path,
                                                   const std::string& commit);

  const std::string& key() const override { return key_; }
  bool immutable() const override { return true; }
  Result<LayerEntry> Lookup(const std::string& path) override;
  Status ReadDir(const std::string& path, std::vector<LayerDirent>* out) override;
  Result<UniqueFd> Open(const std::string& path, int flags) override;
  Result<std::string> ReadLink(const std::string& path) override;
  Result<Xattrs> ListXattrs(const std::string& path) override;
  std::optional<RepoObject> ObjectAt(const std::string& path) override;

  const std::string& commit() const { return commit_; }

 private:
  OstreeLayer(ObjectReader reader, std::string commit, CommitInfo info);

  struct Found {
    bool is_dir = false;
    std::string checksum;  // file content, or dirtree
    std::string meta;      // dirmeta
  };
  // Walks from the root tree to `path`; ENOENT when absent, ENOTDIR through a file.
  Result<Found> Find(const std::string& path);
  Result<std::shared_ptr<const DirTree>> Tree(const std::string& checksum);
  Result<std::shared_ptr<const FileObject>> File(const std::string& checksum);
  Result<std::shared_ptr<const ObjectMeta>> DirMeta(const std::string& checksum);
  void FillTimes(struct stat* st) const;

  ObjectReader reader_;
  std::string commit_;
  std::string key_;
  CommitInfo info_;

  std::shared_mutex mu_;  // guards the three caches below
  std::unordered_map<std::string, std::shared_ptr<const DirTree>> trees_;
  std::unordered_map<std::string, std::shared_ptr<const FileObject>> files_;
  std::unordered_map<std::string, std::shared_ptr<const ObjectMeta>> dirmetas_;
};

}  // namespace buildfs
