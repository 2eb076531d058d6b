// buildfs list [--json]: the builds of the workspace.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "fs/lifecycle/builds.h"
#include "tools/commands.h"

namespace buildfs {

void RegisterList(CLI::App& app, Context& ctx) {
  auto json = std::make_shared<bool>(false);
  auto* cmd = app.add_subcommand("list", "List builds: base commit, mounted or not, dirty or not");
  cmd->add_flag("--json", *json, "Print a JSON array");
  cmd->callback([json, &ctx] {
    auto builds = Check(ListBuildSummaries(ctx.workspace()));
    if (*json) {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& b : builds) {
        out.push_back({{"name", b.name}, {"base", b.base}, {"layers", b.layers},
                       {"mountpoint", b.mountpoint}, {"mounted", b.mounted}, {"dirty", b.dirty}});
      }
      std::printf("%s\n", out.dump(2).c_str());
      return;
    }
    if (builds.empty()) {
      std::printf("no builds; hint: buildfs new NAME\n");
      return;
    }
    std::printf("%-20s %-12s %-9s %s\n", "NAME", "BASE", "MOUNTED", "DIRTY");
    for (const auto& b : builds) {
      std::printf("%-20s %-12s %-9s %s\n", b.name.c_str(), b.base.substr(0, 12).c_str(),
                  b.mounted ? "yes" : "no", b.dirty ? "yes" : "no");
    }
  });
}

}  // namespace buildfs
