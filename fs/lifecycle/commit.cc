#include "fs/lifecycle/commit.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "fs/common/path.h"
#include "fs/lifecycle/branch.h"
#include "fs/lifecycle/control.h"
#include "fs/lifecycle/mounter.h"
#include "fs/lifecycle/stack.h"
#include "fs/overlay/overlay.h"
#include "fs/store/objects.h"
#include "fs/store/repo.h"

namespace buildfs {
namespace {

// Writes the merged tree of an overlay into a CommitBuilder, reusing every
// entry that a commit layer alone provides.
class TreeWriter {
 public:
  TreeWriter(Overlay& overlay, CommitBuilder& builder, CommitResult& result)
      : ov_(overlay), b_(builder), result_(result) {}

  Status WriteDir(uint64_t ino, CommitBuilder::Dir dir, bool is_root) {
    ++result_.dirs_walked;
    BUILDFS_ASSIGN_OR_RETURN(EntryOut attr, ov_.GetAttr(ino));
    BUILDFS_ASSIGN_OR_RETURN(Xattrs xattrs, XattrsOf(ino));
    BUILDFS_RETURN_IF_ERROR(b_.SetDirMeta(dir, attr.st.st_uid, attr.st.st_gid, attr.st.st_mode, xattrs));
    BUILDFS_ASSIGN_OR_RETURN(auto listing, ov_.OpenDir(ino));
    for (const auto& e : listing->entries) {
      if (e.name == "." || e.name == "..") continue;
      if (is_root && e.name == "cache") continue;  // the shared cache is no part of a build's tree
      BUILDFS_ASSIGN_OR_RETURN(EntryOut child, ov_.Lookup(ino, e.name));
      if (child.ino == 0) continue;
      Status st = WriteEntry(child, e.name, dir);
      ov_.Forget(child.ino, 1);
      BUILDFS_RETURN_IF_ERROR(st);
    }
    return Status::Ok();
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

  Status WriteEntry(const EntryOut& child, const std::string& name, CommitBuilder::Dir dir) {
    if (auto obj = ov_.RepoObjectAt(child.ino)) {
      if (obj->is_dir) return b_.AddTree(dir, name, obj->checksum, obj->meta);
      return b_.AddFile(dir, name, obj->checksum);
    }
    if (S_ISDIR(child.st.st_mode)) {
      BUILDFS_ASSIGN_OR_RETURN(CommitBuilder::Dir sub, b_.AddDir(dir, name));
      return WriteDir(child.ino, sub, false);
    }
    BUILDFS_ASSIGN_OR_RETURN(Xattrs xattrs, XattrsOf(child.ino));
    std::string target;
    std::unique_ptr<FileHandle> fh;
    int fd = -1;
    if (S_ISLNK(child.st.st_mode)) {
      BUILDFS_ASSIGN_OR_RETURN(target, ov_.ReadLink(child.ino));
    } else if (S_ISREG(child.st.st_mode)) {
      BUILDFS_ASSIGN_OR_RETURN(fh, ov_.Open(child.ino, O_RDONLY));
      BUILDFS_ASSIGN_OR_RETURN(fd, ov_.ReadFd(fh.get()));
    }
    auto checksum = b_.WriteContent(child.st, xattrs, fd, target);
    if (fh) ov_.Release(std::move(fh));
    if (!checksum.ok()) return checksum.status().With(name);
    ++result_.entries_written;
    return b_.AddFile(dir, name, checksum.value());
  }

  Overlay& ov_;
  CommitBuilder& b_;
  CommitResult& result_;
};

// Writes the commit of `info`'s frozen layers over its base.
Result<std::string> WriteCommit(const Workspace& ws, const BuildInfo& info, const std::string& subject,
                                CommitResult* result) {
  // A private, empty upper: the overlay here only reads.
  std::string tmp = ws.build_path(info.name) + "/commit.tmp-" + std::to_string(getpid());
  RemoveTree(tmp);
  for (const char* sub : {"", "/upper", "/work"}) {
    std::string p = tmp + sub;
    if (mkdir(p.c_str(), 0700) != 0) return Status::FromErrno(p);
  }
  struct Cleanup {
    std::string path;
    ~Cleanup() { RemoveTree(path); }
  } cleanup{tmp};
  LayerStack stack;
  BUILDFS_ASSIGN_OR_RETURN(auto upper, DirLayer::Open(tmp + "/upper", {"", true, false}));
  BUILDFS_ASSIGN_OR_RETURN(auto work, DirLayer::Open(tmp + "/work", {"", false, false}));
  stack.upper = std::move(upper);
  stack.work = std::move(work);
  BUILDFS_ASSIGN_OR_RETURN(stack.lowers, OpenLowerLayers(ws, info, /*with_cache=*/false));
  Overlay overlay(std::move(stack));
  BUILDFS_ASSIGN_OR_RETURN(auto repo, Repo::Open(ws.repo_path()));
  BUILDFS_ASSIGN_OR_RETURN(auto builder, repo->BeginCommit());
  TreeWriter writer(overlay, *builder, *result);
  BUILDFS_RETURN_IF_ERROR(writer.WriteDir(kRootIno, builder->root(), true));
  return builder->Finish(Workspace::BaseRef(info.name), info.base, subject);
}

}  // namespace

Result<CommitResult> CommitBuild(const Workspace& ws, const std::string& name,
                                 const std::string& subject) {
  BuildInfo frozen;
  bool result_keeps_layers = false;
  {
    BUILDFS_ASSIGN_OR_RETURN(FileLock meta, LockWorkspaceMeta(ws));
    BUILDFS_ASSIGN_OR_RETURN(frozen, FreezeBuild(ws, name));
    if (!frozen.layers.empty()) {
      // Private changes under cache/ are no part of the commit; layers holding
      // any stay in the stack (over the new base they show the same tree).
      for (const auto& id : frozen.layers) {
        struct stat st;
        if (lstat((ws.layer_path(id) + "/cache").c_str(), &st) == 0) result_keeps_layers = true;
      }
      // Recorded before the ref can move, so a crash after it is completed.
      // "" folds no layer.
      frozen.pending_commit = result_keeps_layers ? std::vector<std::string>{""} : frozen.layers;
      BUILDFS_RETURN_IF_ERROR(ws.SaveBuild(frozen));
    }
  }
  CommitResult result;
  result.commit = frozen.base;
  if (frozen.layers.empty()) return result;  // nothing changed

  // The frozen layers stay pinned by build.json (and our shared flocks) meanwhile.
  auto written = WriteCommit(ws, frozen, subject, &result);
  BUILDFS_ASSIGN_OR_RETURN(FileLock meta, LockWorkspaceMeta(ws));
  // Completes the commit when the ref moved (layers frozen after ours, by a
  // branch meanwhile, stay on top of the new base), or forgets it.
  BUILDFS_ASSIGN_OR_RETURN(BuildInfo now, RecoverBuild(ws, name));
  if (!written.ok()) return written.status();
  result.commit = written.value();
  result.changed = true;
  result.kept_cache_changes = result_keeps_layers;
  if (IsMounted(ws, name)) {
    auto reply = ControlCall(ws.build_path(name), {{"op", "reload"}});
    if (!reply.ok()) return reply.status().With("switching mounted build '" + name + "' to the commit");
  }
  BUILDFS_RETURN_IF_ERROR(CollectLayers(ws).status());
  return result;
}

Result<std::vector<LogEntry>> BuildLog(const Workspace& ws, const std::string& name) {
  BuildInfo info;
  {
    // An interrupted commit is finished first, so the log and the ref agree.
    BUILDFS_ASSIGN_OR_RETURN(FileLock meta, LockWorkspaceMeta(ws));
    BUILDFS_ASSIGN_OR_RETURN(info, RecoverBuild(ws, name));
  }
  BUILDFS_ASSIGN_OR_RETURN(ObjectReader reader, ObjectReader::Open(ws.repo_path()));
  std::vector<LogEntry> out;
  std::string cur = info.base;
  while (!cur.empty()) {
    auto commit = reader.LoadCommit(cur);
    if (!commit.ok()) {
      if (commit.code() == ENOENT && !out.empty()) break;  // history pruned below here
      return commit.status();
    }
    out.push_back({cur, commit->subject, commit->timestamp});
    cur = commit->parent;
  }
  return out;
}

Result<PruneResult> PruneWorkspace(const Workspace& ws) {
  BUILDFS_ASSIGN_OR_RETURN(FileLock meta, LockWorkspaceMeta(ws));
  PruneResult out;
  BUILDFS_ASSIGN_OR_RETURN(out.layers_removed, CollectLayers(ws));
  BUILDFS_ASSIGN_OR_RETURN(auto repo, Repo::Open(ws.repo_path()));
  BUILDFS_ASSIGN_OR_RETURN(auto stats, repo->Prune());
  out.objects_total = stats.objects_total;
  out.objects_pruned = stats.objects_pruned;
  out.bytes_freed = stats.bytes_freed;
  return out;
}

}  // namespace buildfs
