#include "fs/layers/ostree_layer.h"

#include <fcntl.h>

#include <algorithm>
#include <mutex>

#include "fs/common/path.h"

namespace buildfs {
namespace {

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
      key_(kKey),
      info_(std::move(info)) {}

Result<std::unique_ptr<OstreeLayer>> OstreeLayer::Open(const std::string& repo_path,
                                                       const std::string& commit) {
  BUILDFS_ASSIGN_OR_RETURN(ObjectReader reader, ObjectReader::Open(repo_path));
  BUILDFS_ASSIGN_OR_RETURN(CommitInfo info, reader.LoadCommit(commit));
  return std::unique_ptr<OstreeLayer>(new OstreeLayer(std::move(reader), commit, std::move(info)));
}

template <typename T>
template <typename Load>
Result<std::shared_ptr<const T>> OstreeLayer::ObjectCache<T>::Get(const std::string& key, Load load) {
  {
    std::shared_lock lock(mu_);
    auto it = map_.find(key);
    if (it != map_.end()) {
      it->second.used.store(true, std::memory_order_relaxed);
      return it->second.value;
    }
  }
  auto loaded = load();
  if (!loaded.ok()) return loaded.status();
  auto ptr = std::make_shared<const T>(std::move(loaded.value()));
  std::unique_lock lock(mu_);
  if (map_.size() >= capacity_) {
    // Second chance: drop what was not used since the last sweep.
    for (auto it = map_.begin(); it != map_.end();) {
      if (!it->second.used.exchange(false, std::memory_order_relaxed)) {
        it = map_.erase(it);
      } else {
        ++it;
      }
    }
    if (map_.size() >= capacity_) map_.clear();
  }
  map_[key].value = ptr;
  return ptr;
}

Result<std::shared_ptr<const DirTree>> OstreeLayer::Tree(const std::string& checksum) {
  return trees_.Get(checksum, [&] { return reader_.LoadDirTree(checksum); });
}

Result<std::shared_ptr<const FileObject>> OstreeLayer::File(const std::string& checksum) {
  return files_.Get(checksum, [&] { return reader_.StatFile(checksum); });
}

Result<std::shared_ptr<const ObjectMeta>> OstreeLayer::DirMeta(const std::string& checksum) {
  return dirmetas_.Get(checksum, [&] { return reader_.LoadDirMeta(checksum); });
}

Result<std::shared_ptr<const OstreeLayer::Dir>> OstreeLayer::LoadDir(const std::string& tree,
                                                                      const std::string& meta) {
  return dirs_.Get(tree + meta, [&]() -> Result<Dir> {
    Dir dir;
    BUILDFS_ASSIGN_OR_RETURN(dir.tree, Tree(tree));
    BUILDFS_ASSIGN_OR_RETURN(dir.meta, DirMeta(meta));
    std::string encoded;
    for (const auto& [key, value] : dir.meta->xattrs) {
      if (key == kTimesXattr) encoded = value;
    }
    if (encoded == kTimesInFile) {
      auto f = FindByName(dir.tree->files, kTimesFile);
      if (f == dir.tree->files.end()) return Status::Error(EUCLEAN, "dirtree " + tree + ": no times file");
      BUILDFS_ASSIGN_OR_RETURN(UniqueFd fd, reader_.OpenFile(f->checksum));
      BUILDFS_ASSIGN_OR_RETURN(encoded, ReadAllAt(fd.get()));
      dir.times_file = true;
    }
    if (!encoded.empty()) {
      BUILDFS_ASSIGN_OR_RETURN(dir.times, DecodeEntries(encoded));
      if (dir.times.size() != 1 + dir.tree->files.size() - (dir.times_file ? 1 : 0)) {
        return Status::Error(EUCLEAN, "dirtree " + tree + ": times table does not fit");
      }
    }
    return dir;
  });
}

Result<OstreeLayer::Found> OstreeLayer::Find(const std::string& path) {
  Found cur{true, info_.root_tree, info_.root_meta, nullptr, 0};
  size_t pos = 0;
  while (pos < path.size()) {
    size_t slash = path.find('/', pos);
    std::string name = path.substr(pos, slash == std::string::npos ? std::string::npos : slash - pos);
    pos = slash == std::string::npos ? path.size() : slash + 1;
    if (!cur.is_dir) return Status::Error(ENOTDIR, path);
    BUILDFS_ASSIGN_OR_RETURN(auto dir, LoadDir(cur.checksum, cur.meta));
    const DirTree& tree = *dir->tree;
    auto d = FindByName(tree.dirs, name);
    if (d != tree.dirs.end()) {
      cur = Found{true, d->tree, d->meta, nullptr, 0};
      continue;
    }
    auto f = FindByName(tree.files, name);
    if (f == tree.files.end() || (dir->times_file && name == kTimesFile)) return Status::Error(ENOENT, path);
    cur = Found{false, f->checksum, "", dir, static_cast<size_t>(f - tree.files.begin())};
  }
  return cur;
}

void OstreeLayer::FillTimes(const Dir& dir, size_t record, struct stat* st, uint64_t* ino) const {
  if (record >= dir.times.size()) {
    // A commit made without times: its own time for everything.
    st->st_atim = st->st_mtim = st->st_ctim = {static_cast<time_t>(info_.timestamp), 0};
    return;
  }
  const EntryRecord& t = dir.times[record];
  st->st_mtim = t.mtime;
  st->st_atim = t.atime;
  st->st_ctim = t.mtime;  // a ctime cannot be kept: it is shown as the mtime
  *ino = t.ino;
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
  if (found->is_dir) {
    BUILDFS_ASSIGN_OR_RETURN(auto dir, LoadDir(found->checksum, found->meta));
    st.st_mode = S_IFDIR | (dir->meta->mode & 07777);
    st.st_uid = dir->meta->uid;
    st.st_gid = dir->meta->gid;
    st.st_nlink = 2 + dir->tree->dirs.size();
    st.st_size = 4096;
    st.st_blocks = 8;
    FillTimes(*dir, 0, &st, &e.ino);
    return e;
  }
  const EntryRecord* rec = RecordOf(*found);
  FillTimes(*found->parent, RecordIndex(*found), &st, &e.ino);
  st.st_nlink = 1;
  if (rec && rec->has_attr) {
    // What stat shows was recorded at commit: no object to open.
    st.st_mode = rec->mode;
    st.st_uid = rec->uid;
    st.st_gid = rec->gid;
    st.st_size = static_cast<off_t>(rec->size);
    st.st_rdev = rec->rdev;
    st.st_blocks = static_cast<blkcnt_t>((rec->size + 511) / 512);
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
  BUILDFS_ASSIGN_OR_RETURN(auto dir, LoadDir(found.checksum, found.meta));
  const DirTree& tree = *dir->tree;
  out->reserve(out->size() + tree.files.size() + tree.dirs.size());
  for (const auto& d : tree.dirs) out->push_back({d.name, false, true});
  for (const auto& f : tree.files) {
    if (!(dir->times_file && f.name == kTimesFile)) out->push_back({f.name, false, false});
  }
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

size_t OstreeLayer::RecordIndex(const Found& found) const {
  // After the directory's own record, skipping the times file.
  size_t record = 1 + found.index;
  const auto& files = found.parent->tree->files;
  if (found.parent->times_file &&
      FindByName(files, kTimesFile) - files.begin() < static_cast<std::ptrdiff_t>(found.index)) {
    --record;
  }
  return record;
}

const EntryRecord* OstreeLayer::RecordOf(const Found& found) const {
  if (found.is_dir || !found.parent) return nullptr;
  size_t record = RecordIndex(found);
  return record < found.parent->times.size() ? &found.parent->times[record] : nullptr;
}

Result<Xattrs> OstreeLayer::ListXattrs(const std::string& path) {
  BUILDFS_ASSIGN_OR_RETURN(Found found, Find(path));
  if (found.is_dir) {
    BUILDFS_ASSIGN_OR_RETURN(auto meta, DirMeta(found.meta));
    return Visible(meta->xattrs);
  }
  if (const EntryRecord* rec = RecordOf(found); rec && rec->has_attr && !rec->has_xattrs) return Xattrs{};
  BUILDFS_ASSIGN_OR_RETURN(auto file, File(found.checksum));
  return Visible(file->meta.xattrs);
}

std::optional<RepoObject> OstreeLayer::ObjectAt(const std::string& path) {
  auto found = Find(path);
  if (!found.ok()) return std::nullopt;
  return RepoObject{found->is_dir, found->checksum, found->meta};
}

}  // namespace buildfs
