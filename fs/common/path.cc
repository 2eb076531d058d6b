#include "fs/common/path.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

namespace buildfs {

std::string JoinPath(std::string_view dir, std::string_view name) {
  if (dir.empty()) return std::string(name);
  if (name.empty()) return std::string(dir);
  std::string out(dir);
  out += '/';
  out += name;
  return out;
}

std::pair<std::string, std::string> SplitPath(std::string_view path) {
  size_t slash = path.rfind('/');
  if (slash == std::string_view::npos) return {"", std::string(path)};
  return {std::string(path.substr(0, slash)), std::string(path.substr(slash + 1))};
}

bool IsValidName(std::string_view name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string_view::npos &&
         name.find('\0') == std::string_view::npos && name.size() <= 255;
}

namespace {

// The kernel refuses paths of PATH_MAX bytes and more in one call.
constexpr size_t kMaxPathPerCall = 2048;

}  // namespace

Result<UniqueFd> OpenBeneath(int root_fd, const std::string& path, int flags, mode_t mode) {
  if (path.size() >= kMaxPathPerCall) {
    // A deep entry: its directories are opened a stretch at a time, each
    // beneath the one before (so still beneath the root, without symlinks).
    size_t cut = path.rfind('/', kMaxPathPerCall);
    if (cut == std::string::npos || cut == 0)
      return Status::Error(ENAMETOOLONG, path.substr(0, 64) + "...");
    BUILDFS_ASSIGN_OR_RETURN(UniqueFd dir,
                             OpenBeneath(root_fd, path.substr(0, cut), O_RDONLY | O_DIRECTORY));
    return OpenBeneath(dir.get(), path.substr(cut + 1), flags, mode);
  }
  struct open_how how = {};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  const char* p = path.empty() ? "." : path.c_str();
  for (;;) {
    long fd = syscall(SYS_openat2, root_fd, p, &how, sizeof(how));
    if (fd >= 0) return UniqueFd(static_cast<int>(fd));
    if (errno == EAGAIN || errno == EINTR) continue;  // a concurrent rename; retry
    if (errno == EPERM && (how.flags & O_NOATIME)) {
      how.flags &= ~static_cast<uint64_t>(O_NOATIME);  // not the file's owner: atime it is
      continue;
    }
    return Status::FromErrno(path.empty() ? std::string(".") : path);
  }
}

Result<UniqueFd> OpenDirBeneath(int root_fd, const std::string& path) {
  return OpenBeneath(root_fd, path, O_RDONLY | O_DIRECTORY);
}

Result<ParentRef> OpenParentBeneath(int root_fd, const std::string& path) {
  auto [dir, name] = SplitPath(path);
  BUILDFS_ASSIGN_OR_RETURN(UniqueFd fd, OpenDirBeneath(root_fd, dir));
  return ParentRef{std::move(fd), name};
}

// Copies `len` bytes at `from_off` of `from` to `to_off` of `to`.
Status CopyDataRange(int from, off_t from_off, int to, off_t to_off, size_t len) {
  while (len > 0) {
    ssize_t n = copy_file_range(from, &from_off, to, &to_off, len, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP)) {
      char buf[1 << 16];
      n = pread(from, buf, std::min(len, sizeof(buf)), from_off);
      if (n < 0 && errno == EINTR) continue;
      if (n > 0 && pwrite(to, buf, static_cast<size_t>(n), to_off) != n) {
        return Status::FromErrno("copying data");
      }
      from_off += n;
      to_off += n;
    }
    if (n < 0) return Status::FromErrno("copying data");
    if (n == 0) return Status::Error(EIO, "copying data: the source ends early");
    len -= static_cast<size_t>(n);
  }
  return Status::Ok();
}

Status CopyFileData(int from, int to) {
  for (;;) {
    ssize_t n = copy_file_range(from, nullptr, to, nullptr, 1 << 30, 0);
    if (n == 0) return Status::Ok();
    if (n > 0) continue;
    if (errno == EINTR) continue;
    if (errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP) {
      return Status::FromErrno("copying data");
    }
    // Fallback for filesystems without copy_file_range between them.
    char buf[1 << 16];
    for (;;) {
      ssize_t got = read(from, buf, sizeof(buf));
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) return Status::FromErrno("reading data");
      if (got == 0) return Status::Ok();
      for (ssize_t done = 0; done < got;) {
        ssize_t w = write(to, buf + done, static_cast<size_t>(got - done));
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return Status::FromErrno("writing data");
        done += w;
      }
    }
  }
}

Status WriteFileAtomic(const std::string& path, std::string_view data) {
  std::string tmp = path + ".tmp." + std::to_string(getpid());
  UniqueFd fd(open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd.valid()) return Status::FromErrno(tmp);
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = write(fd.get(), data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      Status st = Status::FromErrno(tmp);
      unlink(tmp.c_str());
      return st;
    }
    done += static_cast<size_t>(n);
  }
  if (fsync(fd.get()) != 0 || rename(tmp.c_str(), path.c_str()) != 0) {
    Status st = Status::FromErrno(path);
    unlink(tmp.c_str());
    return st;
  }
  return Status::Ok();
}

Result<std::string> ReadFile(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Status::FromErrno(path);
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = read(fd.get(), buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno(path);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

Result<std::string> ReadAllAt(int fd) {
  std::string out;
  char buf[65536];
  for (off_t off = 0;;) {
    ssize_t n = pread(fd, buf, sizeof(buf), off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno("read");
    if (n == 0) return out;
    out.append(buf, static_cast<size_t>(n));
    off += n;
  }
}

Result<std::vector<std::string>> ListNamesAt(int dir_fd) {
  int fd = fcntl(dir_fd, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return Status::FromErrno("listing a directory");
  DIR* d = fdopendir(fd);
  if (!d) {
    Status st = Status::FromErrno("listing a directory");
    close(fd);
    return st;
  }
  rewinddir(d);  // the dup shares its offset with dir_fd
  std::vector<std::string> names;
  while (struct dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(std::move(n));
  }
  closedir(d);
  return names;
}

Result<std::vector<std::string>> ListNames(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return Status::FromErrno(path);
  return ListNamesAt(fd.get());
}

bool DirHasEntries(const std::string& path) {
  auto names = ListNames(path);
  return names.ok() && !names->empty();
}

Status RemoveTreeAt(int dir_fd, const std::string& name) {
  struct stat st;
  if (fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return errno == ENOENT ? Status::Ok() : Status::FromErrno(name);
  }
  if (S_ISDIR(st.st_mode)) {
    UniqueFd fd(openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd.valid()) return Status::FromErrno(name);
    BUILDFS_ASSIGN_OR_RETURN(auto names, ListNamesAt(fd.get()));
    Status st_out;
    for (const auto& n : names) {
      Status s = RemoveTreeAt(fd.get(), n);
      if (!s.ok() && st_out.ok()) st_out = s;
    }
    BUILDFS_RETURN_IF_ERROR(st_out);
    if (unlinkat(dir_fd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
      return Status::FromErrno(name);
    }
    return Status::Ok();
  }
  if (unlinkat(dir_fd, name.c_str(), 0) != 0 && errno != ENOENT) return Status::FromErrno(name);
  return Status::Ok();
}

Status RemoveTree(const std::string& path) { return RemoveTreeAt(AT_FDCWD, path); }

}  // namespace buildfs
