// Stack switches of a mounted build: freezing the upper (branch, commit) and
// replacing the lower layers (after commit). The merged tree is the same
// before and after each, so the kernel's caches stay valid. Each holds the
// tree lock exclusive and the table lock throughout: nothing else runs.
#include <algorithm>
#include <unordered_set>

#include "fs/overlay/overlay.h"

namespace buildfs {

Status Overlay::FreezeUpper(const FreezeFn& move) {
  std::vector<std::pair<uint64_t, std::string>> split;  // names that became inodes of their own
  std::vector<uint64_t> relinked;                       // nodes whose link count changed
  // Directories of the upper: a listing the kernel keeps may name numbers
  // that change below the upper (the second name of a hard link).
  std::vector<uint64_t> private_dirs;
  {
    std::unique_lock tree(tree_mu_);
    std::lock_guard lock(mu_);
    // Paths and link counts first: they need the tree as it is.
    std::vector<std::pair<Node*, std::string>> in_upper;
    for (auto& [ino, node] : nodes_) {
      if (!node->in_upper) continue;
      if (S_ISDIR(node->type)) private_dirs.push_back(ino);
      auto path = PathOf(*node);
      if (!path.ok()) continue;
      if (!S_ISDIR(node->type)) {
        auto e = UpperEntry(path.value());
        if (e.ok() && e->st.st_nlink > 1) relinked.push_back(ino);
      }
      in_upper.emplace_back(node.get(), path.value());
    }
    std::shared_ptr<DirLayer> new_upper;
    StackLayer frozen;
    BUILDFS_RETURN_IF_ERROR(move(&new_upper, &frozen));
    for (auto& [ino, node] : nodes_) {
      for (auto& src : node->lower) ++src.layer;
    }
    for (auto& [node, path] : in_upper) {
      node->lower.insert(node->lower.begin(), Source{1, "", true});  // at its own path
      node->in_upper = node->ino == kRootIno;  // the new upper has a root, nothing else
      ForgetLearned(*node);
      ++node->generation;
      // Below the upper, each name of a hard-linked file is a file of its own
      // (InoFor): the node keeps its first name, the kernel forgets the others.
      auto aliases = node->aliases;
      for (size_t i = 1; !S_ISDIR(node->type) && i < aliases.size(); ++i) {
        split.push_back(aliases[i]);
        DropAlias(node, aliases[i].first, aliases[i].second);
      }
    }
    stack_.upper = new_upper;
    upper_.SwitchTo(new_upper);
    root_up_ = false;
    stack_.lowers.insert(stack_.lowers.begin(), frozen);
    layers_[0] = {new_upper, true};
    layers_.insert(layers_.begin() + 1, frozen);
    // Names of the frozen layer resolve to path identities now; keep the numbers.
    for (auto& [node, path] : in_upper) {
      if (S_ISDIR(node->type) || node->aliases.empty()) continue;
      auto e = layers_[1].layer->Lookup(path);
      if (!e.ok() || !SplitLink(e.value(), 1)) continue;
      renumbered_[PathIno(Source{1, path})] = node->ino;
    }
  }
  NotifyKernel(split, relinked, private_dirs);
  return Status::Ok();
}

Status Overlay::UnfreezeUpper(const UnfreezeFn& move) {
  std::vector<std::pair<uint64_t, std::string>> names;
  std::vector<uint64_t> relinked;
  {
    std::unique_lock tree(tree_mu_);
    std::lock_guard lock(mu_);
    if (layers_.size() < 2 || !layers_[1].overlay_format) {
      return Status::Error(EINVAL, "no frozen layer to take back");
    }
    std::vector<LayerDirent> entries;
    BUILDFS_RETURN_IF_ERROR(upper_.dirs()->ReadDir("", &entries));
    if (!entries.empty()) return Status::Error(ENOTEMPTY, "the build was written to meanwhile");
    std::shared_ptr<DirLayer> upper;
    BUILDFS_RETURN_IF_ERROR(move(&upper));
    stack_.upper = upper;
    upper_.SwitchTo(upper);
    root_up_ = false;
    stack_.lowers.erase(stack_.lowers.begin());
    layers_[0] = {upper, true};
    layers_.erase(layers_.begin() + 1);
    for (auto& [ino, node] : nodes_) {
      bool moved = false;
      std::vector<Source> lower;
      for (const auto& src : node->lower) {
        if (src.layer == 1) {
          moved = true;
        } else {
          lower.push_back({src.layer - 1, src.path, src.at_node});
        }
      }
      node->lower = std::move(lower);
      if (!moved) continue;
      node->in_upper = true;
      ForgetLearned(*node);
      ++node->generation;
      if (S_ISDIR(node->type)) continue;
      // Names a freeze split apart are one file again: the kernel asks anew.
      auto path = PathOf(*node);
      auto e = path.ok() ? UpperEntry(path.value()) : Result<LayerEntry>(path.status());
      if (e.ok() && e->st.st_nlink > 1) {
        relinked.push_back(ino);
        names.insert(names.end(), node->aliases.begin(), node->aliases.end());
      }
    }
  }
  NotifyKernel(names, relinked);
  return Status::Ok();
}

void Overlay::NotifyKernel(const std::vector<std::pair<uint64_t, std::string>>& names,
                           const std::vector<uint64_t>& inodes, const std::vector<uint64_t>& dirs) {
  std::unordered_set<uint64_t> listings(dirs.begin(), dirs.end());
  for (const auto& [parent, name] : names) {
    if (kernel_cache_.forget_entry) kernel_cache_.forget_entry(parent, name);
    listings.insert(parent);
  }
  for (uint64_t dir : listings) {
    if (kernel_cache_.forget_listing) kernel_cache_.forget_listing(dir);
  }
  for (uint64_t ino : inodes) {
    if (kernel_cache_.forget_attrs) kernel_cache_.forget_attrs(ino);
  }
}

Status Overlay::ReplaceLowers(std::vector<StackLayer> lowers) {
  std::vector<std::pair<uint64_t, std::string>> split;  // names that became inodes of their own
  std::vector<uint64_t> relinked;                       // nodes whose attributes changed
  std::vector<uint64_t> private_dirs{kRootIno};         // listings that came from private layers
  {
    std::unique_lock tree(tree_mu_);
    std::lock_guard lock(mu_);
    // Resolve every live node again, parents before children; remember which
    // came from a private layer (their ctime and blocks come from the commit now).
    std::vector<std::pair<size_t, Node*>> order;
    std::unordered_set<uint64_t> was_private;
    for (auto& [ino, node] : nodes_) {
      if (ino == kRootIno) continue;
      auto path = node->orphan || node->removed ? Result<std::string>(Status::Error(ENOENT, "gone"))
                                                : PathOf(*node);
      if (!path.ok()) {
        // Orphans live in work/, removed entries nowhere: no layer is theirs.
        node->lower.clear();
        continue;
      }
      order.emplace_back(std::count(path->begin(), path->end(), '/') + (path->empty() ? 0 : 1),
                         node.get());
      if (!node->lower.empty() && layers_[node->lower.front().layer].overlay_format) was_private.insert(ino);
      if (S_ISDIR(node->type) && (node->in_upper || was_private.count(ino))) private_dirs.push_back(ino);
    }
    std::sort(order.begin(), order.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    stack_.lowers = std::move(lowers);
    layers_.resize(1);
    for (const auto& l : stack_.lowers) layers_.push_back(l);
    Node* root = nodes_.at(kRootIno).get();
    root->lower.clear();
    for (size_t i = 1; i < layers_.size(); ++i) root->lower.push_back({static_cast<int>(i), ""});
    ForgetLearned(*root);
    auto resolve_alias = [&](const std::pair<uint64_t, std::string>& alias) -> Result<Resolved> {
      auto parent = nodes_.find(alias.first);
      if (parent == nodes_.end() || parent->second->removed) return Status::Error(ENOENT, "gone");
      BUILDFS_ASSIGN_OR_RETURN(View parent_view, ViewOf(*parent->second));
      return Resolve(parent_view, alias.second);
    };
    std::vector<std::pair<Node*, uint64_t>> identities;  // multi-name nodes and their identity
    for (auto& [depth, node] : order) {
      auto r = resolve_alias(node->aliases.front());
      ++node->generation;
      node->subdirs = -1;
      if (!r.ok() || !r->found) {
        node->removed = true;
        node->lower.clear();
        continue;
      }
      node->in_upper = r->in_upper;
      node->lower = r->lower;
      ForgetLearned(*node);
      if (!node->in_upper && !node->lower.empty() && layers_[node->lower.front().layer].layer->immutable()) {
        node->attr = std::make_unique<CachedAttr>(CachedAttr::From(r->top.st));
      }
      if (r->ino != node->ino) renumbered_[r->ino] = node->ino;
      if (was_private.count(node->ino) && !node->in_upper) relinked.push_back(node->ino);
      if (node->aliases.size() > 1) identities.emplace_back(node, r->ino);
    }
    // A name that no longer resolves to the same inode (hard links split by
    // the commit) leaves the node; the kernel is told to look it up again.
    for (auto& [node, identity] : identities) {
      auto aliases = node->aliases;
      for (size_t i = 1; i < aliases.size(); ++i) {
        auto r = resolve_alias(aliases[i]);
        if (r.ok() && r->found && (r->ino == identity || r->ino == node->ino)) continue;
        split.push_back(aliases[i]);
        DropAlias(node, aliases[i].first, aliases[i].second);
      }
      if (node->aliases.size() != aliases.size()) relinked.push_back(node->ino);
    }
  }
  NotifyKernel(split, relinked, private_dirs);
  return Status::Ok();
}

std::optional<RepoObject> Overlay::RepoObjectAt(uint64_t ino) {
  std::shared_lock tree(tree_mu_);
  auto locked = LockNode(ino, false);
  if (!locked.ok()) return std::nullopt;
  Source src{0, "", false};
  {
    std::lock_guard lock(mu_);
    const Node& node = *locked->pin.get();
    if (node.in_upper || node.orphan || node.lower.size() != 1) return std::nullopt;
    auto top = TopSource(node);
    if (!top.ok()) return std::nullopt;
    src = top.value();
  }
  return layers_[src.layer].layer->ObjectAt(src.path);
}

}  // namespace buildfs
