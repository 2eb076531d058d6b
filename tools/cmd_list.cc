// buildfs list [--json]: the builds of the workspace.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "fs/lifecycle/builds.h"
#include "tools/commands.h"

namespace buildfs {

void RegisterList(CLI::App& app, Context& ctx) {
  auto json = std::make_shared<bool>(false);
  auto* cmd = app.add_subcommand("list", "List builds: base commit, mounted or not, uncommitted changes");
  cmd->add_flag("--json", *json, "Print a JSON array");
  cmd->callback([json, &ctx] {
    auto builds = ListBuildSummaries(ctx.workspace());
    if (*json) {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& b : builds) {
        nlohmann::json j = {{"name", b.name}, {"base", b.base}, {"layers", b.layers},
                            {"mountpoint", b.mountpoint}, {"mounted", b.mounted}, {"dirty", b.dirty},
                            {"cache_changes", b.cache_changes}};
        if (!b.damaged.empty()) j["damaged"] = b.damaged;
        out.push_back(j);
      }
      std::printf("%s\n", out.dump(2).c_str());
      return;
    }
    if (builds.empty()) {
      std::printf("no builds; hint: buildfs new NAME\n");
      return;
    }
    std::printf("%-20s %-12s %-9s %s\n", "NAME", "BASE", "MOUNTED", "CHANGES");
    for (const auto& b : builds) {
      if (!b.damaged.empty()) {
        std::printf("%-20s %-12s %-9s damaged: %s\n", b.name.c_str(), "?", b.mounted ? "yes" : "no",
                    b.damaged.c_str());
        continue;
      }
      const char* changes = b.dirty && b.cache_changes ? "yes, and private cache/"
                            : b.dirty                  ? "yes"
                            : b.cache_changes          ? "private cache/ only"
                                                       : "no";
      std::printf("%-20s %-12s %-9s %s\n", b.name.c_str(), b.base.substr(0, 12).c_str(),
                  b.mounted ? "yes" : "no", changes);
    }
  });
}

}  // namespace buildfs
