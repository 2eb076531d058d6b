#include "fs/lifecycle/commit.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>

#include "fs/common/path.h"
#include "fs/lifecycle/branch.h"
#include "fs/lifecycle/build_lock.h"
#include "fs/lifecycle/control.h"
#include "fs/lifecycle/mounter.h"
#include "fs/layers/ostree_layer.h"
#include "fs/lifecycle/stack.h"
#include "fs/overlay/overlay.h"
#include "fs/store/objects.h"
#include "fs/store/repo.h"

namespace buildfs {
namespace {

// Room for the directory objects and the commit, beyond the files' bytes.
constexpr uint64_t kSpaceMargin = 4 << 20;

// Writes the merged tree of an overlay into a CommitBuilder, reusing every
// entry that a commit layer alone provides.
class TreeWriter {
 public:
  // `tmp_dir`: where content that is not one plain file is put together.
  TreeWriter(Overlay& overlay, CommitBuilder& builder, CommitResult& result, const Progress& progress,
             std::string tmp_dir)
      : ov_(overlay), b_(builder), result_(result), progress_(progress), tmp_dir_(std::move(tmp_dir)) {}

  Status WriteDir(uint64_t ino, CommitBuilder::Dir dir, const std::string& path) {
    ++result_.dirs_walked;
    BUILDFS_ASSIGN_OR_RETURN(EntryOut attr, ov_.GetAttr(ino));
    BUILDFS_ASSIGN_OR_RETURN(auto listing, ov_.OpenDir(ino));
    for (const auto& e : listing->entries) {
      if (e.name == "." || e.name == "..") continue;
      if (path.empty() && e.name == "cache") continue;  // the shared cache is no part of a build's tree
      if (progress_.cancelled()) return Status::Error(ECANCELED, "interrupted");
      BUILDFS_ASSIGN_OR_RETURN(EntryOut child, ov_.Lookup(ino, e.name));
      if (child.ino == 0) continue;
      Status st = WriteEntry(child, e.name, JoinPath(path, e.name), dir);
      ov_.Forget(child.ino, 1);
      BUILDFS_RETURN_IF_ERROR(st);
      progress_.Report(++walked_);
    }
    // Last: the directory's record holds the times of its files.
    BUILDFS_ASSIGN_OR_RETURN(Xattrs xattrs, XattrsOf(ino));
    return b_.FinishDir(dir, attr.st.st_uid, attr.st.st_gid, attr.st.st_mode, xattrs, RecordOf(attr, path, false));
  }

 private:
  Result<Xattrs> XattrsOf(uint64_t ino) {
    BUILDFS_ASSIGN_OR_RETURN(auto names, ov_.ListXattr(ino));
    Xattrs out;
    for (const auto& n : names) {
      BUILDFS_ASSIGN_OR_RETURN(std::string v, ov_.GetXattr(ino, n));
      out.emplace_back(n, std::move(v));
    }
    return out;
  }

  // The entry's record (times, attributes) and, when the mount would not
  // derive it from the path, its inode number: what the mount shows again
  // after the commit.
  static EntryRecord RecordOf(const EntryOut& e, const std::string& path, bool has_xattrs) {
    EntryRecord r = RecordFor(e.st, has_xattrs);
    if (e.ino != kRootIno && e.ino != Overlay::PathIdentity(OstreeLayer::kKey, path)) r.ino = e.ino;
    return r;
  }

  Status WriteEntry(const EntryOut& child, const std::string& name, const std::string& path,
                    CommitBuilder::Dir dir) {
    if (auto obj = ov_.RepoObjectAt(child.ino)) {
      if (obj->is_dir) return b_.AddTree(dir, name, obj->checksum, obj->meta);
      BUILDFS_ASSIGN_OR_RETURN(Xattrs xattrs, XattrsOf(child.ino));
      return b_.AddFile(dir, name, obj->checksum, RecordOf(child, path, !xattrs.empty()));
    }
    if (S_ISDIR(child.st.st_mode)) {
      BUILDFS_ASSIGN_OR_RETURN(CommitBuilder::Dir sub, b_.AddDir(dir, name));
      return WriteDir(child.ino, sub, path);
    }
    BUILDFS_ASSIGN_OR_RETURN(Xattrs xattrs, XattrsOf(child.ino));
    std::string target;
    std::unique_ptr<FileHandle> fh;
    int fd = -1;
    UniqueFd whole;  // the content put together, when it is not one plain file
    if (S_ISLNK(child.st.st_mode)) {
      BUILDFS_ASSIGN_OR_RETURN(target, ov_.ReadLink(child.ino));
    } else if (S_ISREG(child.st.st_mode)) {
      BUILDFS_ASSIGN_OR_RETURN(fh, ov_.Open(child.ino, O_RDONLY | O_NOATIME));
      BUILDFS_ASSIGN_OR_RETURN(auto content, ov_.Content(fh.get()));
      fd = content->plain_fd();
      if (fd < 0) {
        // Never a file with holes where its data is (a chunked copy).
        BUILDFS_ASSIGN_OR_RETURN(whole, MaterializeContent(*content, tmp_dir_));
        fd = whole.get();
      }
    }
    auto checksum = b_.WriteContent(child.st, xattrs, fd, target);
    if (fh) ov_.Release(std::move(fh));
    if (!checksum.ok()) return checksum.status().With(name);
    ++result_.entries_written;
    return b_.AddFile(dir, name, checksum.value(), RecordOf(child, path, !xattrs.empty()));
  }

