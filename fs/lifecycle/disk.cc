#include "fs/lifecycle/disk.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <map>

#include "fs/common/fd.h"
#include "fs/common/path.h"
#include "fs/layers/chunked_file.h"
#include "fs/layers/upper_format.h"
#include "fs/lifecycle/build_lock.h"
#include "fs/lifecycle/build_view.h"
#include "fs/lifecycle/changes.h"
#include "fs/lifecycle/stack.h"

namespace buildfs {
namespace {

constexpr char kDisksDir[] = "/disks";
constexpr char kSuffix[] = ".img";

std::string DisksPath(const Workspace& ws) { return ws.cache_path() + kDisksDir; }

// Runs `args` and waits; its stderr's last line says why it failed.
Status Run(const std::vector<std::string>& args) {
  int err[2];
  if (pipe2(err, O_CLOEXEC) != 0) return Status::FromErrno("pipe");
  pid_t pid = fork();
  if (pid < 0) return Status::FromErrno("fork");
  if (pid == 0) {
    dup2(err[1], STDERR_FILENO);
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) {
      dup2(devnull, STDIN_FILENO);
      dup2(devnull, STDOUT_FILENO);
    }
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execvp(argv[0], argv.data());
    _exit(127);
  }
  close(err[1]);
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = read(err[0], buf, sizeof(buf))) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  close(err[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return Status::Ok();
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
    return Status::Error(ENOENT, args[0] + " not found (Debian package e2fsprogs)");
  }
  while (!text.empty() && text.back() == '\n') text.pop_back();
  const size_t line = text.rfind('\n');
  std::string why = line == std::string::npos ? text : text.substr(line + 1);
  if (why.empty()) why = WIFSIGNALED(status) ? "killed" : "failed";
  return Status::Error(EIO, args[0] + ": " + why);
}

Status FsyncPath(const std::string& path, int flags) {
  UniqueFd fd(open(path.c_str(), flags | O_CLOEXEC));
  if (!fd.valid() || fsync(fd.get()) != 0) return Status::FromErrno(path);
  return Status::Ok();
}

// Moves the finished `tmp` to `dest`: never over an existing image (create)
// or over it (put), then makes the rename durable.
Status Publish(const std::string& tmp, const std::string& dest, bool replace) {
  BUILDFS_RETURN_IF_ERROR(FsyncPath(tmp, O_RDONLY));
  const unsigned flags = replace ? 0 : RENAME_NOREPLACE;
  if (renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, dest.c_str(), flags) != 0) {
    return Status::FromErrno(dest);
  }
  return FsyncPath(SplitPath(dest).first, O_RDONLY | O_DIRECTORY);
}

// Where a build keeps its own version of cache/disks/DISK.img: the topmost
// of its private layers that holds the name or hides it.
struct PrivateVersion {
  bool found = false;
  bool deleted = false;
  std::string path;
  std::string layer;   // the private layer holding it
  uint64_t bytes = 0;  // disk space of every private copy
};

// `dirs`: the build's private layers, upper first (PrivateDirs).
PrivateVersion FindPrivate(const std::vector<std::string>& dirs, const std::string& disk) {
  PrivateVersion v;
  bool hidden = false;  // a layer above deleted it or made cache/ or cache/disks/ new
  for (const auto& dir : dirs) {
    struct stat st;
    const std::string path = dir + "/cache/disks/" + disk + kSuffix;
    if (lstat(path.c_str(), &st) == 0) {
      if (S_ISREG(st.st_mode)) {
        v.bytes += static_cast<uint64_t>(st.st_blocks) * 512;
        if (!v.found && !hidden) {
          v.found = true;
          v.path = path;
          v.layer = dir;
        }
      } else if (!v.found && !hidden && S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0)) {
        v.deleted = true;
      }
      hidden = true;
    }
    for (const char* d : {"/cache", "/cache/disks"}) {
      char value[2];
      if (lgetxattr((dir + d).c_str(), kOpaqueXattr, value, sizeof(value)) == 1 &&
          value[0] == 'y') {
        hidden = true;
      }
    }
  }
  return v;
}

