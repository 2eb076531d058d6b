// buildfs rm NAME [--force]: delete a build.
#include <cstdio>

#include "fs/lifecycle/builds.h"
#include "tools/commands.h"

namespace buildfs {

void RegisterRm(CLI::App& app, Context& ctx) {
  struct Options {
    std::string name;
    bool force = false;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("rm", "Delete a build (refused while mounted, unless --force)");
  cmd->add_option("NAME", o->name, "Build to delete")->required();
  cmd->add_flag("-f,--force", o->force, "Unmount it first if mounted");
  cmd->callback([o, &ctx] {
    Check(ValidateBuildName(o->name));
    Check(RemoveBuild(ctx.workspace(), o->name, o->force));
    std::printf("removed build %s\n", o->name.c_str());
  });
}

}  // namespace buildfs
