// Running commands and finding processes for the integration tests.
#include "tests/integration/process.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>

#include "fs/common/fd.h"
#include "tests/integration/throw_errno.h"

namespace buildfs::testing {
namespace {

UniqueFd PidfdOpen(pid_t pid) {
  return UniqueFd(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));
}

// Reads what is available from a non-blocking fd into `out`; false at EOF.
bool DrainFd(int fd, std::string* out) {
  char buf[65536];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0) {
      out->append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) return false;
    if (errno == EINTR) continue;
    return errno == EAGAIN;  // other errors: treat as closed
  }
}

std::vector<std::string> ReadCmdline(const std::string& pid) {
  std::ifstream in("/proc/" + pid + "/cmdline", std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> args;
  size_t start = 0;
  while (start < all.size()) {
    size_t end = all.find('\0', start);
    if (end == std::string::npos) end = all.size();
    args.push_back(all.substr(start, end - start));
    start = end + 1;
  }
  return args;
}

}  // namespace

std::string CommandResult::Describe() const {
  std::ostringstream os;
  os << (timed_out ? "timed out" : "exit " + std::to_string(exit_code)) << "\nstdout: " << out
     << "\nstderr: " << err;
  return os.str();
}

const char* BuildfsBin() {
  // BUILDFS_BIN in the environment runs the tests against another binary
  // (an older build, to see a reproduction fail).
  const char* other = getenv("BUILDFS_BIN");
  return other && *other ? other : BUILDFS_BIN;
}

CommandResult RunCommand(const std::vector<std::string>& argv, const std::string& cwd,
                         int timeout_s) {
  CommandResult result;
  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) ThrowErrno("pipe", "");
  UniqueFd out_read(out_pipe[0]), out_write(out_pipe[1]), err_read(err_pipe[0]),
      err_write(err_pipe[1]);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);

  pid_t pid = fork();
  if (pid < 0) ThrowErrno("fork", argv.at(0));
  if (pid == 0) {
    int null_fd = open("/dev/null", O_RDONLY);
    dup2(null_fd, 0);
    dup2(out_write.get(), 1);
    dup2(err_write.get(), 2);
    if (!cwd.empty() && chdir(cwd.c_str()) != 0) {
      dprintf(2, "harness: chdir %s: %s\n", cwd.c_str(), strerror(errno));
      _exit(127);
    }
    execv(args[0], args.data());
    dprintf(2, "harness: exec %s: %s\n", args[0], strerror(errno));
    _exit(127);
  }
  out_write.reset();
  err_write.reset();
  fcntl(out_read.get(), F_SETFL, O_NONBLOCK);
  fcntl(err_read.get(), F_SETFL, O_NONBLOCK);
  UniqueFd pidfd = PidfdOpen(pid);
  if (!pidfd.valid()) ThrowErrno("pidfd_open", argv[0]);

  // Stop at the child's exit, not at EOF: a daemon the child forked may keep
  // the pipes open for its whole life.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  bool out_open = true, err_open = true;
  for (;;) {
    pollfd fds[3] = {{pidfd.get(), POLLIN, 0},
                     {out_open ? out_read.get() : -1, POLLIN, 0},
                     {err_open ? err_read.get() : -1, POLLIN, 0}};
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    int n = poll(fds, 3, static_cast<int>(std::max<int64_t>(0, left.count())));
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) {
      result.timed_out = true;
      kill(pid, SIGKILL);
    }
    if (out_open && fds[1].revents) out_open = DrainFd(out_read.get(), &result.out);
    if (err_open && fds[2].revents) err_open = DrainFd(err_read.get(), &result.err);
    if (n == 0 || fds[0].revents) break;
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (out_open) DrainFd(out_read.get(), &result.out);
  if (err_open) DrainFd(err_read.get(), &result.err);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

CommandResult RunBuildfs(const std::vector<std::string>& args, const std::string& cwd) {
  std::vector<std::string> argv{BuildfsBin()};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv, cwd);
}

std::vector<pid_t> FindProcesses(
    const std::function<bool(const std::vector<std::string>&)>& match) {
  std::vector<pid_t> pids;
  DIR* d = opendir("/proc");
  if (d == nullptr) ThrowErrno("opendir", "/proc");
  while (dirent* e = readdir(d)) {
    char* end = nullptr;
    long pid = strtol(e->d_name, &end, 10);
    if (*end != '\0' || pid <= 0 || pid == getpid()) continue;
    auto args = ReadCmdline(e->d_name);
    if (!args.empty() && match(args)) pids.push_back(static_cast<pid_t>(pid));
  }
  closedir(d);
  return pids;
}

bool WaitForExit(pid_t pid, int timeout_ms) {
  UniqueFd pidfd = PidfdOpen(pid);
  if (!pidfd.valid()) return errno == ESRCH;
  pollfd p{pidfd.get(), POLLIN, 0};
  int n;
  while ((n = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR) {
  }
  return n > 0;
}

bool WaitUntil(const std::function<bool()>& done, int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    usleep(1000);
  }
  return true;
}

int RunAsUser(uid_t uid, gid_t gid, const std::function<int()>& fn) {
  pid_t pid = fork();
  if (pid < 0) ThrowErrno("fork", "");
  if (pid == 0) {
    if (setgroups(0, nullptr) != 0 || setresgid(gid, gid, gid) != 0 ||
        setresuid(uid, uid, uid) != 0)
      _exit(255);
    _exit(std::clamp(fn(), 0, 254));
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 255;
}

}  // namespace buildfs::testing