uint64_t SizeOf(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

}  // namespace

std::string DiskPath(const Workspace& ws, const std::string& disk) {
  return DisksPath(ws) + "/" + disk + kSuffix;
}

Status ValidateDiskName(const std::string& disk) { return ValidateBuildName(disk, "disk name"); }

Status CreateDisk(const Workspace& ws, const std::string& disk, uint64_t size,
                  const DiskSource& source, const Progress& progress) {
  BUILDFS_RETURN_IF_ERROR(ValidateDiskName(disk));
  if (size < (uint64_t{1} << 20)) return Status::Error(EINVAL, "disk size: at least 1M");
  const std::string dest = DiskPath(ws, disk);
  struct stat st;
  if (lstat(dest.c_str(), &st) == 0) return Status::Error(EEXIST, dest + ": already exists");
  CollectLeftovers(ws);
  if (mkdir(DisksPath(ws).c_str(), 0755) != 0 && errno != EEXIST)
    return Status::FromErrno(DisksPath(ws));

  // The tree to put in it, as a plain directory.
  std::string tree = source.dir;
  std::string exported;
  auto cleanup = [&] {
    if (!exported.empty()) RemoveTree(exported);
  };
  if (source.kind != DiskSource::kDirectory) {
    exported = ws.state_path() + "/disk-tree-" + disk + "-" + std::to_string(getpid());
    RemoveTree(exported);
    Status st_export = ExportBuild(ws, source.build, exported, progress);
    if (!st_export.ok()) {
      cleanup();
      return st_export;
    }
    tree = exported;
    if (source.kind == DiskSource::kBuildResult) {
      tree = exported + "/result";
      struct stat rs;
      if (lstat(tree.c_str(), &rs) != 0 || !S_ISDIR(rs.st_mode)) {
        cleanup();
        return Status::Error(ENOENT, "build " + source.build + " has no result/ (build it first)");
      }
    }
  } else if (stat(tree.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return Status::Error(ENOTDIR, tree + ": not a directory");
  }

  const std::string tmp =
      DisksPath(ws) + "/." + disk + kSuffix + ".tmp-" + std::to_string(getpid());
  Status made = [&]() -> Status {
    UniqueFd fd(open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd.valid()) return Status::FromErrno(tmp);
    if (ftruncate(fd.get(), static_cast<off_t>(size)) != 0) return Status::FromErrno(tmp);
    fd.reset();
    BUILDFS_RETURN_IF_ERROR(Run({"mke2fs", "-q", "-F", "-t", "ext4", "-d", tree, tmp}));
    if (progress.cancelled()) return Status::Error(ECANCELED, "cancelled");
    return Publish(tmp, dest, /*replace=*/false);
  }();
  if (!made.ok()) unlink(tmp.c_str());
  cleanup();
  return made;
}

Result<std::vector<DiskInfo>> ListDisks(const Workspace& ws, const std::string& build) {
  std::map<std::string, DiskInfo> disks;
  auto add_names = [&](const std::string& dir) {
    DIR* d = opendir(dir.c_str());
    if (!d) return;
    while (dirent* e = readdir(d)) {
      std::string n = e->d_name;
      if (n.size() <= 4 || n.compare(n.size() - 4, 4, kSuffix) != 0 || n[0] == '.') continue;
      n.resize(n.size() - 4);
      disks[n].name = n;
    }
    closedir(d);
  };
  add_names(DisksPath(ws));
  std::unique_ptr<BuildLock> lock;
  std::vector<std::string> private_dirs;
  if (!build.empty()) {
    BUILDFS_ASSIGN_OR_RETURN(BuildLock held, BuildLock::Acquire(ws, build, "disk list"));
    lock = std::make_unique<BuildLock>(std::move(held));
    BUILDFS_ASSIGN_OR_RETURN(BuildInfo info, ws.LoadBuild(build));
    private_dirs = PrivateDirs(ws, info);
    for (const auto& dir : private_dirs) add_names(dir + "/cache/disks");
  }
  std::vector<DiskInfo> out;
  for (auto& [name, info] : disks) {
    const std::string shared = DiskPath(ws, name);
    struct stat st;
    info.shared = stat(shared.c_str(), &st) == 0 && S_ISREG(st.st_mode);
    info.shared_size = info.shared ? static_cast<uint64_t>(st.st_size) : 0;
    info.size = info.shared_size;
    if (!build.empty()) {
      const PrivateVersion v = FindPrivate(private_dirs, name);
      info.private_copy = v.found;
      info.deleted = v.deleted;
      info.private_bytes = v.bytes;
      if (v.found) info.size = SizeOf(v.path);
      if (v.deleted) info.size = 0;
    }
    if (info.shared || info.private_copy) out.push_back(info);
  }
  return out;
}

Status PutDisk(const Workspace& ws, const std::string& build, const std::string& disk,
               const Progress& progress) {
  BUILDFS_RETURN_IF_ERROR(ValidateDiskName(disk));
  BUILDFS_ASSIGN_OR_RETURN(BuildLock lock, BuildLock::Acquire(ws, build, "disk put"));
  BUILDFS_ASSIGN_OR_RETURN(BuildInfo info, ws.LoadBuild(build));
  const PrivateVersion v = FindPrivate(PrivateDirs(ws, info), disk);
  if (v.deleted) return Status::Error(ENOENT, "disk " + disk + ": deleted in build " + build);
  if (!v.found) {
    return Status::Error(ENOENT, "disk " + disk + ": build " + build +
                                     " has no version of its own (it sees the shared one)");
  }
  UniqueFd from(open(v.path.c_str(), O_RDONLY | O_NOFOLLOW | O_NOATIME | O_CLOEXEC));
  if (!from.valid()) return Status::FromErrno(v.path);
  struct stat st;
  if (fstat(from.get(), &st) != 0) return Status::FromErrno(v.path);
  // A chunked copy holds only the chunks the build wrote: the rest is read
  // from its bases, so that the image published is whole.
  UniqueFd bases(open((v.layer + "/" + kBasesDir).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  BUILDFS_ASSIGN_OR_RETURN(auto content, OpenFileContent(std::move(from), bases.get()));
  if (mkdir(DisksPath(ws).c_str(), 0755) != 0 && errno != EEXIST)
    return Status::FromErrno(DisksPath(ws));
  const std::string tmp =
      DisksPath(ws) + "/." + disk + kSuffix + ".tmp-" + std::to_string(getpid());
  Status done = [&]() -> Status {
    UniqueFd to(open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!to.valid()) return Status::FromErrno(tmp);
    // By pieces, so that progress shows and Ctrl-C stops it.
    constexpr size_t kPiece = 64 << 20;
    const uint64_t total = content->size();
    for (uint64_t done_bytes = 0; done_bytes < total;) {
      if (progress.cancelled()) return Status::Error(ECANCELED, "cancelled");
      const size_t n = static_cast<size_t>(std::min<uint64_t>(kPiece, total - done_bytes));
      std::vector<Segment> segments;
      BUILDFS_RETURN_IF_ERROR(content->Segments(done_bytes, n, &segments).With(v.path));
      if (segments.empty()) return Status::Error(EIO, v.path + ": shorter than its size");
      for (const Segment& s : segments) {
        BUILDFS_RETURN_IF_ERROR(
            CopyDataRange(s.fd, s.offset, to.get(), static_cast<off_t>(done_bytes), s.len)
                .With(v.path));
        done_bytes += s.len;
      }
      progress.Report(done_bytes, total);
    }
    if (ftruncate(to.get(), static_cast<off_t>(total)) != 0) return Status::FromErrno(tmp);
    if (fchmod(to.get(), st.st_mode & 07777) != 0) return Status::FromErrno(tmp);
    return Publish(tmp, DiskPath(ws, disk), /*replace=*/true);
  }();
  if (!done.ok()) unlink(tmp.c_str());
  return done;
}

}  // namespace buildfs
