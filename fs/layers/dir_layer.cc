#include "fs/layers/dir_layer.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdlib>

#include "fs/common/path.h"
#include "fs/layers/chunked_file.h"
#include "fs/layers/upper_format.h"

namespace buildfs {

DirLayer::DirLayer(UniqueFd root, std::string root_path, DirLayerOptions options)
    : root_(std::move(root)), root_path_(std::move(root_path)), options_(std::move(options)) {
  key_ = "dir:" + root_path_;
}

Result<std::unique_ptr<DirLayer>> DirLayer::Open(const std::string& root, DirLayerOptions options) {
  UniqueFd fd(open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return Status::FromErrno(root);
  return std::unique_ptr<DirLayer>(new DirLayer(std::move(fd), root, std::move(options)));
}

Result<DirLayer::DirFd> DirLayer::OpenDir(const std::string& path) {
  if (options_.cache_dirs) {
    std::lock_guard lock(dirs_mu_);
    auto it = dir_index_.find(path);
    if (it != dir_index_.end()) {
      dirs_.splice(dirs_.begin(), dirs_, it->second);
      return it->second->second;
    }
  }
  BUILDFS_ASSIGN_OR_RETURN(UniqueFd fd, OpenDirBeneath(root_.get(), path));
  auto dir = std::make_shared<const UniqueFd>(std::move(fd));
  if (options_.cache_dirs) {
    std::lock_guard lock(dirs_mu_);
    if (!dir_index_.count(path)) {
      dirs_.emplace_front(path, dir);
      dir_index_[path] = dirs_.begin();
      if (dirs_.size() > kDirFdCache) {
        dir_index_.erase(dirs_.back().first);
        dirs_.pop_back();
      }
    }
  }
  return dir;
}

Result<DirLayer::Parent> DirLayer::OpenParent(const std::string& path) {
  auto [dir, name] = SplitPath(path);
  BUILDFS_ASSIGN_OR_RETURN(DirFd fd, OpenDir(dir));
  return Parent{std::move(fd), name};
}

void DirLayer::ForgetDirs() {
  std::lock_guard lock(dirs_mu_);
  dirs_.clear();
  dir_index_.clear();
}

Result<struct stat> DirLayer::Stat(const std::string& path) {
  Place place = Translate(path);
  if (place.kind != Place::kInside) {
    BUILDFS_ASSIGN_OR_RETURN(LayerEntry e, Lookup(path));
    if (e.kind != LayerEntry::kPresent) return Status::Error(ENOENT, path);
    return e.st;
  }
  struct stat st;
  if (place.rel.empty()) {
    if (fstat(root_.get(), &st) != 0) return Status::FromErrno(root_path_);
    return st;
  }
  BUILDFS_ASSIGN_OR_RETURN(Parent parent, OpenParent(place.rel));
  if (fstatat(parent.dir->get(), parent.name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return Status::FromErrno(path);
  }
  return st;
}

DirLayer::Place DirLayer::Translate(const std::string& path) const {
  const std::string& prefix = options_.prefix;
  if (prefix.empty()) return {Place::kInside, path};
  if (path == prefix) return {Place::kInside, ""};
  if (path.size() > prefix.size() && path.compare(0, prefix.size(), prefix) == 0 &&
      path[prefix.size()] == '/') {
    return {Place::kInside, path.substr(prefix.size() + 1)};
  }
  if (path.empty()) return {Place::kAncestor, prefix.substr(0, prefix.find('/'))};
  if (prefix.size() > path.size() && prefix.compare(0, path.size(), path) == 0 &&
      prefix[path.size()] == '/') {
    std::string rest = prefix.substr(path.size() + 1);
    return {Place::kAncestor, rest.substr(0, rest.find('/'))};
  }
  return {Place::kOutside, ""};
}

Status DirLayer::ReadMarkers(int dir_fd, const std::string& name, LayerEntry* e) const {
  std::string path = ProcPath(dir_fd, name);
  char names[1024];
  ssize_t n = llistxattr(path.c_str(), names, sizeof(names));
  if (n < 0 && errno != ERANGE) return Status::Ok();  // no xattr support: no markers
  // With a long list, ask for each marker directly.
  bool all = n < 0;
  auto has = [&](const char* key) {
    if (all) return true;
    for (ssize_t pos = 0; pos < n;) {
      const char* k = names + pos;
      if (strcmp(k, key) == 0) return true;
      pos += static_cast<ssize_t>(strlen(k)) + 1;
    }
    return false;
  };
  auto get = [&](const char* key) -> std::string {
    char value[4096];
    ssize_t len = lgetxattr(path.c_str(), key, value, sizeof(value));
    return len > 0 ? std::string(value, static_cast<size_t>(len)) : std::string();
  };
  if (S_ISDIR(e->st.st_mode)) {
    if (has(kOpaqueXattr)) e->opaque = get(kOpaqueXattr) == "y";
    if (has(kRedirectXattr)) {
      std::string r = get(kRedirectXattr);
      while (!r.empty() && r[0] == '/') r.erase(0, 1);
      e->redirect = r;
    }
  }
  if (has(kInoXattr)) e->ino = std::strtoull(get(kInoXattr).c_str(), nullptr, 10);
  if (!S_ISDIR(e->st.st_mode) && has(kLinkedXattr)) e->linked = true;
  return Status::Ok();
}

Result<LayerEntry> DirLayer::Lookup(const std::string& path) {
  Place place = Translate(path);
  LayerEntry e;
  if (place.kind == Place::kOutside) return e;
  if (place.kind == Place::kAncestor) {
    // The directories above `prefix` exist in this layer only to hold it.
    if (fstat(root_.get(), &e.st) != 0) return Status::FromErrno(root_path_);
    e.kind = LayerEntry::kPresent;
    e.st.st_nlink = 3;
    return e;
  }
  if (place.rel.empty()) {
    if (fstat(root_.get(), &e.st) != 0) return Status::FromErrno(root_path_);
    e.kind = LayerEntry::kPresent;
    return e;
  }
  if (options_.overlay_format && place.rel == kBasesDir) return e;  // not part of the tree
  auto parent = OpenParent(place.rel);
  if (!parent.ok()) {
    if (parent.code() == ENOENT || parent.code() == ENOTDIR || parent.code() == ELOOP) return e;
    return parent.status();
  }
  if (fstatat(parent->dir->get(), parent->name.c_str(), &e.st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) return e;
    return Status::FromErrno(path);
  }
  if (options_.overlay_format && S_ISCHR(e.st.st_mode) && e.st.st_rdev == makedev(0, 0)) {
    e.kind = LayerEntry::kWhiteout;
    return e;
  }
  e.kind = LayerEntry::kPresent;
  if (options_.overlay_format) BUILDFS_RETURN_IF_ERROR(ReadMarkers(parent->dir->get(), parent->name, &e));
  return e;
}

Status DirLayer::ReadDir(const std::string& path, std::vector<LayerDirent>* out) {
  Place place = Translate(path);
  if (place.kind == Place::kOutside) return Status::Error(ENOENT, path);
  if (place.kind == Place::kAncestor) {
    out->push_back({place.rel, false, true});
    return Status::Ok();
  }
  BUILDFS_ASSIGN_OR_RETURN(UniqueFd fd, OpenDirBeneath(root_.get(), place.rel));
  int dfd = fd.release();
  DIR* d = fdopendir(dfd);
  if (!d) {
    close(dfd);
    return Status::FromErrno(path);
  }
  while (struct dirent* ent = readdir(d)) {
    std::string name = ent->d_name;
    if (name == "." || name == "..") continue;
    if (options_.overlay_format && place.rel.empty() && name == kBasesDir) continue;
    bool whiteout = false;
    bool is_dir = ent->d_type == DT_DIR;
    if (ent->d_type == DT_UNKNOWN || (options_.overlay_format && ent->d_type == DT_CHR)) {
      struct stat st;
      if (fstatat(dirfd(d), ent->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        is_dir = S_ISDIR(st.st_mode);
        whiteout = options_.overlay_format && S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0);
      }
    }
    out->push_back({std::move(name), whiteout, is_dir});
  }
  closedir(d);
  return Status::Ok();
}

Result<UniqueFd> DirLayer::OpenBases() {
  if (!HasBases()) return UniqueFd();  // every copy-up asks: no syscall when there is none
  UniqueFd fd(openat(root_.get(), kBasesDir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.valid() && errno != ENOENT) return Status::FromErrno(root_path_ + "/" + kBasesDir);
  return fd;
}

bool DirLayer::HasBases() {
  int known = has_bases_.load();
  if (known < 0) {
    struct stat st;
    known = options_.overlay_format &&
            fstatat(root_.get(), kBasesDir, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
    has_bases_ = known;
  }
  return known == 1;
}

Result<UniqueFd> DirLayer::MakeBases() {
  if (!options_.overlay_format) return Status::Error(EINVAL, "a layer without bases");
  if (mkdirat(root_.get(), kBasesDir, 0700) != 0 && errno != EEXIST) {
    return Status::FromErrno(root_path_ + "/" + kBasesDir);
  }
  has_bases_ = 1;
  BUILDFS_ASSIGN_OR_RETURN(UniqueFd fd, OpenBases());
  if (!fd.valid()) return Status::Error(ENOENT, root_path_ + "/" + kBasesDir);
  return fd;
}

Result<UniqueFd> DirLayer::Open(const std::string& path, int flags) {
  Place place = Translate(path);
  if (place.kind != Place::kInside) return Status::Error(place.kind == Place::kAncestor ? EISDIR : ENOENT, path);
  return OpenBeneath(root_.get(), place.rel, flags);
}

Result<std::string> DirLayer::ReadLink(const std::string& path) {
  Place place = Translate(path);
  if (place.kind != Place::kInside) return Status::Error(EINVAL, path);
  BUILDFS_ASSIGN_OR_RETURN(Parent parent, OpenParent(place.rel));
  char buf[PATH_MAX + 1];
  ssize_t n = readlinkat(parent.dir->get(), parent.name.c_str(), buf, PATH_MAX);
  if (n < 0) return Status::FromErrno(path);
  return std::string(buf, static_cast<size_t>(n));
}

Result<Xattrs> DirLayer::ListXattrs(const std::string& path) {
  Place place = Translate(path);
  if (place.kind == Place::kOutside) return Status::Error(ENOENT, path);
  Xattrs all;
  if (place.kind == Place::kAncestor || place.rel.empty()) {
    BUILDFS_ASSIGN_OR_RETURN(all, ReadXattrsAt(root_.get(), ""));
  } else {
    BUILDFS_ASSIGN_OR_RETURN(Parent parent, OpenParent(place.rel));
    BUILDFS_ASSIGN_OR_RETURN(all, ReadXattrsAt(parent.dir->get(), parent.name));
  }
  Xattrs out;
  for (auto& x : all) {
    if (!IsInternalXattr(x.first)) out.push_back(std::move(x));
  }
  return out;
}

}  // namespace buildfs
