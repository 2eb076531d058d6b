// Overlay: the inode table, lookups, attributes, open files and xattrs.
// Namespace changes (create, unlink, rename, ...) are in namespace_ops.cc.
#include "fs/overlay/overlay.h"

#include <dirent.h>
#include <fcntl.h>
#include <malloc.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>

#include "fs/common/xattr.h"

namespace buildfs {

Overlay::Overlay(LayerStack stack)
    : stack_(std::move(stack)), upper_(stack_.upper, stack_.work), ino_source_(std::random_device{}()) {
  layers_.push_back({stack_.upper, true});
  for (const auto& l : stack_.lowers) layers_.push_back(l);
  auto root = std::make_unique<Node>();
  root->ino = kRootIno;
  root->type = S_IFDIR;
  root->in_upper = true;
  root->nlookup = 1;  // the kernel's reference to the root is never forgotten
  for (size_t i = 1; i < layers_.size(); ++i) root->lower.push_back({static_cast<int>(i), ""});
  nodes_.emplace(kRootIno, std::move(root));
}

Overlay::~Overlay() = default;

Status Overlay::Prepare() { return upper_.ClearWork(); }

size_t Overlay::node_count() {
  std::lock_guard lock(mu_);
  return nodes_.size();
}

// ---- locks ----

Overlay::Pin::Pin(Overlay* overlay, Node* node) : overlay_(overlay), node_(node) { ++node_->pins; }

Overlay::Pin& Overlay::Pin::operator=(Pin&& other) noexcept {
  if (this != &other) {
    reset();
    overlay_ = other.overlay_;
    node_ = other.node_;
    other.node_ = nullptr;
  }
  return *this;
}

void Overlay::Pin::reset() {
  if (!node_) return;
  {
    std::lock_guard lock(overlay_->mu_);
    --node_->pins;
    overlay_->MaybeErase(node_);
  }
  node_ = nullptr;
  overlay_->DropDeadOrphans();
}

Overlay::DirLocks::DirLocks(Overlay* overlay, std::vector<std::pair<uint64_t, bool>> dirs)
    : overlay_(overlay) {
  std::sort(dirs.begin(), dirs.end());
  for (const auto& [ino, exclusive] : dirs) {
    if (!held_.empty() && held_.back().ino == ino) {
      held_.back().exclusive |= exclusive;
      continue;
    }
    held_.push_back({ino, exclusive, nullptr});
  }
  for (auto& h : held_) {
    {
      std::lock_guard lock(overlay_->dir_locks_mu_);
      auto& slot = overlay_->dir_locks_[h.ino];
      if (!slot) slot = std::make_unique<DirLock>();
      ++slot->users;
      h.lock = slot.get();
    }
    if (h.exclusive) {
      h.lock->mu.lock();
    } else {
      h.lock->mu.lock_shared();
    }
  }
}

Overlay::DirLocks& Overlay::DirLocks::operator=(DirLocks&& other) noexcept {
  if (this != &other) {
    Unlock();
    overlay_ = other.overlay_;
    held_ = std::move(other.held_);
    other.held_.clear();
  }
  return *this;
}

void Overlay::DirLocks::Unlock() {
  for (auto it = held_.rbegin(); it != held_.rend(); ++it) {
    if (it->exclusive) {
      it->lock->mu.unlock();
    } else {
      it->lock->mu.unlock_shared();
    }
    std::lock_guard lock(overlay_->dir_locks_mu_);
    if (--it->lock->users == 0) overlay_->dir_locks_.erase(it->ino);
  }
  held_.clear();
}

Result<Overlay::LockedNode> Overlay::LockNode(uint64_t ino, bool exclusive,
                                              std::vector<std::pair<uint64_t, bool>> extra) {
  for (;;) {
    LockedNode locked;
    uint64_t parent = 0;
    {
      std::lock_guard lock(mu_);
      BUILDFS_ASSIGN_OR_RETURN(Node * node, Get(ino));
      locked.pin = Pin(this, node);
      if (node->ino != kRootIno && !node->orphan && !node->removed && !node->aliases.empty()) {
        parent = node->aliases.front().first;
      }
    }
    auto dirs = extra;
    if (parent != 0) dirs.emplace_back(parent, exclusive);
    locked.dirs = DirLocks(this, std::move(dirs));
    {
      std::lock_guard lock(mu_);
      Node* node = locked.pin.get();
      const uint64_t now =
          node->ino != kRootIno && !node->orphan && !node->removed && !node->aliases.empty()
              ? node->aliases.front().first
              : 0;
      if (now == parent) return locked;
    }
    // Renamed, removed or orphaned meanwhile: again, with the lock it needs now.
  }
}

Result<Overlay::View> Overlay::ViewNow(const Node* node, const std::string* path) {
  std::lock_guard lock(mu_);
  return ViewOf(*node, path);
}

Result<Overlay::Pin> Overlay::PinDir(uint64_t ino, View* view) {
  std::lock_guard lock(mu_);
  BUILDFS_ASSIGN_OR_RETURN(Node * dir, GetDir(ino));
  BUILDFS_ASSIGN_OR_RETURN(*view, ViewOf(*dir));
  return Pin(this, dir);
}

void Overlay::DropDeadOrphans() {
  std::vector<uint64_t> dead;
  {
    std::lock_guard lock(mu_);
    dead.swap(dead_orphans_);
  }
  for (uint64_t ino : dead) upper_.DropOrphan(ino);
}

// ---- nodes ----

Result<Overlay::Node*> Overlay::Get(uint64_t ino) {
  auto it = nodes_.find(ino);
  if (it == nodes_.end()) return Status::Error(ESTALE, "unknown inode " + std::to_string(ino));
  return it->second.get();
}

Result<Overlay::Node*> Overlay::GetDir(uint64_t ino) {
  BUILDFS_ASSIGN_OR_RETURN(Node * node, Get(ino));
  if (!S_ISDIR(node->type)) return Status::Error(ENOTDIR, "not a directory");
  if (node->removed) return Status::Error(ENOENT, "directory was removed");
  return node;
}

Result<std::string> Overlay::PathOf(const Node& node) const {
  std::vector<const std::string*> parts;
  const Node* cur = &node;
  while (cur->ino != kRootIno) {
    if (cur->aliases.empty() || cur->removed) return Status::Error(ENOENT, "entry was removed");
    parts.push_back(&cur->aliases.front().second);
    auto it = nodes_.find(cur->aliases.front().first);
    if (it == nodes_.end() || parts.size() > 4096) return Status::Error(ENOENT, "detached entry");
    cur = it->second.get();
  }
  std::string path;
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) path = JoinPath(path, **it);
  return path;
}

