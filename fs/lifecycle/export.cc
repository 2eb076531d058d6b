// buildfs export: a plain copy of a build's current tree.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs/common/path.h"
#include "fs/lifecycle/build_lock.h"
#include "fs/lifecycle/build_view.h"
#include "fs/lifecycle/changes.h"

namespace buildfs {
namespace {

class Exporter {
 public:
  Exporter(Overlay& ov, const Progress& progress) : ov_(ov), progress_(progress) {}

  Status CopyDir(uint64_t ino, int dir_fd, bool is_root) {
    BUILDFS_ASSIGN_OR_RETURN(auto listing, ov_.OpenDir(ino));
    for (const auto& e : listing->entries) {
      if (e.name == "." || e.name == "..") continue;
      if (is_root && e.name == "cache") continue;
      if (progress_.cancelled()) return Status::Error(ECANCELED, "interrupted");
      BUILDFS_ASSIGN_OR_RETURN(EntryOut child, ov_.Lookup(ino, e.name));
      if (child.ino == 0) continue;
      Status st = Copy(child, dir_fd, e.name);
      ov_.Forget(child.ino, 1);
      BUILDFS_RETURN_IF_ERROR(st);
      progress_.Report(++copied_);
    }
    return Status::Ok();
  }

  // Owner, mode, xattrs and times of `name` in `dir_fd`, as the build has them.
  Status SetMeta(uint64_t ino, const struct stat& st, int dir_fd, const std::string& name) {
    BUILDFS_ASSIGN_OR_RETURN(Xattrs xattrs, OverlayXattrs(ov_, ino));
    return SetMetadataAt(dir_fd, name, st, xattrs);
  }

 private:
  Status Copy(const EntryOut& attr, int dir_fd, const std::string& name) {
    const struct stat& st = attr.st;
    if (S_ISDIR(st.st_mode)) {
      if (mkdirat(dir_fd, name.c_str(), 0700) != 0) return Status::FromErrno(name);
      UniqueFd sub(openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!sub.valid()) return Status::FromErrno(name);
      BUILDFS_RETURN_IF_ERROR(CopyDir(attr.ino, sub.get(), false));
    } else if (S_ISREG(st.st_mode)) {
      BUILDFS_ASSIGN_OR_RETURN(auto fh, ov_.Open(attr.ino, O_RDONLY | O_NOATIME));
      auto from = ov_.Content(fh.get());
      UniqueFd to(openat(dir_fd, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
      Status copied = !from.ok() ? from.status() : !to.valid() ? Status::FromErrno(name) : Status::Ok();
      if (copied.ok()) copied = CopyContent(*from.value(), to.get());
      ov_.Release(std::move(fh));
      BUILDFS_RETURN_IF_ERROR(copied.With(name));
    } else if (S_ISLNK(st.st_mode)) {
      BUILDFS_ASSIGN_OR_RETURN(std::string target, ov_.ReadLink(attr.ino));
      if (symlinkat(target.c_str(), dir_fd, name.c_str()) != 0) return Status::FromErrno(name);
    } else if (mknodat(dir_fd, name.c_str(), (st.st_mode & S_IFMT) | 0600, st.st_rdev) != 0) {
      return Status::FromErrno(name);
    }
    return SetMeta(attr.ino, st, dir_fd, name);
  }

  Overlay& ov_;
  const Progress& progress_;
  uint64_t copied_ = 0;
};

}  // namespace

Status ExportBuild(const Workspace& ws, const std::string& name, const std::string& dest,
                   const Progress& progress) {
  struct stat st;
  if (lstat(dest.c_str(), &st) == 0) return Status::Error(EEXIST, dest + ": already exists");
  BUILDFS_ASSIGN_OR_RETURN(BuildLock lock, BuildLock::Acquire(ws, name, "export"));
  BUILDFS_ASSIGN_OR_RETURN(BuildView view, OpenBuildView(ws, name));
  std::string tmp = dest + ".buildfs-export-" + std::to_string(getpid());
  RemoveTree(tmp);
  if (mkdir(tmp.c_str(), 0700) != 0) return Status::FromErrno(tmp);
  UniqueFd fd(open(tmp.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  Exporter exporter(*view.overlay, progress);
  Status done = fd.valid() ? exporter.CopyDir(kRootIno, fd.get(), true) : Status::FromErrno(tmp);
  if (done.ok()) {
    auto root = view.overlay->GetAttr(kRootIno);
    done = root.ok() ? exporter.SetMeta(kRootIno, root->st, fd.get(), ".") : root.status();
  }
  if (done.ok() && rename(tmp.c_str(), dest.c_str()) != 0) done = Status::FromErrno(dest);
  if (!done.ok()) RemoveTree(tmp);
  return done;
}

}  // namespace buildfs
