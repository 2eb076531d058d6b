#include "fs/lifecycle/changes.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "fs/common/path.h"
#include "fs/layers/ostree_layer.h"
#include "fs/lifecycle/stack.h"
#include "fs/overlay/overlay.h"

namespace buildfs {
namespace {

// A read-only view of a build: its overlay (without cache/) and its base.
struct BuildView {
  std::unique_ptr<Overlay> overlay;
  std::shared_ptr<Layer> base;
};

Result<BuildView> OpenView(const Workspace& ws, const std::string& name) {
  BUILDFS_ASSIGN_OR_RETURN(BuildInfo info, ws.LoadBuild(name));
  LayerStack stack;
  BUILDFS_ASSIGN_OR_RETURN(auto upper, DirLayer::Open(ws.upper_path(name), {"", true, false}));
  BUILDFS_ASSIGN_OR_RETURN(auto work, DirLayer::Open(ws.work_path(name), {"", false, false}));
  stack.upper = std::move(upper);
  stack.work = std::move(work);
  BUILDFS_ASSIGN_OR_RETURN(stack.lowers, OpenLowerLayers(ws, info, /*with_cache=*/false));
  BuildView view;
  view.base = stack.lowers.back().layer;
  view.overlay = std::make_unique<Overlay>(std::move(stack));
  return view;
}

Result<std::string> ReadAll(int fd) {
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

Result<Xattrs> OverlayXattrs(Overlay& ov, uint64_t ino) {
  BUILDFS_ASSIGN_OR_RETURN(auto names, ov.ListXattr(ino));
  Xattrs out;
  for (const auto& n : names) {
    BUILDFS_ASSIGN_OR_RETURN(std::string v, ov.GetXattr(ino, n));
    out.emplace_back(n, std::move(v));
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Walks the directories a private layer touches and compares them with the base.
class ChangeWalker {
 public:
  ChangeWalker(BuildView& view, std::vector<Change>& out) : ov_(*view.overlay), base_(*view.base), out_(out) {}

  Status Walk(uint64_t ino, const std::string& path) {
    BUILDFS_ASSIGN_OR_RETURN(auto listing, ov_.OpenDir(ino));
    std::set<std::string> present;
    for (const auto& e : listing->entries) {
      if (e.name == "." || e.name == "..") continue;
      if (path.empty() && e.name == "cache") continue;
      present.insert(e.name);
      BUILDFS_ASSIGN_OR_RETURN(EntryOut child, ov_.Lookup(ino, e.name));
      if (child.ino == 0) continue;
      Status st = Visit(child, JoinPath(path, e.name));
      ov_.Forget(child.ino, 1);
      BUILDFS_RETURN_IF_ERROR(st);
    }
    if (!path.empty()) {
      BUILDFS_ASSIGN_OR_RETURN(LayerEntry here, base_.Lookup(path));
      if (here.kind != LayerEntry::kPresent || !S_ISDIR(here.st.st_mode)) return Status::Ok();
    }
    std::vector<LayerDirent> before;
    BUILDFS_RETURN_IF_ERROR(base_.ReadDir(path, &before));
    for (const auto& e : before) {
      if (path.empty() && e.name == "cache") continue;
      if (!present.count(e.name)) BUILDFS_RETURN_IF_ERROR(Deleted(JoinPath(path, e.name)));
    }
    return Status::Ok();
  }

 private:
  Status Visit(const EntryOut& child, const std::string& path) {
    auto obj = ov_.RepoObjectAt(child.ino);
    auto base_obj = base_.ObjectAt(path);
    if (obj && base_obj && obj->checksum == base_obj->checksum) return Status::Ok();  // untouched
    BUILDFS_ASSIGN_OR_RETURN(LayerEntry before, base_.Lookup(path));
    bool existed = before.kind == LayerEntry::kPresent;
    bool is_dir = S_ISDIR(child.st.st_mode);
    if (existed && S_ISDIR(before.st.st_mode) != is_dir) {
      BUILDFS_RETURN_IF_ERROR(Deleted(path));
      existed = false;
    }
    if (is_dir) {
      size_t mark = out_.size();
      if (existed) {
        BUILDFS_ASSIGN_OR_RETURN(bool same, SameMeta(child, path, before));
        if (!same) out_.push_back({'M', path, true});
        return Walk(child.ino, path);
      }
      BUILDFS_RETURN_IF_ERROR(Walk(child.ino, path));
      if (out_.size() == mark) out_.push_back({'A', path, true});  // an empty new directory
      return Status::Ok();
    }
    if (!existed) {
      out_.push_back({'A', path, false});
      return Status::Ok();
    }
    BUILDFS_ASSIGN_OR_RETURN(bool same, SameFile(child, path, before));
    if (!same) out_.push_back({'M', path, false});
    return Status::Ok();
  }

  Result<bool> SameMeta(const EntryOut& child, const std::string& path, const LayerEntry& before) {
    if (child.st.st_mode != before.st.st_mode || child.st.st_uid != before.st.st_uid ||
        child.st.st_gid != before.st.st_gid) {
      return false;
    }
    BUILDFS_ASSIGN_OR_RETURN(Xattrs now, OverlayXattrs(ov_, child.ino));
    BUILDFS_ASSIGN_OR_RETURN(Xattrs then, base_.ListXattrs(path));
    return now == then;
  }

  Result<bool> SameFile(const EntryOut& child, const std::string& path, const LayerEntry& before) {
    BUILDFS_ASSIGN_OR_RETURN(bool same, SameMeta(child, path, before));
    if (!same || child.st.st_size != before.st.st_size || child.st.st_rdev != before.st.st_rdev) {
      return false;
    }
    if (S_ISLNK(child.st.st_mode)) {
      BUILDFS_ASSIGN_OR_RETURN(std::string now, ov_.ReadLink(child.ino));
      BUILDFS_ASSIGN_OR_RETURN(std::string then, base_.ReadLink(path));
      return now == then;
    }
    if (!S_ISREG(child.st.st_mode)) return true;
    BUILDFS_ASSIGN_OR_RETURN(auto fh, ov_.Open(child.ino, O_RDONLY));
    BUILDFS_ASSIGN_OR_RETURN(int fd, ov_.ReadFd(fh.get()));
    auto now = ReadAll(fd);
    ov_.Release(std::move(fh));
    if (!now.ok()) return now.status();
    BUILDFS_ASSIGN_OR_RETURN(UniqueFd then_fd, base_.Open(path, O_RDONLY));
    BUILDFS_ASSIGN_OR_RETURN(std::string then, ReadAll(then_fd.get()));
    return now.value() == then;
  }

  // Reports `path` of the base as deleted: each file below a deleted directory.
  Status Deleted(const std::string& path) {
    BUILDFS_ASSIGN_OR_RETURN(LayerEntry e, base_.Lookup(path));
    if (!S_ISDIR(e.st.st_mode)) {
      out_.push_back({'D', path, false});
      return Status::Ok();
    }
    std::vector<LayerDirent> children;
    BUILDFS_RETURN_IF_ERROR(base_.ReadDir(path, &children));
    if (children.empty()) out_.push_back({'D', path, true});
    for (const auto& c : children) BUILDFS_RETURN_IF_ERROR(Deleted(JoinPath(path, c.name)));
    return Status::Ok();
  }

  Overlay& ov_;
  Layer& base_;
  std::vector<Change>& out_;
};

// Resolves a relative path in the overlay to an inode (one lookup held).
Result<EntryOut> LookupPath(Overlay& ov, const std::string& path) {
  EntryOut cur;
  cur.ino = kRootIno;
  size_t pos = 0;
  while (pos < path.size()) {
    size_t slash = path.find('/', pos);
    std::string name = path.substr(pos, slash == std::string::npos ? std::string::npos : slash - pos);
    pos = slash == std::string::npos ? path.size() : slash + 1;
    BUILDFS_ASSIGN_OR_RETURN(EntryOut next, ov.Lookup(cur.ino, name));
    if (cur.ino != kRootIno) ov.Forget(cur.ino, 1);
    if (next.ino == 0) return Status::Error(ENOENT, path);
    cur = next;
  }
  return cur;
}

bool LooksBinary(const std::string& data) {
  return data.find('\0', 0) != std::string::npos && data.find('\0') < 8192;
}

// Runs `diff -u` on two blobs, labelled a/PATH and b/PATH.
Status UnifiedDiff(const std::string& path, const std::string* before, const std::string* after,
                   FILE* out) {
  if ((before && LooksBinary(*before)) || (after && LooksBinary(*after))) {
    fprintf(out, "Binary files a/%s and b/%s differ\n", path.c_str(), path.c_str());
    return Status::Ok();
  }
  char dir_template[] = "/tmp/buildfs-diff-XXXXXX";
  if (!mkdtemp(dir_template)) return Status::FromErrno("diff");
  std::string dir = dir_template;
  std::string a = dir + "/a", b = dir + "/b";
  Status st = WriteFileAtomic(a, before ? *before : "");
  if (st.ok()) st = WriteFileAtomic(b, after ? *after : "");
  if (st.ok()) {
    fflush(out);
    std::string la = before ? "a/" + path : "/dev/null";
    std::string lb = after ? "b/" + path : "/dev/null";
    pid_t pid = fork();
    if (pid == 0) {
      dup2(fileno(out), 1);
      execlp("diff", "diff", "-u", "--label", la.c_str(), "--label", lb.c_str(), a.c_str(), b.c_str(),
             static_cast<char*>(nullptr));
      _exit(127);
    }
    int wstatus = 0;
    if (pid > 0) waitpid(pid, &wstatus, 0);
    if (pid < 0 || !WIFEXITED(wstatus) || WEXITSTATUS(wstatus) > 1) {
      st = Status::Error(EIO, "diff failed for " + path);
    }
  }
  RemoveTree(dir);
  return st;
}

}  // namespace

Result<std::vector<Change>> BuildStatus(const Workspace& ws, const std::string& name) {
  BUILDFS_ASSIGN_OR_RETURN(BuildView view, OpenView(ws, name));
  std::vector<Change> out;
  ChangeWalker walker(view, out);
  BUILDFS_RETURN_IF_ERROR(walker.Walk(kRootIno, ""));
  std::sort(out.begin(), out.end(), [](const Change& a, const Change& b) { return a.path < b.path; });
  return out;
}

Status BuildDiff(const Workspace& ws, const std::string& name, const std::string& prefix, FILE* out) {
  BUILDFS_ASSIGN_OR_RETURN(auto changes, BuildStatus(ws, name));
  BUILDFS_ASSIGN_OR_RETURN(BuildView view, OpenView(ws, name));
  for (const auto& c : changes) {
    if (c.is_dir) continue;
    if (!prefix.empty() && c.path != prefix && c.path.rfind(prefix + "/", 0) != 0) continue;
    std::string before, after;
    bool has_before = c.kind != 'A', has_after = c.kind != 'D';
    if (has_before) {
      BUILDFS_ASSIGN_OR_RETURN(LayerEntry e, view.base->Lookup(c.path));
      if (S_ISREG(e.st.st_mode)) {
        BUILDFS_ASSIGN_OR_RETURN(UniqueFd fd, view.base->Open(c.path, O_RDONLY));
        BUILDFS_ASSIGN_OR_RETURN(before, ReadAll(fd.get()));
      } else if (S_ISLNK(e.st.st_mode)) {
        BUILDFS_ASSIGN_OR_RETURN(before, view.base->ReadLink(c.path));
        before = "symlink -> " + before + "\n";
      }
    }
    if (has_after) {
      BUILDFS_ASSIGN_OR_RETURN(EntryOut e, LookupPath(*view.overlay, c.path));
      if (S_ISREG(e.st.st_mode)) {
        BUILDFS_ASSIGN_OR_RETURN(auto fh, view.overlay->Open(e.ino, O_RDONLY));
        BUILDFS_ASSIGN_OR_RETURN(int fd, view.overlay->ReadFd(fh.get()));
        auto data = ReadAll(fd);
        view.overlay->Release(std::move(fh));
        BUILDFS_ASSIGN_OR_RETURN(after, std::move(data));
      } else if (S_ISLNK(e.st.st_mode)) {
        BUILDFS_ASSIGN_OR_RETURN(after, view.overlay->ReadLink(e.ino));
        after = "symlink -> " + after + "\n";
      }
      view.overlay->Forget(e.ino, 1);
    }
    if (c.kind == 'M' && before == after) {
      fprintf(out, "mode or owner changed: %s\n", c.path.c_str());
      continue;
    }
    BUILDFS_RETURN_IF_ERROR(UnifiedDiff(c.path, has_before ? &before : nullptr,
                                        has_after ? &after : nullptr, out));
  }
  return Status::Ok();
}

namespace {

Status CopyOut(Overlay& ov, uint64_t ino, const EntryOut& attr, int dir_fd, const std::string& name);

Status CopyDirOut(Overlay& ov, uint64_t ino, int dir_fd, bool is_root) {
  BUILDFS_ASSIGN_OR_RETURN(auto listing, ov.OpenDir(ino));
  for (const auto& e : listing->entries) {
    if (e.name == "." || e.name == "..") continue;
    if (is_root && e.name == "cache") continue;
    BUILDFS_ASSIGN_OR_RETURN(EntryOut child, ov.Lookup(ino, e.name));
    if (child.ino == 0) continue;
    Status st = CopyOut(ov, child.ino, child, dir_fd, e.name);
    ov.Forget(child.ino, 1);
    BUILDFS_RETURN_IF_ERROR(st);
  }
  return Status::Ok();
}

Status SetMeta(Overlay& ov, uint64_t ino, const struct stat& st, int dir_fd, const std::string& name) {
  BUILDFS_ASSIGN_OR_RETURN(Xattrs xattrs, OverlayXattrs(ov, ino));
  for (const auto& [k, v] : xattrs) BUILDFS_RETURN_IF_ERROR(SetXattrAt(dir_fd, name, k, v));
  if (fchownat(dir_fd, name.c_str(), st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) != 0 && geteuid() == 0) {
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

Status CopyOut(Overlay& ov, uint64_t ino, const EntryOut& attr, int dir_fd, const std::string& name) {
  const struct stat& st = attr.st;
  if (S_ISDIR(st.st_mode)) {
    if (mkdirat(dir_fd, name.c_str(), 0700) != 0) return Status::FromErrno(name);
    UniqueFd sub(openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!sub.valid()) return Status::FromErrno(name);
    BUILDFS_RETURN_IF_ERROR(CopyDirOut(ov, ino, sub.get(), false));
  } else if (S_ISREG(st.st_mode)) {
    BUILDFS_ASSIGN_OR_RETURN(auto fh, ov.Open(ino, O_RDONLY));
    BUILDFS_ASSIGN_OR_RETURN(int from, ov.ReadFd(fh.get()));
    UniqueFd to(openat(dir_fd, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    Status copied = to.valid() ? Status::Ok() : Status::FromErrno(name);
    for (off_t off = 0; copied.ok();) {
      ssize_t n = copy_file_range(from, &off, to.get(), nullptr, 1 << 30, 0);
      if (n == 0) break;
      if (n < 0 && errno != EINTR) copied = Status::FromErrno(name);
    }
    ov.Release(std::move(fh));
    BUILDFS_RETURN_IF_ERROR(copied);
  } else if (S_ISLNK(st.st_mode)) {
    BUILDFS_ASSIGN_OR_RETURN(std::string target, ov.ReadLink(ino));
    if (symlinkat(target.c_str(), dir_fd, name.c_str()) != 0) return Status::FromErrno(name);
  } else if (mknodat(dir_fd, name.c_str(), (st.st_mode & S_IFMT) | 0600, st.st_rdev) != 0) {
    return Status::FromErrno(name);
  }
  return SetMeta(ov, ino, st, dir_fd, name);
}

}  // namespace

Status ExportBuild(const Workspace& ws, const std::string& name, const std::string& dest) {
  struct stat st;
  if (lstat(dest.c_str(), &st) == 0) return Status::Error(EEXIST, dest + ": already exists");
  BUILDFS_ASSIGN_OR_RETURN(BuildView view, OpenView(ws, name));
  std::string tmp = dest + ".buildfs-export-" + std::to_string(getpid());
  RemoveTree(tmp);
  if (mkdir(tmp.c_str(), 0700) != 0) return Status::FromErrno(tmp);
  UniqueFd fd(open(tmp.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  Status done = fd.valid() ? CopyDirOut(*view.overlay, kRootIno, fd.get(), true) : Status::FromErrno(tmp);
  if (done.ok()) {
    auto root = view.overlay->GetAttr(kRootIno);
    done = root.ok() ? SetMeta(*view.overlay, kRootIno, root->st, fd.get(), ".") : root.status();
  }
  if (done.ok() && rename(tmp.c_str(), dest.c_str()) != 0) done = Status::FromErrno(dest);
  if (!done.ok()) RemoveTree(tmp);
  return done;
}

}  // namespace buildfs
