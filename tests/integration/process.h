// Running the buildfs binary and other commands, finding and waiting for
// processes, and running code as another user. Not thread-safe.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

namespace buildfs::testing {

// ---------------------------------------------------------------- commands

struct CommandResult {
  int exit_code = -1;  // exit status; 128 + signal when killed by one
  bool timed_out = false;
  std::string out;
  std::string err;

  bool ok() const { return exit_code == 0 && !timed_out; }
  // "exit 1\nstdout: ...\nstderr: ..." for assertion messages.
  std::string Describe() const;
};

// Runs argv[0] (a path; PATH is not searched) with `argv`, in `cwd` when it is
// not empty, stdin from /dev/null. Returns when the process exits, even when
// a daemon it started still holds the output pipes. Killed after `timeout_s`.
CommandResult RunCommand(const std::vector<std::string>& argv, const std::string& cwd = {},
                         int timeout_s = 120);

// RunCommand(BUILDFS_BIN + args).
CommandResult RunBuildfs(const std::vector<std::string>& args, const std::string& cwd = {});

// Path of the buildfs binary under test.
const char* BuildfsBin();

// --------------------------------------------------------------- processes

// Pids (other than this process) whose command line `match` accepts.
std::vector<pid_t> FindProcesses(const std::function<bool(const std::vector<std::string>&)>& match);
// Waits for any process (not only a child) to exit, via a pidfd. True when it
// exited (or never existed) within `timeout_ms`.
bool WaitForExit(pid_t pid, int timeout_ms);

// Polls `done` every few milliseconds until it holds (true) or `timeout_ms`
// passed (false): for conditions another process brings about.
bool WaitUntil(const std::function<bool()>& done, int timeout_ms);

// Runs `fn` in a forked child with real, effective and saved uid/gid set to
// `uid`/`gid` and no supplementary groups. Returns fn's result (0..254), or
// 255 when switching users failed.
int RunAsUser(uid_t uid, gid_t gid, const std::function<int()>& fn);

}  // namespace buildfs::testing
