// What every command gets: the workspace, the build it is run for, output mode.
#pragma once

#include <optional>
#include <string>

#include "fs/common/status.h"
#include "fs/store/workspace.h"

namespace buildfs {

// Exit codes, documented in README.md.
enum ExitCode {
  kExitOk = 0,
  kExitFailed = 1,     // the operation failed
  kExitUsage = 2,      // bad usage or bad input (names, paths, options)
  kExitNotFound = 3,   // no workspace, no such build
  kExitBusy = 4,       // already mounted, busy mount point, not mounted
};

// The error a command ends with: its exit code and its one-line message.
struct CommandError {
  int exit_code;
  std::string message;
};

struct GlobalOptions {
  std::string directory;  // -C
};

class Context {
 public:
  // `options` is filled in by the parser before any command runs.
  explicit Context(const GlobalOptions& options) : options_(options) {}
  // The workspace containing -C DIR or the current directory.
  const Workspace& workspace();
  // `name`, or the build whose directory the command runs in.
  std::string BuildName(const std::string& name);
  std::string cwd() const;

 private:
  const GlobalOptions& options_;
  std::optional<Workspace> ws_;
};

// Turns a failed Status into the CommandError thrown to main().
[[noreturn]] void Fail(const Status& st);
inline void Check(const Status& st) {
  if (!st.ok()) Fail(st);
}
template <typename T>
T Check(Result<T> r) {
  if (!r.ok()) Fail(r.status());
  return std::move(r).value();
}

}  // namespace buildfs
