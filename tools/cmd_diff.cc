// buildfs diff [NAME] [PATH...]: unified diff of the build's changes.
#include <cstdio>

#include "fs/lifecycle/changes.h"
#include "tools/commands.h"

namespace buildfs {

void RegisterDiff(CLI::App& app, Context& ctx) {
  auto words = std::make_shared<std::vector<std::string>>();
  auto* cmd = app.add_subcommand("diff", "Unified diff (git's format) of changed files against the base");
  cmd->add_option("NAME_OR_PATH", *words,
                  "Build and paths (NAME [PATH...]); inside a build directory, only paths");
  cmd->callback([words, &ctx] {
    std::string name;
    std::vector<std::string> paths;
    BuildAndPaths(ctx, *words, &name, &paths);
    Check(BuildDiff(ctx.workspace(), name, paths, stdout));
  });
}

}  // namespace buildfs
