// buildfs list: what each build is based on, whether it is mounted, and
// whether its private layers hold changes.
#include <fcntl.h>

#include "fs/common/path.h"
#include "fs/layers/chunked_file.h"
#include "fs/lifecycle/builds.h"
#include "fs/lifecycle/mounter.h"

namespace buildfs {
namespace {

// What the top level of a private layer holds: changes to the build's tree
// (any name but cache), to the shared cache (cache); the bases its chunked
// files read from are neither.
void AddChangesOf(const std::string& layer, BuildSummary* s) {
  auto names = ListNames(layer);
  if (!names.ok()) return;
  for (const auto& n : names.value()) {
    if (n == kBasesDir) continue;
    (n == "cache" ? s->cache_changes : s->dirty) = true;
  }
}

}  // namespace

Result<BuildSummary> DescribeBuild(const Workspace& ws, const std::string& name) {
  BuildSummary s;
  s.name = name;
  s.mountpoint = ws.mountpoint(name);
  s.mounted = IsMounted(ws, name);
  auto info = ws.LoadBuild(name);
  if (!info.ok()) {
    if (info.code() != EUCLEAN) return info.status();
    s.damaged = info.status().message();
    return s;
  }
  s.base = info->base;
  s.layers = info->layers;
  AddChangesOf(ws.upper_path(name), &s);
  for (const auto& id : info->layers) AddChangesOf(ws.layer_path(id), &s);
  return s;
}

std::vector<BuildSummary> ListBuildSummaries(const Workspace& ws) {
  std::vector<BuildSummary> out;
  for (const auto& name : ws.ListBuilds()) {
    auto s = DescribeBuild(ws, name);
    if (s.ok()) {
      out.push_back(std::move(s.value()));
    } else if (s.code() != ENOENT) {  // removed meanwhile: not listed
      BuildSummary broken;
      broken.name = name;
      broken.damaged = s.status().message();
      out.push_back(std::move(broken));
    }
  }
  return out;
}

}  // namespace buildfs
