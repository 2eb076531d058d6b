// Relative-path helpers and safe opening beneath a root directory.
//
// Paths inside a layer are relative, '/'-separated, without "." or ".."
// components; "" names the layer root. Every open goes through openat2 with
// RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS, so no name
// a build controls can lead the daemon outside the layer. Thread-safe.
#pragma once

#include <sys/stat.h>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fs/common/fd.h"
#include "fs/common/status.h"

namespace buildfs {

// "a/b" + "c" -> "a/b/c"; "" + "c" -> "c".
std::string JoinPath(std::string_view dir, std::string_view name);
// "a/b/c" -> {"a/b", "c"}; "c" -> {"", "c"}.
std::pair<std::string, std::string> SplitPath(std::string_view path);
// True when `name` is one path component a directory can hold.
bool IsValidName(std::string_view name);

// Opens `path` (relative, may be "") beneath `root_fd` with `flags`; no
// component may be a symlink. Returns the fd or an errno Status.
Result<UniqueFd> OpenBeneath(int root_fd, const std::string& path, int flags, mode_t mode = 0);
// Opens the directory `path` beneath `root_fd` (O_DIRECTORY|O_RDONLY|O_CLOEXEC).
Result<UniqueFd> OpenDirBeneath(int root_fd, const std::string& path);
// Opens the parent directory of `path` beneath `root_fd` and returns it with the
// last component, for *at() calls with AT_SYMLINK_NOFOLLOW.
struct ParentRef {
  UniqueFd dir;
  std::string name;
};
Result<ParentRef> OpenParentBeneath(int root_fd, const std::string& path);

// True when the directory at `path` has any entry.
bool DirHasEntries(const std::string& path);
// The names in the directory `dir_fd` (without "." and ".."); `dir_fd` stays open.
Result<std::vector<std::string>> ListNamesAt(int dir_fd);
// The names in the directory at `path`.
Result<std::vector<std::string>> ListNames(const std::string& path);

// Copies the rest of `from` into `to` from their current offsets: with
// copy_file_range where the filesystems allow (the kernel may share extents),
// else with read and write (across filesystems).
Status CopyFileData(int from, int to);
// Copies `len` bytes at `from_off` of `from` to `to_off` of `to`
// (copy_file_range, with the same fallback); EIO when `from` ends early.
Status CopyDataRange(int from, off_t from_off, int to, off_t to_off, size_t len);
// Writes `data` to `path` atomically: a temporary file beside it, fsync, rename.
Status WriteFileAtomic(const std::string& path, std::string_view data);
// Reads a whole file.
Result<std::string> ReadFile(const std::string& path);
// The whole content of an open file, read with pread from offset 0.
Result<std::string> ReadAllAt(int fd);
// Removes a tree below an fd-relative path without following symlinks.
Status RemoveTreeAt(int dir_fd, const std::string& name);
// Removes `path` and everything below it (no error when absent).
Status RemoveTree(const std::string& path);

}  // namespace buildfs
