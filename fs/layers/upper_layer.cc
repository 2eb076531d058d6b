#include "fs/layers/upper_layer.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "fs/common/path.h"
#include "fs/layers/upper_format.h"

namespace buildfs {

UpperLayer::UpperLayer(std::shared_ptr<DirLayer> upper, std::shared_ptr<DirLayer> work)
    : upper_(std::move(upper)), work_(std::move(work)) {}

Result<UpperLayer::Parent> UpperLayer::OpenParent(const std::string& path) {
  if (!path.empty()) return upper_->OpenParent(path);
  BUILDFS_ASSIGN_OR_RETURN(DirLayer::DirFd root, upper_->OpenDir(""));
  return Parent{std::move(root), "."};
}

Result<UniqueFd> UpperLayer::Open(const std::string& path, int flags) {
  return OpenBeneath(upper_->root_fd(), path, flags);
}

Result<struct statvfs> UpperLayer::StatFs() {
  struct statvfs st;
  if (fstatvfs(upper_->root_fd(), &st) != 0) return Status::FromErrno("statfs");
  return st;
}

// ---- work/

Status UpperLayer::ClearWork() {
  std::vector<LayerDirent> leftovers;
  BUILDFS_RETURN_IF_ERROR(work_->ReadDir("", &leftovers));
  for (const auto& e : leftovers) BUILDFS_RETURN_IF_ERROR(RemoveTreeAt(work_->root_fd(), e.name));
  return Status::Ok();
}

std::string UpperLayer::WorkName(const char* what, uint64_t ino) {
  return std::string(what) + "-" + std::to_string(ino) + "-" + std::to_string(++work_seq_);
}

Result<UpperLayer::Parent> UpperLayer::NewWorkEntry(const char* what, uint64_t ino) {
  BUILDFS_ASSIGN_OR_RETURN(DirLayer::DirFd dir, work_->OpenDir(""));
  return Parent{std::move(dir), WorkName(what, ino)};
}

void UpperLayer::Discard(const Parent& in_work) { RemoveTreeAt(in_work.dir->get(), in_work.name); }

Status UpperLayer::Install(const Parent& built, const std::string& path, bool over_whiteout) {
  auto fail = [&](Status st) {
    Discard(built);
    return st;
  };
  auto parent = upper_->OpenParent(path);
  if (!parent.ok()) return fail(parent.status());
  const int from = built.dir->get();
  const int to = parent->dir->get();
  if (!over_whiteout) {
    if (renameat2(from, built.name.c_str(), to, parent->name.c_str(), RENAME_NOREPLACE) != 0) {
      return fail(Status::FromErrno(path));
    }
    return Status::Ok();
  }
  // Swap the new entry with the whiteout (a directory cannot replace a
  // device by plain rename), then drop the whiteout now sitting in work/.
  if (renameat2(from, built.name.c_str(), to, parent->name.c_str(), RENAME_EXCHANGE) != 0) {
    return fail(Status::FromErrno(path));
  }
  unlinkat(from, built.name.c_str(), 0);
  return Status::Ok();
}

// ---- removing entries

Status UpperLayer::ReplaceWithWhiteout(const Parent& at, uint64_t ino) {
  BUILDFS_ASSIGN_OR_RETURN(Parent tmp, NewWorkEntry("whiteout", ino));
  BUILDFS_RETURN_IF_ERROR(MakeWhiteout(tmp.dir->get(), tmp.name));
  if (renameat(tmp.dir->get(), tmp.name.c_str(), at.dir->get(), at.name.c_str()) != 0) {
    Status st = Status::FromErrno(at.name);
    unlinkat(tmp.dir->get(), tmp.name.c_str(), 0);
    return st;
  }
  return Status::Ok();
}

Result<UpperLayer::Parent> UpperLayer::MoveToWork(const Parent& at, uint64_t ino, bool leave_whiteout) {
  BUILDFS_ASSIGN_OR_RETURN(Parent tmp, NewWorkEntry("rm", ino));
  if (leave_whiteout) {
    BUILDFS_RETURN_IF_ERROR(MakeWhiteout(tmp.dir->get(), tmp.name));
    if (renameat2(tmp.dir->get(), tmp.name.c_str(), at.dir->get(), at.name.c_str(), RENAME_EXCHANGE) != 0) {
      Status st = Status::FromErrno(at.name);
      unlinkat(tmp.dir->get(), tmp.name.c_str(), 0);
      return st;
    }
  } else if (renameat(at.dir->get(), at.name.c_str(), tmp.dir->get(), tmp.name.c_str()) != 0) {
    return Status::FromErrno(at.name);
  }
  // A directory may have moved: cached directory fds could name it.
  upper_->ForgetDirs();
  return tmp;
}

Status UpperLayer::Move(const Parent& from, const Parent& to, bool leave_whiteout) {
  const int a = from.dir->get();
  const int b = to.dir->get();
  int rc = renameat2(a, from.name.c_str(), b, to.name.c_str(), leave_whiteout ? RENAME_WHITEOUT : 0);
  if (rc != 0 && leave_whiteout && (errno == EINVAL || errno == EPERM)) {
    // No RENAME_WHITEOUT on this filesystem: rename, then leave the whiteout.
    if (renameat(a, from.name.c_str(), b, to.name.c_str()) != 0) return Status::FromErrno(from.name);
    return Whiteout(from);
  }
  return rc == 0 ? Status::Ok() : Status::FromErrno(from.name);
}

Status UpperLayer::Exchange(const Parent& a, const Parent& b) {
  if (renameat2(a.dir->get(), a.name.c_str(), b.dir->get(), b.name.c_str(), RENAME_EXCHANGE) != 0) {
    return Status::FromErrno(a.name);
  }
  return Status::Ok();
}

Status UpperLayer::Remove(const Parent& at) {
  if (unlinkat(at.dir->get(), at.name.c_str(), 0) != 0) return Status::FromErrno(at.name);
  return Status::Ok();
}

Status UpperLayer::Whiteout(const Parent& at) { return MakeWhiteout(at.dir->get(), at.name); }

Status UpperLayer::Link(const Parent& from, const Parent& to, uint64_t ino, bool over_whiteout) {
  BUILDFS_RETURN_IF_ERROR(SetLinked(from.dir->get(), from.name));
  if (!over_whiteout) {
    if (linkat(from.dir->get(), from.name.c_str(), to.dir->get(), to.name.c_str(), 0) != 0) {
      return Status::FromErrno(to.name);
    }
    return Status::Ok();
  }
  // Link in work/, then rename over the whiteout: the name appears in one step.
  BUILDFS_ASSIGN_OR_RETURN(Parent tmp, NewWorkEntry("link", ino));
  if (linkat(from.dir->get(), from.name.c_str(), tmp.dir->get(), tmp.name.c_str(), 0) != 0) {
    return Status::FromErrno(to.name);
  }
  if (renameat(tmp.dir->get(), tmp.name.c_str(), to.dir->get(), to.name.c_str()) != 0) {
    Status st = Status::FromErrno(to.name);
    unlinkat(tmp.dir->get(), tmp.name.c_str(), 0);
    return st;
  }
  return Status::Ok();
}

// ---- orphans

Status UpperLayer::MakeOrphan(const Parent& at, uint64_t ino, bool last_link) {
  const std::string name = OrphanName(ino);
  int rc = last_link ? renameat(at.dir->get(), at.name.c_str(), work_->root_fd(), name.c_str())
                     : linkat(at.dir->get(), at.name.c_str(), work_->root_fd(), name.c_str(), 0);
  return rc == 0 ? Status::Ok() : Status::FromErrno(at.name);
}

Result<UpperLayer::Parent> UpperLayer::OrphanRef(uint64_t ino) {
  BUILDFS_ASSIGN_OR_RETURN(DirLayer::DirFd dir, work_->OpenDir(""));
  return Parent{std::move(dir), OrphanName(ino)};
}

Result<LayerEntry> UpperLayer::LookupOrphan(uint64_t ino) { return work_->Lookup(OrphanName(ino)); }

Result<Xattrs> UpperLayer::OrphanXattrs(uint64_t ino) { return work_->ListXattrs(OrphanName(ino)); }

Result<UniqueFd> UpperLayer::OpenOrphan(uint64_t ino, int flags) {
  UniqueFd fd(openat(work_->root_fd(), OrphanName(ino).c_str(), flags | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.valid()) return Status::FromErrno("open");
  return fd;
}

void UpperLayer::DropOrphan(uint64_t ino) { unlinkat(work_->root_fd(), OrphanName(ino).c_str(), 0); }

}  // namespace buildfs
