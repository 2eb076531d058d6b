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

#include <optional>

#include "fs/common/path.h"
#include "fs/layers/upper_format.h"
#include "fs/overlay/overlay.h"

namespace buildfs {

namespace {

// Whether an operation must copy up the directory or file it is about to
// change (the root: whether its metadata is in the upper yet).
bool NeedsCopyUp(uint64_t ino, bool in_upper, bool orphan, bool root_up) {
  return ino == kRootIno ? !root_up : !in_upper && !orphan;
}

}  // namespace

template <typename Make>
Result<EntryOut> Overlay::CreateEntry(uint64_t parent, const std::string& name,
                                      const Caller& caller, mode_t mode, Make make,
                                      UniqueFd* made_fd) {
  std::shared_lock tree(tree_mu_);
  for (;;) {
    DirLocks dirs(this, {{parent, true}});
    View view;
    BUILDFS_ASSIGN_OR_RETURN(Pin dir, PinDir(parent, &view));
    BUILDFS_ASSIGN_OR_RETURN(Resolved existing, Resolve(view, name));
    if (existing.found) return Status::Error(EEXIST, name);
    if (NeedsCopyUp(parent, view.in_upper, view.orphan, root_up_.load())) {
      dirs.Unlock();
      BUILDFS_RETURN_IF_ERROR(CopyUp(parent));
      continue;
    }
    const std::string& dir_path = view.path;
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
      if (made_fd) made_fd->reset();
      upper_.Discard(where);
      return st;
    };
    if (fchownat(at, made_name.c_str(), caller.uid, gid, AT_SYMLINK_NOFOLLOW) != 0 &&
        !(errno == EPERM && geteuid() != 0)) {
      return undo(Status::FromErrno(name + ": chown"));
    }
    struct stat st;
    if (fstatat(at, made_name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
      return undo(Status::FromErrno(name));
    // chown clears set-id bits; the umask of the daemon is 0, so only those need setting.
    if (!S_ISLNK(mode) && (st.st_mode & 07777) != (mode & 07777)) {
      if (fchmodat(at, made_name.c_str(), mode & 07777, 0) != 0)
        return undo(Status::FromErrno(name + ": chmod"));
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
    for (;;) {
      uint64_t ino = 0;
      {
        std::lock_guard lock(mu_);
        if (!nodes_.count(made.ino)) break;
        while (ino <= kRootIno || nodes_.count(ino)) ino = ino_source_();
      }
      Status marked = SetIno(at, made_name, ino);
      if (!marked.ok()) return undo(marked);
      made.ino = made.top.ino = ino;
    }
    if (whiteout) {
      Status st_made = S_ISDIR(mode) ? SetOpaque(at, made_name) : Status::Ok();
      if (!st_made.ok()) return undo(st_made);
      BUILDFS_RETURN_IF_ERROR(
          upper_.Install(where, JoinPath(dir_path, name), /*over_whiteout=*/true));
    }
    Pin child;
    {
      std::lock_guard lock(mu_);
      Node* d = dir.get();
      if (S_ISDIR(mode)) d->subdirs = -1;
      ++d->changes;
      Node* node = Remember(parent, name, made);
      if (!whiteout) node->xattrs = std::make_unique<Xattrs>();  // made right now, with none
      child = Pin(this, node);
    }
    const std::string path = JoinPath(dir_path, name);
    return Entry(child.get(), &path);
  }
}

Result<EntryOut> Overlay::MakeNode(uint64_t parent, const std::string& name, mode_t mode,
                                   dev_t rdev, const Caller& caller) {
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
  return CreateEntry(parent, name, caller, S_IFDIR | (mode & 07777),
                     [&](int work, const std::string& tmp) {
                       if (mkdirat(work, tmp.c_str(), mode & 0777) != 0) return Status::FromErrno(name);
                       return Status::Ok();
                     });
}

Result<EntryOut> Overlay::Symlink(uint64_t parent, const std::string& name,
                                  const std::string& target, const Caller& caller) {
  return CreateEntry(parent, name, caller, S_IFLNK | 0777, [&](int work, const std::string& tmp) {
    if (symlinkat(target.c_str(), work, tmp.c_str()) != 0) return Status::FromErrno(name);
    return Status::Ok();
  });
}

Result<std::unique_ptr<FileHandle>> Overlay::Create(uint64_t parent, const std::string& name,
                                                    mode_t mode, int flags, const Caller& caller,
                                                    EntryOut* entry) {
  UniqueFd fd;
  auto made = CreateEntry(
      parent, name, caller, S_IFREG | (mode & 07777),
      [&](int work, const std::string& tmp) {
        fd.reset(openat(work, tmp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode & 0777));
        return fd.valid() ? Status::Ok() : Status::FromErrno(name);
      },
      &fd);
  if (!made.ok()) return made.status();
  *entry = made.value();
  auto fh = std::make_unique<FileHandle>();
  fh->fd = fd.get();
  fh->fds.push_back(std::move(fd));
  fh->ino = entry->ino;
  fh->flags = flags;
  fh->writable = true;
  fh->keep_cache = true;
  std::lock_guard lock(mu_);
  Node* node = nodes_.at(entry->ino).get();  // counted one lookup: the kernel holds it
  fh->generation = node->generation.load();
  fh->moved = &node->generation;
  ++node->open_count;
  return fh;
}

Result<EntryOut> Overlay::Link(uint64_t ino, uint64_t new_parent, const std::string& new_name) {
  std::shared_lock tree(tree_mu_);
  for (;;) {
    BUILDFS_ASSIGN_OR_RETURN(LockedNode node, LockNode(ino, false, {{new_parent, true}}));
    Pin dir;
    View node_view, dir_view;
    {
      std::lock_guard lock(mu_);
      if (S_ISDIR(node->type)) return Status::Error(EPERM, "hard link to a directory");
      if (node->orphan) return Status::Error(ENOENT, "link of a deleted file");
      BUILDFS_ASSIGN_OR_RETURN(Node * d, GetDir(new_parent));
      dir = Pin(this, d);
      BUILDFS_ASSIGN_OR_RETURN(node_view, ViewOf(*node.pin.get()));
      BUILDFS_ASSIGN_OR_RETURN(dir_view, ViewOf(*d));
    }
    BUILDFS_ASSIGN_OR_RETURN(Resolved existing, Resolve(dir_view, new_name));
    if (existing.found) return Status::Error(EEXIST, new_name);
    const bool root_up = root_up_.load();
    if (NeedsCopyUp(ino, node_view.in_upper, false, root_up) ||
        NeedsCopyUp(new_parent, dir_view.in_upper, false, root_up)) {
      node.dirs.Unlock();
      BUILDFS_RETURN_IF_ERROR(CopyUp(ino));
      BUILDFS_RETURN_IF_ERROR(CopyUp(new_parent));
      continue;
    }
    std::string path = JoinPath(dir_view.path, new_name);
    BUILDFS_ASSIGN_OR_RETURN(LayerEntry here, UpperEntry(path));
    BUILDFS_ASSIGN_OR_RETURN(UpperLayer::Parent src, upper_.OpenParent(node_view.path));
    BUILDFS_ASSIGN_OR_RETURN(UpperLayer::Parent dst, upper_.OpenParent(path));
    BUILDFS_RETURN_IF_ERROR(upper_.Link(src, dst, ino, here.kind == LayerEntry::kWhiteout));
    {
      std::lock_guard lock(mu_);
      AddAlias(node.pin.get(), new_parent, new_name);
      ++dir->changes;
    }
    return Entry(node.pin.get(), &path);
  }
}

Status Overlay::Unlink(uint64_t parent, const std::string& name) {
  std::shared_lock tree(tree_mu_);
  for (;;) {
    DirLocks dirs(this, {{parent, true}});
    View view;
    BUILDFS_ASSIGN_OR_RETURN(Pin dir, PinDir(parent, &view));
    BUILDFS_ASSIGN_OR_RETURN(Resolved r, Resolve(view, name));
    if (!r.found) return Status::Error(ENOENT, name);
    if (S_ISDIR(r.type)) return Status::Error(EISDIR, name);
    if (NeedsCopyUp(parent, view.in_upper, false, root_up_.load())) {
      dirs.Unlock();
      BUILDFS_RETURN_IF_ERROR(CopyUp(parent));
      continue;
    }
    std::string path = JoinPath(view.path, name);
    bool whiteout = LowerHas(view, name);
    Pin node;
    bool keep = false;
    {
      std::lock_guard lock(mu_);
      auto it = nodes_.find(r.ino);
      if (it != nodes_.end()) {
        node = Pin(this, it->second.get());
        keep = node->open_count > 0 && node->aliases.size() <= 1;
      }
    }
    BUILDFS_ASSIGN_OR_RETURN(UpperLayer::Parent ref, upper_.OpenParent(path));
    if (r.in_upper) {
      bool last_link = r.top.st.st_nlink <= 1;
      if (keep) {
        // Still open: the file lives on in work/ until its last handle is released.
        BUILDFS_RETURN_IF_ERROR(MakeOrphan(node.get(), path, last_link));
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
    std::lock_guard lock(mu_);
    ++dir->changes;
    if (node.get()) {
      DropAlias(node.get(), parent, name);
      MarkRemoved(node.get(), r.top.st);
    }
    return Status::Ok();
  }
}

Status Overlay::RmDir(uint64_t parent, const std::string& name) {
  std::shared_lock tree(tree_mu_);
  uint64_t victim = 0;  // the directory's number, locked too once known
  for (;;) {
    std::vector<std::pair<uint64_t, bool>> locks{{parent, true}};
    if (victim != 0) locks.emplace_back(victim, true);
    DirLocks dirs(this, std::move(locks));
    View view;
    BUILDFS_ASSIGN_OR_RETURN(Pin dir, PinDir(parent, &view));
    BUILDFS_ASSIGN_OR_RETURN(Resolved r, Resolve(view, name));
    if (!r.found) return Status::Error(ENOENT, name);
    if (!S_ISDIR(r.type)) return Status::Error(ENOTDIR, name);
    if (r.ino != victim) {
      victim = r.ino;  // nothing may be made in it while it is checked and removed
      continue;
    }
    std::string path = JoinPath(view.path, name);
    View probe;
    probe.in_upper = r.in_upper;
    probe.path = path;
    for (const auto& src : r.lower) probe.lower.push_back(Materialize(src, path));
    BUILDFS_ASSIGN_OR_RETURN(auto names, MergedNames(probe));
    if (!names.empty()) return Status::Error(ENOTEMPTY, name);
    if (NeedsCopyUp(parent, view.in_upper, false, root_up_.load())) {
      dirs.Unlock();
      BUILDFS_RETURN_IF_ERROR(CopyUp(parent));
      continue;
    }
    bool whiteout = LowerHas(view, name);
    BUILDFS_ASSIGN_OR_RETURN(UpperLayer::Parent ref, upper_.OpenParent(path));
    if (r.in_upper) {
      // The upper directory may still hold whiteouts: move it out whole, then delete it.
      BUILDFS_ASSIGN_OR_RETURN(UpperLayer::Parent gone, upper_.MoveToWork(ref, r.ino, whiteout));
      upper_.Discard(gone);
    } else {
      BUILDFS_RETURN_IF_ERROR(upper_.Whiteout(ref));
    }
    std::lock_guard lock(mu_);
    dir->subdirs = -1;
    ++dir->changes;
    auto it = nodes_.find(r.ino);
    if (it != nodes_.end()) {
      Node* node = it->second.get();
      DropAlias(node, parent, name);
      node->removed = true;
      ++node->changes;
      MaybeErase(node);
    }
    return Status::Ok();
  }
}

Status Overlay::Rename(uint64_t parent, const std::string& name, uint64_t new_parent,
                       const std::string& new_name, unsigned flags) {
  if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) return Status::Error(EINVAL, "rename flags");
  const bool exchange = flags & RENAME_EXCHANGE;
  // A directory that moves changes the path of everything below it: that
  // takes the tree lock exclusive; a file takes its two directories' locks.
  bool moves_dirs = false;
  for (;;) {
    std::shared_lock shared_tree(tree_mu_, std::defer_lock);
    std::unique_lock whole_tree(tree_mu_, std::defer_lock);
    DirLocks dirs;
    if (moves_dirs) {
      whole_tree.lock();
    } else {
      shared_tree.lock();
      dirs = DirLocks(this, {{parent, true}, {new_parent, true}});
    }
    Pin dir, new_dir;
    View dir_view, new_dir_view;
    {
      std::lock_guard lock(mu_);
      BUILDFS_ASSIGN_OR_RETURN(Node * d, GetDir(parent));
      BUILDFS_ASSIGN_OR_RETURN(Node * nd, GetDir(new_parent));
      dir = Pin(this, d);
      new_dir = Pin(this, nd);
      BUILDFS_ASSIGN_OR_RETURN(dir_view, ViewOf(*d));
      BUILDFS_ASSIGN_OR_RETURN(new_dir_view, ViewOf(*nd));
    }
    BUILDFS_ASSIGN_OR_RETURN(Resolved src, Resolve(dir_view, name));
    if (!src.found) return Status::Error(ENOENT, name);
    BUILDFS_ASSIGN_OR_RETURN(Resolved dst, Resolve(new_dir_view, new_name));
    if ((flags & RENAME_NOREPLACE) && dst.found) return Status::Error(EEXIST, new_name);
    if (exchange && !dst.found) return Status::Error(ENOENT, new_name);
    if (dst.found && dst.ino == src.ino) return Status::Ok();  // two names of one file
    const std::string path = JoinPath(dir_view.path, name);
    const std::string new_path = JoinPath(new_dir_view.path, new_name);
    const bool src_dir = S_ISDIR(src.type);
    const bool dst_dir = dst.found && S_ISDIR(dst.type);
    if ((src_dir || dst_dir) && !moves_dirs) {
      moves_dirs = true;
      continue;
    }
    if (dst.found && !exchange) {
      if (src_dir && !dst_dir) return Status::Error(ENOTDIR, new_name);
      if (!src_dir && dst_dir) return Status::Error(EISDIR, new_name);
      if (dst_dir) {
        View probe;
        probe.in_upper = dst.in_upper;
        probe.path = new_path;
        for (const auto& l : dst.lower) probe.lower.push_back(Materialize(l, new_path));
        BUILDFS_ASSIGN_OR_RETURN(auto names, MergedNames(probe));
        if (!names.empty()) return Status::Error(ENOTEMPTY, new_name);
      }
    }

    Pin s, d;
    View s_view, d_view;
    {
      std::lock_guard lock(mu_);
      s = Pin(this, Remember(parent, name, src));
      BUILDFS_ASSIGN_OR_RETURN(s_view, ViewOf(*s.get(), &path));
      if (dst.found) {
        d = Pin(this, Remember(new_parent, new_name, dst));
        BUILDFS_ASSIGN_OR_RETURN(d_view, ViewOf(*d.get(), &new_path));
      }
    }
    const bool root_up = root_up_.load();
    if (NeedsCopyUp(parent, dir_view.in_upper, false, root_up) ||
        NeedsCopyUp(new_parent, new_dir_view.in_upper, false, root_up) ||
        NeedsCopyUp(src.ino, s_view.in_upper, s_view.orphan, root_up) ||
        (exchange && NeedsCopyUp(dst.ino, d_view.in_upper, d_view.orphan, root_up))) {
      dirs.Unlock();
      BUILDFS_RETURN_IF_ERROR(CopyUp(parent));
      BUILDFS_RETURN_IF_ERROR(CopyUp(new_parent));
      BUILDFS_RETURN_IF_ERROR(CopyUp(src.ino));
      if (exchange) BUILDFS_RETURN_IF_ERROR(CopyUp(dst.ino));
      continue;
    }

    Status st = [&]() -> Status {
      {
        // Directories keep the paths their lower layers hold them at.
        std::lock_guard lock(mu_);
        if (src_dir) KeepLowerPathsBelow(*s.get());
        if (exchange && dst_dir) KeepLowerPathsBelow(*d.get());
      }
      BUILDFS_ASSIGN_OR_RETURN(UpperLayer::Parent from, upper_.OpenParent(path));
      BUILDFS_ASSIGN_OR_RETURN(UpperLayer::Parent to, upper_.OpenParent(new_path));
      // A moved directory keeps its lower parts through a redirect; one without
      // any becomes opaque so nothing under its new name shows through.
      auto mark_moved_dir = [&](const View& n, const std::string& at, int fd,
                                const std::string& nm) -> Status {
        if (!S_ISDIR(n.type)) return Status::Ok();
        if (n.lower.empty()) return SetOpaque(fd, nm);
        BUILDFS_ASSIGN_OR_RETURN(std::string lower_path, LowerPathOf(at));
        return SetRedirect(fd, nm, lower_path);
      };
      BUILDFS_RETURN_IF_ERROR(mark_moved_dir(s_view, path, from.dir->get(), from.name));
      if (exchange) {
        BUILDFS_RETURN_IF_ERROR(mark_moved_dir(d_view, new_path, to.dir->get(), to.name));
        BUILDFS_RETURN_IF_ERROR(upper_.Exchange(from, to));
        std::lock_guard lock(mu_);
        AddAlias(s.get(), new_parent, new_name);
        AddAlias(d.get(), parent, name);
        DropAlias(s.get(), parent, name);
        DropAlias(d.get(), new_parent, new_name);
        return Status::Ok();
      }
      // An upper directory the rename replaces: moved out first, deleted after.
      std::optional<UpperLayer::Parent> cleared;
      if (d.get() && d_view.in_upper) {
        if (dst_dir) {
          BUILDFS_ASSIGN_OR_RETURN(cleared,
                                   upper_.MoveToWork(to, dst.ino, /*leave_whiteout=*/false));
        } else if (d_view.open_count > 0 && d_view.aliases <= 1) {
          BUILDFS_RETURN_IF_ERROR(MakeOrphan(d.get(), new_path, dst.top.st.st_nlink <= 1));
        }
      }
      bool whiteout = LowerHas(dir_view, name);
      BUILDFS_ASSIGN_OR_RETURN(LayerEntry target, UpperEntry(new_path));
      if (target.kind == LayerEntry::kWhiteout && src_dir) {
        // A directory cannot replace the whiteout device by rename: swap them,
        // and keep the whiteout at the old name only if a lower layer needs it.
        BUILDFS_RETURN_IF_ERROR(upper_.Exchange(from, to));
        if (!whiteout) upper_.Remove(from);
        std::lock_guard lock(mu_);
        AddAlias(s.get(), new_parent, new_name);
        DropAlias(s.get(), parent, name);
        return Status::Ok();
      }
      Status moved = upper_.Move(from, to, whiteout);
      if (!moved.ok()) {
        if (cleared) upper_.Move(*cleared, to, false);  // put the replaced directory back
        return moved;
      }
      if (cleared) upper_.Discard(*cleared);
      std::lock_guard lock(mu_);
      if (d.get()) {
        DropAlias(d.get(), new_parent, new_name);
        if (dst_dir) {
          d->removed = true;
          ++d->changes;
        } else {
          MarkRemoved(d.get(), dst.top.st);
        }
      }
      AddAlias(s.get(), new_parent, new_name);
      DropAlias(s.get(), parent, name);
      return Status::Ok();
    }();
    {
      std::lock_guard lock(mu_);
      dir->subdirs = -1;
      new_dir->subdirs = -1;
      ++dir->changes;
      ++new_dir->changes;
    }
    // Directories of the upper moved (or went): their cached fds name other places now.
    if (src_dir || dst_dir) upper_.dirs()->ForgetDirs();
    return st;
  }
}

}  // namespace buildfs
