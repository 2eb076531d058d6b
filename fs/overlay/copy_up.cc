// Copy-up: moving an entry from a lower layer into the upper on its first
// modification, atomically (built whole in work/, then renamed into place).
// REQUIRES: mu_ held by the caller; CopyUpData releases it during the copy.
//
// A whole file is copied (copy_file_range, so the kernel may share extents).
// Big files will get a chunk map instead (DESIGN.md, "Big files"); CopyToWork
// is the one place that changes.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "fs/common/path.h"
#include "fs/common/xattr.h"
#include "fs/layers/upper_format.h"
#include "fs/overlay/overlay.h"

namespace buildfs {

Status Overlay::CopyToWork(Layer& layer, const std::string& path, const UpperLayer::Parent& tmp_at,
                           uint64_t ino, bool with_data) {
  const int work = tmp_at.dir->get();
  const std::string& tmp = tmp_at.name;
  BUILDFS_ASSIGN_OR_RETURN(LayerEntry e, layer.Lookup(path));
  if (e.kind != LayerEntry::kPresent) return Status::Error(ENOENT, path);
  const struct stat& st = e.st;
  Status made;
  if (S_ISDIR(st.st_mode)) {
    if (mkdirat(work, tmp.c_str(), 0700) != 0) return Status::FromErrno(tmp);
  } else if (S_ISREG(st.st_mode)) {
    UniqueFd to(openat(work, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!to.valid()) return Status::FromErrno(tmp);
    if (with_data) {
      auto from = layer.Open(path, O_RDONLY | O_NOATIME);
      made = from.ok() ? CopyFileData(from->get(), to.get()) : from.status();
    }
  } else if (S_ISLNK(st.st_mode)) {
    BUILDFS_ASSIGN_OR_RETURN(std::string target, layer.ReadLink(path));
    if (symlinkat(target.c_str(), work, tmp.c_str()) != 0) return Status::FromErrno(tmp);
  } else {
    if (mknodat(work, tmp.c_str(), (st.st_mode & S_IFMT) | 0600, st.st_rdev) != 0) {
      return Status::FromErrno(tmp);
    }
  }
  if (made.ok()) {
    auto xattrs = layer.ListXattrs(path);
    made = xattrs.ok() ? SetMetadataAt(work, tmp, st, xattrs.value()) : xattrs.status();
  }
  if (made.ok()) made = SetIno(work, tmp, ino);
  if (!made.ok()) upper_.Discard(tmp_at);
  return made;
}

Result<size_t> Overlay::RootMetaLayer() {
  for (size_t l = 0; l < layers_.size(); ++l) {
    if (!layers_[l].layer->HasRoot()) continue;
    if (!layers_[l].overlay_format) return l;
    BUILDFS_ASSIGN_OR_RETURN(LayerEntry e, layers_[l].layer->Lookup(""));
    if (e.ino != 0) return l;
  }
  return 0;
}

Status Overlay::CopyUpRoot() {
  BUILDFS_ASSIGN_OR_RETURN(size_t from, RootMetaLayer());
  if (from == 0) return Status::Ok();
  Layer& layer = *layers_[from].layer;
  BUILDFS_ASSIGN_OR_RETURN(LayerEntry e, layer.Lookup(""));
  BUILDFS_ASSIGN_OR_RETURN(UpperLayer::Parent root, upper_.OpenParent(""));
  BUILDFS_ASSIGN_OR_RETURN(Xattrs xattrs, layer.ListXattrs(""));
  BUILDFS_RETURN_IF_ERROR(SetMetadataAt(root.dir->get(), root.name, e.st, xattrs));
  // Last: the mark says the upper's root now holds the metadata.
  return SetIno(root.dir->get(), root.name, kRootIno);
}

Status Overlay::CopyUp(Node& node, bool with_data) {
  if (node.ino == kRootIno) return CopyUpRoot();
  if (node.in_upper || node.orphan) return Status::Ok();
  if (node.removed || node.aliases.empty()) return Status::Error(ENOENT, "copy-up of a removed entry");
  BUILDFS_ASSIGN_OR_RETURN(Node * parent, Get(node.aliases.front().first));
  BUILDFS_RETURN_IF_ERROR(CopyUp(*parent));
  BUILDFS_ASSIGN_OR_RETURN(std::string path, PathOf(node));
  if (node.lower.empty()) return Status::Error(EIO, path + ": no layer holds it");
  const Source src = Materialize(node.lower.front(), path);
  BUILDFS_ASSIGN_OR_RETURN(UpperLayer::Parent tmp, upper_.NewWorkEntry("copyup", node.ino));
  BUILDFS_RETURN_IF_ERROR(CopyToWork(*layers_[src.layer].layer, src.path, tmp, node.ino, with_data));
  return InstallCopy(node, tmp, path);
}

Status Overlay::InstallCopy(Node& node, const UpperLayer::Parent& tmp, const std::string& path) {
  BUILDFS_RETURN_IF_ERROR(upper_.Install(tmp, path, /*over_whiteout=*/false));
  node.in_upper = true;
  ForgetLearned(node);
  if (!S_ISDIR(node.type)) {
    node.lower.clear();
    ++node.generation;
  }
  return Status::Ok();
}

Status Overlay::CopyUpData(Node& node) {
  if (!S_ISREG(node.type) || node.in_upper || node.orphan || node.removed || node.lower.empty() ||
      node.aliases.empty()) {
    return Status::Ok();  // nothing to copy, or CopyUp's business
  }
  BUILDFS_ASSIGN_OR_RETURN(Node * parent, Get(node.aliases.front().first));
  BUILDFS_RETURN_IF_ERROR(CopyUp(*parent));
  BUILDFS_ASSIGN_OR_RETURN(std::string path, PathOf(node));
  const Source src = Materialize(node.lower.front(), path);
  std::shared_ptr<Layer> layer = layers_[src.layer].layer;  // lives through a stack change
  BUILDFS_ASSIGN_OR_RETURN(UpperLayer::Parent tmp, upper_.NewWorkEntry("copyup", node.ino));
  const uint64_t generation = node.generation.load();
  ++node.open_count;  // kept in the table while mu_ is released
  mu_.unlock();
  Status copied = CopyToWork(*layer, src.path, tmp, node.ino, /*with_data=*/true);
  mu_.lock();
  --node.open_count;
  if (!copied.ok()) return copied;
  // Meanwhile the file may have been copied up under the lock (a rename, a
  // chmod), removed, or moved with its directory: install only if it is
  // still needed, at the path it has now.
  if (node.in_upper || node.removed || node.lower.empty() || node.generation.load() != generation) {
    upper_.Discard(tmp);
    if (node.removed) return Status::Error(ENOENT, path);
    return Status::Ok();
  }
  auto now = PathOf(node);
  Status st = now.ok() ? CopyUp(*parent) : now.status();
  if (!st.ok()) {
    upper_.Discard(tmp);
    return st;
  }
  return InstallCopy(node, tmp, now.value());
}

bool Overlay::LowerHas(const Node& parent, const std::string& parent_path, const std::string& name) {
  auto r = Resolve(parent, parent_path, name, /*skip_upper=*/true);
  return !r.ok() || r->found;  // when unsure, keep a whiteout: it is harmless
}

Result<std::string> Overlay::LowerPathOf(const std::string& path) {
  // The nearest directory at or above `path` that the upper redirects decides
  // where the lower layers hold it; without one, the path is the same below.
  for (std::string prefix = path;;) {
    BUILDFS_ASSIGN_OR_RETURN(LayerEntry e, UpperEntry(prefix));
    if (!e.redirect.empty()) {
      return JoinPath(e.redirect, prefix.size() < path.size() ? path.substr(prefix.size() + 1) : "");
    }
    if (prefix.empty()) return path;
    prefix = SplitPath(prefix).first;
  }
}

Result<LayerEntry> Overlay::UpperEntry(const std::string& path) {
  return layers_[0].layer->Lookup(path);
}

Status Overlay::MakeOrphan(Node& node, const std::string& path, bool last_link) {
  BUILDFS_ASSIGN_OR_RETURN(UpperLayer::Parent at, upper_.OpenParent(path));
  BUILDFS_RETURN_IF_ERROR(upper_.MakeOrphan(at, node.ino, last_link));
  node.orphan = true;
  node.in_upper = false;
  return Status::Ok();
}

}  // namespace buildfs
