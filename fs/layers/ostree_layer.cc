#include "fs/layers/ostree_layer.h"

#include <fcntl.h>

#include <algorithm>
#include <mutex>

#include "fs/common/path.h"

namespace buildfs {
namespace {

constexpr size_t kMaxCachedObjects = 400000;

template <typename Vec>
auto FindByName(const Vec& v, const std::string& name) {
  auto it = std::lower_bound(v.begin(), v.end(), name,
                             [](const auto& e, const std::string& n) { return e.name < n; });
  return (it != v.end() && it->name == name) ? it : v.end();
}

Xattrs Visible(const Xattrs& in) {
  Xattrs out;
  for (const auto& x : in) {
    if (!IsInternalXattr(x.first)) out.push_back(x);
  }
  return out;
}

}  // namespace

OstreeLayer::OstreeLayer(ObjectReader reader, std::string commit, CommitInfo info)
    : reader_(std::move(reader)),
      commit_(std::move(commit)),
      key_("ostree:" + commit_),
      info_(std::move(info)) {}

Result<std::unique_ptr<OstreeLayer>> OstreeLayer::Open(const std::string& repo_path,
                                                       const std::string& commit) {
  BUILDFS_ASSIGN_OR_RETURN(ObjectReader reader, ObjectReader::Open(repo_path));
  BUILDFS_ASSIGN_OR_RETURN(CommitInfo info, reader.LoadCommit(commit));
  return std::unique_ptr<OstreeLayer>(new OstreeLayer(std::move(reader), commit, std::move(info)));
}

template <typename T, typename Load>
static Result<std::shared_ptr<const T>> Cached(
    std::shared_mutex& mu, std::unordered_map<std::string, std::shared_ptr<const T>>& cache,
    const std::string& key, Load load) {
  {
    std::shared_lock lock(mu);
    auto it = cache.find(key);
    if (it != cache.end()) return it->second;
  }
  auto loaded = load();
  if (!loaded.ok()) return loaded.status();
  auto ptr = std::make_shared<const T>(std::move(loaded.value()));
  std::unique_lock lock(mu);
  if (cache.size() >= kMaxCachedObjects) cache.clear();
  cache.emplace(key, ptr);
  return ptr;
}

Result<std::shared_ptr<const DirTree>> OstreeLayer::Tree(const std::string& checksum) {
  return Cached<DirTree>(mu_, trees_, checksum, [&] { return reader_.LoadDirTree(checksum); });
}

Result<std::shared_ptr<const FileObject>> OstreeLayer::File(const std::string& checksum) {
  return Cached<FileObject>(mu_, files_, checksum, [&] { return reader_.StatFile(checksum); });
}

Result<std::shared_ptr<const ObjectMeta>> OstreeLayer::DirMeta(const std::string& checksum) {
  return Cached<ObjectMeta>(mu_, dirmetas_, checksum, [&] { return reader_.LoadDirMeta(checksum); });
}

Result<OstreeLayer::Found> OstreeLayer::Find(const std::string& path) {
  Found cur{true, info_.root_tree, info_.root_meta};
  size_t pos = 0;
  while (pos < path.size()) {
    size_t slash = path.find('/', pos);
    std::string name = path.substr(pos, slash == std::string::npos ? std::string::npos : slash - pos);
    pos = slash == std::string::npos ? path.size() : slash + 1;
    if (!cur.is_dir) return Status::Error(ENOTDIR, path);
    BUILDFS_ASSIGN_OR_RETURN(auto tree, Tree(cur.checksum));
    auto d = FindByName(tree->dirs, name);
    if (d != tree->dirs.end()) {
      cur = Found{true, d->tree, d->meta};
      continue;
    }
    auto f = FindByName(tree->files, name);
    if (f == tree->files.end()) return Status::Error(ENOENT, path);
    cur = Found{false, f->checksum, ""};
  }
  return cur;
}

void OstreeLayer::FillTimes(struct stat* st) const {
  st->st_atim.tv_sec = st->st_mtim.tv_sec = st->st_ctim.tv_sec =
      static_cast<time_t>(info_.timestamp);
}

Result<LayerEntry> OstreeLayer::Lookup(const std::string& path) {
  auto found = Find(path);
  LayerEntry e;
  if (!found.ok()) {
    if (found.code() == ENOENT || found.code() == ENOTDIR) return e;  // kAbsent
    return found.status();
  }
  e.kind = LayerEntry::kPresent;
  struct stat& st = e.st;
  st.st_blksize = 4096;
  FillTimes(&st);
  if (found->is_dir) {
    BUILDFS_ASSIGN_OR_RETURN(auto meta, DirMeta(found->meta));
    BUILDFS_ASSIGN_OR_RETURN(auto tree, Tree(found->checksum));
    st.st_mode = S_IFDIR | (meta->mode & 07777);
    st.st_uid = meta->uid;
    st.st_gid = meta->gid;
    st.st_nlink = 2 + tree->dirs.size();
    st.st_size = 4096;
    st.st_blocks = 8;
    return e;
  }
  BUILDFS_ASSIGN_OR_RETURN(auto file, File(found->checksum));
  st.st_mode = file->meta.mode;
  st.st_uid = file->meta.uid;
  st.st_gid = file->meta.gid;
  st.st_nlink = 1;
  st.st_size = static_cast<off_t>(file->size);
  st.st_blocks = static_cast<blkcnt_t>((file->size + 511) / 512);
  for (const auto& [key, value] : file->meta.xattrs) {
    if (key == kSpecialXattr && DecodeSpecial(value, &st.st_mode, &st.st_rdev)) {
      st.st_size = 0;
      st.st_blocks = 0;
    }
  }
  return e;
}

Status OstreeLayer::ReadDir(const std::string& path, std::vector<LayerDirent>* out) {
  BUILDFS_ASSIGN_OR_RETURN(Found found, Find(path));
  if (!found.is_dir) return Status::Error(ENOTDIR, path);
  BUILDFS_ASSIGN_OR_RETURN(auto tree, Tree(found.checksum));
  out->reserve(out->size() + tree->files.size() + tree->dirs.size());
  for (const auto& d : tree->dirs) out->push_back({d.name, false, true});
  for (const auto& f : tree->files) out->push_back({f.name, false, false});
  return Status::Ok();
}

Result<UniqueFd> OstreeLayer::Open(const std::string& path, int flags) {
  BUILDFS_ASSIGN_OR_RETURN(Found found, Find(path));
  if (found.is_dir) return Status::Error(EISDIR, path);
  return reader_.OpenFile(found.checksum, flags & (O_NONBLOCK | O_NOATIME));
}

Result<std::string> OstreeLayer::ReadLink(const std::string& path) {
  BUILDFS_ASSIGN_OR_RETURN(Found found, Find(path));
  if (found.is_dir) return Status::Error(EINVAL, path);
  BUILDFS_ASSIGN_OR_RETURN(auto file, File(found.checksum));
  if (!S_ISLNK(file->meta.mode)) return Status::Error(EINVAL, path);
  return file->symlink_target;
}

Result<Xattrs> OstreeLayer::ListXattrs(const std::string& path) {
  BUILDFS_ASSIGN_OR_RETURN(Found found, Find(path));
  if (found.is_dir) {
    BUILDFS_ASSIGN_OR_RETURN(auto meta, DirMeta(found.meta));
    return Visible(meta->xattrs);
  }
  BUILDFS_ASSIGN_OR_RETURN(auto file, File(found.checksum));
  return Visible(file->meta.xattrs);
}

std::optional<RepoObject> OstreeLayer::ObjectAt(const std::string& path) {
  auto found = Find(path);
  if (!found.ok()) return std::nullopt;
  return RepoObject{found->is_dir, found->checksum, found->meta};
}

}  // namespace buildfs
