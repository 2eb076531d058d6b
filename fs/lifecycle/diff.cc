// buildfs diff: the changes of a build as a unified diff, in git's format
// (libgit2 makes it: no temporary files, no external program).
#include <fcntl.h>
#include <git2.h>
#include <sys/stat.h>

#include "fs/common/path.h"
#include "fs/lifecycle/build_lock.h"
#include "fs/lifecycle/build_view.h"
#include "fs/lifecycle/changes.h"

namespace buildfs {
namespace {

// What a path held on one side: nothing, a file's bytes, or a symlink's target.
struct Side {
  bool exists = false;
  std::string data;
};

Result<Side> BaseSide(Layer& base, const std::string& path) {
  Side side;
  BUILDFS_ASSIGN_OR_RETURN(LayerEntry e, base.Lookup(path));
  if (e.kind != LayerEntry::kPresent) return side;
  side.exists = true;
  if (S_ISREG(e.st.st_mode)) {
    BUILDFS_ASSIGN_OR_RETURN(UniqueFd fd, base.Open(path, O_RDONLY));
    BUILDFS_ASSIGN_OR_RETURN(side.data, ReadAllAt(fd.get()));
  } else if (S_ISLNK(e.st.st_mode)) {
    BUILDFS_ASSIGN_OR_RETURN(side.data, base.ReadLink(path));
  }
  return side;
}

Result<Side> BuildSide(Overlay& ov, const std::string& path) {
  Side side;
  auto e = LookupPath(ov, path);
  if (!e.ok()) {
    if (e.code() == ENOENT) return side;
    return e.status();
  }
  side.exists = true;
  Status st;
  if (S_ISREG(e->st.st_mode)) {
    auto fh = ov.Open(e->ino, O_RDONLY | O_NOATIME);
    auto content = fh.ok() ? ov.Content(fh->get()) : Result<std::shared_ptr<const FileContent>>(fh.status());
    auto data = content.ok() ? ReadAll(*content.value()) : Result<std::string>(content.status());
    if (fh.ok()) ov.Release(std::move(fh.value()));
    if (data.ok()) side.data = std::move(data.value());
    st = data.status();
  } else if (S_ISLNK(e->st.st_mode)) {
    auto target = ov.ReadLink(e->ino);
    if (target.ok()) side.data = target.value();
    st = target.status();
  }
  ov.Forget(e->ino, 1);
  if (!st.ok()) return st;
  return side;
}

// libgit2's library state, for as long as a diff runs.
struct GitLibrary {
  GitLibrary() { git_libgit2_init(); }
  ~GitLibrary() { git_libgit2_shutdown(); }
};

Status WritePatch(const std::string& path, const Side& before, const Side& after, FILE* out) {
  git_patch* patch = nullptr;
  if (git_patch_from_buffers(&patch, before.exists ? before.data.data() : nullptr, before.data.size(),
                             path.c_str(), after.exists ? after.data.data() : nullptr, after.data.size(),
                             path.c_str(), nullptr) != 0) {
    const git_error* e = git_error_last();
    return Status::Error(EIO, path + ": " + (e ? e->message : "diff failed"));
  }
  git_buf buf = {nullptr, 0, 0};
  int rc = git_patch_to_buf(&buf, patch);
  git_patch_free(patch);
  if (rc != 0) return Status::Error(EIO, path + ": diff failed");
  bool written = fwrite(buf.ptr, 1, buf.size, out) == buf.size;
  git_buf_dispose(&buf);
  if (!written) return Status::FromErrno("writing the diff");
  return Status::Ok();
}

}  // namespace

Status BuildDiff(const Workspace& ws, const std::string& name, const std::vector<std::string>& paths,
                 FILE* out) {
  BUILDFS_ASSIGN_OR_RETURN(BuildLock lock, BuildLock::Acquire(ws, name, "diff"));
  BUILDFS_ASSIGN_OR_RETURN(BuildView view, OpenBuildView(ws, name));
  BUILDFS_ASSIGN_OR_RETURN(auto changes, ChangesIn(view, paths));
  GitLibrary git;
  for (const auto& c : changes) {
    if (c.is_dir || c.kind == 'C') continue;
    BUILDFS_ASSIGN_OR_RETURN(Side before, BaseSide(*view.base, c.path));
    BUILDFS_ASSIGN_OR_RETURN(Side after, BuildSide(*view.overlay, c.path));
    if (c.kind == 'M' && before.data == after.data) {
      fprintf(out, "mode, owner or xattrs changed: %s\n", c.path.c_str());
      continue;
    }
    BUILDFS_RETURN_IF_ERROR(WritePatch(c.path, before, after, out));
  }
  return Status::Ok();
}

}  // namespace buildfs
