// The merge rules: how a name resolves through the stack, inode numbers, and
// merged directory listings; and what a node learns of them (listing,
// attributes), kept in the table when nothing changed meanwhile.
#include <sys/sysmacros.h>

#include <unordered_set>

#include "fs/common/path.h"
#include "fs/overlay/overlay.h"

namespace buildfs {
namespace {

// FNV-1a over the bytes, then a splitmix64 finalizer. Never 0 or kRootIno.
uint64_t HashIno(std::string_view a, uint64_t x = 0, uint64_t y = 0) {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&](const void* p, size_t n) {
    auto* b = static_cast<const unsigned char*>(p);
    for (size_t i = 0; i < n; ++i) {
      h ^= b[i];
      h *= 1099511628211ull;
    }
  };
  mix(a.data(), a.size());
  mix(&x, sizeof(x));
  mix(&y, sizeof(y));
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  h ^= h >> 31;
  return h <= kRootIno ? h + 2 : h;
}

}  // namespace

std::vector<Overlay::Source> Overlay::SourcesOf(const View& dir) {
  std::vector<Source> out;
  if (dir.in_upper) out.push_back({0, dir.path});
  out.insert(out.end(), dir.lower.begin(), dir.lower.end());
  return out;
}

void Overlay::KeepLowerPathsBelow(const Node& dir) {
  for (auto& [ino, node] : nodes_) {
    bool below = false;
    for (const Node* cur = node.get(); cur && !below;) {
      below = cur->ino == dir.ino;
      if (cur->aliases.empty() || cur->ino == kRootIno) break;
      auto parent = nodes_.find(cur->aliases.front().first);
      cur = parent == nodes_.end() ? nullptr : parent->second.get();
    }
    if (!below) continue;
    bool elided = false;
    for (const auto& src : node->lower) elided |= src.at_node;
    if (!elided) continue;
    auto path = PathOf(*node);
    if (!path.ok()) continue;
    for (auto& src : node->lower) src = Materialize(src, path.value());
  }
}

Result<Overlay::Source> Overlay::TopSource(const Node& node) const {
  const Source& src = node.lower.front();
  if (!src.at_node) return src;
  BUILDFS_ASSIGN_OR_RETURN(std::string path, PathOf(node));
  return Materialize(src, path);
}

Status Overlay::ResolveRedirect(std::string path, size_t from_layer, std::vector<Source>* out) {
  // Walk the redirect target from the roots of the layers below, one component
  // at a time, so that redirects and whiteouts met on the way apply as in any
  // lookup.
  View walk;
  walk.type = S_IFDIR;
  for (size_t l = from_layer; l < layers_.size(); ++l)
    walk.lower.push_back({static_cast<int>(l), ""});
  size_t pos = 0;
  while (pos < path.size() && !walk.lower.empty()) {
    size_t slash = path.find('/', pos);
    std::string name = path.substr(pos, slash == std::string::npos ? std::string::npos : slash - pos);
    pos = slash == std::string::npos ? path.size() : slash + 1;
    if (name.empty()) continue;
    BUILDFS_ASSIGN_OR_RETURN(Resolved r, Resolve(walk, name));
    if (!r.found || !S_ISDIR(r.type)) return Status::Ok();
    walk.path = JoinPath(walk.path, name);  // the path the walk stands at
    walk.lower.clear();
    for (const auto& src : r.lower) walk.lower.push_back(Materialize(src, walk.path));
  }
  // The node these sources go to has another path: they keep theirs.
  out->insert(out->end(), walk.lower.begin(), walk.lower.end());
  return Status::Ok();
}

bool Overlay::SplitLink(const LayerEntry& e, size_t layer) const {
  if (layer == 0 || S_ISDIR(e.st.st_mode) || e.st.st_nlink <= 1) return false;
  return !layers_[layer].overlay_format || e.linked;
}

uint64_t Overlay::InoFor(const Resolved& r, const LayerEntry& identity,
                         const Source& identity_source) const {
  if (SplitLink(identity, static_cast<size_t>(identity_source.layer))) {
    // Hard links live only in the upper: below it every name is a file of
    // its own (as in a commit), so a copy-up of one name never changes another.
    return PathIno(identity_source);
  }
  if (r.top.ino != 0) return r.top.ino;
  if (layers_[identity_source.layer].overlay_format) {
    // Entries made in an upper keep their number when the upper is frozen.
    return HashIno("inode", identity.st.st_dev, identity.st.st_ino);
  }
  return PathIno(identity_source);
}

