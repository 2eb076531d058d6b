// Read-only access to the objects of a bare-user OSTree repository.
//
// The filesystem reads commits lazily and must not take OSTree's locks or
// allocate GObjects on its hot path, so this reader opens the object files in
// repo/objects/XX/ directly: .dirtree, .dirmeta and .commit are serialized
// GVariants, and a .file object is the file's bytes with its real uid, gid,
// mode and xattrs in the `user.ostreemeta` xattr. Objects are immutable, so
// nothing here needs a lock: an ObjectReader is safe to share between threads.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "fs/common/fd.h"
#include "fs/common/status.h"
#include "fs/common/xattr.h"

namespace buildfs {

// uid, gid, mode (with the file type bits) and xattrs of an object.
struct ObjectMeta {
  uid_t uid = 0;
  gid_t gid = 0;
  mode_t mode = 0;
  Xattrs xattrs;
};

struct DirTree {
  struct File {
    std::string name;
    std::string checksum;  // content object, hex
  };
  struct Dir {
    std::string name;
    std::string tree;  // dirtree object, hex
    std::string meta;  // dirmeta object, hex
  };
  std::vector<File> files;  // sorted by name (OSTree keeps them so)
  std::vector<Dir> dirs;    // sorted by name
};

struct CommitInfo {
  std::string root_tree;
  std::string root_meta;
  std::string parent;  // "" when none
  std::string subject;
  uint64_t timestamp = 0;  // seconds since the epoch
};

// A content object: its size in bytes (for a symlink: of the target) and meta.
struct FileObject {
  uint64_t size = 0;
  ObjectMeta meta;
  std::string symlink_target;  // set for symlinks
};

class ObjectReader {
 public:
  // Opens `repo_path`/objects. The repo must be in bare-user mode.
  static Result<ObjectReader> Open(const std::string& repo_path);

  Result<DirTree> LoadDirTree(const std::string& checksum) const;
  Result<ObjectMeta> LoadDirMeta(const std::string& checksum) const;
  Result<CommitInfo> LoadCommit(const std::string& checksum) const;
  Result<FileObject> StatFile(const std::string& checksum) const;
  // Opens the content object for reading (O_RDONLY|O_NOFOLLOW).
  Result<UniqueFd> OpenFile(const std::string& checksum, int flags = 0) const;

  // objects/XX/YYYY.ext, relative to the objects directory.
  static std::string ObjectPath(const std::string& checksum, const char* ext);

 private:
  explicit ObjectReader(UniqueFd objects) : objects_(std::move(objects)) {}
  Result<std::string> ReadObject(const std::string& checksum, const char* ext) const;

  UniqueFd objects_;
};

// OSTree stores only regular files and symlinks. Fifos, sockets and device
// nodes are stored as empty regular files carrying this xattr, whose value is
// "fifo", "socket", "chr MAJOR MINOR" or "blk MAJOR MINOR"; the filesystem
// shows them as what they were and hides the xattr.
inline constexpr char kSpecialXattr[] = "user.buildfs.special";

std::string EncodeSpecial(mode_t mode, dev_t rdev);
// Fills the file type bits of `*mode` and `*rdev` from an encoded value.
bool DecodeSpecial(const std::string& value, mode_t* mode, dev_t* rdev);

// Parses the user.ostreemeta / dirmeta form (uuua(ayay)), big-endian fields.
Result<ObjectMeta> ParseObjectMeta(const std::string& data);

}  // namespace buildfs
