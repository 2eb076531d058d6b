// buildfs prune: delete repo objects no ref reaches and unused frozen layers.
#include <unistd.h>

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
    const Workspace& ws = ctx.workspace();
    Progress progress;
    if (isatty(2)) {
      progress.report = [&ws](uint64_t, uint64_t) {
        std::fprintf(stderr, "pruning %s (unreachable objects)...", ws.repo_path().c_str());
      };
    }
    auto pruned = PruneWorkspace(ws, progress);
    if (progress.report) std::fprintf(stderr, "\r\033[K");
    PruneResult r = Check(std::move(pruned));
    for (const auto& name : r.damaged) {
      std::fprintf(stderr, "buildfs: warning: build '%s' is damaged: skipped, and no frozen layer was deleted\n",
                   name.c_str());
    }
    if (*json) {
      nlohmann::json j = {{"objects_total", r.objects_total}, {"objects_pruned", r.objects_pruned},
                          {"bytes_freed", r.bytes_freed},     {"layers_removed", r.layers_removed},
                          {"damaged", r.damaged}};
      std::printf("%s\n", j.dump().c_str());
      return;
    }
    std::printf("pruned %d of %d objects (%.1f MiB), %d unused layer(s)\n", r.objects_pruned,
                r.objects_total, static_cast<double>(r.bytes_freed) / (1 << 20), r.layers_removed);
  });
}

}  // namespace buildfs
