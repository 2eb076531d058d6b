// The Layer interface: one read-only view of a tree, addressed by relative path.
//
// The overlay stacks layers and never knows which backend it talks to: an
// OSTree commit (ostree_layer.h) or a directory on disk (dir_layer.h, used for
// the shared cache/, for frozen layers and, on its read side, for the upper).
// Paths are relative to the layer root ("" is the root) and already validated
// by the caller (no "." or ".." components). Implementations are thread-safe.
#pragma once

#include <sys/stat.h>
#include <sys/statvfs.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "fs/common/fd.h"
#include "fs/common/status.h"
#include "fs/common/xattr.h"

namespace buildfs {

// What a layer holds at a path.
struct LayerEntry {
  enum Kind { kAbsent, kWhiteout, kPresent };
  Kind kind = kAbsent;
  struct stat st {};       // type and mode bits, owner, size, times, nlink; st_dev/st_ino real
  bool opaque = false;     // a directory that hides everything below it
  std::string redirect;    // a renamed directory: its path in the layers below ("" = none)
  uint64_t ino = 0;        // inode number recorded at copy-up (0 = none)
  bool linked = false;     // given a second name in an upper (upper_format.h)
};

// One name in a layer's directory listing.
struct LayerDirent {
  std::string name;
  bool whiteout = false;
  bool is_dir = false;
};

// A layer entry that is an object of the repository (for commit: reuse, don't rehash).
struct RepoObject {
  bool is_dir = false;
  std::string checksum;  // file content object, or dirtree
  std::string meta;      // dirmeta (directories)
};

class Layer {
 public:
  virtual ~Layer() = default;

  // A stable name for inode numbering, e.g. "ostree:<commit>" or "dir:<path>".
  virtual const std::string& key() const = 0;
  // True when the contents never change while mounted (repo commits, frozen
  // layers): the kernel may cache them for long.
  virtual bool immutable() const = 0;
  // False when the layer shows only a subtree (the cache at "cache") and its
  // root stands in for directories it does not really hold.
  virtual bool HasRoot() const { return true; }
  // False when the layer can hold nothing at `path` or below it (it shows
  // only another subtree).
  virtual bool Covers(const std::string& /*path*/) const { return true; }
  // False when the directory `dir` holds nothing of this layer's own but
  // the one name on the way to the subtree it shows.
  virtual bool HoldsEntriesIn(const std::string& /*dir*/) const { return true; }

  virtual Result<LayerEntry> Lookup(const std::string& path) = 0;
  // The names in the directory at `path`, whiteouts included, in no particular order.
  virtual Status ReadDir(const std::string& path, std::vector<LayerDirent>* out) = 0;
  // Opens a regular file for reading.
  virtual Result<UniqueFd> Open(const std::string& path, int flags) = 0;
  virtual Result<std::string> ReadLink(const std::string& path) = 0;
  // The entry's visible xattrs (internal ones removed), sorted by name.
  virtual Result<Xattrs> ListXattrs(const std::string& path) = 0;
  // Whether the layer keeps bases, so that its files may be chunked
  // (chunked_file.h), and their directory (an invalid fd when it has none).
  virtual bool HasBases() { return false; }
  virtual Result<UniqueFd> OpenBases() { return UniqueFd(); }
  // The repository object behind `path`, when the layer is a commit.
  virtual std::optional<RepoObject> ObjectAt(const std::string& /*path*/) { return std::nullopt; }
};

}  // namespace buildfs
