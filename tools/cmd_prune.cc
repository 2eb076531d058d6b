// buildfs prune: delete repo objects no ref reaches and unused frozen layers.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "fs/lifecycle/commit.h"
#include "tools/commands.h"

namespace buildfs {

void RegisterPrune(CLI::App& app, Context& ctx) {
  auto json = std::make_shared<bool>(false);
  auto* cmd = app.add_subcommand("prune", "Delete repo objects no ref reaches (safe while builds are mounted)");
  cmd->add_flag("--json", *json, "Print the result as JSON");
  cmd->callback([json, &ctx] {
    PruneResult r = Check(PruneWorkspace(ctx.workspace()));
    if (*json) {
      nlohmann::json j = {{"objects_total", r.objects_total}, {"objects_pruned", r.objects_pruned},
                          {"bytes_freed", r.bytes_freed}, {"layers_removed", r.layers_removed}};
      std::printf("%s\n", j.dump().c_str());
      return;
    }
    std::printf("pruned %d of %d objects (%.1f MiB), %d unused layer(s)\n", r.objects_pruned,
                r.objects_total, static_cast<double>(r.bytes_freed) / (1 << 20), r.layers_removed);
  });
}

}  // namespace buildfs
