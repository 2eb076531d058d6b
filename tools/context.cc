#include "tools/context.h"

#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <memory>

namespace buildfs {
namespace {

// Set by SIGINT while long work runs; the work checks it and stops cleanly.
// (A signal handler can reach nothing else.)
std::atomic<bool> g_interrupted{false};

void OnInterrupt(int) { g_interrupted = true; }

}  // namespace

[[noreturn]] void Fail(const Status& st, const std::string& hint) {
  int code = kExitFailed;
  switch (st.code()) {
    case EINVAL:
    case ENOTDIR:
    case EEXIST:
    case ENAMETOOLONG:
      code = kExitUsage;
      break;
    case ENOENT:
      code = kExitNotFound;
      break;
    case EBUSY:
    case EWOULDBLOCK:
      code = kExitBusy;
      break;
    case ECANCELED:
      code = 130;  // as a shell reports Ctrl-C
      break;
  }
  throw CommandError{code, st.message() + (hint.empty() ? "" : "; hint: " + hint)};
}

std::string Context::cwd() const {
  char buf[PATH_MAX];
  // A dead mount as cwd makes getcwd fail; PWD still names it.
  if (getcwd(buf, sizeof(buf))) return buf;
  const char* pwd = getenv("PWD");
  return pwd ? pwd : ".";
}

const Workspace& Context::workspace() {
  if (!ws_) {
    auto ws = Workspace::Find(cwd());
    if (!ws.ok()) {
      // Inside a dead mount the walk up from cwd fails; try PWD's parents.
      const char* pwd = getenv("PWD");
      if (pwd && options_.directory.empty()) {
        std::string p = pwd;
        while (!ws.ok() && p.size() > 1) {
          p = p.substr(0, p.rfind('/'));
          if (p.empty()) p = "/";
          ws = Workspace::Find(p);
        }
      }
    }
    ws_ = Check(std::move(ws));
  }
  return *ws_;
}

std::string Context::BuildHere() {
  std::string here = workspace().BuildAt(cwd());
  const char* pwd = getenv("PWD");
  if (here.empty() && pwd && options_.directory.empty()) here = workspace().BuildAt(pwd);
  return here;
}

std::string Context::BuildName(const std::string& name) {
  if (!name.empty()) {
    Check(ValidateBuildName(name));
    return name;
  }
  std::string here = BuildHere();
  if (here.empty()) {
    Fail(Status::Error(EINVAL, "no build named"), "give a NAME, or run inside a build directory");
  }
  return here;
}

std::vector<std::string> Context::PathsInBuild(const std::string& name,
                                               const std::vector<std::string>& paths) {
  const std::string root = workspace().mountpoint(name);
  const std::string here = cwd();
  std::vector<std::string> out;
  for (const auto& p : paths) {
    // Lexically, as git does: the build may not be mounted, so no realpath.
    std::string abs = p.empty() || p[0] != '/' ? here + "/" + p : p;
    std::vector<std::string> parts;
    for (size_t pos = 0; pos <= abs.size();) {
      size_t slash = abs.find('/', pos);
      if (slash == std::string::npos) slash = abs.size();
      std::string part = abs.substr(pos, slash - pos);
      pos = slash + 1;
      if (part.empty() || part == ".") continue;
      if (part == "..") {
        if (!parts.empty()) parts.pop_back();
        continue;
      }
      parts.push_back(part);
    }
    std::string norm;
    for (const auto& part : parts) norm += "/" + part;
    if (norm == root) {
      out.push_back("");
    } else if (norm.rfind(root + "/", 0) == 0) {
      out.push_back(norm.substr(root.size() + 1));
    } else {
      Fail(Status::Error(EINVAL, p + ": outside build '" + name + "' (" + root + ")"));
    }
  }
  return out;
}

void Context::LeaveBuildDirectory() {
  if (chdir(workspace().root().c_str()) != 0) Fail(Status::FromErrno(workspace().root()));
}

DaemonLauncher Context::Launcher() {
  std::string root = workspace().root();
  return [root](const std::string& name, bool debug) {
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    std::string exe = n > 0 ? std::string(self, static_cast<size_t>(n)) : "/proc/self/exe";
    std::vector<std::string> argv = {exe, "-C", root, "mount", "--daemon", name};
    if (debug) argv.push_back("--debug");
    return argv;
  };
}

Progress Context::LongWork(const std::string& what) {
  struct sigaction sa = {};
  sa.sa_handler = OnInterrupt;
  sa.sa_flags = SA_RESETHAND;  // a second Ctrl-C stops the process at once
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  Progress progress;
  progress.cancel = &g_interrupted;
  if (isatty(2)) {
    auto last = std::make_shared<std::chrono::steady_clock::time_point>();
    progress.report = [this, what, last](uint64_t done, uint64_t total) {
      auto now = std::chrono::steady_clock::now();
      if (now - *last < std::chrono::milliseconds(100)) return;
      *last = now;
      progress_shown_ = true;
      if (total) {
        std::fprintf(stderr, "\r%s: %llu of %llu", what.c_str(), static_cast<unsigned long long>(done),
                     static_cast<unsigned long long>(total));
      } else {
        std::fprintf(stderr, "\r%s: %llu entries", what.c_str(), static_cast<unsigned long long>(done));
      }
    };
  }
  return progress;
}

void Context::Done() {
  if (progress_shown_) std::fprintf(stderr, "\r\033[K");
  progress_shown_ = false;
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
}

std::string QuotePath(const std::string& name) {
  bool odd = false;
  for (unsigned char c : name) odd |= c < 0x20 || c == 0x7f || c >= 0x80 || c == '"' || c == '\\';
  if (!odd) return name;
  std::string out = "\"";
  for (unsigned char c : name) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\a': out += "\\a"; break;
      case '\b': out += "\\b"; break;
      case '\t': out += "\\t"; break;
      case '\n': out += "\\n"; break;
      case '\v': out += "\\v"; break;
      case '\f': out += "\\f"; break;
      case '\r': out += "\\r"; break;
      default:
        if (c < 0x20 || c >= 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\%03o", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

}  // namespace buildfs
