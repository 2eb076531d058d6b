// Stack switches of a mounted build: freezing the upper (branch, commit) and
// replacing the lower layers (after commit). The merged tree is the same
// before and after each, so the kernel's caches stay valid.
#include <algorithm>

#include "fs/overlay/overlay.h"

namespace buildfs {

Status Overlay::FreezeUpper(const FreezeFn& move) {
  std::unique_lock writes(switch_mu_);
  std::lock_guard lock(mu_);
  std::shared_ptr<DirLayer> new_upper;
  StackLayer frozen;
  BUILDFS_RETURN_IF_ERROR(move(&new_upper, &frozen));
  // Paths first: PathOf needs the tree as it is.
  std::vector<std::pair<Node*, std::string>> in_upper;
  for (auto& [ino, node] : nodes_) {
    for (auto& src : node->lower) ++src.layer;
    if (!node->in_upper) continue;
    auto path = PathOf(*node);
    if (path.ok()) in_upper.emplace_back(node.get(), path.value());
  }
  for (auto& [node, path] : in_upper) {
    node->lower.insert(node->lower.begin(), Source{1, path});
    node->in_upper = node->ino == kRootIno;  // the new upper has a root, nothing else
    ++node->generation;
  }
  stack_.upper = new_upper;
  stack_.lowers.insert(stack_.lowers.begin(), frozen);
  layers_[0] = {new_upper, true};
  layers_.insert(layers_.begin() + 1, frozen);
  return Status::Ok();
}

Status Overlay::ReplaceLowers(std::vector<StackLayer> lowers) {
  std::unique_lock writes(switch_mu_);
  std::lock_guard lock(mu_);
  // Resolve every live node again, parents before children.
  std::vector<std::pair<size_t, Node*>> order;
  for (auto& [ino, node] : nodes_) {
    if (ino == kRootIno || node->orphan || node->removed) continue;
    auto path = PathOf(*node);
    if (!path.ok()) continue;
    order.emplace_back(std::count(path->begin(), path->end(), '/') + (path->empty() ? 0 : 1),
                       node.get());
  }
  std::sort(order.begin(), order.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  stack_.lowers = std::move(lowers);
  layers_.resize(1);
  for (const auto& l : stack_.lowers) layers_.push_back(l);
  Node* root = nodes_.at(kRootIno).get();
  root->lower.clear();
  for (size_t i = 1; i < layers_.size(); ++i) root->lower.push_back({static_cast<int>(i), ""});
  root->subdirs = -1;
  for (auto& [depth, node] : order) {
    auto [parent_ino, name] = node->aliases.front();
    auto parent = nodes_.find(parent_ino);
    if (parent == nodes_.end()) continue;
    auto parent_path = PathOf(*parent->second);
    if (!parent_path.ok()) continue;
    auto r = Resolve(*parent->second, parent_path.value(), name);
    if (!r.ok() || !r->found) {
      node->removed = true;
      continue;
    }
    node->in_upper = r->in_upper;
    node->lower = r->lower;
    node->subdirs = -1;
    ++node->generation;
    if (r->ino != node->ino) renumbered_[r->ino] = node->ino;
  }
  return Status::Ok();
}

std::optional<RepoObject> Overlay::RepoObjectAt(uint64_t ino) {
  std::lock_guard lock(mu_);
  auto it = nodes_.find(ino);
  if (it == nodes_.end()) return std::nullopt;
  const Node& node = *it->second;
  if (node.in_upper || node.orphan || node.lower.size() != 1) return std::nullopt;
  const Source& src = node.lower.front();
  return layers_[src.layer].layer->ObjectAt(src.path);
}

}  // namespace buildfs
