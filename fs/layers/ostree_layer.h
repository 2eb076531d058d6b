// OstreeLayer: an OSTree commit read lazily, straight from repo/objects.
//
// Nothing is checked out and mounting walks nothing: a dirtree is loaded the
// first time a path under it is looked up, and cached by checksum (trees are
// immutable and shared between commits). File attributes come from the
// object's user.ostreemeta; times (and recorded inode numbers) from the
// directory's times table (entry_table.h), with ctime shown equal to mtime;
// a commit without tables shows its own time. Thread-safe: the caches sit
// behind a shared mutex.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <shared_mutex>
#include <unordered_map>

#include "fs/layers/layer.h"
#include "fs/store/entry_table.h"
#include "fs/store/objects.h"

namespace buildfs {

class OstreeLayer : public Layer {
 public:
  static Result<std::unique_ptr<OstreeLayer>> Open(const std::string& repo_path,
                                                   const std::string& commit);

  // The key of every commit layer: inode numbers derived from paths do not
  // change when a build moves to a new commit.
  static constexpr char kKey[] = "ostree";

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

  // A directory of the commit as the mount shows it.
  struct Dir {
    std::shared_ptr<const DirTree> tree;
    std::shared_ptr<const ObjectMeta> meta;
    EntryTable times;         // [0] the directory, then its files; empty: none recorded
    bool times_file = false;  // tree's kTimesFile is the table, not an entry
  };
  struct Found {
    bool is_dir = false;
    std::string checksum;  // file content, or dirtree
    std::string meta;      // dirmeta
    std::shared_ptr<const Dir> parent;  // files: the directory holding them
    size_t index = 0;                   // files: position in parent->tree->files
  };
  // Walks from the root tree to `path`; ENOENT when absent, ENOTDIR through a file.
  Result<Found> Find(const std::string& path);
  Result<std::shared_ptr<const Dir>> LoadDir(const std::string& tree, const std::string& meta);
  Result<std::shared_ptr<const DirTree>> Tree(const std::string& checksum);
  Result<std::shared_ptr<const FileObject>> File(const std::string& checksum);
  Result<std::shared_ptr<const ObjectMeta>> DirMeta(const std::string& checksum);
  // The position of a file's record in its directory's table, and the record
  // (nullptr for a directory or when the commit has none).
  size_t RecordIndex(const Found& found) const;
  const EntryRecord* RecordOf(const Found& found) const;
  // The times of a directory, or of file `index` of `dir`.
  void FillTimes(const Dir& dir, size_t record, struct stat* st, uint64_t* ino) const;

  ObjectReader reader_;
  std::string commit_;
  std::string key_;
  CommitInfo info_;

  // Objects loaded before, bounded: the overlay keeps what it learned of the
  // entries the kernel holds, so these serve walks (the trees on the way)
  // and files that share an object. Evicts what was not used since the
  // last sweep (second chance). Thread-safe: hits take the lock shared.
  template <typename T>
  class ObjectCache {
   public:
    explicit ObjectCache(size_t capacity) : capacity_(capacity) {}
    template <typename Load>
    Result<std::shared_ptr<const T>> Get(const std::string& key, Load load);

   private:
    struct Slot {
      std::shared_ptr<const T> value;
      mutable std::atomic<bool> used{true};
    };
    size_t capacity_;
    std::shared_mutex mu_;
    std::unordered_map<std::string, Slot> map_;
  };

  ObjectCache<DirTree> trees_{512};
  ObjectCache<FileObject> files_{1024};
  ObjectCache<ObjectMeta> dirmetas_{512};
  ObjectCache<Dir> dirs_{512};  // by tree + meta
};

}  // namespace buildfs