  Overlay& ov_;
  CommitBuilder& b_;
  CommitResult& result_;
  const Progress& progress_;
  const std::string tmp_dir_;
  uint64_t walked_ = 0;
};

// Writes the commit of `info`'s frozen layers over its base: the commit id,
// or "" when the tree is the base's own.
Result<std::string> WriteCommit(const Workspace& ws, const BuildInfo& info, const std::string& message,
                                CommitResult* result, const Progress& progress) {
  // The overlay here only reads: an empty directory serves as upper and work.
  BUILDFS_ASSIGN_OR_RETURN(std::string empty, EmptyDir(ws));
  LayerStack stack;
  BUILDFS_ASSIGN_OR_RETURN(auto upper, DirLayer::Open(empty, {"", true, false}));
  BUILDFS_ASSIGN_OR_RETURN(auto work, DirLayer::Open(empty, {"", false, false}));
  stack.upper = std::move(upper);
  stack.work = std::move(work);
  BUILDFS_ASSIGN_OR_RETURN(stack.lowers, OpenLowerLayers(ws, info, /*with_cache=*/false));
  Overlay overlay(std::move(stack));
  BUILDFS_ASSIGN_OR_RETURN(ObjectReader reader, ObjectReader::Open(ws.repo_path()));
  BUILDFS_ASSIGN_OR_RETURN(CommitInfo base, reader.LoadCommit(info.base));
  BUILDFS_ASSIGN_OR_RETURN(auto repo, Repo::Open(ws.repo_path()));
  BUILDFS_ASSIGN_OR_RETURN(auto builder, repo->BeginCommit());
  TreeWriter writer(overlay, *builder, *result, progress, ws.repo_path() + "/tmp");
  BUILDFS_RETURN_IF_ERROR(writer.WriteDir(kRootIno, builder->root(), ""));
  const CommitBuilder::Root base_root{base.root_tree, base.root_meta};
  return builder->Finish(Workspace::BaseRef(info.name), info.base, message, &base_root);
}

// Bytes of the regular files below `dir_fd` (the top-level cache/ and the
// bases of chunked files skipped).
// A mounted build's upper changes meanwhile: what vanishes is not counted.
Result<uint64_t> FileBytes(int dir_fd, bool is_root) {
  BUILDFS_ASSIGN_OR_RETURN(auto names, ListNamesAt(dir_fd));
  uint64_t total = 0;
  for (const auto& name : names) {
    if (is_root && (name == "cache" || name == kBasesDir)) continue;
    struct stat st;
    if (fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) continue;
      return Status::FromErrno(name);
    }
    if (S_ISREG(st.st_mode)) total += static_cast<uint64_t>(st.st_size);
    if (!S_ISDIR(st.st_mode)) continue;
    UniqueFd sub(openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!sub.valid()) {
      if (errno == ENOENT || errno == ENOTDIR) continue;
      return Status::FromErrno(name);
    }
    BUILDFS_ASSIGN_OR_RETURN(uint64_t below, FileBytes(sub.get(), false));
    total += below;
  }
  return total;
}

// Refuses a commit whose objects the repository's filesystem cannot hold,
// before anything changes: a commit that fails half-way on a full disk would
// leave nothing worse, but a clear answer up front is better.
Status CheckSpace(const Workspace& ws, const BuildInfo& info) {
  std::vector<std::string> dirs = {ws.upper_path(info.name)};
  for (const auto& id : info.layers) dirs.push_back(ws.layer_path(id));
  uint64_t need = kSpaceMargin;
  for (const auto& dir : dirs) {
    UniqueFd fd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd.valid()) return Status::FromErrno(dir);
    BUILDFS_ASSIGN_OR_RETURN(uint64_t bytes, FileBytes(fd.get(), true));
    need += bytes;
  }
  struct statvfs vfs;
  if (statvfs(ws.repo_path().c_str(), &vfs) != 0) return Status::FromErrno(ws.repo_path());
  const uint64_t free_bytes = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
  if (need > free_bytes) {
    return Status::Error(ENOSPC, "not enough space to commit build '" + info.name + "': its changes need " +
                                     std::to_string(need >> 20) + " MiB, " + ws.repo_path() + " has " +
                                     std::to_string(free_bytes >> 20) + " MiB free; nothing was changed");
  }
  return Status::Ok();
}

