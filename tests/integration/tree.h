// Trees for the integration tests: throwing file helpers, the sample trees
// committed as bases, exact copies, and snapshots compared entry by entry.
// Errors throw std::runtime_error (see throw_errno.h). Not thread-safe.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace buildfs::testing {

// ------------------------------------------------------------- file system

// Thin throwing wrappers for test setup.
void WriteFile(const std::string& path, std::string_view data, mode_t mode = 0644);
std::string ReadFile(const std::string& path);
void MakeDir(const std::string& path, mode_t mode = 0755);
// Makes `root` and, below it, each (relative path, content) file with the
// directories on its way (0755); a path ending in "/" is a directory.
void MakeTree(const std::string& root, const std::vector<std::pair<std::string, std::string>>& entries);
void MakeSymlink(const std::string& target, const std::string& path);
void SetXattr(const std::string& path, const std::string& name, std::string_view value);
struct stat Lstat(const std::string& path);
// Returns errno of lstat(path), 0 when it exists.
int LstatErrno(const std::string& path);
// Names in a directory as readdir returns them (without "." and ".."),
// duplicates kept, in readdir order.
std::vector<std::string> ListDir(const std::string& path);
// `n` deterministic pseudo-random bytes from `seed`.
std::string RandomBytes(uint64_t seed, size_t n);

// Copies a tree exactly: type, mode, owner, content, symlink targets, user.*
// xattrs, fifos, and hard links within the tree. Times are not copied.
void CopyTree(const std::string& from, const std::string& to);

// The tree the mount tests commit as a build's base; see tree.cc for the
// list of what it holds. `root` must not exist. No fifo: OSTree commits only
// regular files, symlinks and directories.
void MakeSampleTree(const std::string& root);

// A random tree of about `files` regular files spread over `dirs` nested
// directories (plus a few symlinks and xattrs), fixed by `seed`. No hard links,
// so every nlink is 1, as in an OSTree commit.
void MakeRandomTree(const std::string& root, uint64_t seed, int dirs, int files);

// --------------------------------------------------------------- snapshots

struct Entry {
  mode_t mode = 0;  // type and permission bits
  uid_t uid = 0;
  gid_t gid = 0;
  off_t size = 0;
  nlink_t nlink = 0;
  ino_t ino = 0;
  std::string data;                           // file content or symlink target
  std::map<std::string, std::string> xattrs;  // user.* only
};

struct Snapshot {
  std::map<std::string, Entry> entries;  // by path relative to the root
  std::vector<std::string> problems;     // duplicates in readdir, wrong d_type, errors
};

struct ScanOptions {
  // Top-level names not scanned (the mount shows the workspace cache at "cache").
  std::set<std::string> ignore_top;
};

// Reads a whole tree below `root` (the root itself is not an entry).
Snapshot ScanTree(const std::string& root, const ScanOptions& options = {});

struct CompareOptions {
  bool compare_nlink = false;  // for non-directories
};

// Empty when the trees match; otherwise one line per difference (capped).
// Times, directory sizes and directory link counts are never compared.
std::string DiffSnapshots(const Snapshot& expected, const Snapshot& actual,
                          const CompareOptions& options = {});
std::string DiffTrees(const std::string& expected, const std::string& actual,
                      const ScanOptions& actual_scan = {}, const CompareOptions& options = {});

}  // namespace buildfs::testing
