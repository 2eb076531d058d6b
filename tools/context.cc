#include "tools/context.h"

#include <limits.h>
#include <unistd.h>

namespace buildfs {

[[noreturn]] void Fail(const Status& st) {
  int code = kExitFailed;
  switch (st.code()) {
    case EINVAL:
    case ENOTDIR:
    case EEXIST:
      code = kExitUsage;
      break;
    case ENOENT:
      code = kExitNotFound;
      break;
    case EBUSY:
    case EWOULDBLOCK:
      code = kExitBusy;
      break;
  }
  throw CommandError{code, st.message()};
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
    std::string start = options_.directory.empty() ? cwd() : options_.directory;
    auto ws = Workspace::Find(start);
    if (!ws.ok() && !options_.directory.empty() && ws.code() == ENOENT) {
      Fail(Status::Error(ENOENT, options_.directory + ": not a buildfs workspace"));
    }
    if (!ws.ok() && options_.directory.empty()) {
      // Inside a dead mount the walk up from cwd fails; try PWD's parents.
      const char* pwd = getenv("PWD");
      if (pwd) {
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

std::string Context::BuildName(const std::string& name) {
  if (!name.empty()) {
    Check(ValidateBuildName(name));
    return name;
  }
  const char* pwd = getenv("PWD");
  std::string here = workspace().BuildAt(cwd());
  if (here.empty() && pwd) here = workspace().BuildAt(pwd);
  if (here.empty()) {
    Fail(Status::Error(EINVAL, "no build named; hint: give a NAME, or run inside a build directory"));
  }
  return here;
}

}  // namespace buildfs