// Tells a mounted build's daemon that its layers changed on disk.
Status Reload(const Workspace& ws, const std::string& name) {
  if (!IsMounted(ws, name)) return Status::Ok();
  auto reply = ControlCall(ws.build_path(name), {{"op", "reload"}});
  if (!reply.ok()) return reply.status().With("switching mounted build '" + name + "' to the commit");
  return Status::Ok();
}

// Undoes the freeze this commit made (`id`, "" for none), when nothing was
// written to the build since. REQUIRES: the meta lock.
void TakeBackFreeze(const Workspace& ws, const std::string& name, const std::string& id) {
  if (id.empty()) return;
  if (IsMounted(ws, name)) {
    ControlCall(ws.build_path(name), {{"op", "unfreeze"}, {"id", id}});
  } else {
    UnfreezeUpperOnDisk(ws, name, id);
  }
}

}  // namespace

Result<CommitResult> CommitBuild(const Workspace& ws, const std::string& name,
                                 const std::string& subject, const Progress& progress) {
  if (subject.find_first_not_of(" \t\n") == std::string::npos) {
    return Status::Error(EINVAL, "empty commit message");
  }
  BUILDFS_ASSIGN_OR_RETURN(BuildLock lock, BuildLock::Acquire(ws, name, "commit"));
  CommitResult result;
  BuildInfo info;
  {
    BUILDFS_ASSIGN_OR_RETURN(FileLock meta, LockWorkspaceMeta(ws));
    BUILDFS_ASSIGN_OR_RETURN(info, RecoverBuild(ws, name));
  }
  result.commit = info.base;
  if (info.layers.empty() && !DirHasEntries(ws.upper_path(name))) return result;  // nothing private
  BUILDFS_RETURN_IF_ERROR(CheckSpace(ws, info));

  // Freeze: the commit reads frozen layers only, while a mounted build goes on.
  BuildInfo frozen;
  std::string froze;  // the layer this commit froze, taken back if it fails
  {
    BUILDFS_ASSIGN_OR_RETURN(FileLock meta, LockWorkspaceMeta(ws));
    BUILDFS_ASSIGN_OR_RETURN(frozen, FreezeBuild(ws, name));
    if (frozen.layers.size() > info.layers.size()) froze = frozen.layers.front();
    // The folded layers' private cache/ changes live on as layers of their own.
    Status st;
    for (const auto& id : frozen.layers) {
      auto copy = CopyCacheOfLayer(ws, id);
      if (!copy.ok()) {
        st = copy.status();
        break;
      }
      if (!copy->empty()) frozen.pending_cache.push_back(copy.value());
    }
    // Recorded before the ref can move, so a crash after it is completed.
    frozen.pending_commit = frozen.layers;
    if (st.ok()) st = ws.SaveBuild(frozen);
    if (!st.ok()) {
      TakeBackFreeze(ws, name, froze);
      CollectLayers(ws);
      return st;
    }
  }

  auto written = WriteCommit(ws, frozen, subject, &result, progress);
  {
    BUILDFS_ASSIGN_OR_RETURN(FileLock meta, LockWorkspaceMeta(ws));
    if (written.ok() && written->empty()) {
      // The tree is the base's: nothing to record. The frozen layers reduce
      // to their cache/ changes.
      frozen.layers = frozen.pending_cache;
      frozen.pending_commit.clear();
      frozen.pending_cache.clear();
      BUILDFS_RETURN_IF_ERROR(ws.SaveBuild(frozen));
    } else {
      // Completes the commit when the ref moved, or forgets it.
      BUILDFS_RETURN_IF_ERROR(RecoverBuild(ws, name).status());
    }
    if (!written.ok()) {
      TakeBackFreeze(ws, name, froze);
      CollectLayers(ws);
      return written.status();
    }
  }
  result.changed = !written->empty();
  if (result.changed) result.commit = written.value();
  result.kept_cache_changes = !frozen.pending_cache.empty() || (!result.changed && !frozen.layers.empty());
  BUILDFS_RETURN_IF_ERROR(Reload(ws, name));
  {
    BUILDFS_ASSIGN_OR_RETURN(FileLock meta, LockWorkspaceMeta(ws));
    BUILDFS_RETURN_IF_ERROR(CollectLayers(ws).status());
  }
  CollectLeftovers(ws);
  return result;
}

}  // namespace buildfs