Result<Overlay::View> Overlay::ViewOf(const Node& node, const std::string* path) const {
  View v;
  v.ino = node.ino;
  v.type = node.type;
  v.in_upper = node.in_upper;
  v.orphan = node.orphan;
  v.removed = node.removed;
  v.changes = node.changes;
  v.generation = node.generation.load();
  v.open_count = node.open_count;
  v.aliases = node.aliases.size();
  if (node.attr) v.attr = *node.attr;
  if (node.removed_attr) v.removed_attr = *node.removed_attr;
  if (!node.orphan && !node.removed) {
    if (path) {
      v.path = *path;
    } else {
      BUILDFS_ASSIGN_OR_RETURN(v.path, PathOf(node));
    }
  }
  v.lower.reserve(node.lower.size());
  for (const auto& src : node.lower) v.lower.push_back(Materialize(src, v.path));
  return v;
}

void Overlay::AddAlias(Node* node, uint64_t parent, const std::string& name) {
  for (const auto& a : node->aliases) {
    if (a.first == parent && a.second == name) return;
  }
  node->aliases.emplace_back(parent, name);
  auto it = nodes_.find(parent);
  if (it != nodes_.end()) {
    ++it->second->child_refs;
    it->second->Dir().children[std::hash<std::string>{}(name)] = node->ino;
  }
}