uint64_t Overlay::PathIno(const Source& src) const {
  return PathIdentity(layers_[src.layer].layer->key(), src.path);
}

uint64_t Overlay::PathIdentity(const std::string& layer_key, const std::string& path) {
  return HashIno(layer_key + "\n" + path);
}

Result<Overlay::Resolved> Overlay::Resolve(const View& parent, const std::string& name,
                                           bool skip_upper) {
  // "." and ".." would reach outside the layer roots; the kernel never sends them.
  if (name.size() > 255) return Status::Error(ENAMETOOLONG, "name longer than 255 bytes");
  if (!IsValidName(name)) return Status::Error(EINVAL, "invalid name '" + name + "'");
  if (parent.ino == kRootIno && name == kBasesDir) {
    return Status::Error(EPERM, std::string(kBasesDir) + " at the root is buildfs's own");
  }
  Resolved r;
  LayerEntry identity;
  Source identity_source{0, ""};
  const std::string child_path = JoinPath(parent.path, name);
  for (const Source& src : SourcesOf(parent)) {
    if (skip_upper && src.layer == 0) continue;
    std::string path = JoinPath(src.path, name);
    BUILDFS_ASSIGN_OR_RETURN(LayerEntry e, layers_[src.layer].layer->Lookup(path));
    if (e.kind == LayerEntry::kAbsent) continue;
    if (e.kind == LayerEntry::kWhiteout) break;
    bool is_dir = S_ISDIR(e.st.st_mode);
    if (!r.found) {
      r.found = true;
      r.type = e.st.st_mode & S_IFMT;
      if (src.layer == 0) {
        r.in_upper = true;
      } else {
        r.lower.push_back(Elide({src.layer, path}, child_path));
      }
      identity = e;
      identity_source = {src.layer, path};
      r.top = e;
      if (!is_dir) break;
    } else {
      if (!is_dir) break;  // a non-directory below a directory is hidden
      r.lower.push_back(Elide({src.layer, path}, child_path));
      identity = e;
      identity_source = {src.layer, path};
    }
    if (e.opaque) break;
    if (!e.redirect.empty()) {
      size_t before = r.lower.size();
      BUILDFS_RETURN_IF_ERROR(ResolveRedirect(e.redirect, static_cast<size_t>(src.layer) + 1, &r.lower));
      if (r.lower.size() > before) {
        identity_source = Materialize(r.lower.back(), child_path);
        BUILDFS_ASSIGN_OR_RETURN(identity, layers_[identity_source.layer].layer->Lookup(identity_source.path));
      }
      break;
    }
  }
  if (r.found) {
    r.ino = InoFor(r, identity, identity_source);
    auto renumbered = renumbered_.find(r.ino);
    if (renumbered != renumbered_.end()) r.ino = renumbered->second;
  }
  return r;
}

Result<std::vector<Overlay::MergedName>> Overlay::MergedNames(const View& dir) {
  std::vector<MergedName> out;
  std::unordered_set<std::string> seen;
  std::vector<LayerDirent> entries;
  for (const Source& src : SourcesOf(dir)) {
    entries.clear();
    Status st = layers_[src.layer].layer->ReadDir(src.path, &entries);
    if (!st.ok()) {
      if (st.code() == ENOENT || st.code() == ENOTDIR) continue;
      return st;
    }
    for (auto& e : entries) {
      if (!seen.insert(e.name).second) continue;
      if (!e.whiteout) out.push_back({std::move(e.name), e.is_dir});
    }
  }
  return out;
}

