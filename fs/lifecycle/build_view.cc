#include "fs/lifecycle/build_view.h"

#include <unistd.h>

#include <algorithm>

#include "fs/lifecycle/stack.h"

namespace buildfs {

Result<BuildView> OpenBuildView(const Workspace& ws, const std::string& name) {
  BUILDFS_ASSIGN_OR_RETURN(BuildInfo info, ws.LoadBuild(name));
  BUILDFS_ASSIGN_OR_RETURN(std::string empty, EmptyDir(ws));
  LayerStack stack;
  BUILDFS_ASSIGN_OR_RETURN(auto upper, DirLayer::Open(ws.upper_path(name), {"", true, false}));
  BUILDFS_ASSIGN_OR_RETURN(auto work, DirLayer::Open(empty, {"", false, false}));
  stack.upper = std::move(upper);
  stack.work = std::move(work);
  BUILDFS_ASSIGN_OR_RETURN(stack.lowers, OpenLowerLayers(ws, info, /*with_cache=*/false));
  BuildView view;
  view.base = stack.lowers.back().layer;
  view.overlay = std::make_unique<Overlay>(std::move(stack));
  view.private_dirs = PrivateDirs(ws, info);
  return view;
}

std::vector<std::string> PrivateDirs(const Workspace& ws, const BuildInfo& info) {
  std::vector<std::string> dirs{ws.upper_path(info.name)};
  for (const auto& id : info.layers) dirs.push_back(ws.layer_path(id));
  return dirs;
}

Result<Xattrs> OverlayXattrs(Overlay& ov, uint64_t ino) {
  BUILDFS_ASSIGN_OR_RETURN(auto names, ov.ListXattr(ino));
  Xattrs out;
  for (const auto& n : names) {
    BUILDFS_ASSIGN_OR_RETURN(std::string v, ov.GetXattr(ino, n));
    out.emplace_back(n, std::move(v));
  }
  std::sort(out.begin(), out.end());
  return out;
}

Result<EntryOut> LookupPath(Overlay& ov, const std::string& path) {
  EntryOut cur;
  cur.ino = kRootIno;
  size_t pos = 0;
  while (pos < path.size()) {
    size_t slash = path.find('/', pos);
    std::string name =
        path.substr(pos, slash == std::string::npos ? std::string::npos : slash - pos);
    pos = slash == std::string::npos ? path.size() : slash + 1;
    BUILDFS_ASSIGN_OR_RETURN(EntryOut next, ov.Lookup(cur.ino, name));
    if (cur.ino != kRootIno) ov.Forget(cur.ino, 1);
    if (next.ino == 0) return Status::Error(ENOENT, path);
    cur = next;
  }
  return cur;
}

bool PathAtOrBelow(const std::string& path, const std::string& prefix) {
  return prefix.empty() || path == prefix ||
         (path.size() > prefix.size() && path.compare(0, prefix.size(), prefix) == 0 &&
          path[prefix.size()] == '/');
}

}  // namespace buildfs