void Overlay::DropAlias(Node* node, uint64_t parent, const std::string& name) {
  auto& v = node->aliases;
  auto it = std::find(v.begin(), v.end(), std::make_pair(parent, name));
  if (it == v.end()) return;
  v.erase(it);
  auto p = nodes_.find(parent);
  if (p != nodes_.end()) {
    --p->second->child_refs;
    if (p->second->dir) {
      auto& children = p->second->dir->children;
      auto child = children.find(std::hash<std::string>{}(name));
      if (child != children.end() && child->second == node->ino) children.erase(child);
    }
    MaybeErase(p->second.get());
  }
}

void Overlay::MaybeErase(Node* node) {
  if (node->ino == kRootIno || node->nlookup > 0 || node->open_count > 0 || node->pins > 0 ||
      node->child_refs > 0) {
    return;
  }
  if (node->orphan) dead_orphans_.push_back(node->ino);  // deleted once mu_ is released
  auto aliases = std::move(node->aliases);
  uint64_t ino = node->ino;
  nodes_.erase(ino);  // `node` is gone from here on
  for (const auto& [parent, name] : aliases) {
    auto p = nodes_.find(parent);
    if (p == nodes_.end()) continue;
    --p->second->child_refs;
    if (p->second->dir) {
      auto& children = p->second->dir->children;
      auto child = children.find(std::hash<std::string>{}(name));
      if (child != children.end() && child->second == ino) children.erase(child);
    }
    MaybeErase(p->second.get());
  }
}

void Overlay::MarkRemoved(Node* node, const struct stat& top) {
  if (!node->aliases.empty() || node->orphan || node->removed) return;
  if (node->open_count > 0 && !node->in_upper && !node->lower.empty() && !S_ISDIR(node->type)) {
    node->removed_attr = std::make_unique<struct stat>(top);
    node->removed_attr->st_nlink = 0;
  }
  node->removed = true;
  node->lower.clear();
  ++node->changes;
}

Overlay::Node* Overlay::Remember(uint64_t parent, const std::string& name, const Resolved& r) {
  auto& slot = nodes_[r.ino];
  if (!slot) {
    slot = std::make_unique<Node>();
    slot->ino = r.ino;
  }
  Node* node = slot.get();
  if (!node->orphan) {
    if (node->in_upper != r.in_upper || node->lower.size() != r.lower.size() ||
        (!r.lower.empty() && (node->lower.front().layer != r.lower.front().layer ||
                              node->lower.front().at_node != r.lower.front().at_node ||
                              node->lower.front().path != r.lower.front().path))) {
      ForgetLearned(*node);
    }
    node->type = r.type;
    node->in_upper = r.in_upper;
    node->lower = r.lower;
    node->removed = false;
    node->removed_attr.reset();
    if (!r.in_upper && !r.lower.empty() && layers_[r.lower.front().layer].layer->immutable()) {
      node->attr = std::make_unique<CachedAttr>(CachedAttr::From(r.top.st));
    }
    AddAlias(node, parent, name);
  }
  return node;
}

void Overlay::ForgetLearned(Node& node) {
  node.attr.reset();
  node.xattrs.reset();
  if (node.dir) node.dir->listing.reset();
  node.subdirs = -1;
  ++node.changes;
}

Overlay::CachedAttr Overlay::CachedAttr::From(const struct stat& st) {
  CachedAttr a;
  a.mode = st.st_mode;
  a.uid = st.st_uid;
  a.gid = st.st_gid;
  a.nlink = static_cast<uint32_t>(st.st_nlink);
  a.size = st.st_size;
  a.blocks = st.st_blocks;
  a.rdev = st.st_rdev;
  a.atime = st.st_atim;
  a.mtime = st.st_mtim;
  a.ctime = st.st_ctim;
  return a;
}

