// buildfs status: what a build changed against its base.
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <set>

#include "fs/common/path.h"
#include "fs/lifecycle/build_lock.h"
#include "fs/lifecycle/build_view.h"
#include "fs/lifecycle/changes.h"

namespace buildfs {
namespace {

// Walks the directories a private layer touches and compares them with the base.
class ChangeWalker {
 public:
  ChangeWalker(BuildView& view, std::vector<Change>& out, const Progress& progress)
      : ov_(*view.overlay), base_(*view.base), out_(out), progress_(progress) {}

  Status Walk(uint64_t ino, const std::string& path) {
    BUILDFS_ASSIGN_OR_RETURN(auto listing, ov_.OpenDir(ino));
    std::set<std::string> present;
    for (const auto& e : listing->entries) {
      if (e.name == "." || e.name == "..") continue;
      if (path.empty() && e.name == "cache") continue;
      if (progress_.cancelled()) return Status::Error(ECANCELED, "interrupted");
      present.insert(e.name);
      BUILDFS_ASSIGN_OR_RETURN(EntryOut child, ov_.Lookup(ino, e.name));
      if (child.ino == 0) continue;
      Status st = Visit(child, JoinPath(path, e.name));
      ov_.Forget(child.ino, 1);
      BUILDFS_RETURN_IF_ERROR(st);
      progress_.Report(++walked_);
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
    BUILDFS_ASSIGN_OR_RETURN(auto fh, ov_.Open(child.ino, O_RDONLY | O_NOATIME));
    BUILDFS_ASSIGN_OR_RETURN(auto content, ov_.Content(fh.get()));
    auto now = ReadAll(*content);
    ov_.Release(std::move(fh));
    if (!now.ok()) return now.status();
    BUILDFS_ASSIGN_OR_RETURN(UniqueFd then_fd, base_.Open(path, O_RDONLY));
    BUILDFS_ASSIGN_OR_RETURN(std::string then, ReadAllAt(then_fd.get()));
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
  const Progress& progress_;
  uint64_t walked_ = 0;
};

// The names below `rel` of a private layer's cache/ (files, whiteouts, and
// directories that hold nothing), as paths of the build.
void CacheChanges(int dir_fd, const std::string& rel, std::set<std::pair<std::string, bool>>* out) {
  auto names = ListNamesAt(dir_fd);
  if (!names.ok()) return;
  if (names->empty()) out->insert({rel, true});
  for (const auto& n : names.value()) {
    struct stat st;
    if (fstatat(dir_fd, n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    const std::string path = rel + "/" + n;
    if (!S_ISDIR(st.st_mode)) {
      out->insert({path, false});
      continue;
    }
    UniqueFd sub(openat(dir_fd, n.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (sub.valid()) CacheChanges(sub.get(), path, out);
  }
}

}  // namespace

Result<std::vector<Change>> BuildStatus(const Workspace& ws, const std::string& name,
                                        const std::vector<std::string>& paths,
                                        const Progress& progress) {
  BUILDFS_ASSIGN_OR_RETURN(BuildLock lock, BuildLock::Acquire(ws, name, "status"));
  BUILDFS_ASSIGN_OR_RETURN(BuildView view, OpenBuildView(ws, name));
  return ChangesIn(view, paths, progress);
}

Result<std::vector<Change>> ChangesIn(BuildView& view, const std::vector<std::string>& paths,
                                      const Progress& progress) {
  std::vector<Change> all;
  ChangeWalker walker(view, all, progress);
  BUILDFS_RETURN_IF_ERROR(walker.Walk(kRootIno, ""));
  std::set<std::pair<std::string, bool>> cache;
  for (const auto& dir : view.private_dirs) {
    struct stat st;
    if (lstat((dir + "/cache").c_str(), &st) != 0) continue;
    UniqueFd fd(open((dir + "/cache").c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (fd.valid()) {
      CacheChanges(fd.get(), "cache", &cache);
    } else {
      cache.insert({"cache", false});  // the whole cache/ deleted or replaced
    }
  }
  for (const auto& [path, is_dir] : cache) all.push_back({'C', path, is_dir});
  std::vector<Change> out;
  for (auto& c : all) {
    bool wanted = paths.empty();
    for (const auto& p : paths) wanted = wanted || PathAtOrBelow(c.path, p);
    if (wanted) out.push_back(std::move(c));
  }
  std::sort(out.begin(), out.end(), [](const Change& a, const Change& b) { return a.path < b.path; });
  return out;
}

}  // namespace buildfs
