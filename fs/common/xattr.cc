#include "fs/common/xattr.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>

namespace buildfs {

Status SetMetadataAt(int dir_fd, const std::string& name, const struct stat& st, const Xattrs& xattrs) {
  for (const auto& [key, value] : xattrs) BUILDFS_RETURN_IF_ERROR(SetXattrAt(dir_fd, name, key, value));
  if (fchownat(dir_fd, name.c_str(), st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) != 0 &&
      !(errno == EPERM && geteuid() != 0)) {
    return Status::FromErrno(name + ": chown");
  }
  if (!S_ISLNK(st.st_mode) && fchmodat(dir_fd, name.c_str(), st.st_mode & 07777, 0) != 0) {
    return Status::FromErrno(name + ": chmod");
  }
  struct timespec times[2] = {st.st_atim, st.st_mtim};
  if (utimensat(dir_fd, name.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) {
    return Status::FromErrno(name + ": utimes");
  }
  return Status::Ok();
}

std::string ProcPath(int dir_fd, const std::string& name) {
  std::string p = "/proc/self/fd/" + std::to_string(dir_fd);
  // With no name, "/." makes the l*xattr calls act on the directory itself
  // rather than on the /proc magic link.
  p += "/" + (name.empty() ? std::string(".") : name);
  return p;
}

Result<Xattrs> ReadXattrsAt(int dir_fd, const std::string& name) {
  std::string path = ProcPath(dir_fd, name);
  std::string names;
  for (;;) {
    ssize_t size = llistxattr(path.c_str(), nullptr, 0);
    if (size < 0) {
      if (errno == ENOTSUP) return Xattrs{};
      return Status::FromErrno(name + ": listxattr");
    }
    names.resize(static_cast<size_t>(size));
    ssize_t got = llistxattr(path.c_str(), names.data(), names.size());
    if (got < 0 && errno == ERANGE) continue;
    if (got < 0) return Status::FromErrno(name + ": listxattr");
    names.resize(static_cast<size_t>(got));
    break;
  }
  Xattrs out;
  for (size_t pos = 0; pos < names.size();) {
    std::string key(names.c_str() + pos);
    pos += key.size() + 1;
    if (key.empty()) continue;
    auto value = GetXattrAt(dir_fd, name, key);
    if (!value.ok()) {
      if (value.code() == ENODATA) continue;  // removed meanwhile
      return value.status();
    }
    out.emplace_back(key, std::move(value.value()));
  }
  std::sort(out.begin(), out.end());
  return out;
}

Result<std::string> GetXattrAt(int dir_fd, const std::string& name, const std::string& key) {
  std::string path = ProcPath(dir_fd, name);
  std::string value;
  for (;;) {
    ssize_t size = lgetxattr(path.c_str(), key.c_str(), nullptr, 0);
    if (size < 0) return Status::FromErrno(errno, name + ": " + key);
    value.resize(static_cast<size_t>(size));
    ssize_t got = lgetxattr(path.c_str(), key.c_str(), value.data(), value.size());
    if (got < 0 && errno == ERANGE) continue;
    if (got < 0) return Status::FromErrno(errno, name + ": " + key);
    value.resize(static_cast<size_t>(got));
    return value;
  }
}

Status SetXattrAt(int dir_fd, const std::string& name, const std::string& key,
                  const std::string& value, int flags) {
  std::string path = ProcPath(dir_fd, name);
  if (lsetxattr(path.c_str(), key.c_str(), value.data(), value.size(), flags) != 0) {
    return Status::FromErrno(name + ": set " + key);
  }
  return Status::Ok();
}

Status RemoveXattrAt(int dir_fd, const std::string& name, const std::string& key) {
  std::string path = ProcPath(dir_fd, name);
  if (lremovexattr(path.c_str(), key.c_str()) != 0) return Status::FromErrno(name + ": remove " + key);
  return Status::Ok();
}

}  // namespace buildfs

namespace buildfs {

bool IsInternalXattr(const std::string& key) {
  return key.rfind("trusted.overlay.", 0) == 0 || key.rfind("trusted.buildfs.", 0) == 0 ||
         key.rfind("user.buildfs.", 0) == 0;
}

}  // namespace buildfs