struct stat Overlay::CachedAttr::ToStat() const {
  struct stat st = {};
  st.st_mode = mode;
  st.st_uid = uid;
  st.st_gid = gid;
  st.st_nlink = nlink;
  st.st_size = size;
  st.st_blocks = blocks;
  st.st_blksize = 4096;
  st.st_rdev = rdev;
  st.st_atim = atime;
  st.st_mtim = mtime;
  st.st_ctim = ctime;
  return st;
}

Overlay::Node* Overlay::KnownChild(Node& dir, const std::string& name) {
  if (!dir.dir || !StableFor(dir.lower, name)) return nullptr;
  auto known = dir.dir->children.find(std::hash<std::string>{}(name));
  if (known == dir.dir->children.end()) return nullptr;
  auto it = nodes_.find(known->second);
  if (it == nodes_.end() || it->second->removed || it->second->orphan) return nullptr;
  for (const auto& [parent, alias] : it->second->aliases) {
    if (parent == dir.ino && alias == name) return it->second.get();
  }
  return nullptr;  // another name with the same hash
}

bool Overlay::Stable(const std::vector<Source>& dir_lower) const {
  for (const auto& src : dir_lower) {
    if (!layers_[src.layer].layer->immutable()) return false;
  }
  return true;
}

Result<EntryOut> Overlay::Entry(Node* node, const std::string* path) {
  auto out = AttrOf(node, path);
  if (out.ok()) {
    std::lock_guard lock(mu_);
    ++node->nlookup;
  }
  return out;
}

bool Overlay::StableFor(const std::vector<Source>& dir_lower, const std::string& name) const {
  for (const auto& src : dir_lower) {
    const Layer& layer = *layers_[src.layer].layer;
    if (layer.immutable()) continue;
    if (!src.at_node && !layer.Covers(JoinPath(src.path, name))) continue;  // e.g. cache/ at the root
    return false;
  }
  return true;
}

// ---- lookups and attributes ----

Result<EntryOut> Overlay::Lookup(uint64_t parent, const std::string& name) {
  std::shared_lock tree(tree_mu_);
  DirLocks dirs(this, {{parent, false}});
  Pin dir;
  View view;
  {
    std::unique_lock lock(mu_);
    BUILDFS_ASSIGN_OR_RETURN(Node * d, GetDir(parent));
    // A name looked up before, in a directory only this overlay changes.
    BUILDFS_ASSIGN_OR_RETURN(view, ViewOf(*d));
    if (Node* known = KnownChild(*d, name)) {
      Pin child(this, known);
      lock.unlock();
      const std::string path = JoinPath(view.path, name);
      return Entry(known, &path);
    }
    dir = Pin(this, d);
  }
  BUILDFS_ASSIGN_OR_RETURN(Resolved r, Resolve(view, name));
  if (!r.found) {
    EntryOut negative;
    negative.immutable = StableFor(view.lower, name);
    return negative;
  }
  Pin child;
  {
    std::lock_guard lock(mu_);
    child = Pin(this, Remember(parent, name, r));
  }
  const std::string path = JoinPath(view.path, name);
  return Entry(child.get(), &path);
}

void Overlay::Forget(uint64_t ino, uint64_t nlookup) {
  bool trim = false;
  {
    std::lock_guard lock(mu_);
    auto it = nodes_.find(ino);
    if (it == nodes_.end()) return;
    Node* node = it->second.get();
    node->nlookup -= std::min(nlookup, node->nlookup);
    MaybeErase(node);
    // When the kernel let go of most of the table (memory pressure, a cache
    // drop), give the memory back instead of keeping the peak for good.
    peak_nodes_ = std::max(peak_nodes_, nodes_.size());
    if (peak_nodes_ > 10000 && nodes_.size() < peak_nodes_ / 2) {
      peak_nodes_ = nodes_.size();
      trim = true;
    }
  }
  DropDeadOrphans();
  if (trim) malloc_trim(0);
}

