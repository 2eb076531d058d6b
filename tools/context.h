// What every command gets: the workspace, the build it is run for, how long
// work reports progress and is interrupted.
#pragma once

#include <atomic>
#include <optional>
#include <string>
#include <vector>

#include "fs/common/progress.h"
#include "fs/common/status.h"
#include "fs/lifecycle/mounter.h"
#include "fs/store/workspace.h"

namespace buildfs {

// Exit codes, documented in README.md.
enum ExitCode {
  kExitOk = 0,
  kExitFailed = 1,     // the operation failed
  kExitUsage = 2,      // bad usage or bad input (names, paths, options)
  kExitNotFound = 3,   // no workspace, no such build
  kExitBusy = 4,       // already mounted, busy mount point, another command on the build
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
  // `options` is filled in by the parser before any command runs; main()
  // has already changed into -C DIR.
  explicit Context(const GlobalOptions& options) : options_(options) {}
  // The workspace containing the current directory.
  const Workspace& workspace();
  // `name`, or the build whose directory the command runs in.
  std::string BuildName(const std::string& name);
  // The build the command runs inside ("" when none).
  std::string BuildHere();
  // `paths` (relative to the current directory, inside build `name`) as
  // paths relative to the build's root; "" for the root itself. A path
  // outside the build is an error.
  std::vector<std::string> PathsInBuild(const std::string& name, const std::vector<std::string>& paths);
  std::string cwd() const;
  // Moves out of the build directories (to the workspace root), so that an
  // unmount is not refused because of this very process.
  void LeaveBuildDirectory();

  // How the daemon of a background mount is started: this binary, again.
  DaemonLauncher Launcher();
  // Progress on a terminal for work named `what` ("importing"), and Ctrl-C
  // turned into a clean stop of the work: call Done() when it ends.
  Progress LongWork(const std::string& what);
  void Done();

 private:
  const GlobalOptions& options_;
  std::optional<Workspace> ws_;
  bool progress_shown_ = false;
};

// Turns a failed Status into the CommandError thrown to main(); `hint` is
// appended as "; hint: ...".
[[noreturn]] void Fail(const Status& st, const std::string& hint = "");
inline void Check(const Status& st) {
  if (!st.ok()) Fail(st);
}
template <typename T>
T Check(Result<T> r) {
  if (!r.ok()) Fail(r.status());
  return std::move(r).value();
}

// `name` quoted the way git quotes odd file names (core.quotePath): in double
// quotes with C escapes when it holds control characters, quotes,
// backslashes or bytes above 0x7f; unchanged otherwise.
std::string QuotePath(const std::string& name);

}  // namespace buildfs
