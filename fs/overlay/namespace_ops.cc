// Namespace changes: create, mknod, mkdir, symlink, link, unlink, rmdir, rename.
//
// Each change is made in the upper with one rename (or link) where it can be:
// new entries are built in work/ and renamed into place, deletions of names
// that lower layers also hold leave a whiteout (RENAME_WHITEOUT where the
// rename itself can leave it), and a renamed directory that has lower parts
// gets a redirect, so renaming a directory never copies its contents (no EXDEV).
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "fs/common/path.h"
#include <optional>

#include "fs/layers/upper_format.h"
#include "fs/overlay/overlay.h"

namespace buildfs {

template <typename Make>
Result<EntryOut> Overlay::CreateEntry(uint64_t parent, const std::string& name, const Caller& caller,
                                      mode_t mode, Make make) {
  BUILDFS_ASSIGN_OR_RETURN(Node * dir, GetDir(parent));
  BUILDFS_ASSIGN_OR_RETURN(std::string dir_path, PathOf(*dir));
  BUILDFS_ASSIGN_OR_RETURN(Resolved existing, Resolve(*dir, dir_path, name));
  if (existing.found) return Status::Error(EEXIST, name);
  BUILDFS_RETURN_IF_ERROR(CopyUp(*dir));
  BUILDFS_ASSIGN_OR_RETURN(DirLayer::DirFd dir_fd, upper_.dirs()->OpenDir(dir_path));
  struct stat upper_dir;
  if (fstat(dir_fd->get(), &upper_dir) != 0) return Status::FromErrno(dir_path);
  struct stat here;
  const bool whiteout = fstatat(dir_fd->get(), name.c_str(), &here, AT_SYMLINK_NOFOLLOW) == 0;
  if (!whiteout && errno != ENOENT) return Status::FromErrno(name);
  // A setgid directory gives its group to new entries, and its bit to new directories.
  gid_t gid = caller.gid;
  if (upper_dir.st_mode & S_ISGID) {
    gid = upper_dir.st_gid;
    if (S_ISDIR(mode)) mode |= S_ISGID;
  }
  // Made where it belongs, like any file of a local filesystem; only the
  // name of a whiteout (a lower layer holds the name) is replaced atomically
  // by an entry built in work/, a directory then opaque.
  UpperLayer::Parent where{dir_fd, name};
  if (whiteout) {
    BUILDFS_ASSIGN_OR_RETURN(where, upper_.NewWorkEntry("new", parent));
  }
  const int at = where.dir->get();
  const std::string& made_name = where.name;
  BUILDFS_RETURN_IF_ERROR(make(at, made_name));
  auto undo = [&](Status st) {
    upper_.Discard(where);
    return st;
  };
  if (fchownat(at, made_name.c_str(), caller.uid, gid, AT_SYMLINK_NOFOLLOW) != 0 &&
      !(errno == EPERM && geteuid() != 0)) {
    return undo(Status::FromErrno(name + ": chown"));
  }
  struct stat st;
  if (fstatat(at, made_name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return undo(Status::FromErrno(name));
  // chown clears set-id bits; the umask of the daemon is 0, so only those need setting.
  if (!S_ISLNK(mode) && (st.st_mode & 07777) != (mode & 07777)) {
    if (fchmodat(at, made_name.c_str(), mode & 07777, 0) != 0) return undo(Status::FromErrno(name + ": chmod"));
    st.st_mode = (st.st_mode & S_IFMT) | (mode & 07777);
  }
  Resolved made;
  made.found = true;
  made.type = st.st_mode & S_IFMT;
  made.in_upper = true;
  made.top.kind = LayerEntry::kPresent;
  made.top.st = st;
  made.ino = InoFor(made, made.top, Source{0, JoinPath(dir_path, name)});
  // The upper filesystem reuses inode numbers at once: a number the kernel
  // may still hold for a removed entry gets a number of its own, marked.
  if (nodes_.count(made.ino)) {
    uint64_t ino = 0;
    while (ino <= kRootIno || nodes_.count(ino)) ino = ino_source_();
    Status marked = SetIno(at, made_name, ino);
    if (!marked.ok()) return undo(marked);
    made.ino = made.top.ino = ino;
  }
  if (whiteout) {
    Status st_made = S_ISDIR(mode) ? SetOpaque(at, made_name) : Status::Ok();
    if (!st_made.ok()) return undo(st_made);
    BUILDFS_RETURN_IF_ERROR(upper_.Install(where, JoinPath(dir_path, name), /*over_whiteout=*/true));
  }
  if (S_ISDIR(mode)) dir->subdirs = -1;
  Node* node = Remember(parent, name, made);
  if (!whiteout) node->xattrs = std::make_unique<Xattrs>();  // made right now, with none
  return Entry(node);
}

Result<EntryOut> Overlay::MakeNode(uint64_t parent, const std::string& name, mode_t mode,
                                   dev_t rdev, const Caller& caller) {
  std::lock_guard lock(mu_);
  if (S_ISCHR(mode) && rdev == makedev(0, 0)) {
    return Status::Error(EPERM, name + ": device 0/0 is the whiteout marker");
  }
  if (S_ISDIR(mode) || S_ISLNK(mode)) return Status::Error(EINVAL, name);
  return CreateEntry(parent, name, caller, mode, [&](int work, const std::string& tmp) {
    if (S_ISREG(mode) || (mode & S_IFMT) == 0) {
      int fd = openat(work, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode & 0777);
      if (fd < 0) return Status::FromErrno(name);
      close(fd);
      return Status::Ok();
    }
    if (mknodat(work, tmp.c_str(), (mode & S_IFMT) | (mode & 0777), rdev) != 0) return Status::FromErrno(name);
    return Status::Ok();
  });
}

Result<EntryOut> Overlay::MakeDir(uint64_t parent, const std::string& name, mode_t mode,
                                  const Caller& caller) {
  std::lock_guard lock(mu_);
  return CreateEntry(parent, name, caller, S_IFDIR | (mode & 07777),
                     [&](int work, const std::string& tmp) {
                       if (mkdirat(work, tmp.c_str(), mode & 0777) != 0) return Status::FromErrno(name);
                       return Status::Ok();
                     });
}

Result<EntryOut> Overlay::Symlink(uint64_t parent, const std::string& name,
                                  const std::string& target, const Caller& caller) {
  std::lock_guard lock(mu_);
  return CreateEntry(parent, name, caller, S_IFLNK | 0777, [&](int work, const std::string& tmp) {
    if (symlinkat(target.c_str(), work, tmp.c_str()) != 0) return Status::FromErrno(name);
    return Status::Ok();
  });
}

Result<std::unique_ptr<FileHandle>> Overlay::Create(uint64_t parent, const std::string& name,
                                                    mode_t mode, int flags, const Caller& caller,
                                                    EntryOut* entry) {
  std::lock_guard lock(mu_);
  UniqueFd fd;
  auto made = CreateEntry(parent, name, caller, S_IFREG | (mode & 07777),
                          [&](int work, const std::string& tmp) {
                            fd.reset(openat(work, tmp.c_str(),
                                            O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode & 0777));
                            return fd.valid() ? Status::Ok() : Status::FromErrno(name);
                          });
  if (!made.ok()) return made.status();
  *entry = made.value();
  Node* node = nodes_.at(entry->ino).get();
  auto fh = std::make_unique<FileHandle>();
  fh->fd = fd.get();
  fh->fds.push_back(std::move(fd));
  fh->ino = entry->ino;
  fh->flags = flags;
  fh->writable = true;
  fh->keep_cache = true;
  fh->generation = node->generation.load();
  fh->moved = &node->generation;
  ++node->open_count;
  return fh;
}

Result<EntryOut> Overlay::Link(uint64_t ino, uint64_t new_parent, const std::string& new_name) {
  std::lock_guard lock(mu_);
  BUILDFS_ASSIGN_OR_RETURN(Node * node, Get(ino));
  if (S_ISDIR(node->type)) return Status::Error(EPERM, "hard link to a directory");
  if (node->orphan) return Status::Error(ENOENT, "link of a deleted file");
  BUILDFS_ASSIGN_OR_RETURN(Node * dir, GetDir(new_parent));
  BUILDFS_ASSIGN_OR_RETURN(std::string dir_path, PathOf(*dir));
  BUILDFS_ASSIGN_OR_RETURN(Resolved existing, Resolve(*dir, dir_path, new_name));
  if (existing.found) return Status::Error(EEXIST, new_name);
  BUILDFS_RETURN_IF_ERROR(CopyUp(*node));
  BUILDFS_RETURN_IF_ERROR(CopyUp(*dir));
  BUILDFS_ASSIGN_OR_RETURN(std::string src_path, PathOf(*node));
  std::string path = JoinPath(dir_path, new_name);
  BUILDFS_ASSIGN_OR_RETURN(LayerEntry here, UpperEntry(path));
  BUILDFS_ASSIGN_OR_RETURN(UpperLayer::Parent src, upper_.OpenParent(src_path));
  BUILDFS_ASSIGN_OR_RETURN(UpperLayer::Parent dst, upper_.OpenParent(path));
  BUILDFS_RETURN_IF_ERROR(upper_.Link(src, dst, ino, here.kind == LayerEntry::kWhiteout));
  AddAlias(node, new_parent, new_name);
  return Entry(node);
}

Status Overlay::Unlink(uint64_t parent, const std::string& name) {
  std::lock_guard lock(mu_);
  BUILDFS_ASSIGN_OR_RETURN(Node * dir, GetDir(parent));
  BUILDFS_ASSIGN_OR_RETURN(std::string dir_path, PathOf(*dir));
  BUILDFS_ASSIGN_OR_RETURN(Resolved r, Resolve(*dir, dir_path, name));
  if (!r.found) return Status::Error(ENOENT, name);
  if (S_ISDIR(r.type)) return Status::Error(EISDIR, name);
  BUILDFS_RETURN_IF_ERROR(CopyUp(*dir));
  std::string path = JoinPath(dir_path, name);
  bool whiteout = LowerHas(*dir, dir_path, name);
  auto it = nodes_.find(r.ino);
  Node* node = it == nodes_.end() ? nullptr : it->second.get();
  BUILDFS_ASSIGN_OR_RETURN(UpperLayer::Parent ref, upper_.OpenParent(path));
  if (r.in_upper) {
    bool last_link = r.top.st.st_nlink <= 1;
    bool keep = node && node->open_count > 0 && node->aliases.size() <= 1;
    if (keep) {
      // Still open: the file lives on in work/ until its last handle is released.
      BUILDFS_RETURN_IF_ERROR(MakeOrphan(*node, path, last_link));
      if (!last_link) BUILDFS_RETURN_IF_ERROR(upper_.Remove(ref));
      if (whiteout) BUILDFS_RETURN_IF_ERROR(upper_.Whiteout(ref));
    } else if (whiteout) {
      BUILDFS_RETURN_IF_ERROR(upper_.ReplaceWithWhiteout(ref, r.ino));
    } else {
      BUILDFS_RETURN_IF_ERROR(upper_.Remove(ref));
    }
  } else {
    BUILDFS_RETURN_IF_ERROR(upper_.Whiteout(ref));
  }
  if (node) {
    DropAlias(node, parent, name);
    MarkRemoved(node, path);
    MaybeErase(node);
  }
  return Status::Ok();
}

Status Overlay::RmDir(uint64_t parent, const std::string& name) {
  std::lock_guard lock(mu_);
  BUILDFS_ASSIGN_OR_RETURN(Node * dir, GetDir(parent));
  BUILDFS_ASSIGN_OR_RETURN(std::string dir_path, PathOf(*dir));
  BUILDFS_ASSIGN_OR_RETURN(Resolved r, Resolve(*dir, dir_path, name));
  if (!r.found) return Status::Error(ENOENT, name);
  if (!S_ISDIR(r.type)) return Status::Error(ENOTDIR, name);
  std::string path = JoinPath(dir_path, name);
  Node probe;
  probe.in_upper = r.in_upper;
  probe.lower = r.lower;
  BUILDFS_ASSIGN_OR_RETURN(auto names, MergedNames(probe, path));
  if (!names.empty()) return Status::Error(ENOTEMPTY, name);
  BUILDFS_RETURN_IF_ERROR(CopyUp(*dir));
  bool whiteout = LowerHas(*dir, dir_path, name);
  BUILDFS_ASSIGN_OR_RETURN(UpperLayer::Parent ref, upper_.OpenParent(path));
  if (r.in_upper) {
    // The upper directory may still hold whiteouts: move it out whole, then delete it.
    BUILDFS_ASSIGN_OR_RETURN(UpperLayer::Parent gone, upper_.MoveToWork(ref, r.ino, whiteout));
    upper_.Discard(gone);
  } else {
    BUILDFS_RETURN_IF_ERROR(upper_.Whiteout(ref));
  }
  dir->subdirs = -1;
  auto it = nodes_.find(r.ino);
  if (it != nodes_.end()) {
    Node* node = it->second.get();
    DropAlias(node, parent, name);
    node->removed = true;
    MaybeErase(node);
  }
  return Status::Ok();
}

Status Overlay::Rename(uint64_t parent, const std::string& name, uint64_t new_parent,
                       const std::string& new_name, unsigned flags) {
  std::lock_guard lock(mu_);
  if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) return Status::Error(EINVAL, "rename flags");
  BUILDFS_ASSIGN_OR_RETURN(Node * dir, GetDir(parent));
  BUILDFS_ASSIGN_OR_RETURN(Node * new_dir, GetDir(new_parent));
  BUILDFS_ASSIGN_OR_RETURN(std::string dir_path, PathOf(*dir));
  BUILDFS_ASSIGN_OR_RETURN(std::string new_dir_path, PathOf(*new_dir));
  BUILDFS_ASSIGN_OR_RETURN(Resolved src, Resolve(*dir, dir_path, name));
  if (!src.found) return Status::Error(ENOENT, name);
  BUILDFS_ASSIGN_OR_RETURN(Resolved dst, Resolve(*new_dir, new_dir_path, new_name));
  bool exchange = flags & RENAME_EXCHANGE;
  if ((flags & RENAME_NOREPLACE) && dst.found) return Status::Error(EEXIST, new_name);
  if (exchange && !dst.found) return Status::Error(ENOENT, new_name);
  if (dst.found && dst.ino == src.ino) return Status::Ok();  // two names of one file
  std::string path = JoinPath(dir_path, name);
  std::string new_path = JoinPath(new_dir_path, new_name);
  bool src_dir = S_ISDIR(src.type);
  if (dst.found && !exchange) {
    bool dst_dir = S_ISDIR(dst.type);
    if (src_dir && !dst_dir) return Status::Error(ENOTDIR, new_name);
    if (!src_dir && dst_dir) return Status::Error(EISDIR, new_name);
    if (dst_dir) {
      Node probe;
      probe.in_upper = dst.in_upper;
      probe.lower = dst.lower;
      BUILDFS_ASSIGN_OR_RETURN(auto names, MergedNames(probe, new_path));
      if (!names.empty()) return Status::Error(ENOTEMPTY, new_name);
    }
  }

  Node* s = Remember(parent, name, src);
  Node* d = dst.found ? Remember(new_parent, new_name, dst) : nullptr;
  // Pin both while copy-up and renames run (Remember adds no lookup).
  ++s->open_count;
  if (d) ++d->open_count;
  auto unpin = [&]() {
    --s->open_count;
    MaybeErase(s);
    if (d) {
      --d->open_count;
      MaybeErase(d);
    }
  };
  Status st = [&]() -> Status {
    BUILDFS_RETURN_IF_ERROR(CopyUp(*dir));
    BUILDFS_RETURN_IF_ERROR(CopyUp(*new_dir));
    BUILDFS_RETURN_IF_ERROR(CopyUp(*s));
    if (exchange) BUILDFS_RETURN_IF_ERROR(CopyUp(*d));
    // Directories keep the paths their lower layers hold them at.
    if (S_ISDIR(s->type)) KeepLowerPathsBelow(*s);
    if (exchange && S_ISDIR(d->type)) KeepLowerPathsBelow(*d);
    BUILDFS_ASSIGN_OR_RETURN(UpperLayer::Parent from, upper_.OpenParent(path));
    BUILDFS_ASSIGN_OR_RETURN(UpperLayer::Parent to, upper_.OpenParent(new_path));
    // A moved directory keeps its lower parts through a redirect; one without
    // any becomes opaque so nothing under its new name shows through.
    auto mark_moved_dir = [&](Node* n, const std::string& at, int fd, const std::string& nm) -> Status {
      if (!S_ISDIR(n->type)) return Status::Ok();
      if (n->lower.empty()) return SetOpaque(fd, nm);
      BUILDFS_ASSIGN_OR_RETURN(std::string lower_path, LowerPathOf(at));
      return SetRedirect(fd, nm, lower_path);
    };
    BUILDFS_RETURN_IF_ERROR(mark_moved_dir(s, path, from.dir->get(), from.name));
    if (exchange) {
      BUILDFS_RETURN_IF_ERROR(mark_moved_dir(d, new_path, to.dir->get(), to.name));
      BUILDFS_RETURN_IF_ERROR(upper_.Exchange(from, to));
      AddAlias(s, new_parent, new_name);
      AddAlias(d, parent, name);
      DropAlias(s, parent, name);
      DropAlias(d, new_parent, new_name);
      return Status::Ok();
    }
    // An upper directory the rename replaces: moved out first, deleted after.
    std::optional<UpperLayer::Parent> cleared;
    if (d && d->in_upper) {
      if (S_ISDIR(d->type)) {
        BUILDFS_ASSIGN_OR_RETURN(cleared, upper_.MoveToWork(to, d->ino, /*leave_whiteout=*/false));
      } else if (d->open_count > 1 && d->aliases.size() <= 1) {
        BUILDFS_RETURN_IF_ERROR(MakeOrphan(*d, new_path, dst.top.st.st_nlink <= 1));
      }
    }
    bool whiteout = LowerHas(*dir, dir_path, name);
    BUILDFS_ASSIGN_OR_RETURN(LayerEntry target, UpperEntry(new_path));
    if (target.kind == LayerEntry::kWhiteout && src_dir) {
      // A directory cannot replace the whiteout device by rename: swap them,
      // and keep the whiteout at the old name only if a lower layer needs it.
      BUILDFS_RETURN_IF_ERROR(upper_.Exchange(from, to));
      if (!whiteout) upper_.Remove(from);
      AddAlias(s, new_parent, new_name);
      DropAlias(s, parent, name);
      return Status::Ok();
    }
    Status moved = upper_.Move(from, to, whiteout);
    if (!moved.ok()) {
      if (cleared) upper_.Move(*cleared, to, false);  // put the replaced directory back
      return moved;
    }
    if (cleared) upper_.Discard(*cleared);
    if (d) {
      DropAlias(d, new_parent, new_name);
      if (S_ISDIR(d->type)) {
        d->removed = true;
      } else {
        MarkRemoved(d, new_path);
      }
    }
    AddAlias(s, new_parent, new_name);
    DropAlias(s, parent, name);
    return Status::Ok();
  }();
  dir->subdirs = -1;
  new_dir->subdirs = -1;
  // Directories of the upper moved (or went): their cached fds name other places now.
  if (src_dir || (dst.found && S_ISDIR(dst.type))) upper_.dirs()->ForgetDirs();
  unpin();
  return st;
}

}  // namespace buildfs
