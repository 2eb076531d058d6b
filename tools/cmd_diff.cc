// buildfs diff [NAME] [PATH]: unified diff of the build's changes.
#include <cstdio>

#include "fs/lifecycle/changes.h"
#include "tools/commands.h"

namespace buildfs {

void RegisterDiff(CLI::App& app, Context& ctx) {
  struct Options {
    std::string name, path;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("diff", "Unified diff of changed text files against the base");
  cmd->add_option("NAME", o->name, "Build (default: the build you are in)");
  cmd->add_option("PATH", o->path, "Only changes at or below PATH (relative to the build root)");
  cmd->callback([o, &ctx] {
    std::string path = o->path;
    while (!path.empty() && path.back() == '/') path.pop_back();
    while (path.rfind("./", 0) == 0) path.erase(0, 2);
    Check(BuildDiff(ctx.workspace(), ctx.BuildName(o->name), path, stdout));
  });
}

}  // namespace buildfs
