// Copy-up: moving an entry from a lower layer into the upper on its first
// modification, atomically (built whole in work/, then renamed into place)
// under the lock of the directory it goes into; CopyUpData copies a writer's
// data with no lock held and takes the lock only to install the copy.
//
// A file is copied whole (copy_file_range, so the kernel may share extents),
// but a big one, which comes up as a chunked file: a sparse file and a chunk
// map over the lower file, which the upper pins (DESIGN.md, "Big files";
// chunked_file.h). Its chunks come up on their first write.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "fs/common/path.h"
#include "fs/common/xattr.h"
#include "fs/layers/upper_format.h"
#include "fs/overlay/overlay.h"

namespace buildfs {

Status Overlay::CopyFileUp(Layer& layer, const std::string& path, const struct stat& st, int to,
                           DirLayer& upper) {
  BUILDFS_ASSIGN_OR_RETURN(UniqueFd from, layer.Open(path, O_RDONLY | O_NOATIME));
  // Only a layer that keeps bases holds chunked files.
  BUILDFS_ASSIGN_OR_RETURN(UniqueFd from_bases, layer.OpenBases());
  const bool chunked = from_bases.valid() && ChunkedFile::IsChunked(from.get());
  if (chunked || static_cast<uint64_t>(st.st_size) >= stack_.chunked_copy_min) {
    BUILDFS_ASSIGN_OR_RETURN(UniqueFd to_bases, upper.MakeBases());
    Status made = MakeChunkedCopy(to, from.get(), from_bases.get(), to_bases.get(), stack_.chunk_shift);
    if (made.code() != EXDEV) return made;
    // The base is on another filesystem: it cannot be pinned, so it is copied.
  }
  if (!chunked) return CopyFileData(from.get(), to);
  BUILDFS_ASSIGN_OR_RETURN(auto content, OpenFileContent(std::move(from), from_bases.get()));
  return CopyContent(*content, to);
}

Status Overlay::CopyToWork(Layer& layer, const std::string& path, const UpperLayer::Parent& tmp_at,
                           uint64_t ino, bool with_data, DirLayer& upper) {
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
    if (with_data) made = CopyFileUp(layer, path, st, to.get(), upper);
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

Status Overlay::CopyUp(uint64_t ino, bool with_data) {
  if (ino == kRootIno) {
    if (root_up_.load()) return Status::Ok();
    DirLocks root(this, {{kRootIno, true}});
    BUILDFS_RETURN_IF_ERROR(CopyUpRoot());
    root_up_ = true;
    return Status::Ok();
  }
  for (;;) {
    Pin node;
    uint64_t parent = 0;
    {
      std::lock_guard lock(mu_);
      BUILDFS_ASSIGN_OR_RETURN(Node * n, Get(ino));
      if (n->in_upper || n->orphan) return Status::Ok();
      if (n->removed || n->aliases.empty())
        return Status::Error(ENOENT, "copy-up of a removed entry");
      node = Pin(this, n);
      parent = n->aliases.front().first;
    }
    BUILDFS_RETURN_IF_ERROR(CopyUp(parent));
    DirLocks dirs(this, {{parent, true}});
    View view;
    {
      std::lock_guard lock(mu_);
      Node* n = node.get();
      if (n->in_upper || n->orphan) return Status::Ok();
      if (n->removed || n->aliases.empty())
        return Status::Error(ENOENT, "copy-up of a removed entry");
      if (n->aliases.front().first != parent) continue;  // moved meanwhile: its new parent's lock
      BUILDFS_ASSIGN_OR_RETURN(view, ViewOf(*n));
    }
    if (view.lower.empty()) return Status::Error(EIO, view.path + ": no layer holds it");
    const Source& src = view.lower.front();
    BUILDFS_ASSIGN_OR_RETURN(UpperLayer::Parent tmp, upper_.NewWorkEntry("copyup", ino));
    BUILDFS_RETURN_IF_ERROR(
        CopyToWork(*layers_[src.layer].layer, src.path, tmp, ino, with_data, *stack_.upper));
    return InstallCopy(node.get(), tmp, view.path);
  }
}

Status Overlay::InstallCopy(Node* node, const UpperLayer::Parent& tmp, const std::string& path) {
  BUILDFS_RETURN_IF_ERROR(upper_.Install(tmp, path, /*over_whiteout=*/false));
  std::lock_guard lock(mu_);
  node->in_upper = true;
  ForgetLearned(*node);
  if (!S_ISDIR(node->type)) {
    node->lower.clear();
    ++node->generation;
  }
  return Status::Ok();
}

Status Overlay::CopyUpData(uint64_t ino) {
  for (;;) {
    Pin node;
    std::shared_ptr<Layer> layer;     // lives through a stack change
    std::shared_ptr<DirLayer> upper;  // the upper it goes to
    std::string from;
    uint64_t generation = 0;
    {
      std::shared_lock tree(tree_mu_);
      uint64_t parent = 0;
      {
        std::lock_guard lock(mu_);
        BUILDFS_ASSIGN_OR_RETURN(Node * n, Get(ino));
        if (!S_ISREG(n->type) || n->in_upper || n->orphan || n->removed || n->lower.empty() ||
            n->aliases.empty()) {
          return Status::Ok();  // nothing to copy, or CopyUp's business
        }
        node = Pin(this, n);
        parent = n->aliases.front().first;
        // A file with its data below is never renamed (a rename copies it up
        // first): its path here is where its source is.
        BUILDFS_ASSIGN_OR_RETURN(Source src, TopSource(*n));
        layer = layers_[src.layer].layer;
        upper = stack_.upper;
        from = src.path;
        generation = n->generation.load();
      }
      BUILDFS_RETURN_IF_ERROR(CopyUp(parent));
    }
    BUILDFS_ASSIGN_OR_RETURN(UpperLayer::Parent tmp, upper_.NewWorkEntry("copyup", ino));
    Status copied = CopyToWork(*layer, from, tmp, ino, /*with_data=*/true, *upper);
    // Meanwhile the file may have been copied up (a rename, a chmod),
    // removed, or moved with its directory, and the stack may have changed
    // (a commit folds the layer the copy read from, which is then deleted;
    // a freeze made a new upper, which lacks the directories CopyUp made):
    // install only if it is still needed, at the path it has now.
    std::shared_lock tree(tree_mu_);
    // REQUIRES: mu_.
    auto stack_changed = [&] { return node->generation.load() != generation || stack_.upper != upper; };
    if (!copied.ok()) {
      std::lock_guard lock(mu_);
      if (stack_changed()) continue;  // again, from where it is now
      return copied;
    }
    auto locked = LockNode(ino, /*exclusive=*/true);
    if (!locked.ok()) {
      upper_.Discard(tmp);
      return locked.status();
    }
    std::string path;
    {
      std::lock_guard lock(mu_);
      Node* n = node.get();
      bool stale = stack_changed();
      bool done = n->in_upper || n->orphan;
      bool gone = n->removed || n->lower.empty() || n->aliases.empty();
      if (!stale && !done && !gone) {
        auto now = PathOf(*n);
        if (now.ok()) path = now.value();
        gone = !now.ok();
      }
      if (stale || done || gone) {
        upper_.Discard(tmp);
        if (done) return Status::Ok();
        if (gone) return Status::Error(ENOENT, "removed while it was copied up");
        continue;  // the stack changed: copy again from where the data is now
      }
    }
    return InstallCopy(node.get(), tmp, path);
  }
}

bool Overlay::LowerHas(const View& parent, const std::string& name) {
  auto r = Resolve(parent, name, /*skip_upper=*/true);
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

Status Overlay::MakeOrphan(Node* node, const std::string& path, bool last_link) {
  BUILDFS_ASSIGN_OR_RETURN(UpperLayer::Parent at, upper_.OpenParent(path));
  BUILDFS_RETURN_IF_ERROR(upper_.MakeOrphan(at, node->ino, last_link));
  std::lock_guard lock(mu_);
  node->orphan = true;
  node->in_upper = false;
  ++node->changes;
  return Status::Ok();
}

}  // namespace buildfs
