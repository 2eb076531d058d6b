// Test helpers for the fs/ unit tests: an RAII temporary directory and small
// file-system helpers to build and inspect real trees.
//
// Helpers report errors by throwing std::runtime_error with the path and the
// errno text; GoogleTest turns an escaped exception into a test failure, so
// tests stay free of error plumbing for the steps that are not under test.
// Not thread-safe: meant for one test at a time.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace buildfs::testing {

// A fresh directory under /var/tmp (mkdtemp), removed with everything below
// it when the object goes away. Not copyable.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // path() + "/" + rel.
  std::string Path(const std::string& rel) const;

 private:
  std::string path_;
};

// Writes `content` to `path` (created or truncated) and sets its mode exactly
// (no umask).
void WriteFile(const std::string& path, const std::string& content, mode_t mode = 0644);
// The whole content of the file at `path`.
std::string ReadFile(const std::string& path);
// Creates `path` and its missing parents; sets the mode of the last one exactly.
void MakeDirs(const std::string& path, mode_t mode = 0755);
void MakeSymlink(const std::string& target, const std::string& path);
// A character device 0/0: the overlayfs whiteout marker.
void MakeWhiteoutNode(const std::string& path);
void SetXattr(const std::string& path, const std::string& key, const std::string& value);
// The xattr's value, or nullopt when the entry does not have it (lgetxattr).
std::optional<std::string> GetXattr(const std::string& path, const std::string& key);
struct stat Lstat(const std::string& path);
bool Exists(const std::string& path);
// The names in a directory, without "." and "..", sorted.
std::vector<std::string> ListDir(const std::string& path);

// Builds a tree below `root`: a name ending in '/' is a directory, anything
// else a regular file (mode 0644) with the given content. Parents are created.
//   MakeTree(dir, {{"a/", ""}, {"a/b.txt", "hello"}});
void MakeTree(const std::string& root,
              const std::vector<std::pair<std::string, std::string>>& entries);

// Runs `argv` (argv[0] is looked up in PATH), stdin from /dev/null; returns
// the exit status (128 + signal when killed) and fills `output` with
// stdout and stderr together.
int RunProgram(const std::vector<std::string>& argv, std::string* output);

}  // namespace buildfs::testing
