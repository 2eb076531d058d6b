// buildfs branch NAME NEW: NEW starts with exactly NAME's current state.
#include <cstdio>

#include "fs/lifecycle/builds.h"
#include "tools/commands.h"

namespace buildfs {

void RegisterBranch(CLI::App& app, Context& ctx) {
  struct Options {
    std::string name, to;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("branch", "Make NEW with exactly NAME's current state (O(1); NAME may be mounted)");
  cmd->add_option("NAME", o->name, "Build to branch")->required();
  cmd->add_option("NEW", o->to, "Name of the new build")->required();
  cmd->callback([o, &ctx] {
    std::string name = ctx.BuildName(o->name);
    Check(ValidateBuildName(o->to));
    Check(BranchBuild(ctx.workspace(), name, o->to));
    std::printf("branched %s from %s\n", o->to.c_str(), name.c_str());
  });
}

}  // namespace buildfs