Result<EntryOut> Overlay::GetAttr(uint64_t ino) {
  std::shared_lock tree(tree_mu_);
  BUILDFS_ASSIGN_OR_RETURN(LockedNode node, LockNode(ino, false));
  return AttrOf(node.pin.get());
}

Result<DirLayer::Parent> Overlay::UpperRef(const View& view) {
  if (view.orphan) return upper_.OrphanRef(view.ino);
  if (view.removed) return Status::Error(ENOENT, "removed");
  return upper_.OpenParent(view.path);
}

Result<EntryOut> Overlay::SetAttr(uint64_t ino, const SetAttrIn& in, FileHandle* /*fh*/) {
  std::shared_lock tree(tree_mu_);
  BUILDFS_RETURN_IF_ERROR(CopyUp(ino));
  BUILDFS_ASSIGN_OR_RETURN(LockedNode node, LockNode(ino, false));
  BUILDFS_ASSIGN_OR_RETURN(View view, ViewNow(node.pin.get()));
  BUILDFS_ASSIGN_OR_RETURN(DirLayer::Parent ref, UpperRef(view));
  int dir = ref.dir->get();
  const char* name = ref.name.c_str();
  // chown(-1, -1) changes the ctime alone; so does any chown.
  if ((in.set_uid || in.set_gid || in.set_ctime) &&
      fchownat(dir, name, in.set_uid ? in.uid : static_cast<uid_t>(-1),
               in.set_gid ? in.gid : static_cast<gid_t>(-1), AT_SYMLINK_NOFOLLOW) != 0) {
    return Status::FromErrno("chown");
  }
  if (in.set_mode && !S_ISLNK(view.type) && fchmodat(dir, name, in.mode & 07777, 0) != 0) {
    return Status::FromErrno("chmod");
  }
  if (in.set_size) {
    UniqueFd fd(openat(dir, name, O_WRONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd.valid()) return Status::FromErrno("truncate");
    BUILDFS_RETURN_IF_ERROR(Truncate(node.pin.get(), view, fd.get(), in.size));
  }
  if (in.set_atime || in.set_mtime) {
    struct timespec ts[2];
    ts[0].tv_nsec = UTIME_OMIT;
    ts[1].tv_nsec = UTIME_OMIT;
    if (in.set_atime) ts[0] = in.atime_now ? timespec{0, UTIME_NOW} : in.atime;
    if (in.set_mtime) ts[1] = in.mtime_now ? timespec{0, UTIME_NOW} : in.mtime;
    if (utimensat(dir, name, ts, AT_SYMLINK_NOFOLLOW) != 0) return Status::FromErrno("utimens");
  }
  return AttrOf(node.pin.get(), view.orphan ? nullptr : &view.path);
}

Result<std::string> Overlay::ReadLink(uint64_t ino) {
  std::shared_lock tree(tree_mu_);
  BUILDFS_ASSIGN_OR_RETURN(LockedNode node, LockNode(ino, false));
  BUILDFS_ASSIGN_OR_RETURN(View view, ViewNow(node.pin.get()));
  if (!S_ISLNK(view.type)) return Status::Error(EINVAL, "not a symlink");
  if (view.in_upper) return layers_[0].layer->ReadLink(view.path);
  if (view.lower.empty()) return Status::Error(ENOENT, "removed");
  return layers_[view.lower.front().layer].layer->ReadLink(view.lower.front().path);
}

Result<struct statvfs> Overlay::StatFs() {
  std::shared_lock tree(tree_mu_);
  return upper_.StatFs();
}

// ---- open files ----

Result<UniqueFd> Overlay::OpenView(const View& view, int flags) {
  // Only flags that mean something for the layer file: the kernel's open
  // flags carry bits (e.g. for exec) that openat2 refuses.
  int oflags = (flags & (O_ACCMODE | O_NONBLOCK | O_DSYNC | O_SYNC | O_NOATIME)) | O_CLOEXEC;
  if (view.orphan) return upper_.OpenOrphan(view.ino, oflags);
  if (view.in_upper) return upper_.Open(view.path, oflags);
  if (view.removed || view.lower.empty()) return Status::Error(ENOENT, "removed");
  if ((flags & O_ACCMODE) != O_RDONLY) return Status::Error(EAGAIN, "not copied up");
  const Source& src = view.lower.front();
  return layers_[src.layer].layer->Open(src.path, O_RDONLY | (oflags & O_NOATIME));
}

Status Overlay::Truncate(Node* node, const View& view, int fd, off_t size) {
  BUILDFS_ASSIGN_OR_RETURN(auto chunked, ChunkedOf(node, view, fd));
  if (chunked) return chunked->Truncate(static_cast<uint64_t>(size));
  if (ftruncate(fd, size) != 0) return Status::FromErrno("truncate");
  return Status::Ok();
}

Result<std::unique_ptr<FileHandle>> Overlay::Open(uint64_t ino, int flags) {
  const bool write = (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
  // A writer's data is copied up with no lock held; O_TRUNC: no point
  // copying up what is about to be thrown away.
  if (write && !(flags & O_TRUNC)) BUILDFS_RETURN_IF_ERROR(CopyUpData(ino));
  std::shared_lock tree(tree_mu_);
  if (write) BUILDFS_RETURN_IF_ERROR(CopyUp(ino, !(flags & O_TRUNC)));
  BUILDFS_ASSIGN_OR_RETURN(LockedNode node, LockNode(ino, false));
  BUILDFS_ASSIGN_OR_RETURN(View view, ViewNow(node.pin.get()));
  if (S_ISDIR(view.type)) return Status::Error(EISDIR, "open");
  BUILDFS_ASSIGN_OR_RETURN(UniqueFd fd, OpenView(view, flags));
  // Before the truncate, which then finds it (the node keeps it while it lives).
  BUILDFS_ASSIGN_OR_RETURN(auto chunked, ChunkedOf(node.pin.get(), view, fd.get()));
  if (flags & O_TRUNC) {
    // The handle may be read-only (O_RDONLY|O_TRUNC): truncate through a writer.
    BUILDFS_ASSIGN_OR_RETURN(UniqueFd writer, OpenView(view, O_WRONLY));
    BUILDFS_RETURN_IF_ERROR(Truncate(node.pin.get(), view, writer.get(), 0));
  }
  auto fh = std::make_unique<FileHandle>();
  fh->fd = fd.get();
  fh->fds.push_back(std::move(fd));
  fh->ino = ino;
  fh->flags = flags;
  fh->writable = write;
  fh->generation = view.generation;
  std::lock_guard lock(mu_);
  SetChunked(fh.get(), std::move(chunked));
  Node* n = node.pin.get();
  fh->moved = &n->generation;
  fh->keep_cache = view.in_upper || view.orphan ||
                   (!view.lower.empty() && layers_[view.lower.front().layer].layer->immutable());
  ++n->open_count;
  return fh;
}

void Overlay::Release(std::unique_ptr<FileHandle> fh) {
  {
    std::lock_guard lock(mu_);
    auto it = nodes_.find(fh->ino);
    fh.reset();  // close the fds before an orphan is deleted
    if (it == nodes_.end()) return;
    --it->second->open_count;
    MaybeErase(it->second.get());
  }
  DropDeadOrphans();
}

// ---- directories ----

Result<std::unique_ptr<DirHandle>> Overlay::OpenDir(uint64_t ino, bool list) {
  std::shared_lock tree(tree_mu_);
  DirLocks dirs(this, {{ino, false}});
  View view;
  BUILDFS_ASSIGN_OR_RETURN(Pin dir, PinDir(ino, &view));
  auto h = std::make_unique<DirHandle>();
  h->ino = ino;
  h->cacheable = true;
  for (const auto& src : view.lower) {
    const Layer& layer = *layers_[src.layer].layer;
    if (!layer.immutable() && layer.HoldsEntriesIn(src.path)) h->cacheable = false;
  }
  BUILDFS_RETURN_IF_ERROR(FillListing(dir.get(), list, h.get()));
  return h;
}

Status Overlay::List(DirHandle* h) {
  std::shared_lock tree(tree_mu_);
  DirLocks dirs(this, {{h->ino, false}});
  Pin dir;
  {
    std::lock_guard lock(mu_);
    BUILDFS_ASSIGN_OR_RETURN(Node * d, GetDir(h->ino));
    dir = Pin(this, d);
  }
  return FillListing(dir.get(), /*names=*/true, h);
}

Status Overlay::FillListing(Node* dir, bool names, DirHandle* h) {
  View view;
  uint64_t parent = kRootIno;
  {
    std::lock_guard lock(mu_);
    BUILDFS_ASSIGN_OR_RETURN(view, ViewOf(*dir));
    if (!dir->aliases.empty()) parent = dir->aliases.front().first;
  }
  std::vector<MergedName> listing;
  if (names) {
    BUILDFS_ASSIGN_OR_RETURN(listing, ListingOf(dir, view));
  }
  h->entries.clear();
  h->entries.push_back({".", view.ino, S_IFDIR, 1});
  h->entries.push_back({"..", parent, S_IFDIR, 2});
  // Numbers and types are learned when the entries are read (readdir) or
  // looked up (readdirplus), not here: a listing may be read only in part.
  for (const auto& n : listing) {
    // Positions above 2, below 2^63 (an off_t); two names sharing one are
    // as unlikely as a 63-bit hash collision.
    const uint64_t pos = std::max<uint64_t>(3, std::hash<std::string>{}(n.name) >> 1);
    h->entries.push_back({n.name, 0, static_cast<mode_t>(n.is_dir ? S_IFDIR : 0), pos});
  }
  std::sort(h->entries.begin() + 2, h->entries.end(), [](const DirEntryOut& a, const DirEntryOut& b) {
    return a.next != b.next ? a.next < b.next : a.name < b.name;
  });
  h->listed = names;
  return Status::Ok();
}

size_t DirHandle::IndexAt(uint64_t pos) const {
  if (pos < 3) return std::min<size_t>(pos, entries.size());
  auto after = std::upper_bound(entries.begin() + 2, entries.end(), pos,
                                [](uint64_t p, const DirEntryOut& e) { return p < e.next; });
  return static_cast<size_t>(after - entries.begin());
}

Result<DirEntryOut> Overlay::ReadDirEntry(uint64_t dir_ino, const std::string& name) {
  std::shared_lock tree(tree_mu_);
  DirLocks dirs(this, {{dir_ino, false}});
  View view;
  {
    std::lock_guard lock(mu_);
    BUILDFS_ASSIGN_OR_RETURN(Node * dir, GetDir(dir_ino));
    if (Node* known = KnownChild(*dir, name)) return DirEntryOut{name, known->ino, known->type};
    BUILDFS_ASSIGN_OR_RETURN(view, ViewOf(*dir));
  }
  BUILDFS_ASSIGN_OR_RETURN(Resolved r, Resolve(view, name));
  if (!r.found) return Status::Error(ENOENT, name);
  return DirEntryOut{name, r.ino, r.type};
}

// ---- xattrs ----

// Kept once read: lower layers never change, and the upper and work/ change
// only through this overlay, which forgets them when it does.
Result<Xattrs> Overlay::XattrsOf(Node* node) {
  View view;
  {
    std::lock_guard lock(mu_);
    if (node->xattrs) return *node->xattrs;
    BUILDFS_ASSIGN_OR_RETURN(view, ViewOf(*node));
  }
  BUILDFS_ASSIGN_OR_RETURN(Xattrs xattrs, ReadXattrs(view));
  if (view.ino == kRootIno || view.in_upper || view.orphan ||
      (!view.lower.empty() && layers_[view.lower.front().layer].layer->immutable())) {
    std::lock_guard lock(mu_);
    if (node->changes == view.changes) node->xattrs = std::make_unique<Xattrs>(xattrs);
  }
  return xattrs;
}

Result<Xattrs> Overlay::ReadXattrs(const View& view) {
  if (view.ino == kRootIno) {
    BUILDFS_ASSIGN_OR_RETURN(size_t meta, RootMetaLayer());
    return layers_[meta].layer->ListXattrs("");
  }
  if (view.orphan) return upper_.OrphanXattrs(view.ino);
  if (view.in_upper) return layers_[0].layer->ListXattrs(view.path);
  if (view.lower.empty()) return Status::Error(ENOENT, "removed");
  return layers_[view.lower.front().layer].layer->ListXattrs(view.lower.front().path);
}

Result<std::string> Overlay::GetXattr(uint64_t ino, const std::string& name) {
  if (IsInternalXattr(name)) return Status::Error(ENODATA, name);
  std::shared_lock tree(tree_mu_);
  BUILDFS_ASSIGN_OR_RETURN(LockedNode node, LockNode(ino, false));
  BUILDFS_ASSIGN_OR_RETURN(Xattrs all, XattrsOf(node.pin.get()));
  for (auto& [key, value] : all) {
    if (key == name) return std::move(value);
  }
  return Status::Error(ENODATA, name);
}

Result<std::vector<std::string>> Overlay::ListXattr(uint64_t ino) {
  std::shared_lock tree(tree_mu_);
  BUILDFS_ASSIGN_OR_RETURN(LockedNode node, LockNode(ino, false));
  BUILDFS_ASSIGN_OR_RETURN(Xattrs all, XattrsOf(node.pin.get()));
  std::vector<std::string> names;
  for (auto& x : all) names.push_back(std::move(x.first));
  return names;
}

Status Overlay::ChangeXattr(uint64_t ino, const std::string& name,
                            const std::function<int(const char* path)>& change) {
  std::shared_lock tree(tree_mu_);
  BUILDFS_RETURN_IF_ERROR(CopyUp(ino));
  BUILDFS_ASSIGN_OR_RETURN(LockedNode node, LockNode(ino, false));
  BUILDFS_ASSIGN_OR_RETURN(View view, ViewNow(node.pin.get()));
  BUILDFS_ASSIGN_OR_RETURN(DirLayer::Parent ref, UpperRef(view));
  const int rc = change(ProcPath(ref.dir->get(), ref.name).c_str());
  const int err = errno;
  {
    std::lock_guard lock(mu_);
    node->xattrs.reset();
    ++node->changes;
  }
  if (rc != 0) return Status::Error(err, name);
  return Status::Ok();
}

Status Overlay::SetXattr(uint64_t ino, const std::string& name, const std::string& value,
                         int flags) {
  if (IsInternalXattr(name)) return Status::Error(EPERM, name + ": reserved by buildfs");
  return ChangeXattr(ino, name, [&](const char* path) {
    return lsetxattr(path, name.c_str(), value.data(), value.size(), flags);
  });
}

Status Overlay::RemoveXattr(uint64_t ino, const std::string& name) {
  if (IsInternalXattr(name)) return Status::Error(ENODATA, name);
  {
    std::shared_lock tree(tree_mu_);
    BUILDFS_ASSIGN_OR_RETURN(LockedNode node, LockNode(ino, false));
    BUILDFS_ASSIGN_OR_RETURN(Xattrs all, XattrsOf(node.pin.get()));
    bool present =
        std::any_of(all.begin(), all.end(), [&](const Xattr& x) { return x.first == name; });
    if (!present) return Status::Error(ENODATA, name);
  }
  return ChangeXattr(ino, name, [&](const char* path) { return lremovexattr(path, name.c_str()); });
}

}  // namespace buildfs