Result<std::vector<Overlay::MergedName>> Overlay::ListingOf(Node* dir, const View& view) {
  {
    std::lock_guard lock(mu_);
    if (dir->dir && dir->dir->listing) {
      std::vector<MergedName> out;
      out.reserve(dir->dir->listing->size());
      for (const auto& [name, is_dir] : *dir->dir->listing) out.push_back({name, is_dir});
      return out;
    }
  }
  BUILDFS_ASSIGN_OR_RETURN(auto names, MergedNames(view));
  if (!view.in_upper && Stable(view.lower)) {
    std::lock_guard lock(mu_);
    if (dir->changes == view.changes) {
      auto& listing = dir->Dir().listing.emplace();
      for (const auto& n : names) listing.emplace_back(n.name, n.is_dir);
    }
  }
  return names;
}

Result<nlink_t> Overlay::MergedLinks(Node* dir, const View& view) {
  // Every change to the directory goes through this overlay, which resets the count.
  {
    std::lock_guard lock(mu_);
    if (dir->subdirs >= 0) return static_cast<nlink_t>(2 + dir->subdirs);
  }
  BUILDFS_ASSIGN_OR_RETURN(auto names, ListingOf(dir, view));
  int32_t subdirs = 0;
  for (const auto& n : names) subdirs += n.is_dir ? 1 : 0;
  std::lock_guard lock(mu_);
  if (dir->changes == view.changes) dir->subdirs = subdirs;
  return static_cast<nlink_t>(2 + subdirs);
}

Result<EntryOut> Overlay::AttrOf(Node* node, const std::string* path) {
  BUILDFS_ASSIGN_OR_RETURN(View view, ViewNow(node, path));
  EntryOut out;
  LayerEntry e;
  if (view.orphan) {
    BUILDFS_ASSIGN_OR_RETURN(e, upper_.LookupOrphan(view.ino));
    if (e.st.st_nlink > 0) e.st.st_nlink -= 1;  // work/ holds the last link
  } else if (view.removed && view.removed_attr && view.open_count > 0) {
    // Unlinked while open, from a read-only layer: it is still there to stat.
    e.st = *view.removed_attr;
  } else if (view.removed) {
    return Status::Error(ENOENT, "removed");
  } else if (view.ino == kRootIno) {
    BUILDFS_ASSIGN_OR_RETURN(size_t meta, RootMetaLayer());
    BUILDFS_ASSIGN_OR_RETURN(e, layers_[meta].layer->Lookup(""));
    BUILDFS_ASSIGN_OR_RETURN(e.st.st_nlink, MergedLinks(node, view));
    out.immutable = true;
  } else if (!view.in_upper && view.attr) {
    e.st = view.attr->ToStat();  // learned once: the layer never changes
    out.immutable = true;
    if (!S_ISDIR(e.st.st_mode)) {
      e.st.st_nlink = 1;  // see InoFor
    } else if (view.lower.size() > 1) {
      BUILDFS_ASSIGN_OR_RETURN(e.st.st_nlink, MergedLinks(node, view));
    }
  } else {
    if (view.in_upper) {
      // Attributes only: no markers to read.
      BUILDFS_ASSIGN_OR_RETURN(e.st, upper_.dirs()->Stat(view.path));
      e.kind = LayerEntry::kPresent;
    } else if (!view.lower.empty()) {
      const Source& src = view.lower.front();
      BUILDFS_ASSIGN_OR_RETURN(e, layers_[src.layer].layer->Lookup(src.path));
      out.immutable = layers_[src.layer].layer->immutable();
      if (out.immutable && e.kind == LayerEntry::kPresent) {
        std::lock_guard lock(mu_);
        if (node->changes == view.changes)
          node->attr = std::make_unique<CachedAttr>(CachedAttr::From(e.st));
      }
      if (!S_ISDIR(e.st.st_mode)) e.st.st_nlink = 1;  // see InoFor
    }
    if (e.kind != LayerEntry::kPresent) return Status::Error(ENOENT, view.path);
    if (S_ISDIR(e.st.st_mode) && (view.in_upper ? 1 : 0) + view.lower.size() > 1) {
      BUILDFS_ASSIGN_OR_RETURN(e.st.st_nlink, MergedLinks(node, view));
    }
  }
  out.st = e.st;
  out.st.st_ino = view.ino;
  out.st.st_dev = 0;
  out.ino = view.ino;
  if (view.in_upper || view.orphan) out.immutable = true;  // changed only through this mount
  return out;
}

}  // namespace buildfs
